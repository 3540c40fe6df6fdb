"""`orthoreg` command line: one sub-command per module, argument parsing only.

Each sub-command lives in its own file here and exposes ``add_parser(subparsers)``, which registers
its arguments and sets ``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command name -> module in orthoreg.cli that defines it
COMMANDS = {
    "prepare-data": "prepare_data",
    "train": "train",
    "evaluate": "evaluate",
    "robustness": "robustness",
    "report": "report",
    "inspect": "inspect",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orthoreg", description="Kernel-orthogonality regularisation: train, evaluate, report."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"orthoreg.cli.{module}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from orthoreg.plugins import load_plugins

    load_plugins()  # user registrations named in ORTHOREG_PLUGINS, before names are parsed
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError) as error:
        print(f"orthoreg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
