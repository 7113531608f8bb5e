"""export html: the offline report. Python-side tests first, then tests that open the
report in a real headless Chromium and check what it draws through the DOM.

The browser tests need Debian's ``chromium`` (``.ci/run`` installs it and sets
MLCYCLE_REQUIRE_BROWSER=1, so in CI its absence is a failure, not a skip).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from mlcycle import formats
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import coco_results
from mlcycle.formats import html as H

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "mlcycle" / "data" / "sample"


# --------------------------------------------------------------------------- helpers

def sample_tables() -> tuple[pa.Table, dict]:
    """The sample dataset's val split + detections, evaluated (eval columns, metrics)."""
    from mlcycle.evaluation import evaluate

    gt = formats.read("coco", SAMPLE / "annotations" / "instances_val.json",
                      formats.ReadOptions(split="val", images_root=SAMPLE))
    preds = formats.read("coco-results", SAMPLE / "predictions" / "detections_val.json",
                         coco_results.ReadOptions(images=SAMPLE / "annotations" / "instances_val.json",
                                             source="detector", split="val"))
    table = pa.concat_tables([T.normalize(gt), T.normalize(preds)], promote_options="permissive")
    result = evaluate(table)
    return result.table, result.summary


def two_model_table(metrics: bool = False):
    """The sample's val split with two models, `detector` and `weak` (the sample's second,
    weaker predictions), evaluated together (evaluate with several prediction sources);
    with ``metrics``, also the metrics document."""
    from mlcycle.evaluation import evaluate

    gt = T.normalize(formats.read("coco", SAMPLE / "annotations" / "instances_val.json",
                                  formats.ReadOptions(split="val", images_root=SAMPLE)))
    parts = [gt]
    for src, name in (("detector", "detections_val.json"), ("weak", "detections_weak_val.json")):
        preds = formats.read("coco-results", SAMPLE / "predictions" / name,
                             coco_results.ReadOptions(images=SAMPLE / "annotations" / "instances_val.json",
                                                      source=src, split="val"))
        parts.append(T.normalize(preds))
    result = evaluate(pa.concat_tables(parts, promote_options="permissive"))
    return (result.table, result.summary) if metrics else result.table


def at_threshold(table: pa.Table, source: str, t: float) -> dict[str, set]:
    """What the page must draw for one model at score threshold t, per sample:
    (source, label_id, label, status) of the ground truth and of the model's boxes with
    score >= t. A ground truth is tp when the prediction matched to it is kept."""
    rows = table.select([T.SAMPLE_ID, T.SOURCE, T.LABEL_ID, T.LABEL, T.BBOX, T.SCORE, T.EVAL, T.EVAL_ID]).to_pylist()
    kept = {(r[T.SAMPLE_ID], r[T.EVAL_ID]) for r in rows
            if r[T.SOURCE] == source and r[T.EVAL] == "tp" and r[T.SCORE] >= t}
    out: dict[str, set] = {}
    for r in rows:
        if r[T.BBOX] is None or (r[T.SOURCE] != "gt" and (r[T.SOURCE] != source or r[T.SCORE] < t)):
            continue
        st = r[T.EVAL] or ""
        if r[T.SOURCE] == "gt" and st in ("tp", "fn"):
            st = "tp" if (r[T.SAMPLE_ID], r[T.LABEL_ID]) in kept else "fn"
        out.setdefault(r[T.SAMPLE_ID], set()).add((r[T.SOURCE], str(r[T.LABEL_ID]), r[T.LABEL], st))
    return out


def raw_page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="report-data">') + len('<script type="application/json" id="report-data">')
    return json.loads(text[start:text.index("</script>", start)])


def page_data(page: Path) -> dict:
    """The page's data with text columns decoded (the page sends repeated text as codes)."""
    data = raw_page_data(page)
    for c, v in data["rows"].items():
        if isinstance(v, dict):
            data["rows"][c] = [None if i is None else v["values"][i] for i in v["codes"]]
    return data


def class_names(data: dict) -> list[str]:
    return [c["name"] for c in data["classes"]]


def write(table, out, images_root=None, **extra) -> Path:
    formats.write("html", table, out, H.WriteOptions(images_root=images_root, **extra))
    return out if str(out).endswith(".html") else out / "index.html"


def make_image(path: Path, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 160, 200)).save(path)


EVIL = ['</script><script>document.body.setAttribute("data-pwned","1")</script>',
        '"><img src=x onerror="document.body.setAttribute(\'data-pwned\',\'2\')">',
        "x\u2028y & <b>bold</b>"]


def evil_table(root: Path) -> pa.Table:
    """Class names, sample ids, attributes and sources full of markup."""
    ids = [EVIL[1] + ".png", "ok.png", "sub/" + EVIL[0] + ".png"]
    for sid in ids:
        make_image(root / sid)
    return T.from_columns({
        T.SAMPLE_ID: [ids[0], ids[0], ids[1], ids[2]],
        T.SOURCE: ["gt", EVIL[1], "gt", "gt"],
        T.LABEL_ID: [1, 1, 2, 3],
        T.LABEL: [EVIL[0], EVIL[1], EVIL[2], "cat"],
        T.BBOX: [[1, 1, 10, 10], [2, 2, 10, 10], [5, 5, 20, 20], [0, 0, 8, 8]],
        T.SCORE: [None, 0.5, None, None],
        "note": [EVIL[2], EVIL[1], None, EVIL[0]],
    }).append_column(T.EVAL, pa.array(["tp", "tp", "fn", "fn"])).append_column(T.EVAL_ID, pa.array([5, 1, None, None], pa.int64()))


def evil_two_source_table(root: Path) -> pa.Table:
    """evil_table with a second prediction source named with markup: two models side by
    side, two sliders, every name from the data."""
    one = evil_table(root)
    ids = sorted(set(one[T.SAMPLE_ID].to_pylist()))
    two = T.from_columns({
        T.SAMPLE_ID: [ids[0], ids[1]], T.SOURCE: [EVIL[0], EVIL[0]], T.LABEL_ID: [7, 8],
        T.LABEL: [EVIL[1], EVIL[2]], T.BBOX: [[1, 1, 10, 10], [4, 4, 20, 20]], T.SCORE: [0.9, 0.3],
        "note": [EVIL[0], None],
    }).append_column(T.EVAL, pa.array(["tp", "fp"])).append_column(T.EVAL_ID, pa.array([1, None], pa.int64()))
    return pa.concat_tables([T.normalize(one), T.normalize(two)], promote_options="permissive")


# --------------------------------------------------------------------------- library

def test_registered_as_write_only_folder_format():
    info = formats.info("html")
    assert (info.reads, info.writes, info.output) == (False, True, "folder")
    with pytest.raises(OptionError, match="'html' can be written but not read"):
        formats.read("html", Path("report"))
    with pytest.raises(OptionError, match="html can be written but not read"):
        H.read(Path("report"), formats.ReadOptions())
    with pytest.raises(OptionError, match="writes a folder"):
        formats.write("html", T.empty_table(), None)


def test_sample_report_folder_has_page_thumbnails_and_all_rows(tmp_path):
    table, metrics = sample_tables()
    page = write(table, tmp_path / "report", SAMPLE)
    data = page_data(page)
    sids = sorted(set(table[T.SAMPLE_ID].to_pylist()))
    assert sorted(data["samples"]["id"]) == sids
    # every row of the table is in the page, grouped by sample
    assert len(data["rows"][T.SAMPLE_ID]) == table.num_rows
    for i, sid in enumerate(data["samples"]["id"]):
        s, e = data["samples"]["start"][i], data["samples"]["end"][i]
        assert set(data["rows"][T.SAMPLE_ID][s:e]) == {sid}
    assert {T.EVAL, T.EVAL_IOU, T.SCORE, T.BBOX}.issubset(data["columns"])
    assert T.SEGMENTATION not in data["columns"]
    assert data["filters"][:4] == [T.LABEL, T.SOURCE, T.EVAL, T.SPLIT]
    assert sorted(class_names(data)) == ["circle", "square", "triangle"]
    # most labels first, with the counts of ground truth and predictions
    gt = [r for r in table.to_pylist() if r[T.LABEL] is not None]
    for c in data["classes"]:
        assert c["gt"] == sum(1 for r in gt if r[T.LABEL] == c["name"] and r[T.SOURCE] == "gt")
        assert c["pred"] == sum(1 for r in gt if r[T.LABEL] == c["name"] and r[T.SOURCE] != "gt")
    totals = [c["gt"] + c["pred"] for c in data["classes"]]
    assert totals == sorted(totals, reverse=True)
    # repeated text goes into the page as codes
    raw = raw_page_data(page)["rows"]
    assert set(raw[T.LABEL]) == {"values", "codes"} and len(raw[T.LABEL]["codes"]) == table.num_rows
    # thumbnails: one small JPEG per image, inside the report folder
    for thumb in data["samples"]["img"]:
        with Image.open(page.parent / thumb) as im:
            assert im.format == "JPEG" and max(im.size) <= H.THUMB_SIZE
    # the default order puts the samples with the most errors first
    assert data["sort"] == {"by": "errors", "desc": True}
    assert data["metrics"] is None
    # the detail view links the original image relative to the report
    full = data["samples"]["full"][0]
    assert (page.parent / full).resolve() == (SAMPLE / data["samples"]["id"][0]).resolve()


def test_thumbnails_are_made_once(tmp_path):
    table, _ = sample_tables()
    page = write(table, tmp_path / "r", SAMPLE)
    thumbs = sorted((tmp_path / "r" / "thumbs").rglob("*.jpg"))
    before = {p: p.stat().st_mtime_ns for p in thumbs}
    write(table, tmp_path / "r", SAMPLE)
    assert {p: p.stat().st_mtime_ns for p in thumbs} == before
    assert page.is_file()


def test_metrics_are_embedded_and_tolerant(tmp_path):
    table, metrics = sample_tables()
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    data = page_data(write(table, tmp_path / "a", SAMPLE, metrics=tmp_path / "m.json"))
    assert data["metrics"]["per_class"] == json.loads(json.dumps(metrics["per_class"]))
    (tmp_path / "empty.json").write_text("{}")
    assert page_data(write(table, tmp_path / "b", SAMPLE, metrics=tmp_path / "empty.json"))["metrics"] == {}
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(MlcycleError, match="not a metrics document"):
        write(table, tmp_path / "c", SAMPLE, metrics=tmp_path / "list.json")


def test_limit_and_sort_by(tmp_path):
    table = T.from_columns({
        T.SAMPLE_ID: ["a.png", "b.png", "b.png", "c.png"], T.SOURCE: ["gt"] * 4,
        T.LABEL: ["x", "x", "y", "x"], T.BBOX: [[0, 0, 1, 1]] * 4,
        T.HARD_SCORE: [0.1, 0.2, 0.9, None], "annotator": ["zed", "amy", "bob", "cat"],
    })
    data = page_data(write(table, tmp_path / "d", tmp_path))
    assert data["samples"]["id"] == ["b.png", "a.png", "c.png"]  # hard_score, largest first, nulls last
    assert data["sort"] == {"by": T.HARD_SCORE, "desc": True}
    assert data["filters"] == [T.LABEL, T.SOURCE, "annotator"] and data["numeric"] == [T.HARD_SCORE]
    data = page_data(write(table.append_column("difficult", pa.array([0, 1, 0, 1])), tmp_path / "f", tmp_path))
    assert "difficult" in data["filters"] and "difficult" in data["numeric"]
    data = page_data(write(table, tmp_path / "l", tmp_path, limit=2))
    assert data["samples"]["id"] == ["b.png", "a.png"]
    assert len(data["rows"][T.SAMPLE_ID]) == 3
    data = page_data(write(table, tmp_path / "s", tmp_path, sort_by="annotator"))
    assert data["samples"]["id"] == ["b.png", "c.png", "a.png"]  # amy < cat < zed
    data = page_data(write(table, tmp_path / "i", tmp_path, sort_by="sample_id", limit=1))
    assert data["samples"]["id"] == ["a.png"]
    with pytest.raises(OptionError, match="nope: no such column"):
        write(table, tmp_path / "e", tmp_path, sort_by="nope")


def test_missing_images_keep_their_path_and_size(tmp_path):
    table = T.from_columns({T.SAMPLE_ID: ["gone/x.jpg"], T.SOURCE: ["gt"], T.LABEL: ["a"],
                            T.BBOX: [[1, 2, 3, 4]], T.WIDTH: [640], T.HEIGHT: [480]})
    data = page_data(write(table, tmp_path / "r", tmp_path / "imgs"))
    assert data["samples"]["img"] == [None]
    assert data["samples"]["path"] == [str(tmp_path / "imgs" / "gone" / "x.jpg")]
    assert (data["samples"]["w"], data["samples"]["h"]) == ([640], [480])


def test_image_size_comes_from_the_image_when_the_table_has_none(tmp_path):
    make_image(tmp_path / "i.png", (50, 30))
    table = T.from_columns({T.SAMPLE_ID: ["i.png"], T.SOURCE: ["gt"], T.LABEL: ["a"], T.BBOX: [[1, 2, 3, 4]]})
    data = page_data(write(table, tmp_path / "r", tmp_path))
    assert (data["samples"]["w"], data["samples"]["h"]) == ([50], [30])


def test_files_outside_images_root_are_never_read(tmp_path, monkeypatch):
    """#13: absolute and ../ sample ids, and links that leave the root, are skipped with a
    warning; they are never opened, thumbnailed or embedded."""
    import warnings

    from PIL import Image as PILImage

    root = tmp_path / "data" / "images"
    make_image(tmp_path / "data" / "escape.png")
    make_image(root / "fine.png")
    (root / "link.png").symlink_to(tmp_path / "data" / "escape.png")
    (root / "inside.png").symlink_to(root / "fine.png")  # a link that stays inside is fine
    os.mkfifo(root / "fifo.png")  # would hang if opened
    ids = ["../escape.png", "fine.png", str(tmp_path / "data" / "escape.png"), "link.png", "inside.png",
           "sub/../../escape.png", "fifo.png"]
    table = T.from_columns({T.SAMPLE_ID: ids, T.SOURCE: ["gt"] * len(ids), T.LABEL: ["a"] * len(ids),
                            T.BBOX: [[0, 0, 2, 2]] * len(ids)})
    opened = []
    real_open = PILImage.open
    monkeypatch.setattr(PILImage, "open", lambda fp, *a, **k: opened.append(str(fp)) or real_open(fp, *a, **k))
    before = {p for p in tmp_path.rglob("*")}
    out = tmp_path / "data" / "images" / "report"
    for embed in (False, True):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            page = write(table, out if not embed else tmp_path / "one.html", root, embed=embed, sort_by="sample_id")
        data = page_data(page)
        img = dict(zip(data["samples"]["id"], data["samples"]["img"]))
        assert {s for s, v in img.items() if v} == {"fine.png", "inside.png"}
        assert sorted(opened) == sorted([str(root / "fine.png"), str(root / "inside.png")])
        opened.clear()
        text = " ".join(str(w.message) for w in seen)
        assert "4 sample id(s) point outside images_root" in text and "were not read" in text
        assert "1 of 7 images not found or unreadable under images_root" in text
        full = dict(zip(data["samples"]["id"], data["samples"]["full"]))
        assert not embed or set(full.values()) == {None}
        if not embed:
            assert {s for s, v in full.items() if v} == {"fine.png", "inside.png"}
        assert data["images"] == {"root": str(root), "outside": 4, "missing": 1}
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(out in p.parents or p == out or p == tmp_path / "one.html" for p in created)
    assert sorted(p.relative_to(out / "thumbs").as_posix() for p in (out / "thumbs").rglob("*")) == ["fine.png.jpg", "inside.png.jpg"]


def test_never_writes_through_a_symlinked_thumbs_folder(tmp_path):
    """#13: a thumbs/ (or a folder below it) that is a link elsewhere is refused, before
    anything is written; the report folder is left as it was."""
    make_image(tmp_path / "imgs" / "sub" / "a.png")
    table = T.from_columns({T.SAMPLE_ID: ["sub/a.png"], T.SOURCE: ["gt"], T.LABEL: ["a"], T.BBOX: [[0, 0, 2, 2]]})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for link in ("thumbs", "thumbs/sub"):
        out = tmp_path / ("r-" + link.replace("/", "-"))
        (out / link).parent.mkdir(parents=True, exist_ok=True)
        (out / link).symlink_to(elsewhere, target_is_directory=True)
        before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
        with pytest.raises(MlcycleError, match="is a symbolic link; the report is never written through a link"):
            write(table, out, tmp_path / "imgs")
        assert list(elsewhere.iterdir()) == []
        assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_report_folder_is_written_all_or_nothing(tmp_path, monkeypatch):
    """#13: a failure while the report is built leaves no folder (and an existing report
    as it was): the report is built in a temporary sibling and renamed."""
    table, _ = sample_tables()

    def boom(*a, **k):
        raise MlcycleError("disk full (simulated)")

    monkeypatch.setattr(H, "render_page", boom)
    with pytest.raises(MlcycleError, match="simulated"):
        write(table, tmp_path / "new", SAMPLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    write(table, tmp_path / "old", SAMPLE)
    before = {p: p.read_bytes() for p in (tmp_path / "old").rglob("*") if p.is_file()}
    monkeypatch.setattr(H, "render_page", boom)
    with pytest.raises(MlcycleError):
        write(table, tmp_path / "old", SAMPLE)
    assert {p: p.read_bytes() for p in (tmp_path / "old").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_embed_writes_one_file_with_data_uris(tmp_path):
    table, _ = sample_tables()
    page = write(table, tmp_path / "one.html", SAMPLE, embed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.html"]
    data = page_data(page)
    assert all(u.startswith("data:image/jpeg;base64,") for u in data["samples"]["img"])
    assert set(data["samples"]["full"]) == {None}
    page = write(table, tmp_path / "dir", SAMPLE, embed=True)
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["index.html"]


def test_untrusted_text_is_escaped_in_the_page(tmp_path):
    page = write(evil_table(tmp_path / "imgs"), tmp_path / "r", tmp_path / "imgs")
    text = page.read_text(encoding="utf-8")
    # only the page's own two script elements; the data block has no markup characters
    assert text.count("<script") == 2 and text.count("</script>") == 2
    start = text.index('id="report-data">')
    block = text[start + len('id="report-data">'):text.index("</script>", start)]
    for ch in "<>&\u2028\u2029":
        assert ch not in block
    data = json.loads(block)
    assert EVIL[0] in class_names(data) and EVIL[1] in data["rows"][T.SOURCE] and EVIL[1] in data["sources"]
    assert sorted(data["rows"]["note"], key=str) == sorted([EVIL[2], EVIL[1], None, EVIL[0]], key=str)
    # a Content-Security-Policy allows only the page's own script, and no network
    assert "script-src 'sha256-" in text and "connect-src 'none'" in text


def test_json_for_script_round_trips():
    doc = {"a": EVIL, "b": "\u2029</SCRIPT>&amp;"}
    out = H.json_for_script(doc)
    assert not set(out) & set("<>&\u2028\u2029")
    assert json.loads(out) == doc


def test_thumbnail_urls_are_percent_encoded(tmp_path):
    from urllib.parse import unquote

    sid = "odd dir/a#1?%20.png"
    make_image(tmp_path / "imgs" / sid)
    table = T.from_columns({T.SAMPLE_ID: [sid], T.SOURCE: ["gt"], T.LABEL: ["a"], T.BBOX: [[1, 1, 2, 2]]})
    data = page_data(write(table, tmp_path / "r", tmp_path / "imgs"))
    thumb, full = data["samples"]["img"][0], data["samples"]["full"][0]
    assert "#" not in thumb and "?" not in thumb and " " not in thumb
    assert (tmp_path / "r" / unquote(thumb)).is_file()
    assert (tmp_path / "r" / unquote(full)).resolve() == (tmp_path / "imgs" / sid).resolve()


def test_static_files_are_package_data():
    import tomllib

    conf = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "formats/html/static/*" in conf["tool"]["setuptools"]["package-data"]["mlcycle"]
    assert {p.name for p in H.STATIC.iterdir()} >= {"report.js", "report.css", "report.html"}
    # they are inlined into the page: nothing in them may close their element early
    assert "</script" not in (H.STATIC / "report.js").read_text().lower()
    assert "</style" not in (H.STATIC / "report.css").read_text().lower()


# --------------------------------------------------------------------------- CLI

def test_cli_export_html(runner, tmp_path):
    table, metrics = sample_tables()
    from mlcycle import io

    io.write_table(table, tmp_path / "ev.parquet")
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    res = runner(["export", "html", tmp_path / "ev.parquet", "-o", tmp_path / "rep", "--images-root", SAMPLE,
                  "--metrics", tmp_path / "m.json", "--limit", "5", "--sort-by", "eval_iou"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert "exported html" in res.stderr
    data = page_data(tmp_path / "rep" / "index.html")
    assert len(data["samples"]["id"]) == 5 and data["sort"]["by"] == "eval_iou"
    assert data["metrics"]["metrics"]["AP"] == pytest.approx(metrics["metrics"]["AP"])

    res = runner(["export", "html", tmp_path / "ev.parquet", "-o", tmp_path / "one.html", "--embed"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "one.html").is_file()  # images found through the table's images_root


def test_cli_export_html_errors(runner, tmp_path):
    table, _ = sample_tables()
    from mlcycle import io

    io.write_table(table, tmp_path / "ev.parquet")
    res = runner(["export", "html", tmp_path / "ev.parquet"])
    assert res.exit_code == 2 and "writes a folder" in res.stderr and res.stdout == ""
    res = runner(["export", "html", tmp_path / "ev.parquet", "-o", tmp_path / "r", "--sort-by", "nope"])
    assert res.exit_code == 2 and "no such column" in res.stderr
    (tmp_path / "bad.json").write_text("{oops")
    res = runner(["export", "html", tmp_path / "ev.parquet", "-o", tmp_path / "r", "--metrics", tmp_path / "bad.json"])
    assert res.exit_code == 1 and "bad.json" in res.stderr and "malformed JSON" in res.stderr
    res = runner(["ingest", "html", tmp_path / "r"])
    assert res.exit_code == 2 and "written but not read" in res.stderr


# --------------------------------------------------------------------------- browser

def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def chromium():
    path = chromium_path()
    if path is None:
        if os.environ.get("MLCYCLE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (MLCYCLE_REQUIRE_BROWSER=1) but not found")
        pytest.skip("chromium not installed (apt-get install chromium); .ci/run installs it")
    return path


def run_chromium(chromium: str, url: str, tmp: Path, *args: str) -> str:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--disable-extensions", "--mute-audio", f"--user-data-dir={tmp / 'profile'}",
           "--window-size=1400,1000", "--virtual-time-budget=5000", *args, url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


class Dom(HTMLParser):
    """Just what the tests read: elements with their attributes, cards and their boxes."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.cards: list[dict] = []
        self.body: dict = {}
        self.texts: list[str] = []
        self.detail = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        cls = (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        elif tag == "div" and "card" in cls:
            self.cards.append({"id": a["data-sample-id"], "boxes": []})
        elif tag == "div" and a.get("id") == "detail":
            self.detail = True  # the detail view comes after the grid
        elif tag == "g" and "box" in cls and self.cards and not self.detail:
            self.cards[-1]["boxes"].append(a)

    def handle_data(self, data):
        self.texts.append(data)


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    table, metrics = sample_tables()
    (tmp / "metrics.json").write_text(json.dumps(metrics))
    page = write(table, tmp / "report", SAMPLE, metrics=tmp / "metrics.json")
    return table, metrics, page


def open_report(chromium, page: Path, tmp: Path, fragment: str = "") -> Dom:
    return Dom(run_chromium(chromium, page.as_uri() + fragment, tmp, "--dump-dom"))


def expected_boxes(table: pa.Table) -> dict[str, set]:
    out: dict[str, set] = {}
    for r in table.select([T.SAMPLE_ID, T.SOURCE, T.LABEL_ID, T.LABEL, T.BBOX, T.EVAL]).to_pylist():
        if r[T.BBOX] is not None:
            out.setdefault(r[T.SAMPLE_ID], set()).add((r[T.SOURCE], str(r[T.LABEL_ID]), r[T.LABEL], r[T.EVAL] or ""))
    return out


def drawn_boxes(card: dict) -> set:
    return {(b["data-source"], b["data-label-id"], b["data-label"], b["data-eval"]) for b in card["boxes"]}


def test_browser_draws_every_box_with_class_and_status(chromium, sample_report, tmp_path):
    table, _, page = sample_report
    dom = open_report(chromium, page, tmp_path, "#thr=detector:0")  # threshold 0: every prediction
    assert dom.body.get("data-ready") == "1"
    want = expected_boxes(table)
    assert dom.body["data-shown"] == dom.body["data-total"] == str(len(want))
    assert sorted(c["id"] for c in dom.cards) == sorted(want)
    for card in dom.cards:
        assert drawn_boxes(card) == want[card["id"]], card["id"]
        for b in card["boxes"]:
            cls = b["class"].split()
            assert ("gt" in cls) == (b["data-source"] == "gt") and ("pred" in cls) == (b["data-source"] != "gt")
            if b["data-eval"]:
                assert "st-" + b["data-eval"] in cls
    # every fp and fn of the evaluation is on the page
    statuses = [b["data-eval"] for c in dom.cards for b in c["boxes"]]
    ev = table[T.EVAL].to_pylist()
    assert statuses.count("fp") == ev.count("fp") > 0 and statuses.count("fn") == ev.count("fn") > 0
    # a thumbnail per card, and no element that is not ours: no <img>, two scripts
    images = [a for t, a in dom.elements if t == "image"]
    assert len(images) == len(dom.cards) and all(a["href"].startswith("thumbs/") for a in images)
    assert not [t for t, _ in dom.elements if t == "img"]
    assert not [a for _, a in dom.elements if "data-broken" in a]  # every thumbnail loaded


def test_browser_loads_thumbnails_of_odd_file_names(chromium, tmp_path):
    ids = ["odd dir/a#1?%20.png", "b&c;d'.png", "ünï cødé.png"]
    for sid in ids:
        make_image(tmp_path / "imgs" / sid)
    table = T.from_columns({T.SAMPLE_ID: ids, T.SOURCE: ["gt"] * 3, T.LABEL: ["a"] * 3, T.BBOX: [[1, 1, 2, 2]] * 3})
    dom = open_report(chromium, write(table, tmp_path / "r", tmp_path / "imgs"), tmp_path)
    assert sorted(c["id"] for c in dom.cards) == sorted(ids)
    assert len([a for t, a in dom.elements if t == "image"]) == 3
    assert not [a for _, a in dom.elements if "data-broken" in a]


def test_browser_filters_change_what_is_shown(chromium, sample_report, tmp_path):
    table, _, page = sample_report
    want = expected_boxes(table)
    dom = open_report(chromium, page, tmp_path, "#filter=class:circle&filter=source:gt")
    with_circle = {s for s, boxes in want.items() if any(b[2] == "circle" and b[0] == "gt" for b in boxes)}
    assert 0 < len(with_circle) < len(want)
    assert {c["id"] for c in dom.cards} == with_circle
    assert dom.body["data-shown"] == str(len(with_circle))
    # the filter bar shows the filter that is applied
    assert json.loads(dom.body["data-filters"]) == {"label": "circle", "source": "gt"}

    dom = open_report(chromium, page, tmp_path, "#filter=eval:fn")
    with_fn = {s for s, boxes in want.items() if any(b[3] == "fn" for b in boxes)}
    assert {c["id"] for c in dom.cards} == with_fn and with_fn

    dom = open_report(chromium, page, tmp_path, "#filter=class:no-such-class")
    assert dom.cards == [] and dom.body["data-shown"] == "0"
    assert "No sample matches these filters." in dom.texts


def test_browser_sorting_and_search(chromium, sample_report, tmp_path):
    table, _, page = sample_report
    dom = open_report(chromium, page, tmp_path, "#sort=sample_id&desc=1")
    ids = [c["id"] for c in dom.cards]
    assert ids == sorted(ids, reverse=True)
    dom = open_report(chromium, page, tmp_path, "#q=val_02")
    assert {c["id"] for c in dom.cards} == {s for s in set(table[T.SAMPLE_ID].to_pylist()) if "val_02" in s}


def test_browser_detail_view_lists_every_label(chromium, sample_report, tmp_path):
    table, _, page = sample_report
    sid = "images/val_022.png"
    dom = open_report(chromium, page, tmp_path, "#sample=" + sid.replace("/", "%2F"))
    assert dom.body["data-detail"] == sid
    rows = [a for t, a in dom.elements if t == "tr" and "data-row" in a]
    n = sum(1 for s in table[T.SAMPLE_ID].to_pylist() if s == sid)
    assert len(rows) == n
    assert sum(1 for r in rows if r.get("class") == "st-fp") == \
        sum(1 for s, e in zip(table[T.SAMPLE_ID].to_pylist(), table[T.EVAL].to_pylist()) if s == sid and e == "fp")


def test_browser_metrics_page(chromium, sample_report, tmp_path):
    _, metrics, page = sample_report
    dom = open_report(chromium, page, tmp_path, "#view=metrics")
    assert dom.body["data-view"] == "metrics"
    tiles = {a["data-key"] for t, a in dom.elements if t == "div" and "data-key" in a}
    assert {"AP", "AP50", "AR_100"} <= tiles
    curves = [a for t, a in dom.elements if t == "polyline"]
    assert len(curves) == len(metrics["pr_curves"]["curves"])
    assert {a["data-label"] for a in curves} == {c["label"] for c in metrics["pr_curves"]["curves"]}
    charts = [a for t, a in dom.elements if t == "svg" and "chart" in (a.get("class") or "")]
    assert {a["data-iou"] for a in charts} == {"0.5", "0.75"}
    k = len(metrics["confusion_matrix"]["labels"])
    cells = [a for t, a in dom.elements if t == "td" and "→" in (a.get("title") or "")]
    assert len(cells) == k * k
    # the per-class table: one row per class
    text = " ".join(dom.texts)
    for row in metrics["per_class"]:
        assert row["label"] in text


def test_browser_untrusted_text_never_runs(chromium, tmp_path):
    page = write(evil_table(tmp_path / "imgs"), tmp_path / "r", tmp_path / "imgs")
    for fragment in ("", "#sample=" + EVIL[1].replace("/", "%2F") + ".png", "#view=metrics",
                     "#filter=class:" + EVIL[0].replace("/", "%2F")):
        dom = open_report(chromium, page, tmp_path, fragment)
        assert dom.body.get("data-ready") == "1", fragment
        assert "data-pwned" not in dom.body, fragment
        assert not [t for t, _ in dom.elements if t in ("img", "b")], fragment
        assert [t for t, _ in dom.elements].count("script") == 2, fragment
        assert not [a for _, a in dom.elements if any(k.startswith("on") for k in a)], fragment
    # the payloads are shown as text
    dom = open_report(chromium, page, tmp_path)
    assert {c["id"] for c in dom.cards} == {EVIL[1] + ".png", "ok.png", "sub/" + EVIL[0] + ".png"}
    assert EVIL[1] + ".png" in dom.texts
    labels = {b["data-label"] for c in dom.cards for b in c["boxes"]}
    assert labels == {EVIL[0], EVIL[1], EVIL[2], "cat"}


def test_browser_screenshot(chromium, sample_report, tmp_path):
    """A screenshot of the sample dataset's report; MLCYCLE_UPDATE_SCREENSHOT=1 writes it
    to docs/img/report.png (the README's picture)."""
    _, _, page = sample_report
    shot = tmp_path / "report.png"
    run_chromium(chromium, page.as_uri() + "#sort=errors", tmp_path, f"--screenshot={shot}")
    with Image.open(shot) as im:
        assert im.size == (1400, 1000)
        colours = im.convert("RGB").resize((140, 100)).getcolors(140 * 100)
        assert colours is not None and len(colours) > 50  # drawn images, not a blank page
    if os.environ.get("MLCYCLE_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "img" / "report.png")


def test_browser_pages_placeholders_and_image_level_labels(chromium, tmp_path):
    n = 60
    ids = [f"set/{i:03d}.jpg" for i in range(n)]
    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL: [], T.BBOX: [], T.SCORE: [], T.WIDTH: [], T.HEIGHT: [], T.EVAL: []}

    def add(sid, source, label, bbox, score, ev):
        for k, v in zip(rows, (sid, source, label, bbox, score, 100, 80, ev)):
            rows[k].append(v)

    for i, sid in enumerate(ids):
        if i % 3 == 0:  # a box
            add(sid, "gt", "dog", [10, 10, 30, 20], None, "tp")
        elif i % 3 == 1:  # classification: a class for the whole image, and a prediction
            add(sid, "gt", "cat", None, None, "tp")
            add(sid, "model", "cat" if i % 2 else "dog", None, 0.75, "tp" if i % 2 else "fp")
        else:  # a sample row: no labels at all
            add(sid, "gt", None, None, None, None)
    page = write(T.from_columns(rows), tmp_path / "r", tmp_path / "no-images", sort_by="sample_id")

    dom = open_report(chromium, page, tmp_path)
    assert (dom.body["data-shown"], dom.body["data-page"], dom.body["data-pages"]) == (str(n), "1", "2")
    assert [c["id"] for c in dom.cards] == ids[:48]
    dom = open_report(chromium, page, tmp_path, "#page=2")
    assert [c["id"] for c in dom.cards] == ids[48:]
    # every missing image is a placeholder naming the path it looked for
    assert len([a for t, a in dom.elements if t == "rect" and a.get("class") == "missing"]) == 12
    assert str(tmp_path / "no-images" / ids[59]) in dom.texts
    # image-level labels are chips with their class, source and status; boxes are drawn
    chips = [a for t, a in dom.elements if t == "span" and "chip" in (a.get("class") or "").split()]
    want = [(s, lab, src, ev or "") for s, src, lab, b, ev in zip(rows[T.SAMPLE_ID], rows[T.SOURCE], rows[T.LABEL],
                                                                   rows[T.BBOX], rows[T.EVAL])
            if s in ids[48:] and lab is not None and b is None]
    assert sorted((a["data-label"], a["data-source"], a["data-eval"]) for a in chips) == sorted(w[1:] for w in want)
    assert sum(len(c["boxes"]) for c in dom.cards) == sum(1 for i in range(48, n) if i % 3 == 0)
    # a class filter finds image-level labels too
    dom = open_report(chromium, page, tmp_path, "#filter=source:model&filter=eval:fp")
    assert {c["id"] for c in dom.cards} == {ids[i] for i in range(n) if i % 3 == 1 and i % 2 == 0}


def test_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    table = T.from_columns({T.SAMPLE_ID: ["a.png"], T.SOURCE: ["gt"]})
    with pytest.raises(OptionError, match="is a file; export html writes a folder"):
        write(table, tmp_path / "taken", tmp_path)
    assert (tmp_path / "taken").read_text() == "x"


def test_source_keeps_ground_truth_and_one_prediction_source(tmp_path):
    table = T.from_columns({T.SAMPLE_ID: ["a.png"] * 3, T.SOURCE: ["gt", "m1", "m2"], T.LABEL: ["x"] * 3,
                            T.BBOX: [[0, 0, 1, 1]] * 3})
    formats.write("html", table, tmp_path / "r", formats.WriteOptions(source="m2", images_root=tmp_path))
    assert page_data(tmp_path / "r" / "index.html")["rows"][T.SOURCE] == ["gt", "m2"]


def test_browser_metrics_page_of_voc_and_classification_documents(chromium, tmp_path):
    from mlcycle.evaluation import evaluate

    table, _ = sample_tables()
    voc = evaluate(table.drop_columns([T.EVAL, T.EVAL_ID, T.EVAL_IOU]), method="voc").summary
    (tmp_path / "voc.json").write_text(json.dumps(voc))
    dom = open_report(chromium, write(table, tmp_path / "v", SAMPLE, metrics=tmp_path / "voc.json"), tmp_path, "#view=metrics")
    assert {a["data-key"] for t, a in dom.elements if t == "div" and "data-key" in a} >= {"mAP"}
    assert {a["data-label"] for t, a in dom.elements if t == "polyline"} == set(voc["per_class"])  # curves from per_class
    assert [a.get("id") for t, a in dom.elements if t == "table"].count("per-class") == 1

    cls = T.from_columns({T.SAMPLE_ID: ["a", "b", "c", "a", "b", "c"], T.SOURCE: ["gt"] * 3 + ["pred"] * 3,
                          T.LABEL: ["cat", "dog", "cat", "cat", "cat", "dog"], T.SCORE: [None] * 3 + [0.9, 0.8, 0.7]})
    _cls_result = evaluate(cls)
    cls, doc = _cls_result.table, _cls_result.summary
    (tmp_path / "cls.json").write_text(json.dumps(doc))
    dom = open_report(chromium, write(cls, tmp_path / "c", tmp_path, metrics=tmp_path / "cls.json"), tmp_path, "#view=metrics")
    keys = {a["data-key"] for t, a in dom.elements if t == "div" and "data-key" in a}
    assert {"accuracy", "macro f1", "micro precision"} <= keys
    cells = [a for t, a in dom.elements if t == "td" and "→" in (a.get("title") or "")]
    assert len(cells) == 2 * 3  # rows: true classes; columns: predicted + (none)
    assert [a["title"] for a in cells if a.get("class") == "diag"] == ["cat → cat", "dog → dog"]
    # the samples page shows the image-level labels with their status (threshold 0: all of them)
    dom = open_report(chromium, tmp_path / "c" / "index.html", tmp_path, "#thr=pred:0")
    chips = {(a["data-label"], a["data-source"], a["data-eval"]) for t, a in dom.elements if t == "span" and "data-label" in a}
    assert ("dog", "pred", "fp") in chips and ("cat", "gt", "tp") in chips


class Cdp:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (NUL-separated
    JSON on fds 3 and 4; no websocket, no extra dependency), to drive the page like a user."""

    def __init__(self, chromium: str, tmp: Path):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():  # in the child: its fd 3 reads our commands, fd 4 carries its answers
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp / 'cdp-profile'}", "--window-size=1400,1000", "--remote-debugging-pipe",
             "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf, self.next_id, self.session = b"", 0, None

    def call(self, method: str, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.from_chrome, 1 << 16)
                assert chunk, "chromium closed the DevTools pipe"
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.wait("document.body && document.body.dataset.ready === '1'")

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in res, res
        return res["result"].get("value")

    def wait(self, condition: str, timeout: float = 20.0):
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.js(f"!!({condition})"):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {condition}")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        self.proc.wait(timeout=30)
        os.close(self.to_chrome)
        os.close(self.from_chrome)


def test_browser_controls_work_like_a_user_uses_them(chromium, sample_report, tmp_path):
    table, _, page = sample_report
    want = expected_boxes(table)
    cdp = Cdp(chromium, tmp_path)
    try:
        cdp.open(page.as_uri())
        cards = "Array.from(document.querySelectorAll('#grid .card')).map(c => c.dataset.sampleId)"
        assert sorted(cdp.js(cards)) == sorted(want)
        # choose a class in the filter bar: the grid and the URL follow
        cdp.js("const s = document.getElementById('filter-label'); s.value = 'square'; s.dispatchEvent(new Event('change'))")
        cdp.wait("location.hash.includes('filter=label%3Asquare')")
        assert set(cdp.js(cards)) == {s for s, boxes in want.items() if any(b[2] == "square" for b in boxes)}
        # then eval = fn: one row must match both (a missed square)
        cdp.js("{ const e = document.getElementById('filter-eval'); e.value = 'fn'; e.dispatchEvent(new Event('change')) }")
        cdp.wait("document.body.dataset.filters.includes('fn')")
        assert set(cdp.js(cards)) == {s for s, boxes in want.items() if any(b[2] == "square" and b[3] == "fn" for b in boxes)}
        # open a card: its labels in a table; Escape closes it
        first = cdp.js(cards)[0]
        cdp.js("document.querySelector('#grid .card').click()")
        cdp.wait(f"document.body.dataset.detail === {json.dumps(first)}")
        rows = cdp.js("document.querySelectorAll('#detail tbody tr').length")
        assert rows == sum(1 for s in table[T.SAMPLE_ID].to_pylist() if s == first)
        cdp.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
        cdp.wait("document.getElementById('detail').hidden")
        # reset clears every filter; sorting by sample id from the menu
        cdp.js("document.getElementById('reset').click()")
        cdp.wait(f"document.body.dataset.shown === '{len(want)}'")
        cdp.js("const o = document.getElementById('sort'); o.value = 'sample_id'; o.dispatchEvent(new Event('change'))")
        cdp.wait("location.hash.includes('sort=sample_id')")
        assert cdp.js(cards) == sorted(want)
        # the arrow keys step through the samples in the grid's order
        cdp.js("document.querySelector('#grid .card').click()")
        cdp.wait(f"document.body.dataset.detail === {json.dumps(sorted(want)[0])}")
        cdp.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}))")
        cdp.wait(f"document.body.dataset.detail === {json.dumps(sorted(want)[1])}")
        cdp.js("document.getElementById('close').click()")
        cdp.wait("document.getElementById('detail').hidden")
        cdp.js("document.getElementById('sort-dir').click()")
        cdp.wait("location.hash.includes('desc=1')")
        assert cdp.js(cards) == sorted(want, reverse=True)
        # the metrics tab
        cdp.js("document.getElementById('tab-metrics').click()")
        cdp.wait("document.body.dataset.view === 'metrics'")
        assert cdp.js("document.querySelectorAll('#confusion td').length") > 0
    finally:
        cdp.close()


# --------------------------------------------------------------------------- operating points, scale

def test_best_f1_threshold_is_exact_against_rerunning_the_evaluation():
    """The report's operating point comes from the evaluated table alone. Checked against
    the slow reference: evaluate again with only the predictions at or above each
    threshold, and take the best F1 of those runs."""
    import pyarrow.compute as pc

    from mlcycle.evaluation import evaluate
    from mlcycle.formats.html import operating

    table = two_model_table()
    points = operating.best_f1(table)
    assert set(points) == {"detector", "weak"}
    gt = table.filter(pc.equal(table[T.SOURCE], "gt")).drop_columns([T.EVAL, T.EVAL_ID, T.EVAL_IOU])
    for src, point in points.items():
        preds = table.filter(pc.equal(table[T.SOURCE], src)).drop_columns([T.EVAL, T.EVAL_ID, T.EVAL_IOU])
        best = None
        for t in sorted(set(preds[T.SCORE].to_pylist())):
            kept = preds.filter(pc.greater_equal(preds[T.SCORE], t))
            ref = evaluate(pa.concat_tables([gt, kept]), annotate=False).summary["at_iou"]
            if best is None or ref["f1"] > best[1] + 1e-12:
                best = (t, ref["f1"], ref)
        t, f1, ref = best
        assert point["threshold"] == pytest.approx(t) and point["f1"] == pytest.approx(f1)
        assert (point["tp"], point["fp"], point["fn"]) == (ref["tp"], ref["fp"], ref["fn"])
        assert point["precision"] == pytest.approx(ref["precision"]) and point["recall"] == pytest.approx(ref["recall"])
    assert points["detector"]["f1"] > points["weak"]["f1"]


def test_errors_order_puts_confident_mistakes_and_misses_before_many_weak_boxes(tmp_path):
    """The default order for an evaluated table: errors at the best-F1 threshold (a false
    positive counts its score, a miss 1), not the number of low-score boxes."""
    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL_ID: [], T.LABEL: [], T.BBOX: [], T.SCORE: [], T.EVAL: [], T.EVAL_ID: []}

    def add(sid, src, lid, score, ev, eid):
        for k, v in zip(rows, (sid, src, lid, "a", [0, 0, 5, 5], score, ev, eid)):
            rows[k].append(v)

    add("many-weak.png", "gt", 1, None, "tp", 100)
    add("many-weak.png", "m", 100, 0.9, "tp", 1)
    for i in range(10):
        add("many-weak.png", "m", 101 + i, 0.05, "fp", None)
    add("confident-fp.png", "gt", 2, None, "tp", 200)
    add("confident-fp.png", "m", 200, 0.9, "tp", 2)
    add("confident-fp.png", "m", 201, 0.95, "fp", None)
    add("miss.png", "gt", 3, None, "fn", None)
    data = page_data(write(T.from_columns(rows), tmp_path / "r", tmp_path))
    assert data["operating"]["m"]["threshold"] == 0.9 and data["operating"]["m"]["f1"] == pytest.approx(4 / 6)
    assert data["sort"] == {"by": "errors", "desc": True}
    assert data["samples"]["id"] == ["miss.png", "confident-fp.png", "many-weak.png"]
    assert data["matches"] == {"m": [[0, 1]] if data["samples"]["id"][0] == "many-weak.png" else data["matches"]["m"]}
    gt_rows = [i for i, s in enumerate(data["rows"][T.SOURCE]) if s == "gt" and data["rows"][T.EVAL][i] == "tp"]
    assert sorted(g for g, _ in data["matches"]["m"]) == sorted(gt_rows)


def test_default_limit_warns_and_is_stated_on_the_page(tmp_path, monkeypatch, recwarn):
    monkeypatch.setattr(H, "DEFAULT_LIMIT", 3)
    ids = [f"{i}.png" for i in range(5)]
    table = T.from_columns({T.SAMPLE_ID: ids, T.SOURCE: ["gt"] * 5, T.LABEL: ["a"] * 5, T.BBOX: [[0, 0, 1, 1]] * 5})
    data = page_data(write(table, tmp_path / "r", tmp_path))
    assert data["samples"]["id"] == ids[:3]
    assert data["limit"] == {"shown": 3, "total": 5, "limit": 3, "default": True}
    assert any("the report shows 3 of 5 samples" in str(w.message) and "limit" in str(w.message) for w in recwarn)
    assert page_data(write(table, tmp_path / "all", tmp_path, limit=0))["limit"]["shown"] == 5
    data = page_data(write(table, tmp_path / "two", tmp_path, limit=2))
    assert data["limit"] == {"shown": 2, "total": 5, "limit": 2, "default": False}


def test_cli_warns_about_the_default_limit_and_missing_images(runner, tmp_path, monkeypatch):
    from mlcycle import io

    monkeypatch.setattr(H, "DEFAULT_LIMIT", 2)
    ids = [f"{i}.png" for i in range(3)]
    io.write_table(T.from_columns({T.SAMPLE_ID: ids, T.SOURCE: ["gt"] * 3, T.LABEL: ["a"] * 3}), tmp_path / "t.parquet")
    res = runner(["export", "html", tmp_path / "t.parquet", "-o", tmp_path / "r", "--images-root", tmp_path / "nowhere"])
    assert res.exit_code == 0, res.stderr
    assert "the report shows 2 of 3 samples" in res.stderr and "--limit" in res.stderr
    assert "2 of 2 images not found or unreadable under --images-root" in res.stderr


def test_the_page_of_a_large_table_stays_small(tmp_path):
    """30,000 images, 3 ground-truth boxes and 20 predictions each (690,000 rows): the
    default limit keeps the page to 1,000 samples and the text columns go in as codes."""
    import numpy as np

    n, g, p = 30_000, 3, 20
    sid = np.repeat(np.array([f"img/{i:06d}.jpg" for i in range(n)], dtype=object), g + p)
    src = np.tile(np.array(["gt"] * g + ["model"] * p, dtype=object), n)
    rng = np.random.default_rng(0)
    score = np.where(src == "gt", np.nan, rng.random(len(sid)))
    ev = np.where(src == "gt", "fn", np.where(score > 0.7, "tp", "fp")).astype(object)
    table = pa.table({T.SAMPLE_ID: sid, T.SOURCE: src, T.LABEL_ID: np.arange(len(sid)),
                      T.LABEL: rng.choice([f"class{i}" for i in range(80)], len(sid)).astype(object),
                      T.BBOX: pa.FixedSizeListArray.from_arrays(rng.random(4 * len(sid)) * 100, 4),
                      T.SCORE: pa.array(score, mask=np.isnan(score)), T.EVAL: ev})
    page = write(table, tmp_path / "r", tmp_path / "no-images")
    data = raw_page_data(page)
    assert data["limit"] == {"shown": 1000, "total": n, "limit": 1000, "default": True}
    assert len(data["rows"][T.LABEL]["codes"]) == 1000 * (g + p)
    assert page.stat().st_size < 6_000_000


# --------------------------------------------------------------------------- browser: thresholds, two models, many classes

def test_browser_score_threshold_slider(chromium, sample_report, tmp_path):
    from mlcycle.formats.html import operating

    table, _, page = sample_report
    best = operating.best_f1(table)["detector"]
    cdp = Cdp(chromium, tmp_path)
    boxes = ("Array.from(document.querySelectorAll('#grid g.box')).map(b => [b.closest('.card').dataset.sampleId, "
             "b.dataset.source, b.dataset.labelId, b.dataset.label, b.dataset.eval])")

    def drawn():
        out: dict[str, set] = {}
        for sid, *rest in cdp.js(boxes):
            out.setdefault(sid, set()).add(tuple(rest))
        return out

    def want(t):
        return {k: v for k, v in at_threshold(table, "detector", t).items()}

    try:
        cdp.open(page.as_uri())
        # default: the best-F1 threshold, stated on the page
        assert cdp.js("document.getElementById('thr-0').value") == f"{best['threshold']}".rstrip("0") or \
            float(cdp.js("document.getElementById('thr-0').value")) == pytest.approx(best["threshold"], abs=0.005)
        assert json.loads(cdp.js("document.body.dataset.thresholds")) == {"detector": best["threshold"]}
        note = cdp.js("document.getElementById('operating').textContent")
        assert "best F1 " + f"{best['f1']:.3f}" in note and "hidden" in note
        assert drawn() == want(best["threshold"])
        n_pred = sum(len([b for b in v if b[0] != "gt"]) for v in drawn().values())
        assert n_pred == best["tp"] + best["fp"]
        # move the slider: fewer boxes, more misses; the URL keeps it
        cdp.js("{ const r = document.getElementById('thr-0'); r.value = '0.9'; r.dispatchEvent(new Event('input'));"
               "r.dispatchEvent(new Event('change')) }")
        cdp.wait("location.hash.includes('thr=detector%3A0.9')")
        assert cdp.js("document.getElementById('thr-value-0').textContent") == "0.90"
        assert drawn() == want(0.9)
        assert sum(1 for v in want(0.9).values() for b in v if b[3] == "fn") > \
            sum(1 for v in want(best["threshold"]).values() for b in v if b[3] == "fn")
        # the eval filter follows the threshold
        cdp.js("{ const e = document.getElementById('filter-eval'); e.value = 'fn'; e.dispatchEvent(new Event('change')) }")
        cdp.wait("document.body.dataset.filters.includes('fn')")
        cards = set(cdp.js("Array.from(document.querySelectorAll('#grid .card')).map(c => c.dataset.sampleId)"))
        assert cards == {s for s, v in want(0.9).items() if any(b[3] == "fn" for b in v)}
        # threshold 0 shows every prediction; "best F1" goes back
        cdp.js("document.getElementById('reset').click()")
        cdp.wait(f"document.body.dataset.shown === '{len(want(0))}'")
        cdp.js("{ const r = document.getElementById('thr-0'); r.value = '0'; r.dispatchEvent(new Event('change')) }")
        cdp.wait("location.hash.includes('thr=detector%3A0')")
        assert drawn() == expected_boxes(table)
        cdp.js("document.getElementById('thr-best-0').click()")
        cdp.wait("!location.hash.includes('thr=')")
        assert drawn() == want(best["threshold"])
    finally:
        cdp.close()


def test_browser_two_models_side_by_side(chromium, tmp_path):
    from mlcycle.formats.html import operating

    table, doc = two_model_table(metrics=True)
    (tmp_path / "m.json").write_text(json.dumps(doc))
    page = write(table, tmp_path / "r", SAMPLE, metrics=tmp_path / "m.json")
    points = operating.best_f1(table)
    # the same operating points as evaluate's own (computed there by its own code)
    for src in ("detector", "weak"):
        theirs = doc["sources"][src]["operating_points"]["overall"]["best_f1"]
        assert points[src]["threshold"] == pytest.approx(theirs["threshold"])
        assert points[src]["f1"] == pytest.approx(theirs["f1"])
    cdp = Cdp(chromium, tmp_path)
    panels = ("Array.from(document.querySelectorAll('#grid .card')).map(c => [c.dataset.sampleId, "
              "Array.from(c.querySelectorAll('.panel-src')).map(p => [p.dataset.source, "
              "Array.from(p.querySelectorAll('g.box')).map(b => [b.dataset.source, b.dataset.labelId, b.dataset.label, b.dataset.eval])])])")
    try:
        cdp.open(page.as_uri())
        assert json.loads(cdp.js("document.body.dataset.panels")) == ["detector", "weak"]
        assert cdp.js("document.querySelectorAll('#sliders input[type=range]').length") == 2
        cards = cdp.js(panels)
        assert len(cards) == 12
        want = {src: at_threshold(table, src, points[src]["threshold"]) for src in ("detector", "weak")}
        for sid, ps in cards:
            assert [p[0] for p in ps] == ["detector", "weak"]  # the same image, one panel per model
            for src, boxes in ps:
                assert {tuple(b) for b in boxes} == want[src].get(sid, set()), (sid, src)
        # the two models disagree somewhere: a ground truth one finds and the other misses
        assert any(want["detector"][s] & {b for b in want["weak"].get(s, set()) if b[0] == "gt"} !=
                   {b for b in want["detector"][s] if b[0] == "gt"} for s in want["detector"])
        # the detail view: the image twice, side by side, with each model's boxes
        first = cards[0][0]
        cdp.js("document.querySelector('#grid .card').click()")
        cdp.wait(f"document.body.dataset.detail === {json.dumps(first)}")
        detail = cdp.js("Array.from(document.querySelectorAll('#detail .panel-src')).map(p => "
                        "[p.dataset.source, p.getBoundingClientRect().left, p.getBoundingClientRect().top, "
                        "p.querySelectorAll('g.box').length])")
        assert [d[0] for d in detail] == ["detector", "weak"]
        assert detail[0][1] < detail[1][1] and abs(detail[0][2] - detail[1][2]) < 2  # side by side
        assert [d[3] for d in detail] == [len(want["detector"][first]), len(want["weak"].get(first, set()))]
        cdp.js("document.getElementById('close').click()")
        cdp.wait("document.getElementById('detail').hidden")
        # one model's slider changes only its panel
        cdp.js("{ const r = document.getElementById('thr-1'); r.value = '0'; r.dispatchEvent(new Event('change')) }")
        cdp.wait("location.hash.includes('thr=weak%3A0')")
        want["weak"] = at_threshold(table, "weak", 0.0)
        for sid, ps in cdp.js(panels):
            for src, boxes in ps:
                assert {tuple(b) for b in boxes} == want[src].get(sid, set()), (sid, src)
        # a source filter shows one model
        cdp.js("{ const f = document.getElementById('filter-source'); f.value = 'weak'; f.dispatchEvent(new Event('change')) }")
        cdp.wait("document.body.dataset.panels === '[\"weak\"]'")
        assert {p[0] for _, ps in cdp.js(panels) for p in ps} == {"weak"}
        # the metrics page of several models: the comparison, and one model's page at a time
        cdp.js("document.getElementById('tab-metrics').click()")
        cdp.wait("document.body.dataset.view === 'metrics'")
        assert cdp.js("document.body.dataset.metricsSource") == "detector"
        assert cdp.js("document.querySelectorAll('#comparison tbody tr').length") == 3  # 2 models + 1 delta
        ap = cdp.js("document.querySelector('#metric-summary [data-key=AP] .value').textContent")
        assert float(ap) == pytest.approx(doc["sources"]["detector"]["metrics"]["AP"], abs=1e-3)
        cdp.js("document.querySelector('#metric-sources [data-source=weak]').click()")
        cdp.wait("document.body.dataset.metricsSource === 'weak'")
        ap = cdp.js("document.querySelector('#metric-summary [data-key=AP] .value').textContent")
        assert float(ap) == pytest.approx(doc["sources"]["weak"]["metrics"]["AP"], abs=1e-3)
    finally:
        cdp.close()


def test_browser_eighty_classes_legend_colours_and_confusion_matrix(chromium, tmp_path):
    names = [f"class {i:02d}" for i in range(80)]
    n = len(names)
    table = T.from_columns({T.SAMPLE_ID: [f"{i % 8}.png" for i in range(n)], T.SOURCE: ["gt"] * n,
                            T.LABEL: names, T.BBOX: [[i % 50, i % 40, 10, 10] for i in range(n)]})
    labels = names + ["(none)"]
    metrics = {"confusion_matrix": {"labels": labels, "iou": 0.5,
                                    "matrix": [[(7 if i == j else (1 if (i + j) % 13 == 0 else 0)) for j in range(81)] for i in range(81)]}}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    page = write(table, tmp_path / "r", tmp_path, metrics=tmp_path / "m.json")
    cdp = Cdp(chromium, tmp_path)
    try:
        cdp.open(page.as_uri())
        keys = "Array.from(document.querySelectorAll('#legend .class-key'))"
        assert cdp.js(keys + ".length") == 80
        assert cdp.js(keys + ".filter(b => getComputedStyle(b).display !== 'none').length") == 24
        colours = cdp.js(keys + ".map(b => getComputedStyle(b.querySelector('.swatch')).backgroundColor)")
        assert len(set(colours)) == 80

        def rgb(c):
            return [int(x) for x in c[c.index("(") + 1:c.index(")")].split(",")[:3]]

        # distinguishable: no two class colours closer than 20 in RGB distance
        pts = [rgb(c) for c in colours]
        closest = min(sum((a - b) ** 2 for a, b in zip(p, q)) ** 0.5 for i, p in enumerate(pts) for q in pts[i + 1:])
        assert closest > 20
        cdp.js("document.getElementById('legend-more').click()")
        cdp.wait("document.getElementById('legend-more').textContent === 'fewer classes'")
        assert cdp.js(keys + ".filter(b => getComputedStyle(b).display !== 'none').length") == 80
        # a click on a class in the legend filters on it
        cdp.js(keys + "[30].click()")
        cdp.wait("document.body.dataset.filters.includes('class 30')")
        assert cdp.js("Array.from(document.querySelectorAll('#grid .card')).map(c => c.dataset.sampleId)") == ["6.png"]
        # the confusion matrix: 81 x 81 cells in a box that fits the window and scrolls
        cdp.js("document.getElementById('tab-metrics').click()")
        cdp.wait("document.body.dataset.view === 'metrics'")
        assert cdp.js("document.querySelectorAll('#confusion td').length") == 81 * 81
        box = cdp.js("(() => { const w = document.querySelector('.confusion-wrap'); const r = w.getBoundingClientRect();"
                     " return [r.right, r.height, window.innerWidth, window.innerHeight, w.scrollWidth > w.clientWidth ||"
                     " w.scrollHeight > w.clientHeight]; })()")
        assert box[0] <= box[2] and box[1] <= box[3] and box[4]
        assert cdp.js("document.getElementById('confusion').classList.contains('compact')")
    finally:
        cdp.close()


def test_browser_untrusted_text_in_the_new_views(chromium, tmp_path):
    """Markup in source names (the sliders, the panels, the operating-point note), class
    names (the legend) and sample ids never runs and never makes an element."""
    table = evil_two_source_table(tmp_path / "imgs")
    page = write(table, tmp_path / "r", tmp_path / "imgs")
    data = page_data(page)
    assert set(data["sources"]) == {EVIL[0], EVIL[1]}
    for fragment in ("", "#sample=" + EVIL[1].replace("/", "%2F") + ".png",
                     "#filter=source:" + EVIL[0].replace("/", "%2F"), "#thr=" + EVIL[0].replace("/", "%2F") + ":0"):
        dom = open_report(chromium, page, tmp_path, fragment)
        assert dom.body.get("data-ready") == "1", fragment
        assert "data-pwned" not in dom.body, fragment
        assert not [t for t, _ in dom.elements if t in ("img", "b")], fragment
        assert [t for t, _ in dom.elements].count("script") == 2, fragment
        assert not [a for _, a in dom.elements if any(k.startswith("on") for k in a)], fragment
    dom = open_report(chromium, page, tmp_path)
    panels = {a["data-source"] for t, a in dom.elements if t == "div" and "panel-src" in (a.get("class") or "")}
    assert panels == {EVIL[0], EVIL[1]}
    assert {a["data-label"] for t, a in dom.elements if t == "button" and "class-key" in (a.get("class") or "")} == \
        {EVIL[0], EVIL[1], EVIL[2], "cat"}
    assert any(EVIL[0] in x for x in dom.texts) and any(EVIL[1] in x for x in dom.texts)
