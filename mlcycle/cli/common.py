"""What every command shares: the app, the common options, error handling, output.

The same concept has the same flag everywhere; options are declared once here and
reused through ``Annotated`` aliases.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated, Callable, List, Optional

import typer

from mlcycle import __version__
from mlcycle.errors import ExitCode, MlcycleError, exit_status_summary

EXIT_STATUS_HELP = exit_status_summary()


class UsageError(MlcycleError):
    """A usage problem the CLI itself finds (a flag's text cannot be parsed)."""

    exit_code = ExitCode.USAGE


def flag_for(option: str | None) -> str | None:
    """The command-line flag that sets the library parameter ``option`` (``"iou"`` ->
    ``"--iou"``), looked up in the running command's options."""
    if option is None:
        return None
    from typer._click.globals import get_current_context  # typer vendors click since 0.26

    ctx = get_current_context(silent=True)
    if ctx is not None:
        for param in ctx.command.params:
            if param.name == option and getattr(param, "opts", None):
                longs = [o for o in param.opts if o.startswith("--")]
                return (longs or param.opts)[0]
    return "--" + option.replace("_", "-")

app = typer.Typer(
    name="mlcycle",
    help=(
        "Label tables for the data / model / evaluation loop of computer vision.\n\n"
        "Every command reads and writes one label table (Parquet, JSON Lines, Arrow IPC "
        "or CSV), so commands chain in pipes:\n\n"
        "\b\n"
        "  mlcycle ingest coco instances.json -o gt.parquet\n"
        "  mlcycle ingest coco-results dets.json --images instances.json | mlcycle evaluate gt.parquet -\n\n"
        + EXIT_STATUS_HELP
    ),
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlcycle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          callback=_version, is_eager=True)] = False,
) -> None:
    """Label tables for the data / model / evaluation loop of computer vision."""


# --------------------------------------------------------------------------- options

TABLE_ENCODINGS = ["jsonl", "parquet", "arrow", "csv"]


def _complete_encodings(incomplete: str) -> list[str]:
    return [e for e in TABLE_ENCODINGS if e.startswith(incomplete)]


Output = Annotated[Optional[str], typer.Option(
    "-o", "--output", metavar="FILE",
    help="Write here instead of standard output (encoding from the ending: .parquet .jsonl .arrow .csv).")]
Format = Annotated[Optional[str], typer.Option(
    "--format", metavar="ENCODING", autocompletion=_complete_encodings,
    help="Table encoding when -o has no known ending: jsonl, parquet, arrow, csv "
         "[default: MLCYCLE_FORMAT, else jsonl].")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing on stderr but errors.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="More detail on stderr; tracebacks on errors.")]
NoColor = Annotated[bool, typer.Option("--no-color", help="No colour on stderr (NO_COLOR=1 does the same).")]
Json = Annotated[bool, typer.Option("--json", help="Print the report as JSON on standard output.")]
Tables = Annotated[Optional[List[str]], typer.Argument(
    metavar="[TABLE]...", help="Label tables to read ('-' or none: standard input).", show_default=False)]


def stdout_is_terminal() -> bool:
    """Is standard output a terminal? (A human reads it: show tables, not JSON.)"""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdout
        return False


def setup(quiet: bool = False, verbose: bool = False, no_color: bool = False) -> None:
    from mlcycle.cli import console

    console.configure(quiet=quiet, verbose=verbose, no_color=no_color or bool(os.environ.get("NO_COLOR")))


# --------------------------------------------------------------------------- errors

def handle_errors(fn: Callable) -> Callable:
    """Turn expected failures into one line on stderr and the documented exit status.

    ``MlcycleError`` -> ``error: ...`` (+ ``hint: ...``), its exit code; Ctrl-C -> 130;
    a closed pipe (``| head``) -> quiet exit 0; anything else -> a bug report line
    (the traceback with -v or MLCYCLE_DEBUG=1).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mlcycle import reporting
        from mlcycle.cli import console
        from mlcycle.errors import OptionError

        try:
            with reporting.using(console.ConsoleReporter()):
                return fn(*args, **kwargs)
        except MlcycleError as exc:
            if console.is_verbose():
                import traceback

                traceback.print_exc(file=sys.stderr)
            from mlcycle.errors import render_mentions

            message = render_mentions(exc.raw_message, flag_for)
            hint = render_mentions(exc.raw_hint, flag_for)
            if isinstance(exc, OptionError):
                flag = flag_for(exc.option)
                if flag is not None and not message.startswith(flag):
                    message = f"{flag}: {message}"
            console.error(message, hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except typer.Exit:
            raise
        except MemoryError:
            console.error("out of memory", "the input is too large for this machine's memory; "
                          "split it (e.g. by sample) or use Parquet, which is streamed where the command allows")
            raise typer.Exit(int(ExitCode.ERROR)) from None
        except OSError as exc:  # the disk or the system, not a bug: name the file
            if console.is_verbose():
                import traceback

                traceback.print_exc(file=sys.stderr)
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            console.error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(int(ExitCode.ERROR)) from None
        except Exception as exc:  # a bug: say so, briefly
            if console.is_verbose():
                import traceback

                traceback.print_exc(file=sys.stderr)
            from mlcycle.errors import printable

            console.error(f"internal error: {type(exc).__name__}: {printable(exc)}",
                          "this is a bug in mlcycle; run again with -v for the traceback and report it")
            raise typer.Exit(int(ExitCode.ERROR)) from None

    return wrapper


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def command(name: str, examples: list[str], **kwargs) -> Callable:
    """Register ``fn`` as command ``name`` with error handling and an examples epilog."""

    def deco(fn: Callable) -> Callable:
        epilog = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples) + "\n\n" + EXIT_STATUS_HELP
        app.command(name=name, epilog=epilog, no_args_is_help=kwargs.pop("no_args_is_help", False), **kwargs)(
            handle_errors(with_provenance(name, with_allow_empty(fn))))
        return fn

    return deco


AllowEmpty = Annotated[bool, typer.Option(
    "--allow-empty", help="Read an empty input (0 bytes, e.g. from a failed step before) as an empty table "
                          "instead of failing.")]


def with_allow_empty(fn: Callable) -> Callable:
    """Every command that reads label tables gets --allow-empty: an empty input is an
    error by default (a failed upstream step must not look like 'no labels')."""
    import inspect

    sig = inspect.signature(fn)
    if "tables" not in sig.parameters and "old" not in sig.parameters:
        return fn

    @functools.wraps(fn)
    def wrapper(*args, allow_empty: bool = False, **kwargs):
        from mlcycle import io

        with io.empty_inputs_allowed(allow_empty):
            return fn(*args, **kwargs)

    # the command modules use `from __future__ import annotations`: resolve their hints in
    # their own module, since typer reads them from this wrapper
    import typing

    hints = typing.get_type_hints(fn, include_extras=True)
    params = [prm.replace(annotation=hints.get(prm.name, prm.annotation)) for prm in sig.parameters.values()]
    extra = inspect.Parameter("allow_empty", params[0].kind, default=False, annotation=AllowEmpty)
    before = [i for i, prm in enumerate(params) if prm.name == "quiet"]
    params.insert(before[0] if before else len(params), extra)
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**hints, "allow_empty": AllowEmpty}
    return wrapper


# --------------------------------------------------------------------------- provenance

def with_provenance(name: str, fn: Callable) -> Callable:
    """Run ``fn`` inside ``provenance.context``: every table it writes through
    ``io.write_table`` records the command line and digests of what it read."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mlcycle import provenance

        line, files = _command_line(name)
        with provenance.context(line, files=files):
            return fn(*args, **kwargs)

    return wrapper


def _command_line(name: str) -> tuple[str, list[str]]:
    """('mlcycle NAME ARG... --flag VALUE...', positional arguments), rebuilt from the
    parsed parameters (the real argv is not at hand under a test runner); options left
    at their default are left out."""
    import shlex

    from typer._click.globals import get_current_context

    words, positional = ["mlcycle", name], []
    ctx = get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else ():
        value = ctx.params.get(param.name)
        if value is None or value is False or value in ((), []) or value == param.default:
            continue
        values = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        if param.param_type_name == "argument":
            words += values
            positional += values
            continue
        flag = ([o for o in param.opts if o.startswith("--")] or param.opts)[0]
        words += [flag] if getattr(param, "is_flag", False) else [w for v in values for w in (flag, v)]
    return shlex.join(words), positional


def parse_size(text: str | None, option: str) -> tuple[int, int] | None:
    """'640x480' -> (640, 480)."""
    if text is None:
        return None
    try:
        w, h = text.lower().split("x")
        size = (int(w), int(h))
    except ValueError:
        raise UsageError(f"{option}: expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if size[0] <= 0 or size[1] <= 0:
        raise UsageError(f"{option}: sizes must be positive, got {text!r}")
    return size


def parse_mapping(items: list[str] | None, option: str) -> dict[str, str]:
    """['a=b,c=d', 'e=f'] -> {'a': 'b', 'c': 'd', 'e': 'f'}."""
    out: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UsageError(f"{option}: expected NAME=VALUE, got {part!r}")
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out
