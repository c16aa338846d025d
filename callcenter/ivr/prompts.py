"""Which text prompts a script needs, and the names their sound files get.

Pure: the prompt build (:mod:`callcenter.adapters.prompts`) renders each
:class:`TextPrompt` with espeak-ng; the FastAGI driver computes the same name
from a ``Play`` request to play it. The file name carries a hash of what was
rendered (text, voice, rendering version): a changed text gets a new file, an
unchanged one is never rendered twice, and a script whose prompts were not
rebuilt plays nothing rather than a stale sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass

from callcenter.ivr.interpreter import prompt_file
from callcenter.ivr.model import Prompt, Script

# Bump when the rendering changes (voice options, sample rate, formats).
RENDER_VERSION = 1
# espeak-ng voice per script language (`espeak-ng --voices` lists them).
DEFAULT_VOICES: Mapping[str, str] = {
    "fr": "fr",
    "en": "en-us",
    "de": "de",
    "es": "es",
    "it": "it",
    "nl": "nl",
    "pt": "pt",
    "ar": "ar",
    "ko": "ko",
}
# Formats written next to each other; Asterisk picks the cheapest for the call.
FORMATS = ("wav", "ulaw")


@dataclass(frozen=True)
class TextPrompt:
    script: str
    prompt_id: str
    language: str
    text: str


def voice_for(language: str, voices: Mapping[str, str] | None = None) -> str:
    table = DEFAULT_VOICES if voices is None else {**DEFAULT_VOICES, **voices}
    return table.get(language, language)


def content_hash(language: str, text: str, voices: Mapping[str, str] | None = None) -> str:
    key = f"{RENDER_VERSION}\x00{voice_for(language, voices)}\x00{text}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def built_name(base: str, language: str, text: str, voices: Mapping[str, str] | None = None) -> str:
    """The sound name (no extension) for the prompt whose plain name is *base*
    (``ivr/<script>/<language>/<prompt>``, as in a ``Play`` request)."""
    return f"{base}-{content_hash(language, text, voices)}"


def text_prompts(script: Script) -> list[TextPrompt]:
    """Every (prompt, language) of *script* that has a text, in a stable order."""
    seen: dict[tuple[str, str], TextPrompt] = {}
    for prompt in _prompts(script):
        for language, text in prompt.texts.items():
            if text and prompt.file is None:
                seen.setdefault(
                    (prompt.id, language), TextPrompt(script.name, prompt.id, language, text)
                )
    return [seen[k] for k in sorted(seen)]


def prompt_path(prompt: TextPrompt, voices: Mapping[str, str] | None = None) -> str:
    base = prompt_file(prompt.script, prompt.prompt_id, prompt.language)
    return built_name(base, prompt.language, prompt.text, voices)


def _prompts(script: Script) -> Iterator[Prompt]:
    yield from script.prompts.values()
    for flow in (script.main, *script.subflows.values()):
        for node in flow.nodes.values():
            yield from _in(node, 0)


def _in(value: object, depth: int) -> Iterator[Prompt]:
    if isinstance(value, Prompt):
        yield value
    elif is_dataclass(value) and not isinstance(value, type) and depth < 3:
        for f in fields(value):
            yield from _in(getattr(value, f.name), depth + 1)
    elif isinstance(value, tuple) and depth < 3:
        for item in value:
            yield from _in(item, depth + 1)
