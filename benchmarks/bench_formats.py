"""Time `mlcycle ingest yolo` and `mlcycle ingest voc` against globox's parsers.

Generates, in a temporary folder, N YOLO label files (Ultralytics layout, each with a
tiny real PNG whose header gives the size: both tools read sizes from the image headers)
and N Pascal VOC XML files, ~3 boxes each. Then, in the same run, as whole processes:

- ``mlcycle ingest yolo ROOT -o out.parquet``  vs
  ``AnnotationSet.from_yolo_v5(labels, image_folder=images, image_extension=".png")``
- ``mlcycle ingest voc ROOT -o out.parquet``   vs
  ``AnnotationSet.from_pascal_voc(ROOT/Annotations)``

and prints times, each process's peak memory and the ratio (globox time / mlcycle time;
> 1 means mlcycle is faster). mlcycle's time includes interpreter start-up, checks and
writing the Parquet table; globox's only builds its in-memory objects.

    python benchmarks/bench_formats.py                  # 100,000 files each
    python benchmarks/bench_formats.py --files 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import best_of  # noqa: E402

CLASSES = [f"class_{i}" for i in range(20)]


def tiny_png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (w, h)).save(buf, "PNG")
    return buf.getvalue()


def boxes(rng, n_files: int, per_file: float, w: np.ndarray, h: np.ndarray):
    counts = rng.poisson(per_file, size=n_files)
    n = int(counts.sum())
    owner = np.repeat(np.arange(n_files), counts)
    W = w[owner].astype(float)
    H = h[owner].astype(float)
    bw = np.floor(rng.uniform(0.05, 0.5, n) * W) + 1
    bh = np.floor(rng.uniform(0.05, 0.5, n) * H) + 1
    x = np.floor(rng.uniform(0, 1, n) * (W - bw))
    y = np.floor(rng.uniform(0, 1, n) * (H - bh))
    cls = rng.integers(0, len(CLASSES), n)
    return counts, owner, cls, x, y, bw, bh


def make_yolo(root: Path, n_files: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    sizes = [(640, 480), (480, 640), (500, 375)]
    pick = rng.integers(0, len(sizes), n_files)
    w = np.array([sizes[k][0] for k in pick])
    h = np.array([sizes[k][1] for k in pick])
    pngs = [tiny_png(*s) for s in sizes]
    counts, owner, cls, x, y, bw, bh = boxes(rng, n_files, 3.0, w, h)
    W, H = w[owner], h[owner]
    lines = [f"{c} {cx:.6f} {cy:.6f} {nw:.6f} {nh:.6f}\n" for c, cx, cy, nw, nh in
             zip(cls.tolist(), ((x + bw / 2) / W).tolist(), ((y + bh / 2) / H).tolist(),
                 (bw / W).tolist(), (bh / H).tolist())]
    labels = root / "labels/train"
    images = root / "images/train"
    labels.mkdir(parents=True)
    images.mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames:\n"
                                    + "".join(f"  {i}: {c}\n" for i, c in enumerate(CLASSES)))
    ends = np.cumsum(counts)
    starts = ends - counts
    for i in range(n_files):
        name = f"{i:07d}"
        (labels / f"{name}.txt").write_text("".join(lines[starts[i]:ends[i]]))
        (images / f"{name}.png").write_bytes(pngs[pick[i]])
    return int(counts.sum())


def make_voc(root: Path, n_files: int, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    w = rng.choice([500, 375, 640], n_files)
    h = rng.choice([375, 500, 480], n_files)
    counts, owner, cls, x, y, bw, bh = boxes(rng, n_files, 3.0, w, h)
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    ends = np.cumsum(counts)
    starts = ends - counts
    for i in range(n_files):
        objs = []
        for j in range(starts[i], ends[i]):
            objs.append(
                f"\t<object>\n\t\t<name>{CLASSES[cls[j]]}</name>\n\t\t<pose>Unspecified</pose>\n"
                f"\t\t<truncated>0</truncated>\n\t\t<difficult>{int(j % 7 == 0)}</difficult>\n\t\t<bndbox>\n"
                f"\t\t\t<xmin>{int(x[j])}</xmin>\n\t\t\t<ymin>{int(y[j])}</ymin>\n"
                f"\t\t\t<xmax>{int(x[j] + bw[j])}</xmax>\n\t\t\t<ymax>{int(y[j] + bh[j])}</ymax>\n"
                f"\t\t</bndbox>\n\t</object>\n")
        (ann / f"{i:07d}.xml").write_text(
            f"<annotation>\n\t<folder>VOC2012</folder>\n\t<filename>{i:07d}.jpg</filename>\n"
            f"\t<size>\n\t\t<width>{w[i]}</width>\n\t\t<height>{h[i]}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{''.join(objs)}</annotation>\n")
    return int(counts.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000, help="label files per format [100000]")
    ap.add_argument("--repeat", type=int, default=1, help="runs per command (median) [1]")
    ap.add_argument("--only", choices=["yolo", "voc"], help="run one format")
    ap.add_argument("--generate", nargs=2, metavar=("FORMAT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:  # runs in a child: the parent stays small (see _measure.py)
        fmt, folder = args.generate
        n = (make_yolo if fmt == "yolo" else make_voc)(Path(folder), args.files)
        Path(folder, "boxes.count").write_text(str(n))
        return
    py = sys.executable
    import subprocess

    def generate(fmt: str, folder: Path) -> int:
        subprocess.run([py, __file__, "--generate", fmt, str(folder), "--files", str(args.files)], check=True)
        return int((folder / "boxes.count").read_text())

    with tempfile.TemporaryDirectory(prefix="bench_formats_") as tmp:
        tmp = Path(tmp)
        results = []
        if args.only in (None, "yolo"):
            n = generate("yolo", tmp / "yolo")
            ours = best_of([py, "-m", "mlcycle", "ingest", "yolo", str(tmp / "yolo"), "-q", "-o", str(tmp / "y.parquet")], args.repeat)
            theirs = best_of([py, "-c", "from globox import AnnotationSet as A; import sys; "
                              f"s = A.from_yolo_v5({str(tmp / 'yolo/labels/train')!r}, image_folder={str(tmp / 'yolo/images/train')!r}, image_extension='.png'); "
                              "assert len(s) == int(sys.argv[1])", str(args.files)], args.repeat)
            results.append(("yolo", n, ours, theirs))
        if args.only in (None, "voc"):
            n = generate("voc", tmp / "voc")
            ours = best_of([py, "-m", "mlcycle", "ingest", "voc", str(tmp / "voc"), "-q", "-o", str(tmp / "v.parquet")], args.repeat)
            theirs = best_of([py, "-c", "from globox import AnnotationSet as A; import sys; "
                              f"s = A.from_pascal_voc({str(tmp / 'voc/Annotations')!r}); "
                              "assert len(s) == int(sys.argv[1])", str(args.files)], args.repeat)
            results.append(("voc", n, ours, theirs))
    print(f"{'format':<6} {'files':>8} {'boxes':>8} {'mlcycle s':>10} {'MB':>6} {'globox s':>9} {'MB':>6} {'ratio':>6}")
    for name, n, (t1, m1), (t2, m2) in results:
        print(f"{name:<6} {args.files:>8} {n:>8} {t1:>10.2f} {m1:>6.0f} {t2:>9.2f} {m2:>6.0f} {t2 / t1:>5.2f}x")
    print("ratio = globox time / mlcycle time (> 1: mlcycle faster); whole processes, same run")


if __name__ == "__main__":
    main()
