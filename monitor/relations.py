"""Who did what to whom: actor – action – actor within one sentence.

The rule files' `actions:` lists give each action class (meet, sign, accuse, threaten,
sanction, attack, deploy, arrest, supply arms, invest, support, recognise, and any users add)
its verb forms per language, active and passive. The engine's one scan already finds those
verbs and the actors (match.py); this module only pairs them, sentence by sentence:

- the subject is the nearest actor before the verb, the object the nearest actor after it
  (each within `MAX_GAP` words, in the same sentence); a passive form ("was sanctioned by",
  "sanzionata da", "u arrestua nga") swaps them, so the direction is who did it to whom;
- a symmetric action ("Vučić and Kurti met") also pairs two actors joined by "and" before
  the verb, when no actor follows it;
- a negation just before the verb ("did not sanction", "neće priznati", "non ha firmato")
  drops it, and so does reported speech or a hypothetical before it ("said that", "tvrdi da",
  "avrebbe", "do të"): what someone claims happened is not what happened;
- two actors in one sentence with no verb of an action class between them are no relation,
  and an actor after "in" / "u" / "në" says where, not who ("In Belgrade they met Vučić").

Pure and bounded: the work is linear in the mentions found in the item, and at most
MAX_RELATIONS relations are kept per item.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.models import Relation

MAX_GAP = 12  # words between an actor and the verb
NEGATION_REACH = 4  # words before the verb a negation governs
MAX_RELATIONS = 50
ACTIVE, PASSIVE = "active", "passive"
NEGATION, REPORTED = "negation", "reported"
_WORD_RE = re.compile(r"\w+")
# A sentence ends at . ! ? or a line break, before a capital, a quote or a digit; "U.S." and
# "Gen." do not end one (checked in `sentences`).
_END_RE = re.compile(r"[.!?]+[\"'”’»)]*\s+(?=[\"'“‘«(]?[A-ZА-ЯЁЂЈЉЊЋЏČĆŠŽĐÇË0-9])|\n+")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "gen", "col", "lt", "maj", "sgt", "prof", "sen", "gov", "vs"}
)
_AND_WORDS = frozenset({"and", "i", "e", "dhe", "und", "et", "y", "и"})
# A place after one of these says where, not who: "In Belgrade they met Vučić", "u Moskvi",
# "në Bruksel" (unless the word belongs to the verb: "invested in Serbia", "ulaže u Srbiju").
_WHERE_WORDS = frozenset({"in", "at", "near", "u", "ne", "nel", "nella"})


@dataclass(frozen=True)
class Mention:
    """Something the scan found, in folded offsets: an actor (`label` its id), a verb
    (`label` its action, `voice` active or passive) or a cue (`label` negation/reported)."""

    start: int
    end: int
    label: str
    kind: str  # actor | verb | cue
    voice: str = ACTIVE
    term: str = ""  # the alias or verb form as the rule files write it


@dataclass(frozen=True)
class Found:
    """A relation, and the mentions that make it (subject, verb, object)."""

    relation: Relation
    mentions: tuple[Mention, Mention, Mention]


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`."""
    spans, start = [], 0
    for m in _END_RE.finditer(text):
        before = text[start : m.start() + 1]
        last = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.strip() else ""
        if m.group().strip() and (len(last) == 1 or "." in last or last in _ABBREVIATIONS):
            continue  # "U.S. Treasury", "Gen. Smith"
        end = m.start() + len(m.group().rstrip())
        if text[start:end].strip():
            spans.append((start, end))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


@dataclass
class _Field:
    """One field under extraction: its text, its folded text and how they line up."""

    name: str
    text: str
    folded: str
    origin: list[int] | None  # folded index -> text index; None when they are the same

    def __post_init__(self) -> None:
        self.words = [m.start() for m in _WORD_RE.finditer(self.folded)]

    def word(self, position: int) -> int:
        return bisect.bisect_right(self.words, position) - 1

    def gap(self, left: Mention, right: Mention) -> int:
        """Words strictly between the end of `left` and the start of `right`."""
        return max(0, self.word(right.start) - self.word(left.end - 1) - 1)

    def to_text(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1

    def to_folded(self, position: int) -> int:
        if self.origin is None:
            return position
        return bisect.bisect_left(self.origin, position)

    def between(self, left: Mention, right: Mention) -> list[str]:
        return self.folded[left.end : right.start].split()


def extract(
    name: str,
    text: str,
    folded: str,
    origin: list[int] | None,
    mentions: Sequence[Mention],
    symmetric: frozenset[str] = frozenset(),
) -> list[Found]:
    """Every relation in one field of an item, given what the scan found in it."""
    if not any(m.kind == "verb" for m in mentions) or sum(m.kind == "actor" for m in mentions) < 2:
        return []
    field = _Field(name, text, folded, origin)
    ordered = sorted(_resolve(mentions), key=lambda m: (m.start, -m.end))
    found: list[Found] = []
    for s_start, s_end in sentences(text):
        lo, hi = field.to_folded(s_start), field.to_folded(s_end)
        inside = [m for m in ordered if lo <= m.start and m.end <= hi]
        found += _in_sentence(field, inside, (s_start, s_end), symmetric)
        if len(found) >= MAX_RELATIONS:
            return found[:MAX_RELATIONS]
    return found


def _resolve(mentions: Sequence[Mention]) -> list[Mention]:
    """Overlapping verbs and cues: the longer wins ("accused by" over "accused", "stato
    arrestato" over "arrestato", "sostiene che" over "sostiene"); actors are kept as found."""
    words = [m for m in mentions if m.kind != "actor"]
    words.sort(key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[Mention] = []
    for m in words:
        if any(k.start <= m.start and m.end <= k.end for k in kept):
            continue
        kept = [k for k in kept if not (m.start <= k.start and k.end <= m.end)]
        kept.append(m)
    actors = _longest_actors([m for m in mentions if m.kind == "actor"])
    return [*actors, *kept]


def _longest_actors(actors: list[Mention]) -> list[Mention]:
    """One actor per stretch of text: "Kosovo Police" over "Kosovo" inside it."""
    actors = sorted(set(actors), key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[Mention] = []
    for m in actors:
        if kept and m.start < kept[-1].end:
            continue
        kept.append(m)
    return kept


def _in_sentence(
    field: _Field,
    mentions: list[Mention],
    span: tuple[int, int],
    symmetric: frozenset[str],
) -> list[Found]:
    verbs = [m for m in mentions if m.kind == "verb"]
    actors = [m for m in mentions if m.kind == "actor" and not _where(field, m, verbs)]
    if len({a.label for a in actors}) < 2:
        return []
    found = []
    for verb in (m for m in mentions if m.kind == "verb"):
        if _cancelled(field, verb, mentions):
            continue
        pair = _pair(field, verb, actors, verb.label in symmetric)
        if pair is None:
            continue
        subject, obj = pair if verb.voice == ACTIVE else pair[::-1]
        found.append(_found(field, span, subject, verb, obj))
    return found


def _where(field: _Field, actor: Mention, verbs: list[Mention]) -> bool:
    """Whether the actor stands after a word saying where (not part of a verb)."""
    before = field.folded[: actor.start].rstrip()
    word = before.rsplit(None, 1)[-1] if before else ""
    if word not in _WHERE_WORDS:
        return False
    start = len(before) - len(word)
    return not any(v.start <= start < v.end for v in verbs)


def _cancelled(field: _Field, verb: Mention, mentions: list[Mention]) -> bool:
    """A negation within NEGATION_REACH words before the verb, or a reporting cue anywhere
    before it in the sentence."""
    for cue in (m for m in mentions if m.kind == "cue" and m.end <= verb.start):
        if cue.label == REPORTED:
            return True
        if cue.label == NEGATION and field.gap(cue, verb) < NEGATION_REACH:
            return True
    return False


def _pair(
    field: _Field, verb: Mention, actors: list[Mention], symmetric: bool
) -> tuple[Mention, Mention] | None:
    """(actor before, actor after) the verb, nearest each, or for a symmetric action the two
    actors joined by "and" before it."""
    before = [a for a in actors if a.end <= verb.start and field.gap(a, verb) <= MAX_GAP]
    after = [a for a in actors if a.start >= verb.end and field.gap(verb, a) <= MAX_GAP]
    if symmetric and len(before) >= 2:  # "Vučić and Kurti met in Brussels"
        first, second = before[-2], before[-1]
        joined = field.between(first, second)
        if first.label != second.label and joined and set(joined) <= _AND_WORDS:
            return first, second
    if before and after:
        left = before[-1]
        right = next((a for a in after if a.label != left.label), None)
        if right is not None:
            return left, right
    return None


def _found(
    field: _Field, span: tuple[int, int], subject: Mention, verb: Mention, obj: Mention
) -> Found:
    start, end = span
    spans = tuple(field.to_text(m.start, m.end) for m in (subject, verb, obj))
    relation = Relation(
        subject=subject.label,
        action=verb.label,
        object=obj.label,
        sentence=field.text[start:end],
        field=field.name,
        start=start,
        end=end,
        verb=field.text[spans[1][0] : spans[1][1]],
        spans=spans,
        voice=verb.voice,
    )
    return Found(relation, (subject, verb, obj))
