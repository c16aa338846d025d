"""``callcenter prompts build``: render the IVR scripts' text prompts.

    callcenter prompts build                    # every ivr_scripts/*.yaml
    callcenter prompts build ivr_scripts/accueil.yaml --out /usr/share/asterisk/sounds/callcenter

Texts are spoken by espeak-ng and converted by sox to 8 kHz mono sound files
(``.wav`` and ``.ulaw``) named ``ivr/<script>/<language>/<prompt>-<hash>``; the
daemon plays them from ``ivr.prompts_asterisk_dir``. Run it after every script
change (files already built are kept: a re-run renders only what changed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from callcenter.adapters.prompts import build, sandbox_prompts_dir
from callcenter.config import load_settings
from callcenter.errors import ConfigError
from callcenter.ivr.loader import load_script
from callcenter.ivr.prompts import TextPrompt, text_prompts


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("prompts", help="render IVR text prompts to sound files")
    actions = parser.add_subparsers(dest="prompts_command", required=True)
    run = actions.add_parser("build", help="espeak-ng + sox: text prompts -> 8 kHz sound files")
    run.add_argument("paths", nargs="*", help="scripts or folders (default: ivr.scripts_dir)")
    run.add_argument(
        "--out",
        type=Path,
        help="prompts directory (default: ivr.prompts_dir, else the local sandbox's)",
    )
    run.add_argument("--config", type=Path, help="callcenter.toml")
    run.add_argument(
        "--voice",
        action="append",
        default=[],
        metavar="LANG=VOICE",
        help="espeak-ng voice for a language, e.g. fr=fr+f3 (repeatable)",
    )
    run.add_argument("--prune", action="store_true", help="remove outdated files of these scripts")
    run.set_defaults(func=run_build)


def _scripts(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: no such script or folder")
    return files


def run_build(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    out: Path = args.out or settings.ivr.prompts_dir or sandbox_prompts_dir()
    voices: dict[str, str] = {}
    for item in args.voice:
        language, sep, voice = str(item).partition("=")
        if not sep or not language or not voice:
            raise ConfigError(f"--voice {item!r}: expected LANG=VOICE, e.g. fr=fr+f3")
        voices[language] = voice
    files = _scripts([Path(p) for p in args.paths] or [settings.ivr.scripts_dir])
    prompts: list[TextPrompt] = []
    for file in files:
        prompts.extend(text_prompts(load_script(file)))
    report = build(prompts, out, voices=voices, prune=args.prune)
    for name in report.rendered:
        print(f"rendered {name}")
    for name in report.removed:
        print(f"removed  {name}")
    print(
        f"{len(files)} script(s), {len(prompts)} prompt(s): {len(report.rendered)} rendered, "
        f"{len(report.kept)} up to date, {len(report.removed)} removed -> {out}"
    )
    return 0
