"""The actors an article names: capitalised spans resolved against the loaded rules' actors
(alias by alias, longest first), the rest proposed as new actors after titles, sentence
openers and common words are taken off, with acronyms tied to their long forms and surnames
to full names."""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, field

from monitor.derive import aliases as al
from monitor.derive.gazetteer import lookup
from monitor.derive.spans import (
    CODE_RE,
    CONNECTORS,
    Span,
    Token,
    is_acronym,
    sentences,
    tokens,
    word_set,
)
from monitor.normalise import fold
from monitor.rules import RuleSet

# Words of a title or office before a name ("Foreign Minister Antonio Tajani").
TITLES = word_set(
    """minister ministers prime foreign defence defense interior affairs finance president
    presidents vice deputy general gen admiral colonel col lt major commander chief
    secretary ambassador envoy special representative high chancellor premier king queen
    prince princess pope mr mrs ms dr prof professor sir lord senator sen rep governor
    mayor speaker leader chairman chairwoman chair director head spokesman spokeswoman
    spokesperson commissioner marshal sergeant captain lieutenant fellow senior resident
    visiting global former acting state secretary-general jr sr ii iii"""
)
MONTHS_DAYS = word_set(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday"""
)
# Last words that say what kind of actor a name is.
ORG_HEADS = word_set(
    """force forces mission network fund council center centre institute institution party
    company corporation bank agency union organization organisation commission ministry
    army navy guard police group alliance forum foundation university office service
    services committee court tribunal parliament assembly government authority front
    movement league federation association society coalition board brigade battalion corps
    command department media news agency radio television times post"""
)
PROGRAM_HEADS = frozenset(["initiative", "program", "programme", "plan", "project", "operation"])
PLACE_HEADS = word_set(
    """sea shoal reef island islands strait river mountains valley region province bay gulf
    ocean peninsula lake square street district county city oblast"""
)
# Words of a state's or region's name in the region's languages too (Republika Srpska).
STATE_WORDS = frozenset(["republic", "republika", "kingdom", "emirate", "principality"])
GROUP_HEADS = frozenset(["party", "movement", "front", "brigade", "battalion", "militia"])
COMMON_ZIPF = 4.3  # two capitalised words this common in English are not a name ("Read More")
OPENER_ZIPF = 5.0  # nor a sentence's first word this common, unless the gazetteer knows it
WORD_NAME_ZIPF = 3.5  # an English word this common, capitalised alone, is no name (Western)
_ACRONYM_DEF_RE = re.compile(r"\(\s*(?:the\s+)?([A-Z][A-Za-z0-9-]{1,11})\s*\)")
_RUN_LOOK = 40  # words before a bracket looked at for its long form (longer runs are cut)


@dataclass
class Proposal:
    """One actor of the article: a known one (`known` is its folder/id) or a new one."""

    id: str
    name: str
    kind: str
    forms: list[str] = field(default_factory=list)  # as the article writes them
    aliases: list[str] = field(default_factory=list)  # to propose (new ones: all of them)
    mentions: int = 0
    first: int = 0  # offset of the first mention
    known: str = ""
    origin: str = ""  # file:line of a known actor
    surname: str = ""
    left_out: list[str] = field(default_factory=list)  # forms that would match common words

    def add_form(self, text: str, offset: int) -> None:
        self.mentions += 1
        self.first = min(self.first, offset) if self.mentions > 1 else offset
        if fold(text) not in {fold(f) for f in self.forms}:
            self.forms.append(text)


@dataclass
class _Candidate:
    span: Span
    known: str = ""  # actor id when an alias of a loaded actor


class KnownIndex:
    """The loaded actors' aliases, folded: exact ones by text, prefixes by stem."""

    def __init__(self, ruleset: RuleSet | None) -> None:
        self.exact: dict[str, str] = {}
        self.prefixes: list[tuple[str, str]] = []
        self.ruleset = ruleset
        for actor in (ruleset.actors if ruleset else {}).values():
            for term in actor.aliases:
                if term.prefix:
                    self.prefixes.append((term.pattern, actor.id))
                else:
                    self.exact.setdefault(term.pattern, actor.id)
        self.prefixes.sort(key=lambda p: -len(p[0]))

    def find(self, text: str) -> str:
        folded = " ".join(fold(text).split())
        if folded in self.exact:
            return self.exact[folded]
        place = lookup(text) if self.exact else None
        if place is not None and fold(place.name) in self.exact:  # US, Italians
            return self.exact[fold(place.name)]
        words = folded.split()
        for stem, actor_id in self.prefixes:
            if len(stem.split()) == len(words) and folded.startswith(stem):
                return actor_id
        return ""

    def has_alias(self, actor_id: str, text: str) -> bool:
        if not self.ruleset:
            return False
        folded = " ".join(fold(text).split())
        for term in self.ruleset.actors[actor_id].aliases:
            if folded == term.pattern or (term.prefix and folded.startswith(term.pattern)):
                return True
        return False


def candidates(all_spans: list[Span], index: KnownIndex, lower: set[str]) -> list[_Candidate]:
    """Each span as known pieces and new ones; `lower`: the words the article also writes in
    lower case (a capital on them is the sentence's, not a name's)."""
    out: list[_Candidate] = []
    for span in all_spans:
        for part in _split(span):
            out.extend(_pieces(part, index, lower))
    return out


def _split(span: Span) -> list[Span]:
    """A span at its "and"s ("Serbia and Montenegro") and titles ("Italian Prime Minister
    Giorgia Meloni"), unless it is one name: an organisation's or a gazetteer's."""
    words = [t.text.lower() for t in span.tokens]
    if "of" in words and not _has_head(span.part(0, words.index("of"))):
        cut = words.index("of")  # "Đorđe Radović of the Serbian Progressive Party": two names
        return [*_split(span.part(0, cut)), *_split(span.part(cut + 1, len(words)))]
    if _has_head(span) or lookup(span.text) is not None:
        return [span]
    out, lo, titled = [], 0, False
    for i, word in enumerate([*words, "and"]):
        if word == "and" or (word in TITLES and i > 0 and words[i - 1] not in TITLES):
            if lo < i:
                part = span.part(lo, i)
                out.append(Span(part.tokens, part.sentence, part.initial, titled))
            lo = i + 1
            titled = word != "and"
        elif word in TITLES and lo == i:
            lo, titled = i + 1, True
    return out


def _has_head(span: Span) -> bool:
    return len(span.tokens) > 1 and any(
        t.text.lower() in ORG_HEADS | PROGRAM_HEADS for t in span.tokens
    )


def _pieces(span: Span, index: KnownIndex, lower: set[str]) -> list[_Candidate]:
    whole = index.find(span.text)
    if whole:
        return [_Candidate(span, whole)]
    if _has_head(span):
        # an organisation's name holds other names ("German Marshall Fund"): keep it whole
        trimmed = _trim(span, lower)
        return [_Candidate(trimmed)] if trimmed else []
    out: list[_Candidate] = []
    i, n, rest_from = 0, len(span.tokens), 0
    while i < n:
        for j in range(n, i, -1):
            found = index.find(span.part(i, j).text)
            if found:
                out.extend(_residue(span, rest_from, i, index, found, lower))
                out.append(_Candidate(span.part(i, j), found))
                i = rest_from = j
                break
        else:
            i += 1
    out.extend(_residue(span, rest_from, n, index, "", lower))
    return [c for c in out if c.span.tokens]


def _residue(
    span: Span, lo: int, hi: int, index: KnownIndex, next_known: str, lower: set[str]
) -> list[_Candidate]:
    """The words between known names: a new name, or the given names of the known person
    that follows ("Giorgia" before "Meloni")."""
    if lo >= hi:
        return []
    part = _trim(span.part(lo, hi), lower)
    if part is None:
        return []
    actor = index.ruleset.actors.get(next_known) if (next_known and index.ruleset) else None
    if actor is not None and actor.kind == "person" and part.end == span.tokens[hi - 1].end:
        return [_Candidate(Span((*part.tokens, span.tokens[hi]), part.sentence, False),
                           next_known)]  # fmt: skip
    return [_Candidate(part)]


def _trim(span: Span, lower: set[str]) -> Span | None:
    """The span without titles and connectors at its ends (an organisation's name keeps its
    titles: "Department of Foreign Affairs"), without a sentence's common first word, and
    None when nothing that can be a name is left."""
    tokens = list(span.tokens)
    initial, titled = span.initial, span.titled
    if initial and tokens and _common_opener(tokens[0].text, lower):
        tokens.pop(0)
        initial = False
    strip = CONNECTORS if _has_head(span) else TITLES | CONNECTORS
    while tokens and _strippable(tokens[0].text, strip):
        titled = titled or tokens[0].text.lower() in TITLES
        tokens.pop(0)
    while tokens and _strippable(tokens[-1].text, strip):
        tokens.pop()
    trimmed = Span(tuple(tokens), span.sentence, initial, titled)
    if not tokens or _not_a_name(trimmed, lower):
        return None
    return trimmed


def _strippable(word: str, words: frozenset[str]) -> bool:
    """A connector only in lower case ("al" is one, "Al Qaeda" keeps its "Al")."""
    return word in words if word.lower() in CONNECTORS else word.lower() in words


def _common_opener(word: str, lower: set[str]) -> bool:
    """A sentence's first word that is an English word, not a name ("Tensions", "However")."""
    if is_acronym(word) or _gazetteer_name(word):
        return False
    low = word.lower()
    return low in lower or low in english_words() or al.zipf(word) >= OPENER_ZIPF


def _gazetteer_name(word: str) -> bool:
    """A country, people or city that is no English word (Paris, Washington; not More)."""
    place = lookup(word)
    return place is not None and (place.kind == "country" or word.lower() not in english_words())


def _not_a_name(span: Span, lower: set[str]) -> bool:
    words = [t.text for t in span.tokens]
    if all(w.lower() in MONTHS_DAYS | TITLES for w in words):
        return True
    if len(words) == 1 and (is_acronym(words[0]) or CODE_RE.match(words[0])):
        return False
    if len(words) > 1:
        if len(words) > 2 or _has_head(span) or words[-1].lower() in PLACE_HEADS:
            return False
        return all(al.zipf(w) >= COMMON_ZIPF and not _gazetteer_name(w) for w in words)
    word = words[0]
    if _gazetteer_name(word):
        return False
    low = word.lower()
    if low in lower or len(word) < 3:
        return True
    if span.initial:
        return _common_opener(word, lower)
    return low in english_words() and al.zipf(word) >= WORD_NAME_ZIPF


def _head(span: Span) -> str:
    return span.tokens[-1].text.lower()


def acronym_definitions(text: str) -> list[tuple[str, Span]]:
    """Acronyms the article defines and their long forms: "Al Qaeda in the Islamic Maghreb
    (AQIM)", "Center for European Political Analysis (CEPA)". The long form is the run of
    capitalised words before the bracket that the acronym's letters abbreviate, or, when
    they do not (a French acronym for an English name), the whole run if it starts with the
    acronym's first letter."""
    out: list[tuple[str, Span]] = []
    for number, (offset, sentence) in enumerate(sentences(text)):
        # tokenised once: a sentence of a thousand brackets must not be read a thousand times
        words: list[Token] | None = None
        for match in _ACRONYM_DEF_RE.finditer(sentence):
            acronym = match.group(1)
            if not is_acronym(acronym):
                continue
            if words is None:
                words = tokens(sentence, offset)
                ends = [t.end for t in words]
            # a bracket ends every word before it: these are the words of the text before it
            before = bisect.bisect_right(ends, offset + match.start())
            run = _run_before(text, words[max(0, before - _RUN_LOOK) : before])
            used = al.defines(acronym, [t.text for t in run])
            if used:
                run = run[-used:]
            elif len(run) < 2 or run[0].text[:1].upper() != acronym[0]:
                continue
            if run:
                out.append((acronym, Span(tuple(run), number, run[0] is words[0])))
    return out


def _run_before(text: str, before: list[Token]) -> list[Token]:
    """The capitalised words (and connectors, "in" too) that end `before`."""
    run: list[Token] = []
    for token in reversed(before):
        if run and (token.possessive or text[token.end : run[0].start].strip(" ")):
            break
        if token.capitalised or (run and token.text in CONNECTORS | {"in"}):
            run.insert(0, token)
        else:
            break
    while run and not run[0].capitalised:
        run.pop(0)
    return run


def _key(text: str) -> str:
    return " ".join(fold(text).split())


def kind_of(name: str, is_person: bool) -> str:
    words = name.split()
    place = lookup(name)
    if CODE_RE.match(name):
        return "program"
    if place is not None:
        return place.kind
    head = words[-1].lower()
    if {w.lower() for w in words} & STATE_WORDS:
        return "place"
    if words[0].lower() == "operation" or head in PROGRAM_HEADS:
        return "program"
    if head in GROUP_HEADS:
        return "group"
    if head in ORG_HEADS or is_acronym(name):
        return "organisation"
    if head in PLACE_HEADS:
        return "place"
    return "person" if is_person else "organisation"


def looks_like_person(span: Span) -> bool:
    """Two to four capitalised words with no head word, no acronym, not a place, and either
    a title before them or a first word that is no English word ("Western Balkans" is not;
    "Federico Borsari" is)."""
    words = [t.text for t in span.tokens]
    if not 2 <= len(words) <= 4 or any(is_acronym(w) or CODE_RE.match(w) for w in words):
        return False
    if any(w.lower() in ORG_HEADS | PROGRAM_HEADS | PLACE_HEADS | CONNECTORS for w in words):
        return False
    if lookup(span.text) is not None or lookup(words[-1]) is not None:
        return False
    if {w.lower() for w in words} & STATE_WORDS:
        return False
    return span.titled or words[0].lower() not in english_words()


@functools.cache
def english_words() -> frozenset[str]:
    """simplemma's English dictionary, lower-case entries: words, not names."""
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    dictionary = DefaultDictionaryFactory(cache_max_size=0).get_dictionary("en")
    return frozenset(k for k in dictionary if k.islower())
