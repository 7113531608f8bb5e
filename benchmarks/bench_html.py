"""export html at scale: N samples (JPEG images) with GT, predictions and eval columns.

Measures the export (cold: thumbnails made; warm: thumbnails reused), the report's
size, and how long the page takes in headless Chromium from script start to the first
rendered page of the grid and with a filter applied (the page records it in
``data-render-ms``).

    .venv/bin/python benchmarks/bench_html.py [--samples 2000] [--labels 8]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import generate_in_subprocess, run  # noqa: E402

MLCYCLE = [sys.executable, "-m", "mlcycle"]


def generate(folder: Path, samples: int, labels: int) -> None:
    import numpy as np
    from PIL import Image

    from mlcycle import io
    from mlcycle import table as T

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    # smooth blobs (photo-like, compresses like a photo), not white noise
    base = np.asarray(Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize((640, 480), Image.BILINEAR))
    for i in range(samples):
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / "images" / f"{i:06d}.jpg", quality=80)
    n = samples * labels
    sid = np.repeat([f"images/{i:06d}.jpg" for i in range(samples)], labels)
    xy = rng.random((n, 2)) * 500
    wh = rng.random((n, 2)) * 120 + 10
    boxes = np.concatenate([xy, wh], axis=1)
    source = np.where(np.arange(n) % 2 == 0, "gt", "pred")
    ev = rng.choice(np.array(["tp", "fp", "fn"]), n, p=[0.8, 0.1, 0.1])
    table = T.from_columns({
        T.SAMPLE_ID: sid.tolist(), T.SOURCE: source.tolist(), T.LABEL_ID: np.arange(n),
        T.LABEL: rng.choice(np.array([f"class{k}" for k in range(20)]), n).tolist(),
        T.BBOX: T.bbox_array(boxes), T.SCORE: np.where(source == "gt", np.nan, rng.random(n)),
        T.WIDTH: np.full(n, 640, np.int32), T.HEIGHT: np.full(n, 480, np.int32),
        T.SPLIT: np.where(np.arange(n) % 10 == 0, "val", "train").tolist(), T.EVAL: ev.tolist(),
        T.HARD_SCORE: rng.random(n),
    })
    io.write_table(table, folder / "table.parquet")


def page_ms(chromium: str, url: str, profile: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--virtual-time-budget=20000", "--dump-dom", url], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    m = re.search(r'data-render-ms="(\d+)"', out)
    return wall, m.group(1) if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--labels", type=int, default=8, help="rows per sample (half gt, half predictions)")
    ap.add_argument("--generate", metavar="DIR")
    args = ap.parse_args()
    if args.generate:
        generate(Path(args.generate), args.samples, args.labels)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_in_subprocess(__file__, [str(tmp / "data"), "--samples", str(args.samples), "--labels", str(args.labels)])
        cmd = MLCYCLE + ["export", "html", str(tmp / "data" / "table.parquet"), "-o", str(tmp / "report"),
                         "--images-root", str(tmp / "data")]
        cold = run(cmd)
        warm = run(cmd)
        size = sum(p.stat().st_size for p in (tmp / "report").rglob("*") if p.is_file())
        page = (tmp / "report" / "index.html").stat().st_size
        print(f"{args.samples} samples, {args.samples * args.labels} rows")
        print(f"export html cold (thumbnails made): {cold[0]:.1f} s, peak {cold[1]:.0f} MB")
        print(f"export html warm (thumbnails kept): {warm[0]:.1f} s, peak {warm[1]:.0f} MB")
        print(f"report: {size / 1e6:.1f} MB in all, index.html {page / 1e6:.1f} MB")
        chromium = shutil.which("chromium")
        if chromium:
            url = (tmp / "report" / "index.html").as_uri()
            for frag in ("", "#filter=class:class3&filter=eval:fp", "#sort=hard_score"):
                wall, ms = page_ms(chromium, url + frag, tmp / "profile")
                print(f"chromium {frag or '(first page)'}: script start to rendered {ms} ms (whole headless run {wall:.1f} s)")


if __name__ == "__main__":
    main()
