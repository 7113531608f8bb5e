"""Dynamic tab completion (``_MLCYCLE_COMPLETE=complete_bash|zsh|fish``) without typer.

typer's own completion imports typer, click and every command module (~110 ms) to answer
one TAB. Every completion our commands offer is a fixed list filtered by prefix (command
names, option names, format names, choices) or nothing (the shell then offers file
names), so scripts/docgen.py stores the
lists in ``_generated.COMPLETION`` and this module replays click's rules on them:
which parameter the incomplete word belongs to (``shell_completion._resolve_incomplete``),
which options are already given, and each shell's output format. Anything unusual
(quotes, ``=``, ``--``, unknown words, other shells) returns None and typer answers, so
an answer from here is the same as typer's; tests/test_docs.py compares the two on every
command, option and value.
"""

from __future__ import annotations

import os

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./,+@%~ ")


def complete(instruction: str) -> tuple[str | None, int]:
    """(text to print, exit status) for a completion request, or (None, 0) when typer
    must answer it."""
    shell = instruction[len("complete_"):] if instruction.startswith("complete_") else None
    if shell == "bash":
        line, cword = os.environ.get("COMP_WORDS", ""), os.environ.get("COMP_CWORD", "")
        if not cword.isdigit() or not set(line) <= _SAFE:
            return None, 0
        words = line.split()
        args, incomplete = words[1:int(cword)], (words[int(cword)] if int(cword) < len(words) else "")
    elif shell in ("zsh", "fish"):
        line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
        if not set(line) <= _SAFE:
            return None, 0
        words = line.split()[1:]
        if words and not line.endswith(" "):
            args, incomplete = words[:-1], words[-1]
        else:
            args, incomplete = words, ""
    else:
        return None, 0
    items = completions(args, incomplete)
    if items is None:
        return None, 0
    if shell == "bash":
        return "\n".join(value for value, _, _ in items) + "\n", 0
    if shell == "zsh":
        if not items:
            return "_files\n", 0
        lines = "\n".join(z if z is not None else f'"{_zsh_escape(v)}"' for v, z, _ in items)
        return f"_arguments '*: :(({lines}))'\n", 0
    action = os.environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
    if action == "is-args":
        return "", 0 if items else 1
    if action != "get-args":
        return "\n", 0
    return "\n".join(f if f is not None else v for v, _, f in items) + "\n", 0


def _zsh_escape(s: str) -> str:
    return s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`").replace(":", r"\\:")


def completions(args: list[str], incomplete: str) -> list[tuple[str, str | None, str | None]] | None:
    """The completion items (value, zsh line, fish line) of ``mlcycle ARGS INCOMPLETE``,
    or None when this module does not decide it. A None line is built from the value."""
    from mlcycle.cli._generated import COMPLETION

    if "--" in args or "=" in incomplete or any("=" in a for a in args):
        return None
    root = COMPLETION[""]
    if not args:
        if incomplete.startswith("-"):
            return _option_names(root, [], incomplete)
        if incomplete and not incomplete[0].isalnum():
            return None
        return [c for c in root["commands"] if c[0].startswith(incomplete)]
    command = COMPLETION.get(args[0]) if args[0] in root["names"] else None
    if command is None:
        return None
    options, arguments = command["options"], command["arguments"]
    by_name = {name: o for o in options for name in o["names"]}
    given: list[dict] = []
    positionals = 0
    rest = args[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("-"):
            option = by_name.get(word)
            if option is None:
                return None
            given.append(option)
            if not option["flag"]:
                if i + 1 == len(rest):   # the incomplete word is this option's value
                    if incomplete.startswith("-"):  # click does not count it as given yet
                        return _option_names(command, given[:-1], incomplete)
                    if word not in option["opts"]:
                        return None
                    return _values(option, incomplete)
                if rest[i + 1].startswith("-"):
                    return None
                i += 1
        else:
            positionals += 1
        i += 1
    if incomplete.startswith("-"):
        return _option_names(command, given, incomplete)
    slots = 0
    for argument in arguments:
        if argument["nargs"] == -1 or positionals <= slots:
            return _values(argument, incomplete)
        slots += argument["nargs"]
    if incomplete and not incomplete[0].isalnum():
        return None
    return []


def _option_names(command: dict, given: list[dict], incomplete: str) -> list:
    return [(name, z, f) for o in command["options"] if o["multiple"] or not any(g is o for g in given)
            for name, z, f in o["items"] if name.startswith(incomplete)]


def _values(param: dict, incomplete: str) -> list | None:
    kind = param["kind"]
    if kind == "values":
        return [(v, None, None) for v in param["values"] if v.startswith(incomplete)]
    if kind == "none":
        return []
    return None
