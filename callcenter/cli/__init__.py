"""The ``callcenter`` command. Each sub-command lives in its own module and
exposes ``register(subparsers)``; the parser sets ``func`` to run it."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from callcenter.errors import CallCenterError

# Sub-command modules, in the order shown by --help.
COMMANDS = ("run", "check_config", "asterisk", "db", "users")
OPTIONAL_COMMANDS = ("simulate", "wfm", "ivr", "prompts", "contacts", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS + OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(f"callcenter.cli.{name}")
        except ModuleNotFoundError as exc:
            if name in OPTIONAL_COMMANDS and exc.name == f"callcenter.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except CallCenterError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
