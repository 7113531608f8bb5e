"""Image files off the happy path (issue #13): a FIFO or other non-regular file where an
image should be never blocks a reader, and a missing image names its sample."""

from __future__ import annotations

import os
import threading

import pytest
from PIL import Image

from mlcycle import reporting
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, csv_table, images
from mlcycle.formats._images import header_size, image_sizes

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")


def _in_time(fn, seconds=10):
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked on a FIFO"
    if "error" in out:
        raise out["error"]
    return out.get("value")


@needs_fifo
def test_a_fifo_in_place_of_an_image_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "a.jpg")
    with pytest.raises(MlcycleError, match=r"a\.jpg: not a regular file \(a FIFO, socket or device\), expected an image"):
        _in_time(lambda: header_size(tmp_path / "a.jpg"))
    with pytest.raises(MlcycleError, match="not a regular file"):
        _in_time(lambda: images.read(tmp_path, ReadOptions()))


@needs_fifo
def test_a_fifo_image_under_a_normalized_csv_is_refused(tmp_path, runner):
    os.mkfifo(tmp_path / "a.jpg")
    p = tmp_path / "boxes.csv"
    p.write_text("image,label,xmin,ymin,xmax,ymax\na.jpg,cat,0.1,0.1,0.2,0.2\n")
    with pytest.raises(MlcycleError, match="not a regular file"):
        _in_time(lambda: csv_table.read(p, csv_table.ReadOptions(normalized=True)))


def test_a_missing_image_names_its_sample(tmp_path):
    Image.new("RGB", (4, 3)).save(tmp_path / "real.png")
    with pytest.raises(MlcycleError, match=r"img/missing\.jpg: image not found; its width and height are needed") as info:
        image_sizes(["real.png", "img/missing.jpg"], tmp_path, ReadOptions())
    assert "allow" in info.value.hint
    # a path found elsewhere than root/sample_id also says which sample it is for
    with pytest.raises(MlcycleError, match=r"elsewhere\.jpg \(sample s1\): image not found"):
        image_sizes(["s1"], tmp_path, ReadOptions(), paths=[tmp_path / "elsewhere.jpg"])
    with reporting.collect() as seen:
        w, _ = image_sizes(["real.png", "img/missing.jpg"], tmp_path, ReadOptions(allow_missing=True))
    assert w.tolist() == [4, -1] and "1 image(s) not found" in seen.warnings[0]
