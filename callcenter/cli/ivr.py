"""``callcenter ivr check|simulate|graph``: offline tools for IVR designers.

    callcenter ivr check                       # every ivr_scripts/*.yaml
    callcenter ivr simulate ivr_scripts/banque_entrante.yaml --ani 0612345678 \\
        --dtmf 1 --say "ma facture" --crm fixtures.json --at 2026-03-02T10:00+01:00
    callcenter ivr graph ivr_scripts/banque_entrante.yaml -o flow.svg
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.errors import ConfigError, ScriptError
from callcenter.ivr.graph import to_dot
from callcenter.ivr.loader import check_file, load_script
from callcenter.ivr.messages import CallInfo
from callcenter.ivr.model import Script
from callcenter.ivr.simulate import CallerInput, Fixture, FixtureDriver, describe, load_fixture
from callcenter.ivr.simulate import simulate as run_simulation

DEFAULT_DIR = "ivr_scripts"
DEFAULT_ZONE = "Europe/Paris"


class _Input(argparse.Action):
    """Keeps --dtmf and --say in the order given on the command line."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        inputs: list[tuple[str, str]] = list(getattr(namespace, self.dest) or [])
        inputs.append(("dtmf" if option_string == "--dtmf" else "speech", str(values)))
        setattr(namespace, self.dest, inputs)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("ivr", help="check, simulate and draw IVR scripts")
    actions = parser.add_subparsers(dest="ivr_command", required=True)

    check = actions.add_parser("check", help="validate scripts (file:line:col: message)")
    check.add_argument("paths", nargs="*", help=f"files or folders (default: {DEFAULT_DIR}/)")
    check.add_argument("--strict", action="store_true", help="fail on warnings too")
    check.set_defaults(func=run_check)

    sim = actions.add_parser("simulate", help="run a script offline with scripted inputs")
    sim.add_argument("script", help="the script file")
    sim.add_argument("--ani", default="", help="caller number")
    sim.add_argument("--dnis", default="", help="number dialled")
    sim.add_argument("--dtmf", dest="inputs", action=_Input, help="keys pressed (repeatable)")
    sim.add_argument("--say", dest="inputs", action=_Input, help="words spoken (repeatable)")
    sim.add_argument("--confidence", type=float, default=0.9, help="of --say (default 0.9)")
    sim.add_argument("--lang", help="language known before the IVR (e.g. from the number)")
    sim.add_argument(
        "--at", help=f"call time, ISO 8601 (default now; no offset means {DEFAULT_ZONE})"
    )
    sim.add_argument("--crm", help="JSON fixture answering CRM and http lookups")
    sim.add_argument("--var", action="append", default=[], help="name=value given by the driver")
    sim.set_defaults(func=run_simulate)

    graph = actions.add_parser("graph", help="draw a script with Graphviz")
    graph.add_argument("script", help="the script file")
    graph.add_argument("-o", "--output", required=True, help="output: .svg, .png, .pdf or .dot")
    graph.add_argument("--lang", help="language of the texts shown (default: the script's)")
    graph.set_defaults(func=run_graph)


def _script_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths or [DEFAULT_DIR]:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")))
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"no such script or folder: {name}")
    return files


def run_check(args: argparse.Namespace) -> int:
    files = _script_files(args.paths)
    errors = warnings = 0
    for path in files:
        _script, problems = check_file(path)
        for problem in problems:
            print(problem)
            if problem.severity == "error":
                errors += 1
            else:
                warnings += 1
    status = "OK" if errors == 0 else "FAILED"
    print(
        f"{status}: {len(files)} script(s), {errors} error(s), {warnings} warning(s)",
        file=sys.stderr,
    )
    return 1 if errors or (args.strict and warnings) else 0


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).astimezone(ZoneInfo(DEFAULT_ZONE))
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--at {text!r}: expected a time such as 2026-12-25T10:00+01:00") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(DEFAULT_ZONE))
    return when


def _variables(pairs: Sequence[str]) -> dict[str, str | int | bool]:
    out: dict[str, str | int | bool] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--var {pair!r}: expected name=value")
        lowered = value.lower()
        if lowered in ("true", "false"):
            out[name] = lowered == "true"
        elif value.isdigit() and len(value) < 10:
            out[name] = int(value)
        else:
            out[name] = value
    return out


def run_simulate(args: argparse.Namespace) -> int:
    path = Path(args.script)
    script = load_script(path)
    fixture = load_fixture(args.crm) if args.crm else Fixture()
    inputs = [
        CallerInput("dtmf" if kind == "dtmf" else "speech", value, args.confidence)
        for kind, value in (args.inputs or [])
    ]
    now = _parse_time(args.at)
    call = CallInfo(args.ani, now, args.dnis, args.lang, _variables(args.var))
    driver = FixtureDriver(inputs, fixture)

    def load(name: str) -> Script:
        return load_script(path.parent / f"{name}.yaml")

    result = run_simulation(script, call, driver, load)
    outcome = result.outcome
    context = outcome.context
    caller = args.ani or "(hidden)"
    print(f"script   {' -> '.join(result.scripts)}   caller {caller}   {now.isoformat()}")
    for line in result.transcript:
        print(f"  {line}")
    print(f"path     {' -> '.join(context.path)}")
    print(f"outcome  {describe(outcome)}")
    vip = "yes" if context.vip else "no"
    print(
        f"context  customer={context.customer_id or '-'} vip={vip} "
        f"intent={context.intent or '-'} language={context.language}"
    )
    shown = {
        k: v
        for k, v in context.variables.items()
        if k not in ("ani", "dnis", "language", "priority")
    }
    if shown:
        print("data     " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    for error in context.errors:
        print(f"error    {error}")
    if driver.inputs:
        unused = ", ".join(f"{i.kind}:{i.value}" for i in driver.inputs)
        print(f"unused   {unused}")
    return 0


def run_graph(args: argparse.Namespace) -> int:
    script = load_script(args.script)
    dot = to_dot(script, args.lang)
    output = Path(args.output)
    fmt = output.suffix.lstrip(".").lower()
    if fmt == "dot" or fmt == "gv":
        output.write_text(dot, encoding="utf-8")
        print(f"wrote {output}")
        return 0
    if fmt not in ("svg", "png", "pdf"):
        raise ConfigError(f"{output}: unsupported format {fmt!r}; use .svg, .png, .pdf or .dot")
    exe = shutil.which("dot")
    if exe is None:
        raise ConfigError(
            "Graphviz 'dot' not found: install it (apt install graphviz) or use -o x.dot"
        )
    try:
        proc = subprocess.run(
            [exe, f"-T{fmt}", "-o", str(output)],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"Graphviz failed: {exc}") from exc
    if proc.returncode != 0:
        raise ScriptError(
            f"Graphviz could not draw {args.script}: {proc.stderr.decode(errors='replace')}"
        )
    print(f"wrote {output}")
    return 0
