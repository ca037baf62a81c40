"""What analysts' verdicts are for: `rules backtest` replays stored items through the rule
files as they are now and says, per rule, which hits an edit gains and loses and how precise
the rule is on the items that carry a verdict; `rules suggest` proposes the words that tell a
rule's "not relevant" items from its relevant ones, as an `AND NOT (...)` to paste.

Both only read the database: nothing a digest or an alert sees changes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from monitor.match import Engine
from monitor.models import Item
from monitor.normalise import fold
from monitor.rules import RuleSet

EXAMPLES = 3  # items shown per rule for gains and for losses
_WORD_RE = re.compile(r"[^\W\d_]{3,}")  # words of three letters or more, no digits


@dataclass(frozen=True)
class Example:
    item_id: str
    title: str
    source: str


@dataclass(frozen=True)
class Precision:
    """A rule on the items judged for it: relevant / judged among those it hits."""

    judged: int  # items with a verdict for this rule
    relevant: int  # of them marked relevant
    hit_now: int  # judged items the rule on disk still hits
    relevant_now: int  # of those, marked relevant

    @property
    def before(self) -> float | None:
        return self.relevant / self.judged if self.judged else None

    @property
    def now(self) -> float | None:
        return self.relevant_now / self.hit_now if self.hit_now else None


@dataclass(frozen=True)
class RuleChange:
    rule: str
    stored: int  # hits stored for items in the window
    replayed: int  # hits the rule on disk gives on the same items
    gained: tuple[Example, ...]  # every gained item (the report shows the first few)
    lost: tuple[Example, ...]
    precision: Precision | None = None
    on_disk: bool = True  # False: the rule's file no longer defines it

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost)


@dataclass(frozen=True)
class Backtest:
    items: int  # items replayed from the window
    changes: tuple[RuleChange, ...]
    judged_items: int = 0  # items outside the window replayed for their verdicts


def backtest(
    ruleset: RuleSet,
    window: Iterable[Item],
    stored: set[tuple[str, str]],
    verdicts: dict[tuple[str, str], str],
    judged: Iterable[Item] = (),
    max_chars: int | None = None,
) -> Backtest:
    """Replay `window` (items in the time window, `stored` their stored (item, rule) hits)
    and `judged` (items that carry verdicts; those already in the window are skipped)
    through `ruleset`. Items stream through: what is kept is counts, the changed items and
    the judged items' hits, not the items."""
    engine = Engine(ruleset) if max_chars is None else Engine(ruleset, max_chars=max_chars)
    by_item: dict[str, set[str]] = {}
    for item_id, rule in stored:
        by_item.setdefault(item_id, set()).add(rule)
    judged_ids = {item for item, _ in verdicts}
    tally = _Tally()
    seen: set[str] = set()
    for item in window:
        seen.add(item.id)
        now = {hit.rule for hit in engine.match(item)}
        tally.add(item, by_item.get(item.id, set()), now, item.id in judged_ids)
    older = 0
    for item in judged:
        if item.id not in seen:
            older += 1
            tally.judged_hits.update((item.id, hit.rule) for hit in engine.match(item))
    on_disk = {rule.id for rule in ruleset.rules}
    rules = on_disk | set(tally.stored) | set(tally.now) | {rule for _, rule in verdicts}
    changes = [
        RuleChange(
            rule=rule,
            stored=tally.stored[rule],
            replayed=tally.now[rule],
            gained=tuple(tally.gained.get(rule, ())),
            lost=tuple(tally.lost.get(rule, ())),
            precision=_precision(rule, verdicts, tally.judged_hits),
            on_disk=rule in on_disk,
        )
        for rule in sorted(rules, key=lambda r: (r not in on_disk, r))
    ]
    return Backtest(len(seen), tuple(changes), older)


@dataclass
class _Tally:
    stored: Counter[str] = field(default_factory=Counter)
    now: Counter[str] = field(default_factory=Counter)
    gained: dict[str, list[Example]] = field(default_factory=dict)
    lost: dict[str, list[Example]] = field(default_factory=dict)
    judged_hits: set[tuple[str, str]] = field(default_factory=set)  # (item, rule) now

    def add(self, item: Item, before: set[str], now: set[str], judged: bool) -> None:
        self.stored.update(before)
        self.now.update(now)
        example = Example(item.id, item.title, item.source)
        for rule in now - before:
            self.gained.setdefault(rule, []).append(example)
        for rule in before - now:
            self.lost.setdefault(rule, []).append(example)
        if judged:
            self.judged_hits.update((item.id, rule) for rule in now)


def _precision(
    rule: str, verdicts: dict[tuple[str, str], str], hits_now: set[tuple[str, str]]
) -> Precision | None:
    judged = {item: v for (item, r), v in verdicts.items() if r == rule}
    if not judged:
        return None
    still = [item for item in judged if (item, rule) in hits_now]
    return Precision(
        judged=len(judged),
        relevant=sum(v == "relevant" for v in judged.values()),
        hit_now=len(still),
        relevant_now=sum(judged[item] == "relevant" for item in still),
    )


# --- suggest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    word: str  # folded, as the rules match it
    in_bad: int  # not-relevant items containing it
    in_good: int  # relevant items containing it


@dataclass(frozen=True)
class Suggestion:
    rule: str
    bad: int  # items marked not relevant
    good: int  # items marked relevant
    terms: tuple[Term, ...]  # the exclusion, in the order chosen
    dropped_bad: int  # not-relevant items the exclusion removes
    dropped_good: int  # relevant items it would remove too
    ranked: tuple[Term, ...] = field(default=())  # the best-separating words, for reading

    @property
    def clause(self) -> str:
        return "AND NOT (" + " OR ".join(_quoted(t.word) for t in self.terms) + ")"


def suggest(
    rule: str,
    judged: Sequence[tuple[Item, str]],
    own_terms: set[str] = frozenset(),  # type: ignore[assignment]
    max_terms: int = 8,
) -> Suggestion:
    """Words that most separate the rule's not-relevant items from its relevant ones.

    Each word is scored by the share of not-relevant items it occurs in minus the share of
    relevant ones; the exclusion is then chosen greedily, each next word the one that removes
    the most not-relevant items not yet removed while removing no relevant item (the rule's
    own terms, which every hit contains, are never proposed)."""
    words = {item.id: _words(item) - own_terms for item, _ in judged}
    bad = [item.id for item, v in judged if v == "not relevant"]
    good = [item.id for item, v in judged if v == "relevant"]
    in_bad = Counter(w for i in bad for w in words[i])
    in_good = Counter(w for i in good for w in words[i])
    score = {w: in_bad[w] / len(bad) - in_good[w] / max(len(good), 1) for w in in_bad if in_bad[w]}
    ranked = sorted(score, key=lambda w: (-score[w], -in_bad[w], w))
    chosen: list[str] = []
    left = set(bad)
    while left and len(chosen) < max_terms:
        clean = [w for w in ranked if w not in chosen and not in_good[w]]
        best = max(clean, key=lambda w: sum(w in words[i] for i in left), default=None)
        if best is None or not any(best in words[i] for i in left):
            break
        chosen.append(best)
        left = {i for i in left if best not in words[i]}
    return Suggestion(
        rule=rule,
        bad=len(bad),
        good=len(good),
        terms=tuple(Term(w, in_bad[w], in_good[w]) for w in chosen),
        dropped_bad=len(bad) - len(left),
        dropped_good=sum(any(w in words[i] for w in chosen) for i in good),
        ranked=tuple(Term(w, in_bad[w], in_good[w]) for w in ranked[:15]),
    )


def _words(item: Item) -> set[str]:
    return set(_WORD_RE.findall(fold(f"{item.title} {item.summary} {item.content}")))


def evidence_words(engine: Engine, items: Iterable[Item], rule: str) -> set[str]:
    """The folded words of what the rule itself matched in these items."""
    found: set[str] = set()
    for item in items:
        for hit in engine.match(item):
            if hit.rule == rule:
                found.update(_WORD_RE.findall(fold(" ".join(hit.terms))))
    return found


def _quoted(word: str) -> str:
    return word if word.isalpha() else f'"{word}"'
