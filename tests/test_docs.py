"""Man pages, shell completions and instant help.

- The checked-in man pages and completion scripts are what ``make docs`` generates now
  (else: a diff and "run make docs").
- Every man page passes ``groff -man -ww -z`` with no warning and has the sections a
  reader expects.
- Every command has help with examples, a man page and a README entry.
- ``--help``, ``COMMAND --help`` and a completion request import no heavy module.
- The completion scripts complete subcommands, options, option values and paths in
  bash, zsh and fish.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_docgen():
    """scripts/docgen.py is a repository tool, not part of the installed package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlcycle_docgen", REPO / "scripts" / "docgen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


docgen = _load_docgen()
HEAVY = ("pyarrow", "numpy", "pycocotools", "yaml", "PIL", "matplotlib")
SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT",
            "EXAMPLES", "SEE ALSO")

TREE = docgen.command_tree()
COMMANDS = [d.name for d in TREE[1:]]
GENERATED = docgen.render_all()
MAN_PAGES = sorted(k for k in GENERATED if k.startswith("man/"))


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_MLCYCLE_COMPLETE")}
    env.update(extra)
    return env


# --------------------------------------------------------------------------- drift

def test_checked_in_man_pages_and_completions_are_up_to_date():
    d = docgen.diff(REPO, GENERATED)
    assert not d, "man pages or completions are out of date: run make docs\n\n" + d


def test_docgen_check_mode_reports_drift(tmp_path):
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "mlcycle-gone.1").write_text(".TH GONE 1\n")
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "docgen.py"), "--check", "--root", str(tmp_path)],
                         capture_output=True, text=True, env=_env())
    assert out.returncode == 1
    assert "run make docs" in out.stderr
    assert "+++ b/man/mlcycle.1" in out.stdout
    assert "stale file (its command is gone): man/mlcycle-gone.1" in out.stdout


def test_docgen_writes_every_file_and_removes_stale_pages(tmp_path):
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "mlcycle-gone.1").write_text(".TH GONE 1\n")
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert not (tmp_path / "man" / "mlcycle-gone.1").exists()
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0
    for rel, text in GENERATED.items():
        assert (tmp_path / rel).read_text() == text


def test_the_wheel_installs_every_generated_file_where_distributions_look():
    import fnmatch

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    where = {
        "man/": "share/man/man1",
        "completions/mlcycle.bash": "share/bash-completion/completions",
        "completions/_mlcycle": "share/zsh/site-functions",
        "completions/mlcycle.fish": "share/fish/vendor_completions.d",
    }
    for rel in GENERATED:
        if rel.startswith("mlcycle/"):  # a module of the package (the --help pages)
            continue
        target = next(v for k, v in where.items() if rel.startswith(k))
        assert any(fnmatch.fnmatch(rel, pattern) for pattern in data_files.get(target, [])), \
            f"{rel} is not installed into {target} by pyproject.toml [tool.setuptools.data-files]"


# --------------------------------------------------------------------------- man pages

@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_has_no_groff_warnings(page):
    groff = shutil.which("groff")
    assert groff, "groff is needed to check man pages (apt-get install groff-base)"
    out = subprocess.run([groff, "-man", "-ww", "-z"], input=GENERATED[page], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == "", f"{page}: {out.stderr}"


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_has_every_section(page):
    text = GENERATED[page]
    headings = re.findall(r"^\.SH (.+)$", text, flags=re.M)
    for section in SECTIONS:
        assert section in headings, f"{page} lacks {section}"
    env = text.split(".SH ENVIRONMENT", 1)[1].split(".SH ", 1)[0]
    for var in ("MLCYCLE_FORMAT", "NO_COLOR", "MLCYCLE_DEBUG"):
        assert var in env
    assert "MLCYCLE_EXTERNAL" not in text  # a test-only variable is not for users
    status = text.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
    assert re.findall(r"\\fB(\d+)\\fR", status) == ["0", "1", "2", "3", "130"]


def test_man_page_renders_the_options_and_examples_of_help():
    man = shutil.which("man")
    page = GENERATED["man/mlcycle-ingest.1"]
    assert ".SH EXAMPLES" in page
    assert "\\-\\-format" in page and "\\fIENCODING\\fR" in page
    if man:  # what `man -l man/mlcycle-ingest.1` shows
        out = subprocess.run([man, "-l", "-"], input=page, capture_output=True, text=True,
                             env=_env(MANWIDTH="100", MANPAGER="cat", PAGER="cat"))
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert "mlcycle ingest coco instances_val.json --split val -o gt.parquet" in text
        assert "--format ENCODING" in text


def test_roff_escaping_keeps_text_literal():
    assert docgen._roff(".starts with a dot") == "\\&.starts with a dot"
    assert docgen._roff("'quote first") == "\\&'quote first"
    assert docgen._roff("a\\b --x px\u00b2") == "a\\eb \\-\\-x px\\[u00B2]"
    out = subprocess.run(["groff", "-man", "-ww", "-Tutf8"], capture_output=True, text=True,
                         input=".TH T 1\n.SH NAME\n" + docgen._roff(".x a\\b --x px\u00b2") + "\n")
    assert out.stderr == ""
    plain = re.sub(r".\x08", "", out.stdout)
    assert ".x a\\b \u2010\u2010x" not in plain and ".x a\\b --x px\u00b2" in plain


def test_root_man_page_lists_every_command():
    page = GENERATED["man/mlcycle.1"]
    for name in COMMANDS:
        assert f"\\fB{docgen._roff(name)}\\fR" in page.split(".SH COMMANDS", 1)[1].split(".SH ", 1)[0]
        assert f".BR mlcycle\\-{docgen._roff(name)} (1)" in page


# --------------------------------------------------------------------------- meta

@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_examples_a_man_page_and_a_readme_entry(name, runner):
    result = runner([name, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    examples = result.stdout.split("Examples:", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    assert len(examples) >= 2, f"{name} --help needs 2-3 examples"
    assert all(e.strip().startswith("mlcycle ") or "| mlcycle" in e for e in examples)
    assert (REPO / "man" / f"mlcycle-{name}.1").is_file(), "run make docs"
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"^##+ `?(mlcycle )?{re.escape(name)}(?![\w-])", readme, flags=re.M), \
        f"README.md has no section for {name} (a '## {name}' heading with an example)"
    assert f"mlcycle {name}" in readme


def _mlcycle_calls(line: str):
    """(command, words) of every `mlcycle COMMAND ...` in a shell line."""
    import shlex

    for seg in re.split(r"\||&&|;|\$\(", line.split(" #")[0]):
        try:
            words = shlex.split(seg.strip())
        except ValueError:
            continue
        if len(words) >= 2 and words[0] == "mlcycle" and not words[1].startswith("-"):
            yield words[1], words[2:]


def _bad_calls(lines) -> list[str]:
    flags = {d.name: {f for o in d.options for f in o.flags} for d in TREE[1:]}
    bad = []
    for line in lines:
        for cmd, words in _mlcycle_calls(line):
            if cmd not in flags:
                bad.append(f"unknown command {cmd!r}: {line}")
                continue
            for w in words:
                if w.startswith("-") and w != "-" and not re.match(r"-\d", w) and w.split("=")[0] not in flags[cmd]:
                    bad.append(f"mlcycle {cmd} has no option {w.split('=')[0]}: {line}")
    return bad


def test_help_examples_use_real_commands_and_options():
    assert _bad_calls(e for d in TREE for e in d.examples) == []


def test_readme_and_docs_examples_use_real_commands_and_options():
    bad = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:sh|bash|console|shell)\n(.*?)```", path.read_text(), flags=re.S):
            bad += [f"{path.relative_to(REPO)}: {b}" for b in _bad_calls(ln.lstrip("$ ") for ln in block.splitlines())]
    assert bad == [], "\n".join(bad)


# --------------------------------------------------------------------------- instant

def _imported(args: list[str], **env) -> tuple[set[str], subprocess.CompletedProcess]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlcycle", *args],
                         capture_output=True, text=True, env=_env(**env))
    mods = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return mods, out


@pytest.mark.parametrize("args", [["--help"]] + [[c, "--help"] for c in COMMANDS],
                         ids=lambda a: " ".join(a))
def test_help_imports_nothing_heavy(args):
    mods, out = _imported(args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage: mlcycle" in out.stdout
    assert not mods & set(HEAVY), f"mlcycle {' '.join(args)} imports {sorted(mods & set(HEAVY))}"


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["evaluate", "--help"], ["stats", "-h"]],
                         ids=lambda a: " ".join(a))
def test_help_is_answered_without_typer_and_equals_typers_page(args):
    """The stored pages (scripts/docgen.py) are what typer prints; only they skip typer."""
    mods, out = _imported(args, COLUMNS="120")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "typer" not in mods
    assert out.stdout == docgen.help_output(args)


def test_help_on_a_narrow_terminal_is_typers_own_wrapping():
    mods, out = _imported(["evaluate", "--help"], COLUMNS="60")
    assert out.returncode == 0 and "typer" in mods
    prose = out.stdout.split("Examples")[0].splitlines()
    assert max(len(line) for line in prose) <= 60   # examples are kept verbatim
    assert "Usage: mlcycle evaluate" in out.stdout


def test_help_with_other_arguments_goes_to_typer():
    mods, out = _imported(["evaluate", "gt.parquet", "--help"], COLUMNS="120")
    assert out.returncode == 0 and "typer" in mods
    assert out.stdout == docgen.help_output(["evaluate", "--help"])


@pytest.mark.parametrize("words,expect", [
    ("mlcycle ", "ingest"),
    ("mlcycle ingest ", "coco"),
    ("mlcycle ingest --format ", "parquet"),
    ("mlcycle export ", "coco-results"),
])
def test_a_completion_request_imports_nothing_heavy(words, expect):
    parts = words.split(" ")
    mods, out = _imported([], _MLCYCLE_COMPLETE="complete_bash", COMP_WORDS=words,
                          COMP_CWORD=str(len(parts) - 1))
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout.split()
    assert not mods & set(HEAVY), f"completing {words!r} imports {sorted(mods & set(HEAVY))}"


@pytest.mark.parametrize("shell,env", [
    ("zsh", {"_MLCYCLE_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "mlcycle ingest --format "}),
    ("fish", {"_MLCYCLE_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
              "_TYPER_COMPLETE_ARGS": "mlcycle ingest --format "}),
])
def test_zsh_and_fish_completion_requests_import_nothing_heavy(shell, env):
    mods, out = _imported([], **env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "parquet" in out.stdout
    assert not mods & set(HEAVY), f"{shell} completion imports {sorted(mods & set(HEAVY))}"


# --------------------------------------------------------------------------- completions

@pytest.fixture
def scripts(tmp_path):
    """The generated completion scripts and a folder with a few files to complete."""
    for rel, text in GENERATED.items():
        if rel.startswith("completions/"):
            (tmp_path / Path(rel).name).write_text(text)
    work = tmp_path / "work"
    (work / "images").mkdir(parents=True)
    (work / "gt.parquet").write_bytes(b"PAR1")
    (work / "instances.json").write_text("{}")
    return tmp_path


BASH_DRIVER = r'''
source "$1"
shift
for line in "$@"; do
    read -ra COMP_WORDS <<< "$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMPREPLY=()
    _mlcycle
    echo "${COMPREPLY[*]}"
done
'''


def _bash(scripts: Path, *lines: str) -> list[list[str]]:
    out = subprocess.run(["bash", "-c", BASH_DRIVER, "bash", str(scripts / "mlcycle.bash"), *lines],
                         capture_output=True, text=True, cwd=scripts / "work", check=True)
    assert out.stderr == ""
    return [sorted(line.split()) for line in out.stdout.splitlines()]


def test_bash_completes_subcommands_options_values_and_paths(scripts):
    got = _bash(scripts,
                "mlcycle ",
                "mlcycle in",  # ingest and info
                "mlcycle ingest --fo",
                "mlcycle ingest --format ",
                "mlcycle ingest --format p",
                "mlcycle ingest ",
                "mlcycle ingest coco ",
                "mlcycle ingest --images-root ",
                "mlcycle ingest -o ",
                "mlcycle export ",
                "mlcycle export -o out.json ",
                "mlcycle export coco ",
                "mlcycle export --split ",
                )
    assert got[0] == sorted(COMMANDS)
    assert got[1] == ["info", "ingest"]
    assert got[2] == ["--format"]
    assert got[3] == ["arrow", "csv", "jsonl", "parquet"]
    assert got[4] == ["parquet"]
    assert {"coco", "coco-results", "gt.parquet", "instances.json", "images"} <= set(got[5])
    assert got[6] == ["gt.parquet", "images", "instances.json"]
    assert got[7] == ["images"]
    assert got[8] == ["gt.parquet", "images", "instances.json"]
    assert {"coco", "coco-results"} <= set(got[9]) and "gt.parquet" not in got[9]
    assert got[10] == got[9]  # -o's value is not a positional word
    assert got[11] == ["gt.parquet", "images", "instances.json"]
    assert got[12] == []  # free text: no file names


def test_bash_completes_the_value_of_option_equals(scripts):
    driver = (f'source "{scripts / "mlcycle.bash"}"\n'
              'COMP_WORDS=(mlcycle ingest --format = a); COMP_CWORD=4; COMPREPLY=(); _mlcycle; echo "${COMPREPLY[*]}"\n'
              'COMP_WORDS=(mlcycle ingest --format =); COMP_CWORD=3; COMPREPLY=(); _mlcycle; echo "${COMPREPLY[*]}"\n'
              'COMP_WORDS=(mlcycle ingest --format = csv ""); COMP_CWORD=5; COMPREPLY=(); _mlcycle; echo "${COMPREPLY[*]}"\n')
    out = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, cwd=scripts / "work", check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "arrow"
    assert lines[1].split() == ["jsonl", "parquet", "arrow", "csv"]
    assert "coco" in lines[2].split()  # after --format=csv comes the first positional word


def test_bash_completes_metric_names_for_fail_under(scripts):
    if "evaluate" not in COMMANDS:
        pytest.fail("evaluate is gone: drop this test")
    got = _bash(scripts,
                "mlcycle evaluate --fail-under AP5",
                "mlcycle evaluate --fail-under ",
                "mlcycle evaluate --fail-under AP50 = 0.5 ",
                "mlcycle evaluate --method ")
    assert got[0] == ["AP50="]
    assert {"AP=", "AP50=", "AP_small=", "AR_100=", "precision="} <= set(got[1])
    assert got[2] == ["gt.parquet", "images", "instances.json"]  # METRIC=VALUE is one word
    assert got[3] == ["coco", "voc", "voc07"]


def _need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed here (.ci/run installs it)")
    return path


def test_zsh_script_is_valid_and_describes_every_command(scripts):
    zsh = _need("zsh")
    out = subprocess.run([zsh, "-n", str(scripts / "_mlcycle")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = (scripts / "_mlcycle").read_text()
    assert text.startswith("#compdef mlcycle\n")
    for name in COMMANDS:
        assert f"'{name}:" in text and f"_mlcycle_{name.replace('-', '_')}()" in text
    assert ":ENCODING:(jsonl parquet arrow csv)" in text
    # loading it in an interactive-like shell with compinit defines the completer
    probe = (f"autoload -Uz compinit && compinit -u -d {scripts}/zcompdump; "
             f"source {scripts}/_mlcycle; print -r -- $_comps[mlcycle]")
    out = subprocess.run([zsh, "-f", "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "_mlcycle", out.stderr


def _zsh_tab(zsh: str, scripts: Path, lines: list[str]) -> list[str]:
    """Type each line and TAB into an interactive zsh on a pseudo-terminal; what it shows."""
    import pty
    import select
    import time

    def read_quiet(fd: int, quiet: float = 0.5, limit: float = 15.0) -> str:
        out, end, last = b"", time.monotonic() + limit, None
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out, last = out + chunk, time.monotonic()
            elif last is not None and time.monotonic() - last > quiet:
                break
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("utf-8", "replace"))

    setup = (f"PROMPT='> '; autoload -Uz compinit; compinit -u -D; source {scripts / '_mlcycle'}; "
             "setopt autolist nolistambiguous; LISTMAX=1000")
    shown = []
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive zsh without user config
        os.chdir(scripts / "work")
        os.environ.update(TERM="dumb", HOME=str(scripts))
        os.execv(zsh, [zsh, "-f", "-i"])
    try:
        # wait until zsh ran the setup: the marker is computed, so its echo does not match
        os.write(fd, setup.encode() + b"; print READY-$((40+2))\n")
        seen, end = "", time.monotonic() + 30
        while "READY-42" not in seen and time.monotonic() < end:
            seen += read_quiet(fd, quiet=0.2, limit=1.0)
        assert "READY-42" in seen, seen
        read_quiet(fd, quiet=0.2, limit=0.5)  # the prompt after it
        for line in lines:
            os.write(fd, line.encode() + b"\t")
            shown.append(read_quiet(fd))
            os.write(fd, b"\x15")  # Ctrl-U: clear the line for the next one
            read_quiet(fd, quiet=0.2, limit=0.5)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    return shown


def test_zsh_completes_subcommands_options_values_and_paths(scripts):
    zsh = _need("zsh")
    from mlcycle import formats

    shown = _zsh_tab(zsh, scripts, ["mlcycle ", "mlcycle ingest --format ", "mlcycle export ",
                                    "mlcycle ingest --images-root ", "mlcycle export coco ",
                                    "mlcycle evaluate --fail-under AP5"])
    assert all(name in shown[0] for name in COMMANDS), shown[0]
    assert "Read annotations" in shown[0]  # with descriptions
    assert {"arrow", "csv", "jsonl", "parquet"} <= set(shown[1].split()), shown[1]
    assert all(name in shown[2].split() for name in formats.names(writes=True)), shown[2]
    assert "images/" in shown[3]
    assert "gt.parquet" in shown[4] and "instances.json" in shown[4]
    if "evaluate" in COMMANDS:
        assert "AP50=" in shown[5]


def _fish(scripts: Path, line: str) -> list[str]:
    fish = _need("fish")
    cmd = f"source {scripts / 'mlcycle.fish'}; complete -C {_fish_quote(line)}"
    out = subprocess.run([fish, "--no-config", "-c", cmd], capture_output=True, text=True,
                         cwd=scripts / "work", env=_env(HOME=str(scripts)))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return sorted(row.split("\t", 1)[0] for row in out.stdout.splitlines())


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_fish_completes_subcommands_options_values_and_paths(scripts):
    assert _fish(scripts, "mlcycle ") == sorted(COMMANDS)
    assert _fish(scripts, "mlcycle ingest --format ") == ["arrow", "csv", "jsonl", "parquet"]
    assert _fish(scripts, "mlcycle ingest --fo") == ["--format"]
    assert {"coco", "coco-results", "gt.parquet", "instances.json", "images/"} <= set(_fish(scripts, "mlcycle ingest "))
    assert _fish(scripts, "mlcycle ingest coco ") == ["gt.parquet", "images/", "instances.json"]
    from mlcycle import formats

    assert _fish(scripts, "mlcycle export ") == sorted(formats.names(writes=True))
    assert _fish(scripts, "mlcycle export coco ") == ["gt.parquet", "images/", "instances.json"]
    assert _fish(scripts, "mlcycle export --split ") == []
    if "evaluate" in COMMANDS:
        assert "AP50=" in _fish(scripts, "mlcycle evaluate --fail-under ")


# --------------------------------------------------------------------------- TAB without typer

def _completion_lines() -> list[str]:
    """Command lines to complete: every command, option and offered value, with prefixes,
    given options, positional words and unusual words."""
    from mlcycle.cli._generated import COMPLETION

    lines = ["mlcycle ", "mlcycle -", "mlcycle --h", "mlcycle x", "mlcycle --help "]
    for name in COMPLETION[""]["names"]:
        lines += [f"mlcycle {name[:k]}" for k in (1, 2, len(name))]
        base = f"mlcycle {name} "
        lines += [base, base + "-", base + "--", base + "a.parquet ", base + "a.parquet b.parquet ",
                  base + "a b c -", base + "--nope ", base + "a.parquet --", base + "_x", base + "-- -",
                  base + "./x"]
        for option in COMPLETION[name]["options"]:
            for flag in option["names"]:
                lines += [base + flag[:3], base + flag, base + flag + " ", base + flag + " -",
                          base + flag + " " + flag[:4], base + "a.parquet " + flag + " --"]
                if not option["flag"]:
                    lines += [base + flag + " v ", base + flag + " v -", base + flag + " v a.parquet ",
                              base + flag + " --json "]
                    lines += [base + flag + " " + v[:k] for v in option["values"] for k in (0, 1, len(v))]
        for argument in COMPLETION[name]["arguments"]:
            lines += [base + v[:k] for v in argument["values"] for k in (1, len(v))]
            lines += [base + v + " " for v in argument["values"][:3]]
    return lines


def _typer_completion(shell: str, env: dict) -> tuple[str, int]:
    import os

    import typer.main
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    from mlcycle.cli import app

    completion_init()
    comp = get_completion_class(shell)(typer.main.get_command(app), {}, "mlcycle", "_MLCYCLE_COMPLETE")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return comp.complete() + "\n", 0
    except SystemExit as exc:
        return "", int(exc.code or 0)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish-get-args", "fish-is-args"])
def test_tab_completion_without_typer_answers_as_typer_does(shell, monkeypatch):
    """mlcycle/cli/_complete.py answers TAB from the stored lists; where it answers, the
    text and exit status are typer's, byte for byte; it answers most lines."""
    from mlcycle.cli._complete import complete

    import random

    # typer takes ~20 ms a line: each shell checks its own sample of the ~2,500 lines
    lines = random.Random(shell).sample(_completion_lines(), 150)
    answered = 0
    for line in lines:
        if shell == "bash":
            words = line.split()
            env = {"COMP_WORDS": line, "COMP_CWORD": str(len(words) if line.endswith(" ") else len(words) - 1)}
        else:
            env = {"_TYPER_COMPLETE_ARGS": line}
            if shell.startswith("fish"):
                env["_TYPER_COMPLETE_FISH_ACTION"] = shell[len("fish-"):]
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        text, status = complete("complete_" + shell.split("-")[0])
        if text is None:
            continue
        answered += 1
        assert (text, status) == _typer_completion(shell.split("-")[0], env), line
    assert answered >= 0.9 * len(lines), f"answered {answered} of {len(lines)}"


def test_a_completion_request_does_not_import_typer():
    mods, out = _imported([], _MLCYCLE_COMPLETE="complete_bash", COMP_WORDS="mlcycle ingest --format p",
                          COMP_CWORD="3")
    assert out.returncode == 0 and out.stdout.split() == ["parquet"]
    assert "typer" not in mods
