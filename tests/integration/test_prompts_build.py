"""Tier 2: ``callcenter prompts build`` with the real espeak-ng and sox, and
the FastAGI IVR driver playing what it built."""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
import structlog

from callcenter.adapters.fastagi import AgiSession
from callcenter.adapters.prompts import build, read_pcm
from callcenter.cli import main
from callcenter.errors import PromptBuildError
from callcenter.flows.ivr import IvrServices, PromptFiles, run_ivr
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import (
    CallbackResult,
    CallInfo,
    Lookup,
    LookupResult,
    OfferCallback,
    Route,
)
from callcenter.ivr.model import Script
from callcenter.ivr.prompts import prompt_path, text_prompts
from callcenter.protocol.agi import AgiReply

SCRIPT = """
script: essai
languages: [fr, en]
start: bonjour
prompts:
  accueil:
    fr: "Bonjour et bienvenue."
    en: "Hello and welcome."
  jingle:
    file: "custom/jingle-{lang}"
nodes:
  bonjour:
    type: play
    prompt: accueil
    next: musique
  musique:
    type: play
    prompt: jingle
    next: motif
  motif:
    type: speech
    prompt: {fr: "Que voulez-vous ?", en: "What do you want?"}
    retries: 0
    intents:
      agent:
        phrases: {fr: [conseiller], en: [agent]}
        next: file
    fallback: menu
  menu:
    type: menu
    prompt: {fr: "Tapez 1.", en: "Press 1."}
    retries: 0
    options: {1: file}
    on_failure: file
  file:
    type: queue
    queue: support
"""


@pytest.fixture
def script(tmp_path: Path) -> Script:
    path = tmp_path / "scripts" / "essai.yaml"
    path.parent.mkdir()
    path.write_text(SCRIPT, "utf-8")
    return load_script(path)


def test_build_renders_8khz_files_once(script: Script, tmp_path: Path) -> None:
    out = tmp_path / "prompts"
    prompts = text_prompts(script)
    assert {(p.prompt_id, p.language) for p in prompts} == {
        (i, lang) for i in ("accueil", "motif", "menu") for lang in ("fr", "en")
    }
    first = build(prompts, out)
    assert sorted(first.rendered) == sorted(prompt_path(p) for p in prompts)
    wav = out / f"{prompt_path(prompts[0])}.wav"
    with wave.open(str(wav), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        frames = w.getnframes()
    assert frames > 8000 * 0.5  # a real sentence, not an empty file
    ulaw = wav.with_suffix(".ulaw")
    assert ulaw.stat().st_size == frames  # one byte per sample
    pcm = read_pcm(wav)
    assert pcm is not None
    assert (
        max(
            abs(int.from_bytes(pcm[i : i + 2], "little", signed=True))
            for i in range(0, len(pcm), 2)
        )
        > 1000
    )

    mtime = wav.stat().st_mtime_ns
    again = build(prompts, out)
    assert again.rendered == []
    assert len(again.kept) == len(prompts)
    assert wav.stat().st_mtime_ns == mtime

    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    entry = manifest["prompts"][prompt_path(prompts[0])]
    assert entry["script"] == "essai"
    assert entry["text"] == prompts[0].text


def test_changed_text_gets_a_new_file_and_prune_removes_the_old(
    script: Script, tmp_path: Path
) -> None:
    out = tmp_path / "prompts"
    prompts = text_prompts(script)
    build(prompts, out)
    old = prompts[0]
    new = type(old)(old.script, old.prompt_id, old.language, old.text + " Encore.")
    report = build([new, *prompts[1:]], out, prune=True)
    assert report.rendered == [prompt_path(new)]
    assert sorted(report.removed) == sorted(f"{prompt_path(old)}.{f}" for f in ("ulaw", "wav"))
    assert not (out / f"{prompt_path(old)}.wav").exists()
    assert (out / f"{prompt_path(new)}.wav").exists()


def test_missing_espeak_is_a_clear_error(
    script: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PromptBuildError, match="espeak-ng is not installed"):
        build(text_prompts(script), tmp_path / "prompts")


def test_cli(script: Script, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prompts"
    args = ["prompts", "build", str(Path(script.path).parent), "--out", str(out)]
    assert main(args) == 0
    assert "6 prompt(s): 6 rendered, 0 up to date" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 rendered, 6 up to date" in capsys.readouterr().out
    assert main([*args, "--voice", "fr"]) == 2
    assert "LANG=VOICE" in capsys.readouterr().err


# --- the driver plays the built prompts ---------------------------------------------------


@dataclass
class FakeRequest:
    uniqueid: str = "node1-1.1"


@dataclass
class FakeSession:
    """Records what the driver asks Asterisk to do; nobody presses a key."""

    played: list[str] = field(default_factory=list)
    request: FakeRequest = field(default_factory=FakeRequest)
    log: structlog.typing.FilteringBoundLogger = field(
        default_factory=lambda: structlog.get_logger("test")
    )

    async def stream_file(self, name: str, escape_digits: str = "") -> str:
        self.played.append(name)
        return ""

    async def get_data(self, prompt: str, *, timeout_ms: int, max_digits: int) -> str:
        self.played.append(prompt)
        return ""

    async def exec_(self, application: str, *args: str, timeout: float | None = None) -> AgiReply:
        raise AssertionError("no AudioSocket without a speech service")


async def _lookup(request: Lookup) -> LookupResult:
    return LookupResult()


async def _callback(request: OfferCallback) -> CallbackResult:
    return CallbackResult(False)


async def test_driver_plays_built_prompts(script: Script) -> None:
    session = FakeSession()
    prompts = PromptFiles("/usr/share/asterisk/sounds/callcenter")
    services = IvrServices(_lookup, _callback, "/tmp", prompts=prompts)
    call = CallInfo(ani="0612345678", now=datetime(2026, 3, 2, 10, tzinfo=UTC), language="en")
    outcome = await run_ivr(cast(AgiSession, session), script, call, services)
    assert isinstance(outcome, Route)
    built = {p.prompt_id: prompt_path(p) for p in text_prompts(script) if p.language == "en"}
    base = "/usr/share/asterisk/sounds/callcenter/"
    assert session.played == [
        base + built["accueil"],
        "custom/jingle-en",  # a recorded file stays as the script names it
        base + built["motif"],  # no speech service: played, then "not understood"
        base + built["menu"],
    ]


async def test_driver_without_built_prompts_plays_plain_names(script: Script) -> None:
    session = FakeSession()
    services = IvrServices(_lookup, _callback, "/tmp")
    call = CallInfo(ani="", now=datetime(2026, 3, 2, 10, tzinfo=UTC))
    await run_ivr(cast(AgiSession, session), script, call, services)
    assert session.played[0] == "ivr/essai/fr/accueil"
