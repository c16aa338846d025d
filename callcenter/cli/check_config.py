"""``callcenter check-config``: validate the configuration and print it, secrets masked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from callcenter.config import load_settings, redacted


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("check-config", help="validate the configuration")
    parser.add_argument("--config", type=Path, help="TOML file (default: callcenter.toml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.ami.secret is None:
        settings.ami.resolved_secret()  # a missing or unsafe secret file is an error
    print(json.dumps(redacted(settings), indent=2))
    print("configuration OK")
    return 0
