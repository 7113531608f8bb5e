"""Mutated inputs of every format through every command (issue #13).

Seeds are the bundled sample exported by mlcycle itself to every format; each case
mutates one file of a seed (byte flips, truncation, absurd numbers, wrong types, invalid
UTF-8, a BOM, deep nesting, control characters ...) with a fixed random seed, then runs
`ingest` and, when that succeeds, every command on the result. The properties that must
hold on ANY input:

- the exit status is 0, 1, 2 or 3 — never a crash;
- stderr has no traceback and no "internal error" (that is reserved for real bugs);
- a failed command leaves no output file behind.

Runs in-process (typer's CliRunner) to stay well under a minute; MLCYCLE_FUZZ_CASES
raises the number of cases for a longer local run.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "mlcycle" / "data" / "sample"
FOLDER_FORMATS = ("yolo", "voc", "kitti", "labelme")
FILE_FORMATS = ("coco", "cvat", "openimages", "csv")
CASES_PER_FORMAT = int(os.environ.get("MLCYCLE_FUZZ_CASES", "20"))


def _invoke(args, input=None):
    from typer.testing import CliRunner

    from mlcycle.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=True)


def _assert_clean(res, args, outputs=(), failures=None):
    """Check one run; with ``failures`` (a list), record a problem instead of raising,
    so one test run reports every distinct failure."""
    if failures is not None:
        try:
            _assert_clean(res, args, outputs)
        except AssertionError as exc:
            failures.append(str(exc).split("\nassert")[0])
        return
    text = res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit), (
        f"{args}: raised {type(res.exception).__name__}: {res.exception}")
    assert res.exit_code in (0, 1, 2, 3), f"{args}: exit {res.exit_code}\n{text}"
    assert "internal error" not in text and "Traceback" not in text, f"{args}:\n{text}"
    if res.exit_code not in (0, 3):
        for out in outputs:
            assert not Path(out).exists(), f"{args}: failed (exit {res.exit_code}) but left {out}\n{text}"
        # notes (hidden by -q) may come first; the failure itself is one error line
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"{args}: exit {res.exit_code} without exactly one error line:\n{text}"


SAMPLE_TABLE: list[Path] = []  # the valid table the fuzzed ones are diffed against


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seeds")
    gt = root / "gt.parquet"
    res = _invoke(["ingest", "coco", SAMPLE / "annotations" / "instances_val.json", "--images-root", SAMPLE, "-o", gt])
    assert res.exit_code == 0, res.stderr
    out = {"table": gt}
    SAMPLE_TABLE[:] = [gt]
    for fmt in FOLDER_FORMATS + FILE_FORMATS:
        dest = root / (f"seed_{fmt}" + ("" if fmt in FOLDER_FORMATS else {"coco": ".json", "cvat": ".xml"}.get(fmt, ".csv")))
        res = _invoke(["export", fmt, gt, "-o", dest, "--images-root", SAMPLE])
        assert res.exit_code == 0, (fmt, res.stderr)
        out[fmt] = dest
    return out


# --------------------------------------------------------------------------- mutations

_ABSURD = [b"inf", b"-inf", b"nan", b"NaN", b"1e309", b"-1", b"0", b"18446744073709551616", b"3e9",
           b"-0.0", b"1e-320", b'""', b"null", b"true", b"[]", b"{}", b"\"x\"", b"9" * 40]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if not data:
        return b"\x00"
    if kind == 0:  # flip a few bytes
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 1:  # truncate
        return data[: rng.randrange(len(data))]
    if kind == 2:  # replace a number with an absurd value
        import re

        nums = list(re.finditer(rb"-?\d+(?:\.\d+)?(?:e-?\d+)?", data))
        if nums:
            m = rng.choice(nums)
            return data[: m.start()] + rng.choice(_ABSURD) + data[m.end():]
        return data + rng.choice(_ABSURD)
    if kind == 3:  # invalid UTF-8
        i = rng.randrange(len(data))
        return data[:i] + rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80"]) + data[i:]
    if kind == 4:  # a BOM, or UTF-16
        return b"\xef\xbb\xbf" + data if rng.random() < 0.7 else data.decode("utf-8", "replace").encode("utf-16")
    if kind == 5:  # control characters / terminal escapes in text
        i = rng.randrange(len(data))
        return data[:i] + rng.choice([b"\n", b"\x1b[31m", b"\r", b"\x00", b"\t", b"\x07"]) + data[i:]
    if kind == 6:  # deep nesting
        i = rng.randrange(len(data))
        depth = rng.choice([100, 5000])
        return data[:i] + b"[" * depth + b"]" * depth + data[i:]
    if kind == 7:  # duplicate a chunk
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        return data[:j] + data[i:j] + data[j:]
    if kind == 8:  # delete a chunk
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        return data[:i] + data[j:]
    # swap two tokens
    parts = data.split(b",")
    if len(parts) > 2:
        a, b = rng.randrange(len(parts)), rng.randrange(len(parts))
        parts[a], parts[b] = parts[b], parts[a]
    return b",".join(parts)


def _victim(seed: Path, rng: random.Random) -> Path:
    if seed.is_file():
        return seed
    files = sorted(p for p in seed.rglob("*") if p.is_file() and p.suffix.lower() not in (".png", ".jpg"))
    return rng.choice(files)


@pytest.mark.parametrize("fmt", FOLDER_FORMATS + FILE_FORMATS)
def test_mutated_inputs_never_crash_any_command(fmt, seeds, tmp_path):
    rng = random.Random(f"mlcycle-fuzz-{fmt}")
    failures: list[str] = []
    for case in range(CASES_PER_FORMAT):
        work = tmp_path / f"case{case}"
        work.mkdir()
        seed = seeds[fmt]
        target = work / seed.name
        if seed.is_dir():
            shutil.copytree(seed, target)
        else:
            shutil.copy(seed, target)
        victim = _victim(target, rng)
        victim.write_bytes(_mutate(victim.read_bytes(), rng))
        out = work / "out.parquet"
        args = ["ingest", fmt, target, "-o", out, "--images-root", SAMPLE]
        res = _invoke(args)
        _assert_clean(res, args + [f"(mutated {victim.relative_to(work)})"], [out], failures)
        if res.exit_code == 0:
            _through_every_command(out, work, failures)
    assert not failures, f"{len(failures)} failing runs:\n\n" + "\n\n".join(failures)


def _through_every_command(table: Path, work: Path, failures: list) -> None:
    ev = work / "ev.parquet"
    for args, outputs in (
        (["stats", table, "--json"], []),
        (["schema-check", table, "--schema", SAMPLE / "schema.yaml", "-o", work / "sc.parquet"], [work / "sc.parquet"]),
        (["evaluate", table, "-o", ev, "--json"], [ev]),
        (["evaluate", table, "--iou-type", "segm", "-o", work / "ev2.parquet"], [work / "ev2.parquet"]),
        (["export", "coco", table, "-o", work / "x.json"], [work / "x.json"]),
        (["export", "yolo", table, "-o", work / "y"], [work / "y"]),
        (["export", "voc", table, "-o", work / "v"], [work / "v"]),
        (["diff", SAMPLE_TABLE[0] if SAMPLE_TABLE else table, table, "-o", work / "d.parquet"], [work / "d.parquet"]),
        (["export", "kitti", table, "-o", work / "k"], [work / "k"]),
        (["export", "cvat", table, "-o", work / "c.xml"], [work / "c.xml"]),
        (["export", "html", table, "-o", work / "h", "--images-root", SAMPLE], [work / "h"]),
    ):
        res = _invoke(args)
        _assert_clean(res, args, outputs, failures)
    if ev.exists():
        res = _invoke(["mine-hard", ev, "-o", work / "m.parquet"])
        _assert_clean(res, ["mine-hard", ev], [work / "m.parquet"], failures)


def test_mutated_label_tables_never_crash_any_command(seeds, tmp_path):
    from mlcycle import io

    rng = random.Random("mlcycle-fuzz-table")
    failures: list[str] = []
    jsonl = io.encode(io.read_table(seeds["table"]), "jsonl")
    parquet = seeds["table"].read_bytes()
    for case in range(CASES_PER_FORMAT):
        work = tmp_path / f"case{case}"
        work.mkdir()
        data = _mutate(jsonl if case % 2 else parquet, rng)
        src = work / ("in.jsonl" if case % 2 else "in.parquet")
        src.write_bytes(data)
        res = _invoke(["stats", src, "--json"])
        _assert_clean(res, ["stats", src], (), failures)
        _through_every_command(src, work, failures)
    assert not failures, f"{len(failures)} failing runs:\n\n" + "\n\n".join(failures)
