"""The aliases an analyst needs for a name: diacritic-free and Serbian Cyrillic spellings,
acronyms from initials (Schwartz–Hearst matching for "Long Form (LF)" definitions), and the
prefix that carries a surname's case endings where no common English word begins with it."""

from __future__ import annotations

import functools
import unicodedata
from bisect import bisect_left

from monitor.normalise import fold

# Gaj's Latin to Vuk's Cyrillic: the digraphs first (lj, nj, dž are one letter each).
_SERBIAN_DIGRAPHS = {"lj": "љ", "nj": "њ", "dž": "џ", "dj": "ђ"}
_SERBIAN = dict(
    zip(
        "abcčćdđefghijklmnoprsštuvzž",
        "абцчћдђефгхијклмнопрсштувзж",
        strict=True,
    )
)
_LATIN_SPECIAL = {"đ": "dj", "Đ": "Dj", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"}
_SOUTH_SLAVIC_LETTERS = set("čćšžđČĆŠŽĐ")
PREFIX_MIN = 5  # shorter surnames get no prefix: "Rama*" would catch Ramadan
COMMON_WORDS = 60_000  # English words checked against a surname's prefix (wordfreq's list)


def ascii_form(name: str) -> str:
    """The name without diacritics, case kept (Vučić -> Vucic, Đukanović -> Djukanovic)."""
    out = []
    for ch in name:
        if ch in _LATIN_SPECIAL:
            out.append(_LATIN_SPECIAL[ch])
            continue
        decomposed = unicodedata.normalize("NFKD", ch)
        out.append("".join(c for c in decomposed if not unicodedata.combining(c)))
    return "".join(out)


def looks_south_slavic(name: str) -> bool:
    """Spelt with Serbo-Croatian letters, or a surname ending in -ić as the press writes it
    without them (Knezevic)."""
    return bool(_SOUTH_SLAVIC_LETTERS & set(name)) or fold(name).split()[-1].endswith("ic")


def serbian_cyrillic(name: str) -> str:
    """Serbian Cyrillic for a Latin name; a final -ic is read as -ić, as it almost always is in
    a South Slavic surname written without diacritics. The result folds as the name does."""
    words = []
    for word in name.split():
        low = word.lower()
        if low.endswith("ic") and len(low) > 3:
            low = low[:-2] + "ić"
        out, i = [], 0
        while i < len(low):
            pair = low[i : i + 2]
            if pair in _SERBIAN_DIGRAPHS:
                out.append(_SERBIAN_DIGRAPHS[pair])
                i += 2
                continue
            out.append(_SERBIAN.get(low[i], low[i]))
            i += 1
        cyr = "".join(out)
        words.append(cyr[:1].upper() + cyr[1:] if word[:1].isupper() else cyr)
    return " ".join(words)


def initials(words: list[str], connectors: frozenset[str]) -> str:
    return "".join(w[0].upper() for w in words if w and w not in connectors)


def defines(acronym: str, long_form: list[str]) -> int:
    """How many of `long_form`'s last words the acronym abbreviates (0 if it does not): its
    letters, read backwards, found in order in the words, the first at a word's start
    (Schwartz and Hearst's rule: "Kosovo Force" for KFOR, "Center for European Political
    Analysis" for CEPA)."""
    letters = [c.lower() for c in acronym if c.isalnum()]
    if len(letters) < 2 or not long_form:
        return 0
    text = " ".join(long_form).lower()
    li, ti = len(letters) - 1, len(text) - 1
    while li >= 0:
        while ti >= 0 and (text[ti] != letters[li] or (li == 0 and ti > 0 and text[ti - 1] != " ")):
            ti -= 1
        if ti < 0:
            return 0
        li, ti = li - 1, ti - 1
    used = text[ti + 1 :].split()
    if len(used) > len(letters) + 2:  # a long form much longer than its acronym is a guess
        return 0
    return len(used)


@functools.cache
def _common_words() -> list[str]:
    from wordfreq import top_n_list

    return sorted({fold(w) for w in top_n_list("en", COMMON_WORDS)})


def safe_prefix(surname: str) -> bool:
    """Whether `surname*` may stand for its case endings (Dodika, Dodiku, Dodikom): long
    enough, and no common English word other than the name itself begins with it."""
    folded = fold(surname)
    if len(folded) < PREFIX_MIN or " " in folded:
        return False
    words = _common_words()
    i = bisect_left(words, folded)
    while i < len(words) and words[i].startswith(folded):
        if words[i] not in (folded, folded + "s"):
            return False
        i += 1
    return True


def zipf(word: str) -> float:
    """How common a word is in English (wordfreq's Zipf scale: 7 for "the", 0 for unknown)."""
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, "en"))
