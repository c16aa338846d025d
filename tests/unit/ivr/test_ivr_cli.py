"""Tier 1: `callcenter ivr check|simulate|graph` through callcenter.cli.main."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ivr_helpers import SCRIPTS

import callcenter.cli as cli_module
from callcenter.cli import main

BROKEN = Path(__file__).parent / "broken"
BANK = str(SCRIPTS / "banque_entrante.yaml")
CRM = str(SCRIPTS / "fixtures" / "crm.json")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> object:
    try:
        cli_module.build_parser()
    except ModuleNotFoundError:
        # Another sub-command is half-written in the shared tree; test ours alone.
        monkeypatch.setattr(cli_module, "COMMANDS", ())
        monkeypatch.setattr(cli_module, "OPTIONAL_COMMANDS", ("ivr",))
    return main


def test_check_defaults_to_ivr_scripts(
    cli: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(SCRIPTS.parent)
    assert main(["ivr", "check"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    count = len(list(SCRIPTS.glob("*.yaml")))
    assert f"OK: {count} script(s), 0 error(s), 0 warning(s)" in captured.err


def test_check_prints_file_line_col_and_fails(
    cli: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ivr", "check", str(BROKEN / "unknown_target.yaml"), BANK]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{BROKEN / 'unknown_target.yaml'}:10:10: option '2': no node named 'file_technque' "
        "in this script (did you mean 'file_technique'?)"
    ]


def test_check_whole_broken_folder(cli: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ivr", "check", str(BROKEN)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert all(line.startswith(str(BROKEN)) for line in lines)
    assert "FAILED: 12 script(s)" in captured.err


def test_check_strict_fails_on_warnings(cli: object) -> None:
    path = str(BROKEN / "warnings_only.yaml")
    assert main(["ivr", "check", path]) == 0
    assert main(["ivr", "check", "--strict", path]) == 1


def test_check_missing_path_is_an_error(cli: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ivr", "check", "nope/"]) == 2
    assert "no such script or folder: nope/" in capsys.readouterr().err


def test_simulate_prints_path_and_routing(cli: object, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ivr", "simulate", BANK, "--ani", "0612345678", "--dtmf", "1", "--say", "ma facture",
            "--at", "2026-03-02T10:00+01:00", "--crm", CRM]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "path     accueil -> langue -> francais -> horaires -> identification_ani" in out
    assert (
        "outcome  ROUTE queue=facturation priority=10 language=fr "
        "skills=[facturation>=2, gestion_privee>=1, lang_fr>=1]"
    ) in out
    assert "context  customer=C001 vip=yes intent=facturation language=fr" in out


def test_simulate_keeps_input_order_and_hides_the_pin(
    cli: object, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = ["--dtmf", "2", "--dtmf", "12345678", "--dtmf", "4567"]
    argv = ["ivr", "simulate", BANK, "--ani", "0100000000", *keys, "--say", "my bill",
            "--at", "2026-03-02T10:00", "--crm", CRM]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "'pin': '****'" in out
    assert "outcome  ROUTE queue=facturation priority=10 language=en" in out


def test_simulate_christmas_closed_without_crm(
    cli: object, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ivr", "simulate", BANK, "--dtmf", "1", "--dtmf", "2", "--at", "2026-12-25T10:00+01:00"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "outcome  VOICEMAIL mailbox=service_client@banque language=fr" in out


def test_simulate_follows_transfers_to_scripts(
    cli: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(SCRIPTS / "enquete_satisfaction.yaml", tmp_path)
    (tmp_path / "fin.yaml").write_text(
        "start: t\nnodes:\n  t:\n    type: transfer\n    script: enquete_satisfaction\n"
    )
    assert main(["ivr", "simulate", str(tmp_path / "fin.yaml"), "--dtmf", "4", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "script   fin -> enquete_satisfaction" in out
    assert "outcome  HANGUP reason=survey_done" in out
    assert "survey.score=4" in out


def test_simulate_broken_script_is_an_error(
    cli: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ivr", "simulate", str(BROKEN / "unknown_key.yaml")]) == 2
    assert "unknown_key.yaml:6:5: play node 'accueil': unknown key 'nxt'" in capsys.readouterr().err


def test_simulate_bad_time(cli: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ivr", "simulate", BANK, "--at", "Noël"]) == 2
    assert "expected a time such as" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_graph_svg(cli: object, tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"
    assert main(["ivr", "graph", BANK, "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml")
    assert "menu_principal" in svg
    assert "touche 1" in svg


def test_graph_dot_in_english(cli: object, tmp_path: Path) -> None:
    out = tmp_path / "flow.dot"
    assert main(["ivr", "graph", BANK, "-o", str(out), "--lang", "en"]) == 0
    dot = out.read_text()
    assert dot.startswith('digraph "banque_entrante" {')
    assert '"langue" -> "francais" [label="key 1 / failure"];' in dot
    assert "Welcome to Example Bank." in dot
    assert '"motif" -> "menu_principal" [label="keypad fallback", color="#b91c1c"' in dot


def test_graph_unknown_format(
    cli: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ivr", "graph", BANK, "-o", str(tmp_path / "x.bmp")]) == 2
    assert "unsupported format 'bmp'" in capsys.readouterr().err
