"""New items into stories: each joins the open story of a related item or opens its own.

Two kinds of evidence link an item to an item already in a story, reported close in time
(within `LINK_WINDOW`, so a story is linked over days):
- **wording**: titles sharing most of their words with the same numbers, or the same actors
  found by the rules and a fair share of title words (a near-duplicate, dedupe.py, is
  another copy of an item already, never a new item);
- **what it names**, which carries across languages and scripts: the actors the rules found,
  the proper names of title and teaser (folded, transliterated and cut to their first
  letters, so `Zvečanu`, `Звечан` and `Zveçan` are one name) and the numbers. Each is weighed
  by how rare it is among stored items (inverse document frequency), so `Kosovo` counts for
  little and `Zvečan` or `Lavrov` for much. Two items are about the same event when they
  come from two outlets, were reported within `NAME_WINDOW` (24 hours: the same people and
  places a few days later are most often another event), share at least `MIN_SHARED`
  different things (`@kfor` found by the rules and `KFOR` as written are one), name no
  conflicting numbers, and the weight of what they share is at least `EVENT_SIMILARITY` of
  what the smaller one names.
Two incidents in one town a week apart share the town's name, not an item within the window,
and stay two stories. A story is open while its last item is younger than `OPEN_WINDOW`.

Candidates come from keys, looked up once per cycle: the items' LSH band keys, and for what
they name only each item's `ENTITY_LOOKUPS` rarest names (a common name finds too many
items to be worth comparing), each giving the open stories' items among its latest
`MEMBERS_PER_KEY`; an item is compared with at most `NAME_CANDIDATES` of them, the rarest
names' first."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from rapidfuzz import fuzz

from monitor.dedupe import Identity, Text
from monitor.models import Item
from monitor.normalise import fold

OPEN_WINDOW = timedelta(days=7)
LINK_WINDOW = timedelta(days=3)
TITLE_SHARE = 70.0  # rapidfuzz token_set_ratio of the folded titles
ACTOR_TITLE_SHARE = 50.0  # the same when the rules found a shared actor
EVENT_SIMILARITY = 0.3  # weight shared / weight of the smaller side's names
NAME_WINDOW = timedelta(hours=24)  # names link reports of one news cycle, not of a week
MIN_SHARED = 2
NAME_LETTERS = 4  # a name is compared on its first letters: case endings differ after them
ENTITY_LOOKUPS = 6
MEMBERS_PER_KEY = 50
NAME_CANDIDATES = 30  # compared at most, the rarest names' first
PRIOR_ITEMS = 200
TEASER_CHARS = 400  # of the summary: where a report names its who and where

_TOKEN = re.compile(r"[^\W\d_][\w'’]*")
# Model designations are names too: CH-92A, FK-3, Y-20, S-400.
_DESIGNATION = re.compile(r"\b[^\W\d_a-zа-я]{1,4}-?\d{1,4}[^\W\d_a-zа-я]?\b")
_NUMBER = re.compile(r"\b\d[\d.,]*\d\b|\b\d\b")
# Capitalised for grammar, not because they name anything: words that open a sentence, and
# the days and months of the languages that capitalise them. Compared on first letters.
_GRAMMAR_WORDS = """
    the and but for with from after before over under into amid what when where why how who
    this that these those there here new two three four five six seven eight nine ten one
    first last more most some many all any not only also just still even its their his her
    monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december montag dienstag mittwoch
    donnerstag freitag samstag sonntag januar februar märz
    der die das ein eine und mit von nach bei aus zum zur auf les des une pour dans sur avec
    par après ils elle los las gli dei del nel per con dopo una uno sul
    kako šta zašto posle pred između koji koja koje nakon zbog tokom iako
    pas nga dhe por një kur
"""
_NOT_NAMES = frozenset(fold(word)[:NAME_LETTERS] for word in _GRAMMAR_WORDS.split())


ENTITY = "e:"  # what entity keys begin with (band keys begin with `t` or `b` and a digit)


def entity_keys(item: Item, actors: Iterable[str] = ()) -> frozenset[str]:
    """What an item names, as keys: `e:@actor`, `e:name` (first letters, folded) and
    `e:#number`."""
    keys = {f"e:@{actor}" for actor in actors}
    teaser = (item.summary or item.content)[:TEASER_CHARS]
    keys.update(f"e:{name}" for name in _names(item.title, teaser))
    for text, title in ((item.title, True), (teaser, False)):
        keys.update(f"e:#{n}" for n in _NUMBER.findall(text) if len(n) > 1 or title)
        keys.update(f"e:{fold(d).replace(' ', '')}" for d in _DESIGNATION.findall(text))
    return frozenset(keys)


def _names(title: str, teaser: str) -> set[str]:
    """Words in capitals (`KFOR`), and capitalised words inside a sentence. A capitalised
    word opening a sentence counts when it ends in a colon (`Vučić:`) or is capitalised
    inside a sentence elsewhere in the item. In a title in Title Case every word is
    capitalised, so only its capitals count there."""
    inside: set[str] = set()
    opening: set[str] = set()
    for text, title_case in ((title, _title_case(title)), (teaser, False)):
        for match in _TOKEN.finditer(text):
            token = match.group()
            if len(token) < 3 or not token[:1].isupper():
                continue
            name = _name_key(token)
            if token.isupper():
                inside.add(name)
            elif name in _NOT_NAMES or title_case:
                continue
            elif (
                _opens_sentence(text, match.start()) and text[match.end() : match.end() + 1] != ":"
            ):
                opening.add(name)
            else:
                inside.add(name)
    if not teaser:  # a bare headline has too little to be choosy: its opening word counts
        return inside | opening
    return inside | {name for name in opening if name in inside}


@functools.lru_cache(maxsize=1 << 16)
def _name_key(token: str) -> str:
    """A capitalised word as a name is compared: folded, without apostrophes, its first
    NAME_LETTERS letters. (Cached: the news names the same people and places all day.)"""
    return fold(token).replace("'", "").replace("’", "")[:NAME_LETTERS]


def _title_case(title: str) -> bool:
    words = _TOKEN.findall(title)
    return sum(1 for w in words if w[:1].isupper()) > 0.6 * max(len(words), 1)


def _opens_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \"'«»„“”‘’(")
    return not before or before[-1] in ".:!?;"


@dataclass(frozen=True, slots=True, eq=False)  # one object per item: compared by identity
class Member:
    """An item already in a story: its story, its text, the actors the rules found in it
    and what it names (`entity_keys`)."""

    story: str
    text: Text
    actors: frozenset[str]
    entities: frozenset[str] = frozenset()
    # worked out once: each member is compared with many arrivals
    numbers: frozenset[str] = field(init=False, repr=False, compare=False)
    moment: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", _numbers(self.entities))
        object.__setattr__(self, "moment", _microseconds(self.text.when))


class StoryLookup(Protocol):
    """What assignment asks of the stored items (the store, or memory for `monitor cluster`)."""

    def members(self, keys: Collection[str]) -> dict[str, list[Member]]:
        """The items of open stories among the latest MEMBERS_PER_KEY carrying each of these
        keys (band keys and entity keys), newest first."""
        ...

    def entity_counts(self, keys: Sequence[str]) -> dict[str, int]:
        """How many stored items carry each of these entity keys."""
        ...

    def item_count(self) -> int: ...


@dataclass(frozen=True)
class Arrival:
    """A new item as assignment sees it."""

    identity: Identity
    actors: frozenset[str]
    entities: frozenset[str]


def related(a: Text, a_actors: frozenset[str], b: Member) -> bool:
    """The wording test (module docstring) on titles. A near-duplicate of `b` never gets
    here: identity (the store's lookup and the cycle's index) compared the new item with the
    same latest holders of its band keys and made it another copy of `b`."""
    if a.when and b.moment is not None and abs(_microseconds(a.when) - b.moment) > _LINK_US:
        return False
    if not a.title or not b.text.title:
        return False
    if a.title_numbers != b.text.title_numbers:
        return False
    share = fuzz.token_set_ratio(" ".join(a.title), " ".join(b.text.title))
    if share >= TITLE_SHARE and min(len(a.title), len(b.text.title)) >= 4:
        return True
    return bool(a_actors & b.actors) and share >= ACTOR_TITLE_SHARE


@dataclass
class _Weights:
    """Inverse document frequency of entity keys over the stored items and the whole cycle's
    new items, worked out once per cycle: an early arrival weighs names by what the cycle
    brings too (in a first cycle nothing is stored yet), and a member's weight, compared with
    many arrivals, is summed once."""

    counts: dict[str, int]  # items carrying each key, stored and of this cycle
    total: int
    _weight: dict[str, float] = field(default_factory=dict, repr=False)
    _base: float = 0.0  # the weight of a key no item is known to carry

    def __post_init__(self) -> None:
        # PRIOR_ITEMS items that named nothing stand in for a young database's missing
        # history: with few items stored, a name seen once is not yet a common name
        self._base = math.log(self.total + PRIOR_ITEMS)
        self._weight = {k: self._base - math.log(c + 1) for k, c in self.counts.items()}

    def of_all(self, keys: Iterable[str]) -> float:
        # fsum: the same weight whatever order a set hands out its keys
        weight, base = self._weight, self._base
        return math.fsum([weight.get(k, base) for k in keys])


@dataclass
class Assigner:
    """Stories for one cycle's new items, fed by one batched lookup for the cycle."""

    by_key: dict[str, list[Member]]
    weights: _Weights
    stored_counts: dict[str, int]  # items in the store carrying each key
    now: datetime | None = None  # when an undated new item is taken to be from
    _member_weight: dict[str, float] = field(default_factory=dict, repr=False)

    @classmethod
    def for_cycle(
        cls,
        arrivals: Sequence[Arrival],
        lookup: StoryLookup,
        now: datetime | None = None,
    ) -> Assigner:
        entity = sorted({k for a in arrivals for k in a.entities})
        stored = lookup.entity_counts(entity) if entity else {}
        counts = dict(stored)
        for arrival in arrivals:
            for key in arrival.entities:
                counts[key] = counts.get(key, 0) + 1
        weights = _Weights(counts, lookup.item_count() + len(arrivals))
        keys = {k for a in arrivals for k in a.identity.near}
        for arrival in arrivals:
            held = [k for k in arrival.entities if stored.get(k)]
            keys.update(sorted(held, key=lambda k: (counts[k], k))[:ENTITY_LOOKUPS])
        found = lookup.members(keys) if keys else {}
        # oldest first, as the cycle's own items are appended after them
        return cls({k: v[::-1] for k, v in found.items()}, weights, stored, now)

    def assign(self, arrival: Arrival) -> str:
        """The story of this new item (its own id for a new story); remembered for the
        cycle's later items."""
        identity = arrival.identity
        story = self._by_wording(arrival) or self._by_names(arrival) or identity.text.id
        member = Member(story, identity.text, arrival.actors, arrival.entities)
        for key in (*identity.near, *arrival.entities):
            self.by_key.setdefault(key, []).append(member)
        return story

    def _by_wording(self, arrival: Arrival) -> str | None:
        tried: set[Member] = set()  # items alike in wording share several bands
        text, actors, by_key = arrival.identity.text, arrival.actors, self.by_key
        for key in arrival.identity.near:
            for member in reversed(by_key.get(key, _NONE)[-MEMBERS_PER_KEY:]):
                if member not in tried:
                    tried.add(member)
                    if related(text, actors, member):
                        return member.story
        return None

    def _by_names(self, arrival: Arrival) -> str | None:
        """The story of the stored item most like this one on what both name (module
        docstring), among the latest holders of its rarest names."""
        counts, stored, by_key = self.weights.counts, self.stored_counts, self.by_key
        # the rarest names only, and their latest items: what the store lookup gives
        seen = [k for k in arrival.entities if stored.get(k) or k in by_key]  # held before
        keys = sorted(seen, key=lambda k: (counts[k], k))[:ENTITY_LOOKUPS]
        if not keys:
            return None
        ours = _Side.of(arrival, self.now)
        best, best_score = None, EVENT_SIMILARITY
        tried: set[Member] = set()
        for key in keys:
            for member in reversed(by_key.get(key, _NONE)[-MEMBERS_PER_KEY:]):
                if member in tried:
                    continue
                if len(tried) == NAME_CANDIDATES:
                    return best
                tried.add(member)
                shared = ours.shared_with(member)
                if shared:
                    score = self._similarity(ours, member, shared)
                    if score >= best_score:
                        best, best_score = member.story, score
        return best

    def _similarity(self, ours: _Side, member: Member, shared: frozenset[str]) -> float:
        """The weight of what both name over the weight of what the smaller names."""
        if ours.weight is None:  # once per arrival, and only when a candidate gets here
            ours.weight = self.weights.of_all(ours.keys)
        theirs = self._member_weight.get(member.text.id)
        if theirs is None:
            theirs = self._member_weight[member.text.id] = self.weights.of_all(member.entities)
        smaller = min(ours.weight, theirs)
        return self.weights.of_all(shared) / smaller if smaller else 0.0


def _things(keys: frozenset[str]) -> int:
    """How many different things these keys name: an actor whose id begins like one of the
    names (`@kfor` and `KFOR`, `@vucic` and `Vučić`) is that name, not a second thing."""
    names = {k[2:] for k in keys if not k.startswith("e:@")}
    actors = {k[3:] for k in keys if k.startswith("e:@")}
    return len(names) + sum(1 for a in actors if a[:NAME_LETTERS] not in names)


def _numbers(keys: frozenset[str]) -> frozenset[str]:
    return frozenset({k for k in keys if k[2:3] == "#"})


_NONE: list[Member] = []
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAME_WINDOW_US = NAME_WINDOW // timedelta(microseconds=1)
_LINK_US = LINK_WINDOW // timedelta(microseconds=1)


def _microseconds(when: datetime | None) -> int | None:
    """A moment as an exact integer, for the cheap window test of many comparisons."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(microseconds=1)


@dataclass
class _Side:
    """An arriving item's keys with what is worked out once for all its comparisons."""

    keys: frozenset[str]
    source: str
    moment: int | None
    numbers: frozenset[str]
    has_actors: bool
    weight: float | None = None  # of all its keys, on first need

    @classmethod
    def of(cls, arrival: Arrival, now: datetime | None) -> _Side:
        text = arrival.identity.text
        keys = arrival.entities
        moment = _microseconds(text.when or now)
        return cls(keys, text.source, moment, _numbers(keys), bool(arrival.actors))

    def shared_with(self, member: Member) -> frozenset[str]:
        """What this item and `member` both name, when that can link them: two outlets,
        within NAME_WINDOW, at least MIN_SHARED things, no conflicting numbers; else
        nothing."""
        if self.source == member.text.source:
            return frozenset()  # an outlet's next report on the same names is its own news
        if (
            self.moment is not None
            and member.moment is not None
            and abs(self.moment - member.moment) > _NAME_WINDOW_US
        ):
            return frozenset()
        shared = self.keys & member.entities
        if len(shared) < MIN_SHARED:
            return frozenset()
        # an actor key in common needs actors on both sides; without, each key is a thing
        if self.has_actors and member.actors and _things(shared) < MIN_SHARED:
            return frozenset()
        if self.numbers and member.numbers and not self.numbers & member.numbers:
            return frozenset()  # counts, dates, rounds are facts
        return shared
