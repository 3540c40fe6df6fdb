"""`orthoreg` command line: one sub-command per file here, argument parsing only.

Each file exposes `add_parser(subparsers)`, which registers its arguments and sets `func` to a
callable taking the parsed namespace and returning an exit code. A command's module is imported only
when that command runs (all of them for `orthoreg --help`), because `report` and `robustness` need
extras that the lean `pip install orthoreg` lacks, and a training job should not pay for plotting
libraries it never uses.

`main` turns whatever a command raises into one line on stderr, `orthoreg <command>: error: ...`:
an error meant for the user (ValueError, RuntimeError, OSError) exits 2, anything else exits 1 with
its type and how to see the traceback, which `--debug` (before or after the command) or
ORTHOREG_DEBUG=1 shows instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from orthoreg import __version__
from orthoreg.plugins import load_plugins

# sub-command name -> module in orthoreg.cli that defines it
COMMANDS = {
    "prepare-data": "prepare_data",
    "train": "train",
    "evaluate": "evaluate",
    "robustness": "robustness",
    "report": "report",
    "inspect": "inspect",
    "verify": "verify",
}
# an optional dependency -> the extra that installs it
EXTRAS = {"numpy": "train", "PIL": "train", "pandas": "report", "matplotlib": "report", "seaborn": "report"}
DEBUG_VARIABLE = "ORTHOREG_DEBUG"
DEBUG_HELP = f"on an error, show its traceback (as {DEBUG_VARIABLE}=1 does)"
DEBUG_HINT = f"(rerun with --debug or {DEBUG_VARIABLE}=1 for the traceback)"


class MissingExtra(Exception):
    """A command whose optional dependencies are not installed."""


def command_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"orthoreg.cli.{COMMANDS[name]}")
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in EXTRAS:
            raise
        raise MissingExtra(
            f"`orthoreg {name}` needs {missing}, which is not installed: pip install 'orthoreg[{EXTRAS[missing]}]'"
        ) from error


def named_command(argv: Sequence[str] | None) -> str | None:
    """The sub-command `argv` names: its first word that is not an option."""
    return next((arg for arg in argv or () if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="orthoreg", description="Kernel-orthogonality regularisation: train, evaluate, report."
    )
    parser.add_argument("--version", action="version", version=f"orthoreg {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = named_command(argv)
    for name in COMMANDS:
        if chosen in COMMANDS and name != chosen:
            subparsers.add_parser(name)
            continue
        try:
            command_module(name).add_parser(subparsers)
        except MissingExtra as missing:
            if name == chosen:
                raise
            subparsers.add_parser(name, help=f"(unavailable: {missing})")
    for command in subparsers.choices.values():  # `orthoreg train ... --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


# errors whose message is written for the user; any other exception is a bug or a library's own error
USER_ERRORS = (MissingExtra, ValueError, RuntimeError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status, 2 for an error meant for the user, 1 for any other, 130 on
    Ctrl-C, each with one line on stderr (a traceback instead with --debug or ORTHOREG_DEBUG=1)."""
    arguments = sys.argv[1:] if argv is None else argv
    chosen = named_command(arguments)
    prefix = f"orthoreg {chosen}" if chosen in COMMANDS else "orthoreg"
    debug = "--debug" in arguments or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    try:
        load_plugins()  # user registrations named in ORTHOREG_PLUGINS, before names are parsed
        args = build_parser(arguments).parse_args(arguments)
        debug = debug or args.debug
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        print(f"{prefix}: error: {describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, USER_ERRORS) else 1


def describe(error: Exception) -> str:
    """The error in words: its message, or for an OSError its reason and file; for an unexpected type,
    its name, the first line of its message and how to see the traceback."""
    if isinstance(error, OSError) and error.strerror:
        return os_error_words(error)
    if isinstance(error, USER_ERRORS):
        return str(error) or type(error).__name__
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}{f': {lines[0]}' if lines else ''} {DEBUG_HINT}"


def os_error_words(error: OSError) -> str:
    """`no space left on device: /x/model.pt` (`a -> b` for a rename); the file is left out when the
    reason names it already."""
    strerror = error.strerror or str(error)
    reason = f"{strerror[:1].lower()}{strerror[1:]}"
    names = [
        os.fsdecode(n) if isinstance(n, bytes) else str(n)
        for n in (error.filename, error.filename2)
        if n is not None
    ]
    if not names or names[0] in reason:
        return reason
    return f"{reason}: {' -> '.join(names)}"


if __name__ == "__main__":
    sys.exit(main())
