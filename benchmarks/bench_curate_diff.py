"""Benchmark: `diff` on a large table with planted changes, and `dedupe` hashing speed.

    .venv/bin/python benchmarks/bench_curate_diff.py                    # both parts
    .venv/bin/python benchmarks/bench_curate_diff.py --part diff --labels 1000000 5000000
    .venv/bin/python benchmarks/bench_curate_diff.py --part dedupe --images 1000

**diff**: OLD has LABELS labels (8 per sample, 5 classes, non-overlapping boxes,
label ids). NEW changes 10 % of them: 2.5 % removed, 2.5 % moved (x + 20 % of the
width: IoU 0.67), 2.5 % relabelled, 2.5 % with an attribute changed, plus 2.5 % new
labels. Both are written as Parquet in a subprocess; then `mlcycle diff OLD NEW -o
changes.parquet` runs as a whole process (wall time and peak memory), once with NEW
sorted by sample_id (streamed in batches) and once with NEW as appended (not sorted:
both tables read whole, which is what diff always did before #16). The counts it
reports are checked against what was planted. Half of the moved labels lose their id
(so matching by geometry is exercised too).

**dedupe**: IMAGES JPEG images of 640x480 (10 % re-encoded copies, 10 % byte copies)
and `mlcycle dedupe --images-root` as a whole process; reports images per second and
seconds per 1,000 images, for pHash and dHash, and checks the planted groups were found.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import run  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "mlcycle"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def generate_diff(folder: Path, labels: int, seed: int = 0) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcycle import io
    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    per = 8
    n = labels
    sample = np.arange(n) // per
    cell = np.arange(n) % per
    w = rng.uniform(20, 60, n)
    h = rng.uniform(20, 60, n)
    boxes = np.c_[cell * 100.0, np.zeros(n), w, h]
    classes = np.array(["car", "person", "dog", "cat", "bus"])
    label = rng.integers(0, 5, n)
    occluded = rng.random(n) < 0.3
    ids = np.arange(1, n + 1)
    sids = pa.array([f"img/{s:07d}.jpg" for s in range(sample[-1] + 1)]).take(pa.array(sample))
    old = T.from_columns({"sample_id": sids, "source": pa.array(["gt"] * n), "label_id": ids,
                          "label": classes[label].tolist(), "bbox": boxes, "occluded": occluded})
    kind = rng.permutation(n)
    q = n // 40  # 2.5 %
    removed, moved, relab, attr = kind[:q], kind[q:2 * q], kind[2 * q:3 * q], kind[3 * q:4 * q]
    keep = np.ones(n, bool)
    keep[removed] = False
    boxes2 = boxes.copy()
    boxes2[moved, 0] += 0.2 * w[moved]
    label2 = label.copy()
    label2[relab] = (label[relab] + 1) % 5
    occ2 = occluded.copy()
    occ2[attr] = ~occ2[attr]
    ids2 = ids.copy().astype(float)
    ids2[moved[: len(moved) // 2]] = np.nan  # matched by geometry
    new_ids = np.where(np.isnan(ids2), None, ids2).tolist()
    # added: a ninth cell in random samples
    add_s = rng.choice(sample[-1] + 1, q, replace=False)
    new = T.from_columns({
        "sample_id": pa.concat_arrays([sids.filter(pa.array(keep)),
                                       pa.array([f"img/{s:07d}.jpg" for s in add_s])]),
        "source": pa.array(["gt"] * (int(keep.sum()) + q)),
        "label_id": pa.array([None if v is None else int(v) for v in np.array(new_ids, dtype=object)[keep]]
                             + list(range(n + 1, n + 1 + q)), type=pa.int64()),
        "label": classes[label2][keep].tolist() + ["car"] * q,
        "bbox": np.r_[boxes2[keep], np.tile([900.0, 0.0, 40.0, 40.0], (q, 1))],
        "occluded": np.r_[occ2[keep], np.zeros(q, bool)],
    })
    io.write_table(old, folder / "old.parquet")
    # NEW sorted by sample_id (stably: as mlcycle streams it) and as appended (the added
    # labels last: not sorted, so diff reads both tables whole, as it always did before #16)
    io.write_table(new.take(pc.sort_indices(new, [("sample_id", "ascending")])), folder / "new.parquet")
    io.write_table(new, folder / "new_unsorted.parquet")
    return {"removed": q, "moved": q, "relabelled": q, "attributes": q, "added": q}


def part_diff(labels: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = subprocess.run([sys.executable, __file__, "--generate-diff", str(folder), "--labels", str(labels)],
                             capture_output=True, text=True, env=_env(), check=True)
        planted = json.loads(out.stdout)
        res: dict = {"labels": labels, "planted": planted}
        # sorted by sample_id: streamed in batches; unsorted: both tables read whole
        for key, new in (("streamed", "new.parquet"), ("whole", "new_unsorted.parquet")):
            cmd = [*CLI, "diff", str(folder / "old.parquet"), str(folder / new),
                   "-o", str(folder / "changes.parquet"), "-q"]
            secs, mb = run(cmd, env=_env())
            summary = subprocess.run([*CLI, "diff", str(folder / "old.parquet"), str(folder / new), "--json", "-q"],
                                     capture_output=True, text=True, env=_env(), check=True)
            counts = json.loads(summary.stdout)["counts"]
            res[key] = {"seconds": round(secs, 2), "peak_mb": round(mb), "counts": counts,
                        "exact": all(counts[k] == v for k, v in planted.items()),
                        "command": " ".join(cmd[2:]).replace(str(folder) + os.sep, "")}
        return res


def generate_images(folder: Path, images: int, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    from mlcycle import io
    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    root = folder / "images"
    root.mkdir()
    ids = []
    for k in range(images):
        name = f"{k:06d}.jpg"
        if k >= 10 and k % 10 == 0:  # a re-encoded copy of an earlier image
            Image.open(root / ids[k - 7]).save(root / name, quality=70)
        elif k >= 10 and k % 10 == 5:  # a byte copy
            shutil.copyfile(root / ids[k - 3], root / name)
        else:
            small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
            arr = np.asarray(img).astype(np.int16) + rng.integers(-8, 9, (480, 640, 3))
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(root / name, quality=90)
        ids.append(name)
    io.write_table(T.from_columns({"sample_id": ids, "source": ["gt"] * images}), folder / "t.parquet")


def part_dedupe(images: int, workers: int | None) -> dict:
    out = {"images": images}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, __file__, "--generate-images", str(folder), "--images", str(images)],
                       env=_env(), check=True)
        for h in ("phash", "dhash"):
            cmd = [*CLI, "dedupe", str(folder / "t.parquet"), "--images-root", str(folder / "images"),
                   "--hash", h, "--json"] + (["--workers", str(workers)] if workers else [])
            secs, mb = run(cmd, env=_env())
            doc = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=True).stdout)
            out[h] = {"seconds": round(secs, 2), "seconds_per_1k": round(secs / images * 1000, 2),
                      "images_per_second": round(images / secs), "peak_mb": round(mb),
                      "groups": doc["groups"], "samples_in_groups": doc["samples_in_groups"],
                      "command": " ".join(cmd[2:])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["diff", "dedupe", "all"], default="all")
    ap.add_argument("--labels", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--generate-diff", type=Path)
    ap.add_argument("--generate-images", type=Path)
    a = ap.parse_args()
    if a.generate_diff:
        print(json.dumps(generate_diff(a.generate_diff, a.labels[0])))
        return
    if a.generate_images:
        generate_images(a.generate_images, a.images)
        return
    res = {}
    if a.part in ("diff", "all"):
        res["diff"] = [part_diff(n) for n in a.labels]
    if a.part in ("dedupe", "all"):
        res["dedupe"] = part_dedupe(a.images, a.workers)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
