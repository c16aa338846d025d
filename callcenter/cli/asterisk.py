"""``callcenter asterisk start|stop|status|cli|logs``: the local Asterisk sandbox."""

from __future__ import annotations

import argparse
from typing import Any

from callcenter.sandbox.asterisk import AsteriskPorts, AsteriskSandbox


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("asterisk", help="run the local Asterisk 22 sandbox")
    parser.add_argument("action", choices=("start", "stop", "status", "cli", "logs"))
    parser.add_argument("command", nargs="?", help="CLI command (with `cli`)")
    parser.add_argument("--name", default="dev", help="instance name (default: dev)")
    parser.add_argument("--sip-port", type=int, default=5060)
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--rtp-start", type=int, default=10000)
    parser.add_argument("--rtp-end", type=int, default=10999)
    parser.add_argument("--agi-port", type=int, default=4573, help="the daemon's FastAGI port")
    parser.add_argument("--trunk-port", type=int, default=5070)
    parser.add_argument("--phones-contact", help="host:port of a static contact for all phones")
    parser.add_argument("--lines", type=int, default=50, help="log lines (with `logs`)")
    parser.set_defaults(func=run)


def sandbox_from_args(args: argparse.Namespace) -> AsteriskSandbox:
    ports = AsteriskPorts(
        sip=args.sip_port,
        ami=args.ami_port,
        rtp_start=args.rtp_start,
        rtp_end=args.rtp_end,
        agi=args.agi_port,
        trunk=args.trunk_port,
        phones_contact=args.phones_contact,
    )
    return AsteriskSandbox(args.name, ports=ports)


def run(args: argparse.Namespace) -> int:
    sandbox = sandbox_from_args(args)
    if args.action == "start":
        creds = sandbox.start()
        print(
            f"asterisk {sandbox.name}: running, AMI {creds.host}:{creds.port} user {creds.username}"
        )
        print(f"AMI secret file: {sandbox.secret_file}")
    elif args.action == "stop":
        sandbox.stop()
        print(f"asterisk {sandbox.name}: stopped")
    elif args.action == "status":
        if sandbox.running():
            print(f"asterisk {sandbox.name}: running (pid {sandbox.pid()})")
        else:
            print(f"asterisk {sandbox.name}: stopped")
            return 1
    elif args.action == "cli":
        if not args.command:
            print('usage: callcenter asterisk cli "<command>"')
            return 2
        print(sandbox.cli(args.command), end="")
    elif args.action == "logs":
        print(sandbox.logs(args.lines))
    return 0
