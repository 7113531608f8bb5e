"""What the curation commands (merge, filter, remap, split, rebalance) share.

Output rule: the table goes to -o FILE or standard output; the summary goes to stderr
as a few lines. With --json the summary is printed as JSON on standard output instead:
with -o the table still goes to the file, without -o no table is written (a dry run).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

Where = Annotated[Optional[str], typer.Option("--where", "-w", metavar="EXPR", help=(
    "Keep label rows where EXPR holds: comparisons (== != < <= > >=), in [..], is [not] null, "
    "and/or/not, parentheses; columns by name (`odd name` in backquotes), bbox.x/y/w/h. See docs/curate.md."))]


def split_list(values: list[str] | None) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c'] (repeatable options that also take comma lists)."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def table_target(output: str | None, encoding: str | None, json_out: bool) -> tuple[str | None, str | None]:
    """Where the table goes: --json without -o is a dry run (the table goes nowhere)."""
    if json_out and output is None:
        return os.devnull, "arrow"
    return output, encoding


def check_output(output: str | None, encoding: str | None, json_out: bool) -> None:
    """Refuse binary output to a terminal before any work."""
    from mlcycle import io

    out, enc = table_target(output, encoding, json_out)
    io.check_binary_to_terminal(out, io.output_encoding(out, enc))


def write(table, output: str | None, encoding: str | None, json_out: bool) -> None:
    from mlcycle import io

    out, enc = table_target(output, encoding, json_out)
    io.write_table(table, out, enc)


def report(summary: dict, json_out: bool, lines: list[str]) -> None:
    from mlcycle.cli import console

    if json_out:
        import orjson

        data = orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
                            | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        out = getattr(sys.stdout, "buffer", None)
        out.write(data) if out is not None else sys.stdout.write(data.decode())
        sys.stdout.flush()
        return
    if console.is_quiet():
        return
    for line in lines:
        console.info(line)


def fmt_counts(counts: dict, limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    text = ", ".join(f"{k} {v}" for k, v in items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
