"""Render IVR text prompts to sound files Asterisk plays (espeak-ng + sox).

Each prompt becomes ``<dir>/ivr/<script>/<language>/<prompt>-<hash>.wav``
(8 kHz mono signed 16-bit, Asterisk's ``wav`` format) and ``.ulaw`` (G.711,
no transcoding on most trunks). The hash (:mod:`callcenter.ivr.prompts`)
covers text, voice and rendering version, so a build is idempotent: files
that exist are kept, only new or changed texts are rendered. ``manifest.json``
lists what the last build produced, for people and for ``--prune``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.errors import PromptBuildError
from callcenter.ivr.prompts import FORMATS, TextPrompt, prompt_path, voice_for
from callcenter.sandbox.asterisk import DEFAULT_ROOT

MANIFEST = "manifest.json"
SAMPLE_RATE = 8000
# sox output options per Asterisk format (file extension).
_SOX_OUTPUT: Mapping[str, list[str]] = {
    "wav": ["-t", "wav", "-e", "signed-integer", "-b", "16"],
    "sln": ["-t", "raw", "-e", "signed-integer", "-b", "16"],
    "ulaw": ["-t", "ul"],
    "alaw": ["-t", "al"],
}


def sandbox_prompts_dir(root: Path = DEFAULT_ROOT) -> Path:
    """The local sandbox's prompts directory on this host: inside the chroot,
    where the sandbox Asterisk sees ``/usr/share/asterisk/sounds/callcenter``."""
    return root / "usr" / "share" / "asterisk" / "sounds" / "callcenter"


@dataclass
class BuildReport:
    rendered: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def require_tools() -> tuple[str, str]:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise PromptBuildError(
            "espeak-ng is not installed: it renders the IVR's text prompts "
            "(Debian: apt-get install espeak-ng, or `make setup`)"
        )
    sox = shutil.which("sox")
    if sox is None:
        raise PromptBuildError(
            "sox is not installed: it converts prompts to 8 kHz for Asterisk "
            "(Debian: apt-get install sox, or `make setup`)"
        )
    return espeak, sox


def render(
    text: str, voice: str, target: Path, *, formats: Sequence[str] = FORMATS, speed: int = 150
) -> None:
    """Speak *text* with espeak-ng into ``target.<format>`` for every format.

    Files appear atomically (written aside, then renamed)."""
    espeak, sox = require_tools()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cc-prompt-", dir=target.parent) as tmp:
        raw = Path(tmp) / "espeak.wav"
        _run([espeak, "-v", voice, "-s", str(speed), "-w", str(raw), "--stdin"], text, voice)
        for fmt in formats:
            out = Path(tmp) / f"out.{fmt}"
            encoding = _SOX_OUTPUT.get(fmt)
            if encoding is None:
                raise PromptBuildError(f"unknown prompt format {fmt!r}; use {sorted(_SOX_OUTPUT)}")
            _run([sox, str(raw), "-r", str(SAMPLE_RATE), "-c", "1", *encoding, str(out)], "", fmt)
            os.replace(out, target.with_name(f"{target.name}.{fmt}"))


def _run(cmd: list[str], stdin: str, what: str) -> None:
    try:
        result = subprocess.run(
            cmd, input=stdin.encode("utf-8"), capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PromptBuildError(f"{Path(cmd[0]).name} failed ({what}): {exc}") from exc
    if result.returncode != 0:
        error = result.stderr.decode("utf-8", "replace").strip()[:300]
        raise PromptBuildError(f"{Path(cmd[0]).name} failed ({what}): {error}")


def build(
    prompts: Sequence[TextPrompt],
    out_dir: Path,
    *,
    voices: Mapping[str, str] | None = None,
    prune: bool = False,
    formats: Sequence[str] = FORMATS,
) -> BuildReport:
    """Render every prompt not already built into *out_dir*; write the manifest."""
    report = BuildReport()
    if prompts:
        require_tools()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PromptBuildError(f"cannot create the prompts directory {out_dir}: {exc}") from exc
    entries: dict[str, dict[str, str]] = {}
    for prompt in prompts:
        name = prompt_path(prompt, voices)
        target = out_dir / name
        if all(target.with_name(f"{target.name}.{f}").is_file() for f in formats):
            report.kept.append(name)
        else:
            render(prompt.text, voice_for(prompt.language, voices), target, formats=formats)
            report.rendered.append(name)
        entries[name] = {
            "script": prompt.script,
            "prompt": prompt.prompt_id,
            "language": prompt.language,
            "voice": voice_for(prompt.language, voices),
            "text": prompt.text,
        }
    if prune:
        scripts = {p.script for p in prompts}
        for script in sorted(scripts):
            for path in sorted((out_dir / "ivr" / script).rglob("*")):
                if not path.is_file():
                    continue
                name = str(path.relative_to(out_dir).with_suffix(""))
                if name not in entries:
                    path.unlink()
                    report.removed.append(str(path.relative_to(out_dir)))
    manifest = out_dir / MANIFEST
    previous: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(manifest.read_text("utf-8"))
        if isinstance(loaded, dict):
            previous = loaded.get("prompts", {}) if isinstance(loaded.get("prompts"), dict) else {}
    # Keep what builds of other scripts listed.
    built_scripts = {p.script for p in prompts}
    for name, entry in previous.items():
        if isinstance(entry, dict) and entry.get("script") not in built_scripts:
            entries.setdefault(name, entry)
    tmp = manifest.with_suffix(".tmp")
    payload = {"version": 1, "formats": list(formats), "prompts": dict(sorted(entries.items()))}
    tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", "utf-8")
    os.replace(tmp, manifest)
    return report


def read_pcm(path: Path) -> bytes | None:
    """The samples of a built ``.wav`` prompt (8 kHz mono 16-bit), or None when
    the file is missing or in another format."""
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                return None
            return wav.readframes(wav.getnframes())
    except (OSError, wave.Error, EOFError):
        return None
