"""Intent matching for recognised speech.

Speech-to-text output varies in accents, case, punctuation and number
("mes factures" vs "ma facture"), so phrases and utterances are normalised the
same way before a phrase is looked for as a run of whole words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

# Anything but letters and digits of any script separates words: Latin
# accents are stripped first, Hangul or Arabic words stay words.
_NON_WORD = re.compile(r"[\W_]+")


def _singular(word: str) -> str:
    # Simple French/English plurals: factures -> facture, bills -> bill,
    # travaux -> travau (both sides get the same treatment, so they still meet).
    if len(word) > 3 and word[-1] in "sx" and not word.endswith("ss"):
        return word[:-1]
    return word


def normalise(text: str) -> tuple[str, ...]:
    """Words of *text* without accents, case, punctuation or plural endings."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    bare = bare.replace("œ", "oe").replace("æ", "ae")
    return tuple(_singular(w) for w in _NON_WORD.split(bare) if w)


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def match_intent(text: str, phrases: Mapping[str, Sequence[str]]) -> str | None:
    """The intent whose phrase occurs in *text*; the longest phrase wins so
    that "ma facture en retard" beats "facture" when both are listed."""
    words = normalise(text)
    best: tuple[int, str] | None = None
    for intent, candidates in phrases.items():
        for phrase in candidates:
            norm = normalise(phrase)
            if _contains(words, norm) and (best is None or len(norm) > best[0]):
                best = (len(norm), intent)
    return best[1] if best else None
