"""Scenario files (TOML, YAML), their errors, and the ``simulate`` command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from callcenter.cli import simulate as simulate_cli
from callcenter.errors import ConfigError
from callcenter.wfm.distributions import Exponential, LogNormal
from callcenter.wfm.scenario import parse_clock, scenario_from_text

TOML = """
seed = 3
start = "08:00"
interval = 1800
target_time = 15

[[queues]]
name = "sales"
calls = [30, 60]
handle = {dist = "lognormal", mean = 240, sd = 120}
patience = "exp:120"
wrapup = 5

[[queues]]
name = "support"
skill = "help"
calls_per_hour = 40
hours = 1
handle = "exp:200"
target_time = 30

[[agents]]
name = "team"
count = 6
skills = {sales = 2, help = 1}
shifts = [["08:00", "08:30"], ["08:40", "09:00"]]
answer_delay = "uniform:1:3"
no_answer = 0.05
"""

Q1 = '[[queues]]\nname = "q"\nhandle = 1\ncalls = [1]\n'

YAML = """
seed: 3
interval: 900
queues:
  - name: q
    calls: [20, 20, 20, 20]
    handle: exp:120
agents:
  - count: 3
    skills: [q]
"""


def test_toml_scenario() -> None:
    scenario = scenario_from_text(TOML, "toml")
    sales, support = scenario.queues
    assert sales.skill == "sales"
    assert sales.handle == LogNormal(240.0, 120.0)
    assert sales.patience == Exponential(120.0)
    assert sales.target_time == 15.0
    assert support.skill == "help"
    assert support.calls == (20.0, 20.0)  # 40/h over two half hours
    assert support.patience is None
    assert support.target_time == 30.0
    (team,) = scenario.agents
    assert team.shifts == ((0.0, 1800.0), (2400.0, 3600.0))
    assert dict(team.skills) == {"sales": 2, "help": 1}
    assert scenario.day_length == 3600.0
    assert scenario.skills == ("sales", "help")


def test_yaml_scenario() -> None:
    scenario = scenario_from_text(YAML, "yaml")
    assert scenario.interval == 900.0
    assert dict(scenario.agents[0].skills) == {"q": 1}
    assert scenario.agents[0].shifts == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = [", "cannot parse toml"),
        ("queues = []\nagents = []", "at least one queue"),
        ('[[queues]]\nname = "q"\nhandle = 1\ncalls = [1]\n', r"scenario\.agents: required"),
        (
            Q1 + '[[agents]]\ncount = 1\nskills = "x"\n',
            "no agent group has skill 'q'",
        ),
        (
            Q1.replace("[1]", "[-1]") + '[[agents]]\ncount = 1\nskills = "q"\n',
            r"queues\[0\]\.calls\[0\]",
        ),
        (
            '[[queues]]\nname = "q"\nhandle = "gamma:1"\ncalls = [1]\n'
            '[[agents]]\ncount = 1\nskills = "q"\n',
            r"queues\[0\]\.handle",
        ),
        (
            '[[queues]]\nname = "q"\nhandle = 1\ncalls = [1]\n[[agents]]\ncount = 1\n'
            'skills = "q"\nshifts = [["10:00", "09:00"]]\n',
            r"agents\[0\]\.shifts\[0\]: the shift must end after it starts",
        ),
        (
            Q1 + '[[agents]]\ncount = -1\nskills = "q"\n',
            r"agents\[0\]\.count",
        ),
        (
            '[[queues]]\nname = "q"\nhandle = 1\ncalls = [1]\n[[agents]]\ncount = 1\n'
            "skills = {q = 0}\n",
            "skill level",
        ),
    ],
)
def test_scenario_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        scenario_from_text(text, "toml", "day.toml")


def test_parse_clock() -> None:
    assert parse_clock("09:30", 8 * 3600.0, "t") == 5400.0
    assert parse_clock(120, 0.0, "t") == 120.0
    with pytest.raises(ConfigError):
        parse_clock("9h30", 0.0, "t")
    with pytest.raises(ConfigError):
        scenario_from_text("x: [", "yaml")
    with pytest.raises(ConfigError):
        scenario_from_text("", "ini")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    simulate_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_simulate_file_with_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "day.toml"
    scenario.write_text(TOML)
    png = tmp_path / "day.png"
    argv = ["simulate", str(scenario), "--plot", str(png), "--target-sl", "0.8", "--no-progress"]
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "service level" in out
    assert "sales" in out
    assert "support" in out
    assert "08:30" in out  # interval table with clock labels
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_from_flags(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "simulate",
        "--agents",
        "12",
        "--calls-per-hour",
        "200",
        "--aht",
        "180",
        "--patience",
        "90",
        "--hours",
        "2",
        "--seed",
        "4",
        "--dispatcher",
        "fifo",
        "--no-intervals",
        "--progress",
    ]
    assert _run(argv) == 0
    captured = capsys.readouterr()
    assert "dispatcher fifo, seed 4" in captured.out
    assert "agents 12" in captured.out
    assert "interval" not in captured.out.split("agent group")[1]
    assert "simulating" in captured.err  # the tqdm bar


def test_simulate_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scenario file, or --agents"):
        _run(["simulate", "--agents", "3"])
    with pytest.raises(ConfigError, match="exactly one of --aht"):
        _run(["simulate", "--agents", "3", "--calls-per-hour", "10"])
    bad = tmp_path / "day.ini"
    bad.write_text("")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml"):
        _run(["simulate", str(bad)])
    with pytest.raises(ConfigError, match="cannot read"):
        _run(["simulate", str(tmp_path / "missing.toml")])
