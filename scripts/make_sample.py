"""Make the sample dataset shipped in mlcycle/data/sample (deterministic, seed 7).

What it makes, truthfully:
- 32 synthetic 320x240 PNG images of flat-coloured shapes (classes circle, square,
  triangle) on a grey gradient background; shapes may overlap (later ones on top) and may be
  cut by the image border. Split: 20 train, 12 val.
- Ground truth from the drawing parameters (exact boxes of the visible pixels), with
  COCO `attributes` occluded (more than 15% of the shape is covered by a later one) and
  truncated (the drawn shape extends past the border), in annotations/instances_{train,val}.json.
- Deliberate annotation mistakes, listed in MISTAKES.md: in val, one box removed (a
  missing annotation), one class changed (a wrong label), one box shifted and enlarged
  (a sloppy box); the same three kinds once in train.
- Predictions in predictions/detections_val.json (COCO results) and detections_train.json
  from a small real detector run on the pixels (`detect` below): each distinct colour
  region is an object, its class guessed from how much of its box it fills (square ~1,
  circle ~0.785, triangle ~0.5), its score from how close that fill ratio is to the
  class's. Occlusion and truncation fool it, as they would a real model. It also
  "detects" the grey distractor blobs some images have (false positives).
- A second, weaker model in predictions/detections_weak_{train,val}.json (`weaken`
  below): the same detector's detections, degraded with its own generator (seed 8, so
  the files above do not change): each detection is dropped with probability 0.25
  (lower recall); each box edge moves by Gaussian noise with a standard deviation of 8%
  of the box's width or height (worse localisation); the score becomes
  0.8 * score + N(0, 0.08), clipped to [0.05, 0.99] (less confident, noisier ranking);
  with probability 0.1 the class is replaced by another one (confusions); and with
  probability 0.5 per image one spurious box (random class, place and size, score
  uniform in [0.05, 0.6]) is added (more false positives).

Run: python scripts/make_sample.py [OUT_DIR]   (default mlcycle/data/sample)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

W, H = 320, 240
CLASSES = ["circle", "square", "triangle"]
FILL = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}


def draw_shape(draw: ImageDraw.ImageDraw, cls: str, x: float, y: float, s: float, color) -> None:
    if cls == "circle":
        draw.ellipse([x, y, x + s, y + s], fill=color)
    elif cls == "square":
        draw.rectangle([x, y, x + s, y + s], fill=color)
    else:
        draw.polygon([(x, y + s), (x + s, y + s), (x + s / 2, y)], fill=color)


def make_image(rng: np.random.Generator):
    # a smooth grey gradient: compresses well as PNG and is easy to tell from the shapes
    shade = np.linspace(188, 216, H)[:, None, None] + np.zeros((1, W, 3))
    bg = shade.astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    layer = np.zeros((H, W), dtype=np.int32)  # which object owns each pixel (0 = none)
    objects = []
    n = int(rng.integers(2, 6))
    for k in range(1, n + 1):
        cls = CLASSES[int(rng.integers(0, 3))]
        s = float(rng.choice([rng.uniform(14, 30), rng.uniform(34, 90), rng.uniform(100, 150)], p=[0.3, 0.5, 0.2]))
        x = float(rng.uniform(-0.2 * s, W - 0.8 * s))
        y = float(rng.uniform(-0.2 * s, H - 0.8 * s))
        color = tuple(int(c) for c in rng.integers(20, 160, size=3))
        mask_img = Image.new("L", (W, H), 0)
        draw_shape(ImageDraw.Draw(mask_img), cls, x, y, s, 255)
        mask = np.asarray(mask_img) > 0
        draw_shape(ImageDraw.Draw(img), cls, x, y, s, color)
        layer[mask] = k
        truncated = x < 0 or y < 0 or x + s > W or y + s > H
        objects.append({"cls": cls, "mask": mask, "truncated": bool(truncated), "color": color})
    if rng.random() < 0.3:  # a grey distractor blob: not an object class
        d = ImageDraw.Draw(img)
        x, y = rng.uniform(0, W - 40), rng.uniform(0, H - 25)
        d.ellipse([x, y, x + 40, y + 22], fill=(120, 120, 120))
        blob = np.zeros((H, W), bool)
        m = Image.new("L", (W, H), 0)
        ImageDraw.Draw(m).ellipse([x, y, x + 40, y + 22], fill=255)
        blob = np.asarray(m) > 0
        layer[blob] = -1
    labels = []
    for k, obj in enumerate(objects, start=1):
        visible = layer == k
        full = obj["mask"].sum()
        if visible.sum() < 30:
            continue  # hidden: not annotated
        ys, xs = np.nonzero(visible)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        labels.append({
            "cls": obj["cls"], "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "area": float(visible.sum()),
            "occluded": bool(visible.sum() < 0.85 * full), "truncated": obj["truncated"],
        })
    return img, labels


def detect(img: Image.Image, rng: np.random.Generator) -> list[dict]:
    """The toy detector: colour regions -> boxes, fill ratio -> class and score."""
    a = np.asarray(img).astype(np.int32)
    key = a[..., 0] * 65536 + a[..., 1] * 256 + a[..., 2]
    grey = (np.abs(a - a.mean(axis=2, keepdims=True)).max(axis=2) < 12) & (a[..., 0] > 170)
    key[grey] = -1  # background
    dets = []
    values, counts = np.unique(key[key >= 0], return_counts=True)
    for v, c in zip(values, counts):
        if c < 40:
            continue
        ys, xs = np.nonzero(key == v)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        fill = c / float((x1 - x0) * (y1 - y0))
        dist = {k: abs(fill - f) for k, f in FILL.items()}
        cls = min(dist, key=dist.get)
        score = float(np.clip(1.0 - 2.5 * dist[cls] + rng.normal(0, 0.05), 0.05, 0.99))
        jitter = rng.normal(0, 1.0, size=4)
        box = [float(x0 + jitter[0]), float(y0 + jitter[1]), float(x1 - x0 + jitter[2]), float(y1 - y0 + jitter[3])]
        dets.append({"cls": cls, "bbox": [round(b, 2) for b in box], "score": round(score, 3)})
    return dets


def weaken(dets: list[dict], rng: np.random.Generator) -> list[dict]:
    """The weaker model: the detector's detections degraded (see the module docstring)."""
    out = []
    for d in dets:
        if rng.random() < 0.25:
            continue
        x, y, w, h = d["bbox"]
        x0, x1 = x + rng.normal(0, 0.08 * w), x + w + rng.normal(0, 0.08 * w)
        y0, y1 = y + rng.normal(0, 0.08 * h), y + h + rng.normal(0, 0.08 * h)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        cls = d["cls"]
        if rng.random() < 0.1:
            cls = CLASSES[(CLASSES.index(cls) + int(rng.integers(1, 3))) % 3]
        score = float(np.clip(0.8 * d["score"] + rng.normal(0, 0.08), 0.05, 0.99))
        out.append({"cls": cls, "bbox": [round(float(v), 2) for v in (x0, y0, max(x1 - x0, 1.0), max(y1 - y0, 1.0))],
                    "score": round(score, 3)})
    if rng.random() < 0.5:
        s = float(rng.uniform(15, 60))
        x, y = float(rng.uniform(0, W - s)), float(rng.uniform(0, H - s))
        out.append({"cls": CLASSES[int(rng.integers(0, 3))], "bbox": [round(x, 2), round(y, 2), round(s, 2), round(s * 0.9, 2)],
                    "score": round(float(rng.uniform(0.05, 0.6)), 3)})
    return out


def main(out: Path) -> None:
    rng = np.random.default_rng(7)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    (out / "predictions").mkdir(exist_ok=True)
    categories = [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)]
    cat_id = {c["name"]: c["id"] for c in categories}
    splits = {"train": [], "val": []}
    ann_id = 1
    mistakes = []
    for i in range(32):
        split = "train" if i < 20 else "val"
        img, labels = make_image(rng)
        name = f"images/{split}_{i:03d}.png"
        img.save(out / name, optimize=True)
        dets = detect(img, rng)
        splits[split].append((i + 1, name, labels, dets))
    weak_rng = np.random.default_rng(8)  # its own generator: the files above stay as they were
    for split, items in splits.items():
        images, anns, results, weak = [], [], [], []
        planned = {"missing": None, "wrong_class": None, "sloppy": None}
        for image_id, name, labels, dets in items:
            images.append({"id": image_id, "file_name": name, "width": W, "height": H})
            for j, lab in enumerate(labels):
                kind = None
                if planned["missing"] is None and lab["area"] > 900 and not lab["occluded"]:
                    planned["missing"] = (name, lab["cls"], lab["bbox"])
                    mistakes.append(f"{split}: {name}: a {lab['cls']} at {lab['bbox']} has no annotation (missing box)")
                    continue
                cls, bbox = lab["cls"], list(lab["bbox"])
                if planned["wrong_class"] is None and planned["missing"] is not None and lab["area"] > 900 and name != planned["missing"][0]:
                    wrong = CLASSES[(CLASSES.index(cls) + 1) % 3]
                    planned["wrong_class"] = name
                    kind = f"{split}: {name}: annotation {ann_id} is labelled {wrong} but shows a {cls} (wrong class)"
                    cls = wrong
                elif planned["sloppy"] is None and planned["wrong_class"] is not None and lab["area"] > 2500 and name != planned["wrong_class"]:
                    planned["sloppy"] = name
                    bbox = [bbox[0] + 0.3 * bbox[2], bbox[1] - 0.2 * bbox[3], bbox[2] * 1.1, bbox[3] * 1.15]
                    bbox = [round(b, 2) for b in bbox]
                    kind = f"{split}: {name}: annotation {ann_id} box {bbox} is shifted from {lab['bbox']} (sloppy box)"
                attributes = {"occluded": lab["occluded"], "truncated": lab["truncated"]}
                category = cat_id[cls]
                # schema slips, in train only (what `schema-check` is for): a label that
                # lacks `occluded`, a box that leaves the image, a class under a synonym
                if split == "train" and kind is None and lab["area"] > 400:
                    if "no_occluded" not in planned:
                        planned["no_occluded"] = name
                        del attributes["occluded"]
                        kind = f"{split}: {name}: annotation {ann_id} has no `occluded` attribute (schema slip)"
                    elif "outside" not in planned and name != planned["no_occluded"] and bbox[0] + bbox[2] < W - 20:
                        planned["outside"] = name
                        bbox = [bbox[0], bbox[1], float(W - bbox[0] + 12), bbox[3]]
                        kind = f"{split}: {name}: annotation {ann_id} box {bbox} leaves the image by 12 px (schema slip)"
                    elif "synonym" not in planned and cls == "circle" and "outside" in planned and name != planned["outside"]:
                        planned["synonym"] = name
                        category = 4
                        kind = f"{split}: {name}: annotation {ann_id} is labelled `disc`, a synonym of circle (schema slip)"
                if kind:
                    mistakes.append(kind)
                anns.append({
                    "id": ann_id, "image_id": image_id, "category_id": category, "bbox": bbox,
                    "area": lab["area"], "iscrowd": 0, "segmentation": [],
                    "attributes": attributes,
                })
                ann_id += 1
            for d in dets:
                results.append({"image_id": image_id, "category_id": cat_id[d["cls"]], "bbox": d["bbox"], "score": d["score"]})
            for d in weaken(dets, weak_rng):
                weak.append({"image_id": image_id, "category_id": cat_id[d["cls"]], "bbox": d["bbox"], "score": d["score"]})
        cats = categories + ([{"id": 4, "name": "disc", "supercategory": "shape"}] if "synonym" in planned else [])
        doc = {"info": {"description": "mlcycle sample dataset (synthetic shapes)", "version": "1.0", "year": 2026},
               "licenses": [{"id": 1, "name": "CC0-1.0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}],
               "images": images, "annotations": anns, "categories": cats}
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc, indent=1) + "\n")
        (out / "predictions" / f"detections_{split}.json").write_text(json.dumps(results) + "\n")
        (out / "predictions" / f"detections_weak_{split}.json").write_text(json.dumps(weak) + "\n")
    (out / "MISTAKES.md").write_text("# Deliberate annotation mistakes\n\n" + "".join(f"- {m}\n" for m in mistakes))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "mlcycle" / "data" / "sample")
