"""Real shell pipelines through real processes: what a user's terminal, script or CI sees.

Each test runs the installed ``mlcycle`` console script (or ``python -m mlcycle`` when it
is not installed) in subprocesses joined by real pipes, pseudo-terminals where a
terminal matters, and real signals.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "mlcycle" / "data" / "sample"
GT_JSON = SAMPLE / "annotations" / "instances_val.json"
DETS_JSON = SAMPLE / "predictions" / "detections_val.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def colours(text: str) -> list[str]:
    """The colour codes in ``text`` (NO_COLOR removes colour; bold may stay, as no-color.org says)."""
    found = []
    for m in re.finditer(r"\x1b\[([0-9;]*)m", text):
        params = m.group(1).split(";")
        if any(p in ("38", "48") or (p.isdigit() and (30 <= int(p) <= 37 or 40 <= int(p) <= 47
                                                      or 90 <= int(p) <= 107)) for p in params):
            found.append(m.group(0))
    return found


@pytest.fixture(scope="module")
def bindir(tmp_path_factory) -> Path:
    """A folder with an ``mlcycle`` executable: the installed console script, else a wrapper."""
    installed = Path(sys.executable).parent / "mlcycle"
    if installed.is_file() and os.access(installed, os.X_OK):
        return installed.parent
    d = tmp_path_factory.mktemp("bin")
    wrapper = d / "mlcycle"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mlcycle "$@"\n')
    wrapper.chmod(0o755)
    return d


def _env(bindir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "MLCYCLE_FORMAT", "MLCYCLE_DEBUG", "COLUMNS")
           and not k.startswith("_MLCYCLE_COMPLETE")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def sh(bindir: Path, script: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    """Run a bash pipeline (pipefail on); stdout as bytes, stderr as text."""
    out = subprocess.run(["bash", "-c", "set -o pipefail\n" + script], cwd=cwd, capture_output=True,
                         env=_env(bindir, **env), timeout=300)
    out.stderr = out.stderr.decode("utf-8", "replace")
    return out


def _no_noise(stderr: str) -> None:
    for bad in ("Traceback", "BrokenPipe", "Exception ignored", "internal error"):
        assert bad not in stderr, stderr


def _coco(path: Path) -> dict:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- pipes

def test_ingest_then_export_coco_through_a_pipe_gives_the_file_back(bindir, tmp_path):
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON} | mlcycle export coco > copy.json", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b""
    assert _coco(tmp_path / "copy.json") == _coco(GT_JSON)
    assert "ingested" in out.stderr and "exported coco" in out.stderr


SCHEMA = SAMPLE / "schema.yaml"


def test_the_whole_loop_in_one_pipeline(bindir, tmp_path):
    """ingest | schema-check | evaluate | mine-hard | export, each reading the one before."""
    out = sh(bindir, f"mlcycle ingest coco-results {DETS_JSON} --images {GT_JSON} --source detector --split val -o preds.parquet\n"
                     f"mlcycle ingest coco {GT_JSON} --split val"
                     f" | mlcycle schema-check -s {SCHEMA} --keep valid"
                     " | mlcycle evaluate - preds.parquet"
                     " | mlcycle mine-hard --top 5"
                     " | mlcycle export coco-results --source detector > hard.json", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b""
    _no_noise(out.stderr)
    hard = json.loads((tmp_path / "hard.json").read_text())
    dets = json.loads(DETS_JSON.read_text())
    assert 0 < len(hard) <= len(dets)
    keys = {(d["image_id"], d["category_id"], tuple(round(v, 2) for v in d["bbox"])) for d in dets}
    assert all((h["image_id"], h["category_id"], tuple(round(v, 2) for v in h["bbox"])) in keys for h in hard)


def test_a_failed_check_in_the_middle_shows_with_pipefail(bindir, tmp_path):
    """schema-check --annotate exits 3 on errors but still passes the table on."""
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON}"  # no --split: the schema requires it
                     f" | mlcycle schema-check -s {SCHEMA} --annotate"
                     " | mlcycle stats --json > stats.json\n"
                     'echo "status ${PIPESTATUS[*]}" >&2', tmp_path)
    assert "status 0 3 0" in out.stderr  # pipefail would make the pipeline's status 3
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats  # the annotated table reached stats
    _no_noise(out.stderr)


@pytest.mark.parametrize("encoding,magic", [("parquet", b"PAR1"), ("arrow", b"\xff\xff\xff\xff"), ("jsonl", b"{")])
def test_stdin_as_dash_in_every_table_encoding(bindir, tmp_path, encoding, magic):
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON} --format {encoding} > t.{encoding}\n"
                     f"head -c {len(magic)} t.{encoding}\n"
                     f"cat t.{encoding} | mlcycle export coco - -o copy.json", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == magic
    assert _coco(tmp_path / "copy.json") == _coco(GT_JSON)


def test_mlcycle_format_env_picks_the_encoding_of_piped_output(bindir, tmp_path):
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON} | tee t.bin | mlcycle export coco > copy.json",
             tmp_path, MLCYCLE_FORMAT="parquet")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "t.bin").read_bytes()[:4] == b"PAR1"
    assert _coco(tmp_path / "copy.json") == _coco(GT_JSON)
    # -o's ending wins over MLCYCLE_FORMAT; --format wins over MLCYCLE_FORMAT
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON} -o t.jsonl && mlcycle ingest coco {GT_JSON} --format csv > t.csv",
             tmp_path, MLCYCLE_FORMAT="parquet")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "t.jsonl").read_bytes()[:1] == b"{"
    assert (tmp_path / "t.csv").read_bytes()[:9] == b'"sample_i'


def test_unknown_mlcycle_format_is_a_usage_error(bindir, tmp_path):
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON}", tmp_path, MLCYCLE_FORMAT="xml")
    assert out.returncode == 2
    assert out.stdout == b""
    assert "error: MLCYCLE_FORMAT: unknown table encoding 'xml'" in out.stderr


@pytest.fixture(scope="module")
def big_coco(tmp_path_factory) -> Path:
    """A COCO file with many annotations (written fast, as text)."""
    return _make_coco(tmp_path_factory.mktemp("big") / "big.json", images=6000, per_image=10)


def _make_coco(path: Path, images: int, per_image: int) -> Path:
    parts = ['{"images":[']
    parts.append(",".join(f'{{"id":{i},"file_name":"img{i:06d}.jpg","width":640,"height":480}}'
                          for i in range(1, images + 1)))
    parts.append('],"categories":[')
    parts.append(",".join(f'{{"id":{c},"name":"class{c}","supercategory":"thing"}}' for c in range(1, 11)))
    parts.append('],"annotations":[')
    anns = []
    k = 0
    for i in range(1, images + 1):
        for j in range(per_image):
            k += 1
            x, y, w, h = (k * 7) % 500, (k * 13) % 400, 5 + k % 90, 5 + k % 50
            anns.append(f'{{"id":{k},"image_id":{i},"category_id":{1 + k % 10},"bbox":[{x},{y},{w},{h}],'
                        f'"area":{w * h},"iscrowd":0}}')
    parts.append(",".join(anns))
    parts.append("]}")
    path.write_text("".join(parts))
    return path


@pytest.mark.parametrize("cut", ["head -n 1", "head -c 10", "true"])
def test_a_reader_that_stops_early_ends_the_pipeline_quietly(bindir, tmp_path, big_coco, cut):
    out = sh(bindir, f"mlcycle ingest coco {big_coco} | {cut}\n"
                     'echo "status ${PIPESTATUS[*]}" >&2', tmp_path)
    _no_noise(out.stderr)
    assert "status 0 0" in out.stderr
    if cut == "head -n 1":
        assert out.stdout.count(b"\n") == 1


@pytest.fixture(scope="module")
def big_table(bindir, big_coco) -> Path:
    out = big_coco.with_suffix(".parquet")
    done = sh(bindir, f"mlcycle ingest coco {big_coco} -q -o {out}", big_coco.parent)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("producer", ["export coco {t}", "stats {t} --json", "schema-check --infer {t}",
                                      "evaluate {t} {t} --json"])
def test_every_kind_of_output_ends_quietly_when_the_reader_stops(bindir, tmp_path, big_table, producer):
    name = producer.split()[0]
    if subprocess.run([str(bindir / "mlcycle"), name, "--help"], capture_output=True).returncode != 0:
        pytest.fail(f"mlcycle {name} is gone: drop it from this test")
    out = sh(bindir, f"mlcycle {producer.format(t=big_table)} | head -c 10\n"
                     'echo "status ${PIPESTATUS[*]}" >&2', tmp_path)
    _no_noise(out.stderr)
    assert "status 0 0" in out.stderr, out.stderr
    assert len(out.stdout) == 10


def test_help_into_a_closed_pipe_is_quiet(bindir, tmp_path):
    out = sh(bindir, "mlcycle --help | head -n 1\n"
                     'echo "status ${PIPESTATUS[*]}" >&2\n'
                     # a reader gone before help is written: click's rule, exit 1, but quiet
                     "mlcycle ingest --help | (exec 0<&-; sleep 0.5)", tmp_path)
    _no_noise(out.stderr)
    assert out.stdout.startswith(b"Usage: mlcycle") and out.stdout.count(b"\n") == 1
    assert "status 0 0" in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr  # nothing but the status line


def test_a_closed_pipe_with_binary_output_is_quiet_too(bindir, tmp_path, big_coco):
    out = sh(bindir, f"mlcycle ingest coco {big_coco} --format parquet | head -c 4\n"
                     'echo "status ${PIPESTATUS[*]}" >&2', tmp_path)
    _no_noise(out.stderr)
    assert out.stdout == b"PAR1"
    assert "status 0 0" in out.stderr


def test_output_without_a_terminal_has_no_colour_and_no_progress(bindir, tmp_path):
    out = sh(bindir, f"mlcycle ingest coco {GT_JSON} > t.jsonl; mlcycle ingest coco missing.json", tmp_path)
    assert out.returncode == 1
    assert not ANSI.search(out.stderr), repr(out.stderr)
    assert "error: missing.json" in out.stderr
    first = (tmp_path / "t.jsonl").read_bytes().splitlines()[0]
    json.loads(first)  # data, not a progress bar or a message


def test_errors_name_the_problem_and_set_the_exit_status(bindir, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"sample_id": "a", "source": "gt"}\nnot json\n')
    out = sh(bindir, "mlcycle export coco bad.jsonl", tmp_path)
    assert out.returncode == 1
    assert out.stdout == b""
    assert "bad.jsonl:2" in out.stderr
    _no_noise(out.stderr)
    out = sh(bindir, "mlcycle export coco bad.jsonl", tmp_path, MLCYCLE_DEBUG="1")
    assert out.returncode == 1
    assert "Traceback" in out.stderr  # MLCYCLE_DEBUG shows it


# --------------------------------------------------------------------------- terminals

def run_tty(bindir: Path, args: list[str], cwd: Path, tty: tuple[str, ...], input: bytes | None = None,
            timeout: float = 60, **env) -> tuple[int, bytes, bytes]:
    """Run mlcycle with the named streams ('stdin', 'stdout', 'stderr') on pseudo-terminals.

    Returns (exit status, stdout bytes, stderr bytes); a terminal stream's bytes are what
    the terminal showed.
    """
    masters: dict[str, int] = {}
    slaves: dict[str, int] = {}
    for name in tty:
        masters[name], slaves[name] = pty.openpty()
    pipes = {n: subprocess.PIPE for n in ("stdin", "stdout", "stderr") if n not in tty}
    proc = subprocess.Popen([str(bindir / "mlcycle"), *args], cwd=cwd, env=_env(bindir, **env),
                            **{n: slaves.get(n, pipes.get(n)) for n in ("stdin", "stdout", "stderr")})
    for fd in slaves.values():
        os.close(fd)
    if proc.stdin is not None:
        proc.stdin.write(input or b"")
        proc.stdin.close()
    got = {n: b"" for n in ("stdout", "stderr")}
    readers = {masters[n]: n for n in ("stdout", "stderr") if n in masters}
    readers.update({getattr(proc, n).fileno(): n for n in ("stdout", "stderr") if n not in masters})
    deadline = time.monotonic() + timeout
    while readers:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"mlcycle {' '.join(args)} did not finish in {timeout}s (waiting for input?)")
        ready, _, _ = select.select(list(readers), [], [], 0.1)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side closed
                chunk = b""
            if chunk:
                got[readers[fd]] += chunk
            else:
                del readers[fd]
    status = proc.wait(timeout=timeout)
    for fd in masters.values():
        os.close(fd)
    for n in ("stdout", "stderr"):
        if getattr(proc, n) is not None:
            getattr(proc, n).close()
    return status, got["stdout"], got["stderr"]


@pytest.mark.parametrize("how", [["--format", "parquet"], ["--format", "arrow"], "MLCYCLE_FORMAT"])
def test_binary_output_to_a_terminal_is_refused(bindir, tmp_path, how):
    args = ["ingest", "coco", str(GT_JSON)]
    env = {}
    if how == "MLCYCLE_FORMAT":
        env["MLCYCLE_FORMAT"] = "parquet"
    else:
        args += how
    status, stdout, stderr = run_tty(bindir, args, tmp_path, tty=("stdout",), **env)
    assert status == 2
    assert stdout == b""  # not one byte of binary on the terminal
    text = stderr.decode()
    assert "refusing to write binary" in text and "hint: use -o FILE.parquet" in text


def test_text_output_to_a_terminal_is_fine(bindir, tmp_path):
    status, stdout, stderr = run_tty(bindir, ["ingest", "coco", str(GT_JSON)], tmp_path, tty=("stdout",))
    assert status == 0, stderr
    assert stdout.lstrip().startswith(b"{")


def test_no_input_and_stdin_a_terminal_fails_at_once_with_a_hint(bindir, tmp_path):
    status, stdout, stderr = run_tty(bindir, ["export", "coco"], tmp_path, tty=("stdin",), timeout=30)
    assert status == 2
    assert stdout == b""
    text = stderr.decode()
    assert "standard input is a terminal" in text and "hint: pass a PATH or pipe data" in text


def test_errors_on_a_terminal_are_coloured_unless_no_color(bindir, tmp_path):
    args = ["ingest", "coco", "missing.json"]
    status, _, coloured = run_tty(bindir, args, tmp_path, tty=("stderr",))
    assert status == 1
    assert colours(coloured.decode()), "a terminal gets colour by default"
    for how in ({"NO_COLOR": "1"}, {"args": ["--no-color"]}):
        extra = how.get("args", [])
        env = {k: v for k, v in how.items() if k != "args"}
        status, _, plain = run_tty(bindir, args + extra, tmp_path, tty=("stderr",), **env)
        assert status == 1
        text = plain.decode()
        assert "error: missing.json" in text
        assert not colours(text), f"{how}: {text!r}"


# --------------------------------------------------------------------------- Ctrl-C

def _loaded(pid: int, *markers: str) -> bool:
    """Whether the process has loaded a shared library named like one of ``markers``."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return any(m in maps for m in markers)


def _interrupt_after_start(bindir: Path, args: list[str], cwd: Path) -> tuple[int, str, float]:
    """Start mlcycle, wait until it is inside the command (a heavy library is loaded,
    which --help never does), then send SIGINT as Ctrl-C would."""
    proc = subprocess.Popen([str(bindir / "mlcycle"), *args], cwd=cwd, env=_env(bindir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a shell's background job ignores SIGINT; Ctrl-C reaches a foreground one
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    start = time.monotonic()
    while proc.poll() is None and not _loaded(proc.pid, "orjson", "msgspec", "libarrow", "_multiarray_umath"):
        if time.monotonic() - start > 60:
            break
        time.sleep(0.002)
    time.sleep(0.05)
    sent = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr.decode(), time.monotonic() - sent


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc to see the command start")
def test_ctrl_c_exits_130_and_leaves_no_partial_output(bindir, tmp_path):
    size = 6000
    for attempt in range(4):
        big = _make_coco(tmp_path / "big.json", images=size, per_image=10)
        status, stderr, _ = _interrupt_after_start(bindir, ["ingest", "coco", str(big), "-o", "out.parquet"], tmp_path)
        if status != 0:
            break
        # the machine finished before the signal arrived: try again with more work
        (tmp_path / "out.parquet").unlink()
        size *= 3
    assert status == 130, stderr
    assert "error: interrupted" in stderr
    _no_noise(stderr)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "big.json")
    assert leftovers == [], f"partial output left behind: {leftovers}"


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs Linux /proc to see the read")
def test_ctrl_c_while_waiting_for_a_pipe_exits_130(bindir, tmp_path):
    """An upstream command that is slow to write: Ctrl-C while reading standard input."""
    r, w = os.pipe()
    proc = subprocess.Popen([str(bindir / "mlcycle"), "export", "coco", "-", "-o", "out.json"], cwd=tmp_path,
                            env=_env(bindir), stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(r)
    os.write(w, b'{"sample_id": "a.jpg", "source": "gt"}\n')  # and then nothing more for now
    # wait until the command sits in read(0, ...) on standard input (syscall 0 on x86-64,
    # 63 on arm64), i.e. it is inside the command, as a user's Ctrl-C would find it
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 60:
        try:
            call = Path(f"/proc/{proc.pid}/syscall").read_text().split()
        except OSError:
            call = []
        if call[:2] in (["0", "0x0"], ["63", "0x0"]):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    os.close(w)
    assert proc.returncode == 130, stderr.decode()
    assert "error: interrupted" in stderr.decode()
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------- make

def _makefile_from_docs() -> str:
    text = (REPO / "docs" / "shell.md").read_text()
    m = re.search(r"```make\n(.*?)```", text, flags=re.S)
    assert m, "docs/shell.md has a ```make example"
    return m.group(1)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefile_example_in_the_docs_rebuilds_only_what_changed(bindir, tmp_path):
    (tmp_path / "annotations").mkdir()
    shutil.copy(GT_JSON, tmp_path / "annotations" / "instances_val.json")
    shutil.copy(DETS_JSON, tmp_path / "annotations" / "detections_val.json")
    (tmp_path / "Makefile").write_text(_makefile_from_docs())
    out = sh(bindir, "make", tmp_path)
    assert out.returncode == 0, out.stdout.decode() + out.stderr
    first = out.stdout.decode()
    assert "mlcycle ingest" in first
    built = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "build").iterdir()}
    assert "gt.parquet" in built
    out = sh(bindir, "make", tmp_path)
    assert out.returncode == 0
    assert "mlcycle" not in out.stdout.decode(), "nothing changed, nothing to rebuild"
    # touching the predictions rebuilds what depends on them, not the ground truth
    time.sleep(0.01)
    os.utime(tmp_path / "annotations" / "detections_val.json")
    out = sh(bindir, "make", tmp_path)
    assert out.returncode == 0, out.stderr
    again = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "build").iterdir()}
    assert again["gt.parquet"] == built["gt.parquet"]
    assert again["preds.parquet"] != built["preds.parquet"]


# --------------------------------------------------------------------------- make demo

def test_demo_runs_the_loop_and_compares_two_models(bindir, tmp_path):
    """scripts/demo.sh (what `make demo` runs) from start to end: the curate verbs, one
    evaluation of two models, the charts with ground truth and predictions apart, the
    work list and the two-model report."""
    import pyarrow.parquet as pq

    out = tmp_path / "demo-out"
    res = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), str(bindir / "mlcycle"), str(out)],
                         cwd=tmp_path, capture_output=True, text=True, env=_env(bindir), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    _no_noise(res.stderr)
    for step in ("mlcycle merge", "mlcycle remap", "mlcycle diff", "mlcycle split",
                 "mlcycle evaluate gt.parquet preds.parquet weak.parquet", "mlcycle export html"):
        assert "$ " + step in res.stderr, step
    # curate: the synonym folded (one relabel, seen by diff), a fresh split of all 32 samples
    changes = pq.read_table(out / "changes.parquet").to_pylist()
    assert [(c["change"], c["old_label"], c["label"]) for c in changes] == [("relabelled", "disc", "circle")]
    resplit = pq.read_table(out / "resplit.parquet")
    assert "disc" not in resplit["label"].to_pylist()
    assert set(resplit["split"].to_pylist()) == {"train", "val"} and len(set(resplit["sample_id"].to_pylist())) == 32
    # two models in one evaluation; the weaker one is worse
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["sources"]) == {"detector", "weak"}
    assert metrics["sources"]["weak"]["metrics"]["AP"] < metrics["sources"]["detector"]["metrics"]["AP"]
    ev = pq.read_table(out / "evaluated.parquet")
    assert set(ev["source"].to_pylist()) == {"gt", "detector", "weak"}
    # stats of the evaluated table: ground truth and predictions apart, charts too
    st = json.loads((out / "eval-stats.json").read_text())
    assert [s["source"] for s in st["by_source"]] == ["gt", "detector", "weak"]
    assert st["by_source"][0]["counts"]["labels"] == 43
    assert (out / "eval-charts" / "classes.png").read_bytes()[:4] == b"\x89PNG"
    # the work list and the report with both models, side by side, at their best-F1 thresholds
    assert pq.read_table(out / "hard.parquet").num_rows > 0
    text = (out / "report" / "index.html").read_text()
    start = text.index('id="report-data">') + len('id="report-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    assert data["sources"] == ["detector", "weak"]
    assert data["operating"]["detector"]["f1"] > data["operating"]["weak"]["f1"]
    assert set(data["metrics"]["sources"]) == {"detector", "weak"}
    assert len(list((out / "report" / "thumbs").rglob("*.jpg"))) == 12
