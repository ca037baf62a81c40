"""An article into sentences, tokens and the capitalised spans that may name an actor.

A span is a run of capitalised words, acronyms and codes (CH-92A) in one sentence, joined
by the few lower-case words names carry inside them ("Belt and Road Initiative", "Council on
Foreign Relations"); any punctuation between two words ends it. A possessive ends a span
too and is dropped ("Russia's Gazprom" is two names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Lower-case words that may stand inside a name, never at its ends.
CONNECTORS = word_set(
    "of for on and the de del della di du des la le von van der al el bin da dos do"
)
_TOKEN_RE = re.compile(r"\w+(?:[-'’.]\w+)*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z\d])|\n\s*\n")
# Weapons and models: letters then digits, as the press writes them (CH-92A, FK-3, S-400).
CODE_RE = re.compile(r"^[A-Z]{1,5}-?\d{1,4}[A-Z]{0,3}$")
POSSESSIVE = ("'s", "’s", "'", "’")
MAX_SPAN_WORDS = 12  # no name is longer; a longer run of capitals is cut (bounded work)


@dataclass(frozen=True)
class Token:
    text: str  # possessive ending removed
    start: int
    end: int
    possessive: bool = False

    @property
    def capitalised(self) -> bool:
        return self.text[:1].isupper() or is_acronym(self.text) or bool(CODE_RE.match(self.text))


@dataclass(frozen=True)
class Span:
    tokens: tuple[Token, ...]
    sentence: int
    initial: bool  # starts its sentence: a capital there says nothing
    titled: bool = False  # a title stood before it ("Foreign Minister ...")

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.tokens)

    @property
    def start(self) -> int:
        return self.tokens[0].start

    @property
    def end(self) -> int:
        return self.tokens[-1].end

    def part(self, lo: int, hi: int) -> Span:
        return Span(self.tokens[lo:hi], self.sentence, self.initial and lo == 0, self.titled)


def is_acronym(word: str) -> bool:
    """NATO, K-FOR, EULEX, BiH: two or more capitals and more capitals than small letters."""
    letters = [c for c in word if c.isalpha()]
    upper = sum(1 for c in letters if c.isupper())
    return len(letters) >= 2 and upper >= 2 and upper > len(letters) - upper


def sentences(text: str) -> list[tuple[int, str]]:
    """(offset, sentence) pairs."""
    out, pos = [], 0
    for match in _SENTENCE_END_RE.finditer(text):
        out.append((pos, text[pos : match.start()]))
        pos = match.end()
    out.append((pos, text[pos:]))
    return [(offset, s) for offset, s in out if s.strip()]


def tokens(sentence: str, offset: int) -> list[Token]:
    found = []
    for match in _TOKEN_RE.finditer(sentence):
        word, end = match.group(), offset + match.end()
        possessive = word.endswith(POSSESSIVE[:2]) and len(word) > 2
        if possessive:
            word = word[:-2]
        start = offset + match.start()
        parts = word.split("-")
        if len(parts) > 1 and _two_names(word, parts):  # "EU-Western Balkans": two names
            for part in parts[:-1]:
                found.append(Token(part, start, start + len(part)))
                start += len(part) + 1
            found.append(Token(parts[-1], start, end, possessive))
            continue
        if len(parts) > 1 and parts[0][:1].isupper() and parts[-1].islower():
            word, end = parts[0], start + len(parts[0])  # "Turkish-made": Turkish
        found.append(Token(word, start, end, possessive))
    return found


def _two_names(word: str, parts: list[str]) -> bool:
    """A hyphen between two names ("Serbia-Kosovo", "US-Philippines"), not inside one
    ("Nagorno-Karabakh", "K-FOR", "CH-92A")."""
    from monitor.derive.gazetteer import lookup

    if is_acronym(word) or CODE_RE.match(word):
        return False
    if not all(p[:1].isupper() and len(p) > 1 for p in parts):
        return False
    return any(is_acronym(p) or lookup(p) is not None for p in parts)


def spans(text: str) -> list[Span]:
    """Every capitalised span of the text, sentence by sentence."""
    out: list[Span] = []
    for number, (offset, sentence) in enumerate(sentences(text)):
        words = tokens(sentence, offset)
        out.extend(_sentence_spans(text, words, number))
    return out


def _sentence_spans(text: str, words: list[Token], number: int) -> list[Span]:
    out: list[Span] = []
    run: list[Token] = []

    def close() -> None:
        while run and not run[-1].capitalised:  # connectors never end a name
            run.pop()
        if run:
            out.append(Span(tuple(run), number, run[0] is words[0]))
        run.clear()

    for i, word in enumerate(words):
        joined = bool(run) and _adjacent(text, run[-1], word)
        if word.capitalised:
            if run and not joined:
                close()
            run.append(word)
        elif word.text in CONNECTORS and joined and _next_capitalised(text, words, i):
            run.append(word)
        else:
            close()
            continue
        if word.possessive or len(run) >= MAX_SPAN_WORDS:
            close()
    close()
    return out


def _adjacent(text: str, left: Token, right: Token) -> bool:
    """Only spaces between the two words (a comma, bracket or dash ends a name)."""
    return not left.possessive and text[left.end : right.start].strip(" ") == ""


def _next_capitalised(text: str, words: list[Token], i: int) -> bool:
    """A connector joins a name only when a capitalised word follows it directly, possibly
    after more connectors ("Fund of the United States")."""
    for j in range(i + 1, min(i + 4, len(words))):
        if not _adjacent(text, words[j - 1], words[j]):
            return False
        if words[j].capitalised:
            return True
        if words[j].text not in CONNECTORS:
            return False
    return False
