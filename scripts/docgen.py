"""Generate man pages and shell completions from the command tree (``make docs``).

    python scripts/docgen.py           write man/*.1 and completions/*
    python scripts/docgen.py --check   exit 1 with a diff when the checked-in files drift

A repository build tool: it lives in scripts/, not in the installed package.

Typer vendors its own click (``typer._click``) since 0.26, so click-ecosystem generators
(click-man, click-completion) see no commands and produce empty pages. This module walks
typer's command tree itself: ``typer.main.get_command(app)`` is the group, its
``commands`` the subcommands, each with the same params, help text and examples epilog
that ``--help`` prints. One model (``CommandDoc``) feeds the man pages and the three
completion scripts, so they cannot disagree with ``--help``.

The completion scripts are static (see docs/shell.md for why): option values such as
format names or metric names are taken at generation time from the params' own
completion callbacks and choices, so a new format or metric shows up after
``make docs``, and the drift test says when that is due.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROG = "mlcycle"
REPO = Path(__file__).resolve().parent.parent  # scripts/ sits in the repository root

def _exit_statuses() -> list[tuple[int, str]]:
    from mlcycle.errors import EXIT_STATUSES

    return [(int(code), sentence) for code, _, sentence in EXIT_STATUSES]


ENVIRONMENT = (
    ("MLCYCLE_FORMAT",
     "Table encoding for output when -o has no known ending and --format is not given: "
     "jsonl, parquet, arrow or csv. Default: jsonl."),
    ("NO_COLOR",
     "When set to a non-empty value, messages on standard error have no colour "
     "(the same as --no-color)."),
    ("MLCYCLE_DEBUG",
     "When set to a non-empty value other than 0, errors print their traceback "
     "(the same as -v for errors)."),
)

# Option/argument metavars that name a file or folder (completion offers paths).
_FILE_WORDS = ("FILE", "PATH", "TABLE", "INSTANCES", "SCHEMA", "JSON", "YAML", "GT", "PRED")
_DIR_WORDS = ("DIR", "FOLDER")



def _fail_under_values() -> list[str]:
    """evaluate --fail-under METRIC=VALUE: the summary metric names, then '=' (no space)."""
    from mlcycle.evaluation import metric_names

    return [f"{n}=" for n in metric_names()]


# Values of options whose own completion cannot list them (free-form METRIC=VALUE text).
EXTRA_VALUES = {("evaluate", "--fail-under"): _fail_under_values}


# --------------------------------------------------------------------------- model

@dataclass
class OptionDoc:
    flags: list[str]                 # ['-o', '--output']
    metavar: str | None              # None for flags
    help: str
    values: list[str] = field(default_factory=list)   # static completion values
    files: bool = False              # complete file paths
    dirs: bool = False               # complete folders
    multiple: bool = False


@dataclass
class ArgumentDoc:
    metavar: str
    help: str
    values: list[str] = field(default_factory=list)
    files: bool = True
    variadic: bool = False


@dataclass
class CommandDoc:
    name: str                        # 'ingest' ('' for the root)
    summary: str
    description: str                 # the rest of the help text (click's \b blocks kept)
    usage: str                       # 'mlcycle ingest [OPTIONS] [FORMAT] PATH'
    options: list[OptionDoc]
    arguments: list[ArgumentDoc]
    examples: list[str]

    @property
    def full_name(self) -> str:
        return f"{PROG}-{self.name}" if self.name else PROG


def _values_of(param, ctx) -> list[str]:
    """Static completion values: the param's completion callback, choices, or a|b|c metavar."""
    values: list[str] = []
    if getattr(param, "_custom_shell_complete", None) is not None:
        try:
            values = [str(item.value) for item in param.shell_complete(ctx, "")]
        except Exception:  # a callback that needs real arguments: no static values
            values = []
    elif getattr(param.type, "choices", None):  # typer's Choice (enums, Literal)
        values = [str(getattr(c, "value", c)) for c in param.type.choices]
    elif param.metavar and re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", param.metavar):
        values = param.metavar.split("|")
    return [v for v in values if v]


def _path_kind(param) -> tuple[bool, bool]:
    """(files, dirs) for a param from its type and metavar."""
    if hasattr(param.type, "file_okay") and hasattr(param.type, "dir_okay"):  # typer's Path
        if param.type.dir_okay and not param.type.file_okay:
            return False, True
        meta = (param.metavar or "").upper()
        if any(w in meta for w in _DIR_WORDS):
            return False, True
        return True, False
    meta = (param.metavar or param.name or "").upper()
    if any(w in meta for w in _DIR_WORDS):
        return False, True
    if any(w in meta for w in _FILE_WORDS):
        return True, False
    return False, False


def _option_help(param) -> str:
    text = " ".join((param.help or "").split())
    default = param.default
    show = getattr(param, "show_default", None)
    if (not getattr(param, "is_flag", False) and show is not False and default not in (None, (), [])
            and "[default" not in text and not callable(default)):
        text += f" [default: {default}]"
    return text


def _examples(epilog: str | None) -> list[str]:
    out: list[str] = []
    if not epilog:
        return out
    lines = epilog.replace("\b", "").splitlines()
    inside = False
    for line in lines:
        if line.strip().rstrip(":").lower() == "examples":
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            out.append(line.strip())
    return out


def _split_help(text: str) -> tuple[str, str]:
    from mlcycle.cli.common import EXIT_STATUS_HELP

    text = (text or "").replace(EXIT_STATUS_HELP, "").strip()
    first, _, rest = text.partition("\n\n")
    return " ".join(first.split()), rest.strip()


def command_tree() -> list[CommandDoc]:
    """The root and every subcommand, in help order."""
    import typer._click as click
    import typer.main

    from mlcycle.cli import app

    group = typer.main.get_command(app)
    root_ctx = click.Context(group, info_name=PROG, **group.context_settings)
    docs = [_command_doc(group, root_ctx, "")]
    for name in group.list_commands(root_ctx):
        cmd = group.get_command(root_ctx, name)
        if cmd is None or cmd.hidden:
            continue
        ctx = click.Context(cmd, info_name=name, parent=root_ctx, **cmd.context_settings)
        docs.append(_command_doc(cmd, ctx, name))
    return docs


def _command_doc(cmd, ctx, name: str) -> CommandDoc:
    summary, description = _split_help(cmd.help or "")
    usage = " ".join([PROG] + ([name] if name else []) + cmd.collect_usage_pieces(ctx))
    options: list[OptionDoc] = []
    arguments: list[ArgumentDoc] = []
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if hasattr(param, "is_flag"):  # an option (typer's click has no click.Option)
            flag = param.is_flag or getattr(param, "count", False)
            files, dirs = (False, False) if flag else _path_kind(param)
            values = [] if flag else _values_of(param, ctx)
            extra = EXTRA_VALUES.get((name, param.opts[-1] if param.opts else ""))
            if extra is not None and not values:
                values = extra()
            metavar = None if flag else (param.metavar or param.type.name.upper())
            options.append(OptionDoc(
                flags=sorted(list(param.opts) + list(param.secondary_opts), key=lambda f: f.startswith("--")),
                metavar=metavar,
                help=_option_help(param), values=values, files=files and not values,
                dirs=dirs and not values, multiple=param.multiple))
        else:
            values = _values_of(param, ctx)
            metavar = param.metavar or param.name.upper()
            files, dirs = _path_kind(param)
            arguments.append(ArgumentDoc(
                metavar=metavar, help=" ".join((getattr(param, "help", None) or "").split()),
                values=values, files=(files or dirs or not values), variadic=param.nargs == -1))
    return CommandDoc(name=name, summary=summary, description=description, usage=usage,
                      options=options, arguments=arguments, examples=_examples(cmd.epilog))


# --------------------------------------------------------------------------- man pages

def _roff(text: str) -> str:
    """Escape text for a roff body line: backslashes, hyphen-minus, leading dot/quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # non-ASCII as groff named Unicode escapes: portable to any man/groff and locale
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    lines = []
    for line in text.splitlines() or [""]:
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _roff_paragraphs(text: str) -> list[str]:
    """click help text -> roff: blank-line paragraphs are filled, ``\\b`` blocks kept as is."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if not para.strip():
            continue
        if para.lstrip().startswith("\b"):
            body = para.lstrip()[1:].strip("\n")
            out += [".PP", ".nf", _roff(body), ".fi"]
        else:
            out += [".PP", _roff(" ".join(para.split()))]
    return out


def _synopsis(doc: CommandDoc) -> list[str]:
    words = doc.usage.split(" ")
    prog = " ".join(words[:2] if doc.name else words[:1])
    rest = doc.usage[len(prog):].strip()
    # metavars in italics, brackets and punctuation in roman
    rest = re.sub(r"([A-Za-z][\w=,.|-]*(?:\.\.\.)?)", lambda m: "\\fI" + m.group(1) + "\\fR", rest)
    return [".SH SYNOPSIS", ".B " + _roff(prog), rest.replace("-", "\\-")]


def _option_tag(opt: OptionDoc) -> str:
    flags = ", ".join("\\fB" + _roff(f) + "\\fR" for f in opt.flags)
    if opt.metavar:
        flags += " \\fI" + _roff(opt.metavar) + "\\fR"
    return flags


def render_man(doc: CommandDoc, tree: list[CommandDoc]) -> str:
    from mlcycle import __version__

    title = doc.full_name.upper()
    lines = [
        '.\\" Generated by `make docs` (python scripts/docgen.py) from the command tree. Do not edit.',
        f'.TH {_roff(title)} 1 "" "{PROG} {__version__}" "mlcycle manual"',
        ".nh",    # no hyphenation: column and option names stay whole
        ".ad l",  # ragged right: no stretched spaces
        ".SH NAME",
        f"{_roff(doc.full_name)} \\- {_roff(doc.summary)}",
    ]
    lines += _synopsis(doc)
    lines += [".SH DESCRIPTION", ".PP", _roff(doc.summary)]
    lines += _roff_paragraphs(doc.description)
    if not doc.name:
        lines.append(".SH COMMANDS")
        for sub in tree[1:]:
            lines += [".TP", f"\\fB{_roff(sub.name)}\\fR", _roff(sub.summary),
                      f"See \\fB{_roff(sub.full_name)}\\fR(1)."]
    if doc.arguments and doc.name:
        lines.append(".SH ARGUMENTS")
        for arg in doc.arguments:
            lines += [".TP", f"\\fI{_roff(arg.metavar)}\\fR", _roff(arg.help or arg.metavar)]
    lines.append(".SH OPTIONS")
    for opt in doc.options:
        lines += [".TP", _option_tag(opt), _roff(opt.help or "")]
    lines.append(".SH EXIT STATUS")
    for code, meaning in _exit_statuses():
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines.append(".SH ENVIRONMENT")
    for name, meaning in ENVIRONMENT:
        lines += [".TP", f"\\fB{_roff(name)}\\fR", _roff(meaning)]
    examples = doc.examples or [e for sub in tree[1:] for e in sub.examples[:1]]
    if examples:
        lines += [".SH EXAMPLES", ".PP", ".nf", ".RS 4"]
        lines += [_roff(e) for e in examples]
        lines += [".RE", ".fi"]
    lines.append(".SH SEE ALSO")
    others = [d.full_name for d in tree if d.full_name != doc.full_name]
    lines.append(",\n".join(f".BR {_roff(o)} (1)" for o in others))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- completions

_HEADER = "Generated by `make docs` (python scripts/docgen.py) from the command tree. Do not edit."


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _value_options(doc: CommandDoc) -> list[str]:
    return [f for o in doc.options if o.metavar for f in o.flags]


def _words(values) -> str:
    return " ".join(values)


def render_bash(tree: list[CommandDoc]) -> str:
    root, subs = tree[0], tree[1:]
    L = [
        f"# bash completion for {PROG}  -*- shell-script -*-",
        f"# {_HEADER}",
        "# Install: copy to $(pkg-config --variable=completionsdir bash-completion)/mlcycle",
        "# (e.g. ~/.local/share/bash-completion/completions/mlcycle) or source it from ~/.bashrc.",
        "",
        "__mlcycle_words() {",
        '    COMPREPLY+=($(compgen -W "$1" -- "$cur"))',
        "    # a value ending in '=' (METRIC=) expects more: no space after it",
        '    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then compopt -o nospace 2>/dev/null; fi',
        "}",
        "",
        "__mlcycle_files() {",
        '    local IFS=$\'\\n\'',
        "    compopt -o filenames 2>/dev/null",
        '    COMPREPLY+=($(compgen -f -- "$cur"))',
        "}",
        "",
        "__mlcycle_dirs() {",
        '    local IFS=$\'\\n\'',
        "    compopt -o filenames 2>/dev/null",
        '    COMPREPLY+=($(compgen -d -- "$cur"))',
        "}",
        "",
    ]
    for doc in subs:
        fn = f"__mlcycle_cmd_{_ident(doc.name)}"
        L.append(f"{fn}() {{")
        L.append("    # $1: the option before the word, or ''; $2: how many positional words precede it")
        L.append('    case "$1" in')
        for opt in doc.options:
            if not opt.metavar:
                continue
            pat = "|".join(opt.flags)
            if opt.values:
                action = f'__mlcycle_words "{_words(opt.values)}"'
            elif opt.dirs:
                action = "__mlcycle_dirs"
            elif opt.files:
                action = "__mlcycle_files"
            else:  # free text: nothing to offer
                L.append(f"        {pat}) return ;;")
                continue
            L.append(f"        {pat}) {action}; return ;;")
        L.append("    esac")
        flags = [f for o in doc.options for f in o.flags]
        L.append('    if [[ $cur == -* ]]; then')
        L.append(f'        __mlcycle_words "{_words(flags)}"; return')
        L.append("    fi")
        L.append('    case "$2" in')
        for i, arg in enumerate(doc.arguments):
            pat = f"{i}" if not arg.variadic else f"{i}" + ("" if not arg.values else "")
            actions = []
            if arg.values:
                actions.append(f'__mlcycle_words "{_words(arg.values)}"')
            if arg.files:
                actions.append("__mlcycle_files")
            L.append(f"        {pat}) {'; '.join(actions) or ':'} ;;")
            if arg.variadic:
                L.append("        *) __mlcycle_files ;;")
                break
        L.append("    esac")
        L.append("}")
        L.append("")
    value_opts = {d.name: _value_options(d) for d in subs}
    L += [
        "_mlcycle() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= w i npos=0 skip=0 valopts=",
        "    COMPREPLY=()",
        "    # bash splits --opt=value at '=': complete the value of the option before it",
        '    [[ $cur == = ]] && cur=',
        "    if ((COMP_CWORD > 1)); then prev=${COMP_WORDS[COMP_CWORD-1]}; fi",
        '    if [[ $prev == = ]] && ((COMP_CWORD > 2)); then prev=${COMP_WORDS[COMP_CWORD-2]}; fi',
        '    if [[ ${COMP_WORDS[COMP_CWORD]} == = ]]; then prev=${COMP_WORDS[COMP_CWORD-1]}; fi',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        w=${COMP_WORDS[i]}",
        "        if ((skip > 0)); then ((skip--)); continue; fi",
        '        if [[ -z $cmd ]]; then',
        '            [[ $w == -* ]] && continue',
        "            cmd=$w",
        '            case "$cmd" in',
    ]
    for name, opts in value_opts.items():
        L.append(f'                {name}) valopts=" {_words(opts)} " ;;')
    L += [
        "            esac",
        "            continue",
        "        fi",
        '        if [[ $w == -?* ]]; then',
        '            if [[ $valopts == *" $w "* ]]; then',
        '                if [[ ${COMP_WORDS[i+1]} == = ]]; then skip=2; else skip=1; fi',
        "            fi",
        "            continue",
        "        fi",
        "        # NAME=VALUE reaches us as NAME, =, VALUE: one word",
        '        if [[ $w == = ]]; then skip=1; continue; fi',
        "        ((npos++))",
        "    done",
        '    if [[ $prev == -* && $valopts != *" $prev "* ]]; then prev=; fi',
        '    if [[ $prev != -* ]]; then prev=; fi',
        '    if [[ -z $cmd ]]; then',
        '        if [[ $cur == -* ]]; then',
        f'            __mlcycle_words "{_words(f for o in root.options for f in o.flags)}"',
        "        else",
        f'            __mlcycle_words "{_words(d.name for d in subs)}"',
        "        fi",
        "        return 0",
        "    fi",
        '    case "$cmd" in',
    ]
    for doc in subs:
        L.append(f'        {doc.name}) __mlcycle_cmd_{_ident(doc.name)} "$prev" "$npos" ;;')
    L += [
        "    esac",
        "    return 0",
        "}",
        "",
        f"complete -F _mlcycle {PROG}",
    ]
    return "\n".join(L) + "\n"


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_help(text: str) -> str:
    first = re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip(), maxsplit=1)[0] if text else ""
    return first.rstrip(".").replace("[", "(").replace("]", ")").replace("\\", "")


def _zsh_action(values: list[str], files: bool, dirs: bool) -> str:
    if values:
        if any(v.endswith("=") for v in values):
            return '{compadd -S "" -- ' + " ".join(values) + "}"
        return "(" + " ".join(values) + ")"
    if dirs:
        return "_files -/"
    if files:
        return "_files"
    return " "


def render_zsh(tree: list[CommandDoc]) -> str:
    root, subs = tree[0], tree[1:]
    L = [f"#compdef {PROG}", f"# {_HEADER}",
         "# Install: put this file, named _mlcycle, in a folder on $fpath (e.g. /usr/share/zsh/site-functions)",
         "# before compinit runs, or source it after compinit.", ""]

    def option_specs(doc: CommandDoc) -> list[str]:
        specs = []
        for opt in doc.options:
            help_ = _zsh_help(opt.help)
            star = "*" if opt.multiple else ""
            excl = "" if len(opt.flags) == 1 else "(" + " ".join(opt.flags) + ")"
            if opt.metavar:
                names = [f + ("+" if not f.startswith("--") else "=") for f in opt.flags]
                tail = f":{opt.metavar.replace(':', '')}:{_zsh_action(opt.values, opt.files, opt.dirs)}"
            else:
                names = list(opt.flags)
                tail = ""
            if "--help" in opt.flags or "--version" in opt.flags:
                excl = "(- *)"
            if len(names) == 1:
                specs.append(_zsh_quote(f"{excl if star == '' and excl != '' else ''}{star}{names[0]}[{help_}]{tail}"))
            else:
                specs.append(_zsh_quote(f"{excl}{star}") + "{" + ",".join(names) + "}"
                             + _zsh_quote(f"[{help_}]{tail}"))
        return specs

    for doc in subs:
        fn = f"_mlcycle_{_ident(doc.name)}"
        helpers = []
        specs = option_specs(doc)
        for i, arg in enumerate(doc.arguments, start=1):
            msg = arg.metavar.replace(":", "").replace("[", "").replace("]", "")
            if arg.values and arg.files:
                hname = f"{fn}_arg{i}"
                helpers += [f"{hname}() {{",
                            "  _alternative \\",
                            "    " + _zsh_quote(f"values:{msg}:(" + " ".join(arg.values) + ")") + " \\",
                            "    " + _zsh_quote(f"files:{msg}:_files"),
                            "}", ""]
                action = hname
            else:
                action = _zsh_action(arg.values, arg.files, False)
            if arg.variadic:
                specs.append(_zsh_quote(f"{i}:{msg}:{action}"))
                specs.append(_zsh_quote(f"*:{msg}:_files"))
                break
            specs.append(_zsh_quote(f"{i}:{msg}:{action}"))
        L += helpers
        L.append(f"{fn}() {{")
        L.append("  _arguments -s -S \\")
        L += [f"    {s} \\" for s in specs[:-1]] + [f"    {specs[-1]}"]
        L += ["}", ""]
    L.append("_mlcycle_commands() {")
    L.append("  local -a commands")
    L.append("  commands=(")
    for doc in subs:
        L.append("    " + _zsh_quote(f"{doc.name}:{_zsh_help(doc.summary).replace(':', '')}"))
    L += ["  )", "  _describe -t commands 'mlcycle command' commands", "}", ""]
    L += ["_mlcycle() {",
          "  local curcontext=$curcontext state line ret=1",
          "  typeset -A opt_args",
          "  _arguments -C \\"]
    L += [f"    {s} \\" for s in option_specs(root)]
    L += ["    '1: :_mlcycle_commands' \\",
          "    '*:: :->args' && ret=0",
          "  case $state in",
          "    args)",
          "      curcontext=${curcontext%:*:*}:mlcycle-$words[1]:",
          "      case $words[1] in"]
    for doc in subs:
        L.append(f"        {doc.name}) _mlcycle_{_ident(doc.name)} && ret=0 ;;")
    L += ["      esac ;;", "  esac", "  return ret", "}", "",
          'if [[ $funcstack[1] == _mlcycle ]]; then',
          '  _mlcycle "$@"',
          "else",
          f"  compdef _mlcycle {PROG}",
          "fi"]
    return "\n".join(L) + "\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_fish(tree: list[CommandDoc]) -> str:
    root, subs = tree[0], tree[1:]
    names = " ".join(d.name for d in subs)
    L = [f"# fish completion for {PROG}", f"# {_HEADER}",
         "# Install: copy to ~/.config/fish/completions/mlcycle.fish", "",
         "# the subcommand on the command line, or nothing",
         "function __mlcycle_command",
         "    for t in (commandline -opc)[2..-1]",
         "        switch $t",
         "            case '-*'",
         "            case '*'",
         "                echo $t",
         "                return 0",
         "        end",
         "    end",
         "    return 1",
         "end",
         "",
         "# true when the subcommand on the command line is $argv[1]",
         "function __mlcycle_using",
         "    set -l cmd (__mlcycle_command); or return 1",
         "    test \"$cmd\" = $argv[1]",
         "end",
         "",
         "# true when the word being completed is positional word number $argv[1] (from 0) of",
         "# the subcommand; $argv[2..] are the options of that subcommand that take a value",
         "function __mlcycle_position",
         "    set -l want $argv[1]",
         "    set -l valopts $argv[2..-1]",
         "    set -l seen 0",
         "    set -l n 0",
         "    set -l skip 0",
         "    for t in (commandline -opc)[2..-1]",
         "        if test $skip = 1",
         "            set skip 0",
         "            continue",
         "        end",
         "        switch $t",
         "            case '-?*'",
         "                if contains -- $t $valopts",
         "                    set skip 1",
         "                end",
         "                continue",
         "        end",
         "        if test $seen = 0",
         "            set seen 1",
         "            continue",
         "        end",
         "        set n (math $n + 1)",
         "    end",
         "    test $n -eq $want",
         "end",
         "",
         f"complete -c {PROG} -f",
         f"complete -c {PROG} -n 'not __mlcycle_command' -f -a {_fish_quote(names)}",
         ]
    for doc in subs:
        L.append(f"complete -c {PROG} -n 'not __mlcycle_command' -f -a {doc.name} -d {_fish_quote(_zsh_help(doc.summary))}")

    def opt_line(cond: str, opt: OptionDoc) -> str:
        parts = [f"complete -c {PROG} -n {_fish_quote(cond)}"]
        for f in opt.flags:
            parts.append(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}")
        if opt.metavar:
            if opt.values:
                parts.append(f"-x -a {_fish_quote(' '.join(opt.values))}")
            elif opt.dirs:
                parts.append("-x -a '(__fish_complete_directories)'")
            elif opt.files:
                parts.append("-r -F")
            else:
                parts.append("-x")
        parts.append(f"-d {_fish_quote(_zsh_help(opt.help))}")
        return " ".join(parts)

    for opt in root.options:
        L.append(opt_line("not __mlcycle_command", opt))
    for doc in subs:
        L += ["", f"# {doc.name}"]
        cond = f"__mlcycle_using {doc.name}"
        for opt in doc.options:
            L.append(opt_line(cond, opt))
        valopts = " ".join(_value_options(doc))
        for i, arg in enumerate(doc.arguments):
            pos = f"__mlcycle_position {i} {valopts}".rstrip() if not arg.variadic else None
            c = cond if pos is None else f"{cond}; and {pos}"
            if arg.variadic and arg.values:
                c = f"{cond}; and __mlcycle_position {i} {valopts}".rstrip()
            if arg.values:
                L.append(f"complete -c {PROG} -n {_fish_quote(c)} -a {_fish_quote(' '.join(arg.values))}"
                         + f" -d {_fish_quote(arg.metavar)}")
            if arg.files:
                fc = cond if arg.variadic else c
                if arg.variadic and i > 0:  # not where an earlier positional goes
                    fc = cond + "".join(f"; and not __mlcycle_position {k} {valopts}".rstrip() for k in range(i))
                L.append(f"complete -c {PROG} -n {_fish_quote(fc)} -F")
            if arg.variadic:
                break
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- files

def render_all() -> dict[str, str]:
    """Every generated file, relative to the repository root -> its text."""
    tree = command_tree()
    files = {f"man/{doc.full_name}.1": render_man(doc, tree) for doc in tree}
    files["completions/mlcycle.bash"] = render_bash(tree)
    files["completions/_mlcycle"] = render_zsh(tree)
    files["completions/mlcycle.fish"] = render_fish(tree)
    files["mlcycle/cli/_generated.py"] = render_generated_module(tree)
    return files


# --------------------------------------------------------------------------- --help cache

HELP_WIDTH = 80  # click wraps help at min(terminal columns, 80) - 2


def help_output(args: list[str]) -> str:
    """What ``mlcycle ARGS`` prints on a terminal at least HELP_WIDTH columns wide."""
    import contextlib
    import io
    import os

    import typer.main

    from mlcycle.cli import app

    cmd = typer.main.get_command(app)
    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        with contextlib.redirect_stdout(out):
            try:
                cmd.main(args=args, prog_name=PROG, standalone_mode=False)
            except SystemExit:
                pass
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return out.getvalue()


def render_generated_module(tree: list[CommandDoc]) -> str:
    """mlcycle/cli/_generated.py: every ``--help`` page and the completion lists, so that
    ``mlcycle.cli.main`` answers ``mlcycle [COMMAND] --help`` and TAB without importing
    typer (tests/test_docs.py checks both against typer's own answers)."""
    pages = {doc.name: help_output(([doc.name] if doc.name else []) + ["--help"]) for doc in tree}
    lines = ['"""Generated by scripts/docgen.py (make docs): the --help pages at 80 columns and the',
             'lists tab completion offers (mlcycle/cli/_complete.py). Do not edit."""', "",
             f"WIDTH = {HELP_WIDTH}", "", "PAGES = {"]
    lines += [f"    {name!r}: {text!r}," for name, text in pages.items()]
    lines += ["}", "", "COMPLETION = {"]
    lines += [f"    {name!r}: {entry!r}," for name, entry in completion_data().items()]
    lines += ["}", ""]
    return "\n".join(lines)


def completion_data() -> dict:
    """Per command: its options (names, whether a value follows, its values) with the
    zsh and fish lines typer prints for them, and its arguments; for the root, the
    commands. Only completions that are a fixed list filtered by prefix, or a path, are
    stored as such (kind 'values'; 'none' offers nothing); others are 'other' and typer answers them."""
    import typer._click as click
    import typer.main
    from typer._click.types import ParamType
    from typer._completion_classes import FishComplete, ZshComplete
    from typer.models import TyperPath

    from mlcycle.cli import app

    group = typer.main.get_command(app)
    zsh = ZshComplete(group, {}, PROG, "_MLCYCLE_COMPLETE")
    fish = FishComplete(group, {}, PROG, "_MLCYCLE_COMPLETE")

    def lines(items) -> list:
        return [(i.value, zsh.format_completion(i), fish.format_completion(i)) for i in items]

    def kind_of(param, ctx) -> tuple[str, list]:
        if param._custom_shell_complete is not None:
            values = [getattr(v, "value", v) for v in param.shell_complete(ctx, "")]
            for v in values:   # a prefix filter over a fixed list, or typer must answer
                for k in range(len(v) + 1):
                    got = [getattr(x, "value", x) for x in param.shell_complete(ctx, v[:k])]
                    if got != [x for x in values if x.startswith(v[:k])]:
                        return "other", []
            return "values", values
        if type(param.type).shell_complete in (ParamType.shell_complete, TyperPath.shell_complete):
            return "none", []   # typer offers nothing (the shell falls back to file names)
        return "other", []

    root_ctx = click.Context(group, info_name=PROG, **group.context_settings)
    names = group.list_commands(root_ctx)
    data = {"": {"names": names, "commands": lines(zsh.get_completions([], "")), "options": [], "arguments": []}}
    for name in [""] + names:
        cmd = group if not name else group.get_command(root_ctx, name)
        ctx = root_ctx if not name else click.Context(cmd, info_name=name, parent=root_ctx, **cmd.context_settings)
        offered = {i.value: i for i in zsh.get_completions([name] if name else [], "-")}
        options, arguments = [], []
        for param in cmd.get_params(ctx):
            if hasattr(param, "is_flag"):
                flag = bool(param.is_flag or param.count)
                kind, values = ("none", []) if flag else kind_of(param, ctx)
                every = [*param.opts, *param.secondary_opts]
                options.append({"names": every, "opts": list(param.opts), "flag": flag,
                                "multiple": bool(param.multiple), "kind": kind, "values": values,
                                "items": lines([i for n, i in offered.items() if n in every])})
            elif name:
                kind, values = kind_of(param, ctx)
                arguments.append({"nargs": param.nargs, "kind": kind, "values": values})
        if name:
            data[name] = {"options": options, "arguments": arguments}
        else:
            data[""]["options"] = options
    return data



def stale_files(root: Path, files: dict[str, str]) -> list[Path]:
    """Generated man pages of commands that no longer exist."""
    return [p for p in sorted((root / "man").glob(f"{PROG}*.1"))
            if p.relative_to(root).as_posix() not in files]


def diff(root: Path, files: dict[str, str]) -> str:
    """A unified diff between the checked-in files and freshly generated ones ('' when equal)."""
    chunks = []
    for rel, text in files.items():
        path = root / rel
        old = path.read_text() if path.is_file() else ""
        if old != text:
            chunks += difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                           f"a/{rel}", f"b/{rel}", n=1)
    for path in stale_files(root, files):
        chunks.append(f"stale file (its command is gone): {path.relative_to(root)}\n")
    return "".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/docgen.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 with a diff on drift")
    parser.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        d = diff(args.root, files)
        if d:
            sys.stdout.write(d)
            print("man pages or completions are out of date: run make docs", file=sys.stderr)
            return 1
        return 0
    for rel, text in files.items():
        path = args.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {rel}", file=sys.stderr)
    for path in stale_files(args.root, files):
        path.unlink()
        print(f"removed {path.relative_to(args.root)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
