"""Forecast parsing, per-interval staffing and the ``wfm staffing`` command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from callcenter.cli import wfm as wfm_cli
from callcenter.errors import ConfigError
from callcenter.wfm.erlang import erlang_a_required_agents, erlang_c_required_agents
from callcenter.wfm.staffing import (
    StaffingTargets,
    format_table,
    infer_interval_seconds,
    parse_forecast,
    staff_day,
)

FORECAST = "start,calls,aht\n08:00,120,240\n08:30,360,240\n09:00,0,240\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter")
    subparsers = parser.add_subparsers(dest="command", required=True)
    wfm_cli.register(subparsers)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


def test_parse_and_infer_interval() -> None:
    rows = parse_forecast(FORECAST)
    assert [r.start for r in rows] == ["08:00", "08:30", "09:00"]
    assert rows[1].calls == 360.0
    assert infer_interval_seconds(rows) == 1800.0
    assert infer_interval_seconds(parse_forecast("start,calls,aht\na,1,2\nb,1,2\n")) == 1800.0
    quarter = parse_forecast("Start, Calls ,AHT\n08:00,1,2\n08:15,1,2\n".replace(", ", ","))
    assert infer_interval_seconds(quarter) == 900.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("start,calls\n08:00,1\n", "missing column"),
        ("start,calls,aht\n08:00,x,240\n", ":2:"),
        ("start,calls,aht\n08:00,1,0\n", "aht"),
        ("start,calls,aht\n08:00,-1,10\n", "calls"),
        ("start,calls,aht\n", "no intervals"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_forecast(text)


def test_staff_day_erlang_c_and_a() -> None:
    rows = parse_forecast(FORECAST)
    table = staff_day(rows, 1800.0, StaffingTargets(shrinkage=0.25))
    assert table[1].agents == erlang_c_required_agents(0.2, 240.0).agents == 54
    assert table[1].scheduled == 72  # 54 / 0.75
    assert table[2].agents == 0
    assert table[2].service_level == 1.0
    assert table[1].p_abandon is None
    a = staff_day(rows, 1800.0, StaffingTargets(patience=120.0, max_abandon=0.03))
    expected = erlang_a_required_agents(0.2, 240.0, 120.0, max_abandon=0.03)
    assert a[1].agents == expected.agents
    assert a[1].p_abandon == pytest.approx(expected.p_abandon)
    text = format_table(a, 1800.0, csv_out=False)
    assert "abandon_pct" in text
    assert "agent-hours" in text
    with pytest.raises(ConfigError):
        staff_day(rows, 1800.0, StaffingTargets(shrinkage=1.0))


def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forecast = tmp_path / "day.csv"
    forecast.write_text(FORECAST)
    assert _run(["wfm", "staffing", str(forecast), "--target-sl", "80%"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["start", "calls", "aht_s", "erlangs", "agents"]
    row = lines[3].split()
    assert row[0] == "08:30"
    assert row[4] == "54"
    assert "total calls 480" in out


def test_cli_single_interval_csv(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["wfm", "staffing", "--calls", "360", "--aht", "240", "--interval", "30", "--csv"]
    assert _run(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(",")[4] == "54"


def test_cli_asa_only_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["wfm", "staffing", "--calls", "360", "--aht", "240", "--no-sl", "--target-asa", "5"]
    assert _run(argv) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[4] == str(
        erlang_c_required_agents(0.2, 240.0, target_sl=None, target_asa=5.0).agents
    )
    with pytest.raises(ConfigError):
        _run(["wfm", "staffing", "--calls", "360"])
    with pytest.raises(ConfigError):
        _run(["wfm", "staffing", "--calls", "1", "--aht", "1", "--max-abandon", "0.1"])
    with pytest.raises(ConfigError):
        _run(["wfm", "staffing", str(tmp_path / "missing.csv")])
    with pytest.raises(ConfigError):
        _run(["wfm", "staffing", "--calls", "1", "--aht", "1", "--no-sl"])
