"""`orthoreg` command line: one sub-command per file here, argument parsing only.

Each file exposes `add_parser(subparsers)`, which registers its arguments and sets `func` to a
callable taking the parsed namespace and returning an exit code. A command's module is imported only
when that command runs (all of them for `orthoreg --help`), because `report` and `robustness` need
extras that the lean `pip install orthoreg` lacks, and a training job should not pay for plotting
libraries it never uses.
"""

from __future__ import annotations

import argparse
import importlib
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
}
# an optional dependency -> the extra that installs it
EXTRAS = {"numpy": "train", "PIL": "train", "pandas": "report", "matplotlib": "report", "seaborn": "report"}


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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="orthoreg", description="Kernel-orthogonality regularisation: train, evaluate, report."
    )
    parser.add_argument("--version", action="version", version=f"orthoreg {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv or () if not arg.startswith("-")), None)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        load_plugins()  # user registrations named in ORTHOREG_PLUGINS, before names are parsed
        args = build_parser(arguments).parse_args(arguments)
    except (MissingExtra, ValueError) as error:
        print(f"orthoreg: error: {error}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError) as error:
        print(f"orthoreg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
