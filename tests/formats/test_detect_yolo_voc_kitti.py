"""Auto-detection picks the right format for every yolo/voc/kitti/images fixture, and
does not take other formats' fixtures for these."""

from __future__ import annotations

import pytest

from mlcycle import formats

D = "openvinotoolkit__datumaro/tests/assets/"
R = "rafaelpadilla__review_object_detection_metrics/"
CASES = {
    "yolo": [D + "yolo_dataset/strict", D + "yolo_dataset/labels", D + "yolo_dataset/annotations",
             D + "roboflow_dataset/yolo", R + "data/database/gts/yolo_format"],
    "voc": [D + "voc_dataset/voc_dataset1", D + "voc_dataset/voc_dataset2", D + "voc_dataset/voc_dataset3",
            D + "roboflow_dataset/voc", R + "data/database/gts/pascalvoc_format",
            R + "data/database/gts/imagenet_format", R + "toyexample/gts_vocpascal_format",
            R + "data/database/gts/pascalvoc_format/2007_000027.xml"],
    "kitti": [D + "kitti_dataset/kitti_detection", D + "kitti_dataset/kitti_3d",
              D + "kitti_dataset/kitti_detection/training/label_2"],
    "images": [D + "voc_dataset/voc_dataset1/JPEGImages", D + "coco_dataset/coco_instances/images"],
}


@pytest.mark.parametrize("want, rel", [(k, p) for k, ps in CASES.items() for p in ps])
def test_detects(external, want, rel):
    assert formats.detect(external / rel) == want


@pytest.mark.parametrize("rel", [
    D + "labelme_dataset",                       # MIT LabelMe XML is not VOC
    D + "cvat_dataset/for_images/export_task",   # CVAT <annotations> is not VOC
    D + "roboflow_dataset/yolo_obb",             # oriented boxes are not YOLO boxes
    "Cartucho__mAP/input/ground-truth",          # 'class left top right bottom' is not KITTI
])
def test_other_layouts_are_not_taken_for_these(external, rel):
    from mlcycle.errors import MlcycleError

    try:
        got = formats.detect(external / rel)
    except MlcycleError:
        got = None
    assert got not in ("yolo", "voc", "kitti", "images")
