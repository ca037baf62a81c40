"""Match items against a rule set. Pure: no I/O, the same item and rules give the same hits.

One Aho-Corasick automaton holds every term of every rule and actor, folded. Each field of an
item is folded once and scanned once; only the rules that reference a term found there are
then evaluated, so the cost per item barely grows with the number of rules.

A hostile or merely huge item must not stall the service, so the work per item is bounded:
each field is matched on its first `max_chars` characters (cut at a word boundary), NEAR and
actor context are decided by a binary search over sorted positions (never every occurrence
against every other), and a hit keeps at most MAX_EVIDENCE pieces of evidence.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import ahocorasick

from monitor.errors import RuleError
from monitor.models import FIELDS, Evidence, Hit, Item, Relation
from monitor.normalise import fold, fold_with_offsets
from monitor.query import (
    NEGATION,
    REPORTED,
    ActorRef,
    And,
    AtLeast,
    Near,
    Node,
    Not,
    Or,
    RelationRef,
    Term,
    walk,
)
from monitor.relations import Found, Mention, extract
from monitor.rules import Actor, Rule, RuleSet, load_rules, rule_files

log = logging.getLogger(__name__)
_WORD_RE = re.compile(r"\w+")
MAX_CHARS = 100_000  # characters of each field matched (the [fetch] max_text default)
MAX_EVIDENCE = 100  # pieces of evidence kept per hit: every term once, then the first ones


def clip(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, at a word boundary when there is one
    near the cut (so that "Kosovar" never becomes a "Kosovo")."""
    if len(text) <= max_chars:
        return text
    cut = max(text.rfind(" ", max(0, max_chars - 200), max_chars), 0)
    return text[: cut or max_chars]


def clip_item(item: Item, max_chars: int) -> Item:
    """The item with every field cut to `max_chars` (what is matched and stored)."""
    fields = {name: clip(item.field_text(name), max_chars) for name in FIELDS}
    if all(fields[name] is item.field_text(name) for name in FIELDS):
        return item
    return replace(item, **fields)


class _Occ(NamedTuple):
    """A term occurrence in folded text. (A tuple: an item makes hundreds, and a tuple is
    made several times faster than a frozen dataclass.)"""

    field: str
    start: int
    end: int
    term: str
    actor: str | None = None


@dataclass
class _OrPlan:
    """An OR's children split for evaluation: its terms by pattern id, so that only those
    the scan found are looked at (topic lists are ORs of hundreds of words in 23 languages,
    of which an item holds a handful), and the other children (actors, sub-expressions),
    each with the patterns one of which it needs (`Engine.support`)."""

    by_pid: dict[int, list[Node]]
    others: list[tuple[Node, frozenset[int] | None]]
    # the others by the patterns of their support (index into `others`), and those that
    # can hold on what is absent: an item's few found patterns pick the few worth a look
    others_by_pid: dict[int, list[int]] = field(default_factory=dict)
    always: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for index, (_, need) in enumerate(self.others):
            if need is None:
                self.always.append(index)
            for pid in need or ():
                self.others_by_pid.setdefault(pid, []).append(index)


@dataclass
class _Pattern:
    """Automaton payload: the pattern ids for an exact and a prefix form of one string."""

    exact: int | None = None
    prefix: int | None = None


class Engine:
    """A compiled rule set. Build once per rule reload, then call `match` per item."""

    def __init__(self, ruleset: RuleSet, max_chars: int = MAX_CHARS) -> None:
        self.ruleset = ruleset
        self.max_chars = max_chars
        self.rules = list(ruleset.rules)
        self._ids: dict[tuple[str, bool], int] = {}
        self._raw: list[str] = []
        self._triggers: dict[int, set[int]] = {}  # pattern id -> rules it can start
        self._needs: list[list[frozenset[int]]] = []  # per rule: groups that must all occur
        self._actor_aliases: dict[str, list[int]] = {}
        self._actor_alias_sets: dict[str, frozenset[int]] = {}
        self._or_plans: dict[int, _OrPlan] = {}  # id(Or node) -> plan; nodes live as long
        self._supports: dict[int, frozenset[int] | None] = {}  # id(node) -> Engine.support
        # id(node) -> one number for all equal sub-expressions of the rules: an item's result
        # for one is its result for the others (rules repeat their actor and topic lists)
        self._shared: dict[int, int] = {}
        # relations.py: pattern id -> (action, voice) of verbs and (cue, "") of cues
        self._verbs: dict[int, list[tuple[str, str]]] = {}
        self._alias_actors: dict[int, list[str]] = {}
        self._symmetric = frozenset(a.id for a in ruleset.actions.values() if a.symmetric)
        self._automaton = ahocorasick.Automaton()
        self._build()

    # -- compile ---------------------------------------------------------------------------

    def _pid(self, term: Term) -> int:
        key = (term.pattern, term.prefix)
        if key not in self._ids:
            self._ids[key] = len(self._raw)
            self._raw.append(term.raw)
        return self._ids[key]

    def _group_pids(self, group: Group) -> frozenset[int]:
        pids: set[int] = set()
        for leaf in group[1]:
            if isinstance(leaf, Term):
                pids.add(self._pid(leaf))
            else:
                pids.update(self._actor_aliases.get(leaf.actor, []))
        return frozenset(pids)

    def _build(self) -> None:
        for actor in self.ruleset.actors.values():
            self._actor_aliases[actor.id] = [self._pid(t) for t in actor.aliases]
            self._actor_alias_sets[actor.id] = frozenset(self._actor_aliases[actor.id])
            for term in (*actor.context, *actor.exclude):
                self._pid(term)
            for pid in self._actor_aliases[actor.id]:
                self._alias_actors.setdefault(pid, []).append(actor.id)
        for action in self.ruleset.actions.values():
            for voice, terms in (("active", action.active), ("passive", action.passive)):
                for term in terms:
                    self._verbs.setdefault(self._pid(term), []).append((action.id, voice))
        shared: dict[Node, int] = {}
        for index, rule in enumerate(self.rules):
            for node, _ in walk(rule.query):
                if isinstance(node, Term):
                    self._pid(node)
                else:  # equal sub-expressions (an actor list, a topic list) share one number
                    self._shared[id(node)] = shared.setdefault(node, len(shared))
            groups = requirements(rule.query)
            self._needs.append([self._group_pids(g) for g in groups])
            for pid in self._group_pids(min(groups, key=lambda g: g[0])):
                self._triggers.setdefault(pid, set()).add(index)
        payloads: dict[str, _Pattern] = {}
        for (pattern, prefix), pid in self._ids.items():
            slot = payloads.setdefault(pattern, _Pattern())
            if prefix:
                slot.prefix = pid
            else:
                slot.exact = pid
        for pattern, slot in payloads.items():
            self._automaton.add_word(pattern, (len(pattern), slot.exact, slot.prefix))
        if payloads:
            self._automaton.make_automaton()

    # -- match -----------------------------------------------------------------------------

    def match(self, item: Item, max_chars: int | None = None) -> list[Hit]:
        """Every rule the item satisfies, in rule order, each with the evidence for it;
        each field is matched on its first `max_chars` characters (default: the engine's)."""
        return self.match_counting(item, max_chars)[0]

    def match_counting(self, item: Item, max_chars: int | None = None) -> tuple[list[Hit], int]:
        """`match`, and the number of elementary steps it took (occurrences found, visited
        and looked up): what the engine's bounds are about, counted rather than timed."""
        if not self._raw:
            return [], 0
        ctx = _Context(self, item, max_chars or self.max_chars)
        return self._hits(ctx), ctx.steps

    def _hits(self, ctx: _Context) -> list[Hit]:
        hits = []
        for index in self._candidates(ctx):
            rule = self.rules[index]
            evidence = ctx.evaluate(rule.query)
            if evidence is not None:
                hits.append(ctx.hit(rule, evidence))
        return hits

    def match_with_relations(
        self, item: Item, max_chars: int | None = None
    ) -> tuple[list[Hit], list[Relation]]:
        """`match`, and every actor – action – actor relation in the item's sentences."""
        if not self._raw:
            return [], []
        ctx = _Context(self, item, max_chars or self.max_chars)
        return self._hits(ctx), [f.relation for f in ctx.relations()]

    def relations(self, item: Item) -> list[Relation]:
        return self.match_with_relations(item)[1]

    def _candidates(self, ctx: _Context) -> list[int]:
        """Rules worth evaluating: indexed under a term found, and no required part absent."""
        triggered: set[int] = set()
        for pid in ctx.found:
            triggered |= self._triggers.get(pid, set())
        found = ctx.found.keys()
        return [
            index
            for index in sorted(triggered)
            if not any(found.isdisjoint(group) for group in self._needs[index])
        ]

    def or_plan(self, node: Or) -> _OrPlan:
        """The evaluation plan of an OR node, made on first use."""
        plan = self._or_plans.get(id(node))
        if plan is None:
            by_pid: dict[int, list[Node]] = {}
            others: list[Node] = []
            for child in node.children:
                pid = (
                    self._ids.get((child.pattern, child.prefix))
                    if isinstance(child, Term)
                    else None
                )
                if pid is None:
                    others.append((child, self.support(child)))
                else:
                    by_pid.setdefault(pid, []).append(child)
            plan = self._or_plans[id(node)] = _OrPlan(by_pid, others)
        return plan

    def support(self, node: Node) -> frozenset[int] | None:
        """Patterns one of which must occur for `node` to hold (None: it can hold on what is
        absent, as a NOT does). A sub-tree none of whose support the scan found is skipped
        unevaluated: it cannot hold, so the result is the same."""
        key = id(node)
        if key not in self._supports:
            self._supports[key] = self._support_of(node)
        return self._supports[key]

    def _support_of(self, node: Node) -> frozenset[int] | None:
        match node:
            case Term():
                pid = self._ids.get((node.pattern, node.prefix))
                return frozenset() if pid is None else frozenset([pid])
            case ActorRef():
                return self._actor_alias_sets.get(node.actor, frozenset())
            case RelationRef():  # one of the action's verbs must occur
                found = (self._ids.get((v.pattern, v.prefix)) for v in node.verbs)
                return frozenset(pid for pid in found if pid is not None)
            case And() | Near():
                parts = node.children if isinstance(node, And) else [node.left, node.right]
                needed = [s for s in map(self.support, parts) if s is not None]
                return min(needed, key=len) if needed else None
            case Or():
                children = [self.support(c) for c in node.children]
                if any(s is None for s in children):
                    return None
                return frozenset().union(*children)  # type: ignore[arg-type]
            case AtLeast():
                children = [self.support(c) for c in node.children]
                if sum(s is None for s in children) >= node.count:
                    return None
                return frozenset().union(*(s for s in children if s is not None))
            case Not():
                return None
        raise TypeError(node)

    def evaluated(self, item: Item) -> int:
        """How many rules `match` would evaluate for this item (for benchmarks and tuning)."""
        return len(self._candidates(_Context(self, item, self.max_chars))) if self._raw else 0

    def scan(self, folded: str, field_name: str) -> list[tuple[int, _Occ]]:
        """All whole-word (or word-prefix) occurrences of known patterns in folded text."""
        found = []
        size = len(folded)
        for end, (length, exact, prefix) in self._automaton.iter(folded):
            start = end - length + 1
            if start > 0 and folded[start - 1].isalnum():
                continue
            after = end + 1
            if exact is not None and (after >= size or not folded[after].isalnum()):
                found.append((exact, _Occ(field_name, start, after, self._raw[exact])))
            if prefix is not None:
                while after < size and folded[after].isalnum():
                    after += 1
                found.append((prefix, _Occ(field_name, start, after, self._raw[prefix])))
        return found


Leaf = Term | ActorRef
Group = tuple[float, list[Leaf]]  # leaves of which one must occur, and a guess at its cost


def _cost(leaf: Leaf) -> float:
    """A guess at how often a leaf occurs: actors and names (written capitalised) are rare,
    phrases of common words less so, short words and prefixes common. Only used to pick which
    requirement a rule is indexed under."""
    if isinstance(leaf, ActorRef):
        return 0.2
    name = any(ch.isupper() for ch in leaf.raw)
    if " " in leaf.pattern:
        return 0.3 if name else 0.6
    if leaf.prefix:
        return 1.0 if name else 2.0
    if name:
        return 0.4
    return 1.0 if len(leaf.pattern) >= 7 else 1.5


def _union(groups: list[Group]) -> Group:
    return sum(g[0] for g in groups), [leaf for g in groups for leaf in g[1]]


def requirements(node: Node) -> list[Group]:
    """Groups of leaves such that, for `node` to hold, every group has a leaf in the item.

    `@kfor AND (troops OR police)` needs {kfor's aliases} and {troops, police}. The engine
    indexes a rule under its cheapest group and checks the others with set operations before
    evaluating it, so a rule costs nothing on items that lack any part it needs."""
    match node:
        case Term() | ActorRef():
            return [(_cost(node), [node])]
        case RelationRef():
            parties = [ActorRef(a) for a in (node.subject, node.object) if a]
            return [*((_cost(p), [p]) for p in parties), (1.0, list(node.verbs))]
        case Not():
            return []
        case And():
            return [g for child in node.children for g in requirements(child)]
        case Near():
            return requirements(node.left) + requirements(node.right)
        case Or():
            return [_union([min(r, key=lambda g: g[0]) for r in map(requirements, node.children)])]
        case AtLeast():
            # Of the alternatives that need presence, at least m hold (the others can hold on
            # absence), so any len - m + 1 of them include one that holds: take the cheapest.
            needed = [min(r, key=lambda g: g[0]) for r in map(requirements, node.children) if r]
            m = node.count - (len(node.children) - len(needed))
            return [_union(sorted(needed, key=lambda g: g[0])[: len(needed) - m + 1])]
    raise TypeError(node)


_FEW_PAIRS = 64  # NEAR compares every pair of occurrences up to this many pairs


class _Positions:
    """Occurrences of one field sorted by start, ready for "how near is the nearest one to
    this occurrence" in O(log n): the first one starting after it, and among those starting
    before it, the one ending latest (a running maximum)."""

    def __init__(self, occs: list[_Occ], ctx: _Context) -> None:
        self.occs = sorted(occs, key=lambda o: o.start)
        self.starts = [o.start for o in self.occs]
        field_name = self.occs[0].field if self.occs else ""
        self.first_word = [ctx.word_index(field_name, o.start) for o in self.occs]
        self.latest_last_word: list[int] = []  # max word index of o.end - 1 so far
        latest = -1
        for o in self.occs:
            latest = max(latest, ctx.word_index(field_name, o.end - 1))
            self.latest_last_word.append(latest)
        ctx.steps += len(self.occs)

    def nearest(self, occ: _Occ, ctx: _Context, same_start: bool) -> int | None:
        """Words between `occ` and the nearest occurrence here (as `_Context.distance`
        counts them), None when there is none; `same_start` says whether an occurrence
        starting where `occ` starts counts (for NEAR) or is `occ` itself (actor context)."""
        ctx.steps += 1
        before = bisect.bisect_left(self.starts, occ.start)
        after = before if same_start else bisect.bisect_right(self.starts, occ.start)
        best: int | None = None
        if after < len(self.occs):  # starts at or after occ: occ is the earlier one
            best = max(0, self.first_word[after] - ctx.word_index(occ.field, occ.end - 1))
        if before > 0:  # starts before occ: the one reaching furthest is the nearest
            gap = max(0, ctx.word_index(occ.field, occ.start) - self.latest_last_word[before - 1])
            best = gap if best is None else min(best, gap)
        return best


@dataclass
class _Context:
    """One item under evaluation: its occurrences, found once, and lazily derived facts."""

    engine: Engine
    item: Item
    max_chars: int = MAX_CHARS
    found: dict[int, list[_Occ]] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # each field as matched (clipped)
    steps: int = 0  # elementary steps taken, see Engine.match_counting
    _words: dict[str, list[int]] = field(default_factory=dict)
    _actors: dict[str, list[_Occ]] = field(default_factory=dict)
    _actor_words: dict[str, tuple[list[Term], list[Term]]] = field(default_factory=dict)
    _memo: dict[int, list[_Occ] | None] = field(default_factory=dict)  # Engine._shared
    _evidence_of: dict[_Occ, Evidence] = field(default_factory=dict)  # rules share them
    _verb_pids: list[int] | None = None  # of the patterns found, the verbs and cues
    _actor_ids: list[str] = field(default_factory=list)  # actors with an alias found
    _origins: dict[str, list[int]] = field(default_factory=dict)
    _positions: dict[tuple[str, str, bool], _Positions] = field(default_factory=dict)
    _relations: list[Found] | None = None

    def __post_init__(self) -> None:
        for name in FIELDS:
            text = clip(self.item.field_text(name), self.max_chars)
            if not text:
                continue
            folded = fold(text)
            self.texts[name] = text
            self.folded[name] = folded
            for pid, occ in self.engine.scan(folded, name):
                self.found.setdefault(pid, []).append(occ)
                self.steps += 1

    def word_index(self, field_name: str, position: int) -> int:
        starts = self._words.get(field_name)
        if starts is None:
            starts = [m.start() for m in _WORD_RE.finditer(self.folded[field_name])]
            self._words[field_name] = starts
        return bisect.bisect_right(starts, position) - 1

    def distance(self, a: _Occ, b: _Occ) -> int:
        """Words from the end of the earlier occurrence to the start of the later one
        (1 for neighbours), so a phrase's own length never counts."""
        if a.start > b.start:
            a, b = b, a
        return max(0, self.word_index(b.field, b.start) - self.word_index(a.field, a.end - 1))

    def term_occs(self, term: Term) -> list[_Occ]:
        pid = self.engine._ids.get((term.pattern, term.prefix))
        occs = self.found.get(pid, []) if pid is not None else []
        self.steps += len(occs)
        return [o for o in occs if o.field in term.fields]

    def actor_occs(self, actor_id: str) -> list[_Occ]:
        if actor_id not in self._actors:
            actor = self.engine.ruleset.actors[actor_id]
            occs = []
            # Walk the shorter side: a country has hundreds of aliases (every language and
            # case form), an item a few dozen patterns found.
            aliases, found = self.engine._actor_alias_sets[actor_id], self.found
            if len(found) < len(aliases):
                pids = [pid for pid in found if pid in aliases]
            else:
                pids = [pid for pid in self.engine._actor_aliases[actor_id] if pid in found]
            for pid in pids:
                for occ in found[pid]:
                    if self._actor_fits(actor, occ):
                        occs.append(_Occ(occ.field, occ.start, occ.end, occ.term, actor_id))
            self._actors[actor_id] = occs
        return self._actors[actor_id]

    def _actor_fits(self, actor: Actor, occ: _Occ) -> bool:
        """Disambiguation: required context near the alias, and no excluded word near it.
        Only the context and exclude words the scan found are looked at."""
        context, exclude = self._present(actor)
        if actor.context and not any(self._near(t, occ, actor.window) for t in context):
            return False
        return not any(self._near(t, occ, actor.window) for t in exclude)

    def _present(self, actor: Actor) -> tuple[list[Term], list[Term]]:
        """The actor's context and exclude terms whose patterns the scan found."""
        present = self._actor_words.get(actor.id)
        if present is None:
            ids, found = self.engine._ids, self.found
            present = self._actor_words[actor.id] = (
                [t for t in actor.context if ids.get((t.pattern, t.prefix)) in found],
                [t for t in actor.exclude if ids.get((t.pattern, t.prefix)) in found],
            )
        return present

    def _near(self, term: Term, occ: _Occ, window: int) -> bool:
        """Whether another occurrence of `term` stands within `window` words of `occ`."""
        key = (f"{term.pattern}|{term.prefix}", occ.field, True)
        if key not in self._positions:
            same_field = [o for o in self.term_occs(term) if o.field == occ.field]
            self._positions[key] = _Positions(same_field, self)
        gap = self._positions[key].nearest(occ, self, same_start=False)
        return gap is not None and gap <= window

    def relations(self) -> list[Found]:
        """Every relation in the item (relations.py), found once, on first use."""
        if self._relations is None:
            self._relations = []
            for name in self.folded:
                mentions = self._mentions(name)
                self.steps += len(mentions)
                text, folded = self.texts[name], self.folded[name]
                origin = None if text.isascii() else self._origin(name)
                self._relations += extract(
                    name, text, folded, origin, mentions, self.engine._symmetric
                )
        return self._relations

    def _origin(self, name: str) -> list[int]:
        if name not in self._origins:
            self._origins[name] = fold_with_offsets(self.texts[name])[1]
        return self._origins[name]

    def _mentions(self, name: str) -> list[Mention]:
        """Actors (past their context checks), verbs and cues the scan found in a field."""
        engine, mentions = self.engine, []
        if self._verb_pids is None:
            self._verb_pids = [pid for pid in self.found if pid in engine._verbs]
            alias_actors = engine._alias_actors
            self._actor_ids = sorted({a for pid in self.found for a in alias_actors.get(pid, ())})
        if not self._verb_pids or len(self._actor_ids) < 2:  # a relation joins two actors
            return []
        verb = False
        for pid in self._verb_pids:
            for occ in self.found[pid]:
                if occ.field != name:
                    continue
                for label, voice in engine._verbs[pid]:
                    kind = "cue" if label in (NEGATION, REPORTED) else "verb"
                    verb = verb or kind == "verb"
                    mentions.append(Mention(occ.start, occ.end, label, kind, voice, occ.term))
        if not verb:  # no relation without a verb in this field: its actors need no look
            return []
        for actor_id in self._actor_ids:
            mentions += [
                Mention(o.start, o.end, actor_id, "actor", term=o.term)
                for o in self.actor_occs(actor_id)
                if o.field == name
            ]
        return mentions

    def evaluate(self, node: Node) -> list[_Occ] | None:
        """The evidence if `node` holds for the item (possibly empty, for a NOT), else None.
        A sub-expression that several rules (or one rule twice) contain is worked out once
        per item. (Results are shared, so nobody changes a list they get.)"""
        kind = type(node)
        if kind is Term:  # the leaves first, as most nodes are leaves
            return self.term_occs(node) or None  # type: ignore[arg-type]
        key = self.engine._shared.get(id(node))
        if key is None:
            return self._evaluate(node)
        if key not in self._memo:
            self._memo[key] = self._evaluate(node)
        return self._memo[key]

    def _evaluate(self, node: Node) -> list[_Occ] | None:
        match node:
            case Term():
                return self.term_occs(node) or None
            case RelationRef():
                return self._evaluate_relation(node)
            case ActorRef():
                occs = self.actor_occs(node.actor)
                self.steps += len(occs)
                return [o for o in occs if o.field in node.fields] or None
            case And():
                if not self._possible(node.children):
                    return None
                evidence: list[_Occ] = []
                for child in node.children:
                    got = self.evaluate(child)
                    if got is None:
                        return None
                    evidence.extend(got)
                return evidence
            case Or():
                results = [self.evaluate(c) for c in self._or_children(node)]
                held = [r for r in results if r is not None]
                return [o for r in held for o in r] if held else None
            case Not():
                return [] if self.evaluate(node.child) is None else None
            case AtLeast():
                results = [self.evaluate(c) for c in node.children]
                held = [r for r in results if r is not None]
                return [o for r in held for o in r] if len(held) >= node.count else None
            case Near():
                return self._evaluate_near(node)
        raise TypeError(node)

    def _evaluate_relation(self, node: RelationRef) -> list[_Occ] | None:
        """The subject, verb and object of every relation of this kind in the item."""
        kept: list[_Occ] = []
        for found in self.relations():
            rel = found.relation
            if rel.action != node.action or node.subject not in (None, rel.subject):
                continue
            if node.object not in (None, rel.object):
                continue
            subject, verb, obj = found.mentions
            kept += [
                _Occ(rel.field, subject.start, subject.end, subject.term, subject.label),
                _Occ(rel.field, verb.start, verb.end, verb.term),
                _Occ(rel.field, obj.start, obj.end, obj.term, obj.label),
            ]
        return kept or None

    def _or_children(self, node: Or) -> list[Node]:
        """The children of an OR that can hold: its terms the scan found, and the others
        whose support it found.
        A term whose pattern occurs nowhere in the item cannot hold, so it is skipped
        unlooked-at; the result is the same as evaluating every child."""
        plan = self.engine.or_plan(node)
        found, by_pid = self.found, plan.by_pid
        if len(found) < len(by_pid):
            terms = [c for pid in found if pid in by_pid for c in by_pid[pid]]
        else:
            terms = [c for pid, children in by_pid.items() if pid in found for c in children]
        if not plan.others:
            return terms
        if len(found) < len(plan.others):
            chosen = set(plan.always)
            for pid in found:
                chosen.update(plan.others_by_pid.get(pid, ()))
            others = [plan.others[i][0] for i in sorted(chosen)]
        else:
            keys = found.keys()
            others = [c for c, need in plan.others if need is None or not keys.isdisjoint(need)]
        return [*terms, *others]

    def _possible(self, children: list[Node]) -> bool:
        """Whether every child of an AND still can hold: none lacks all of its support."""
        keys, support = self.found.keys(), self.engine.support
        return not any(
            need is not None and keys.isdisjoint(need) for need in map(support, children)
        )

    def _evaluate_near(self, node: Near) -> list[_Occ] | None:
        """Every occurrence on either side with one of the other side within the distance:
        each occurrence looks up its nearest partner in the other side's sorted positions
        (O(n log n) in all, where comparing every pair was O(n × m))."""
        left = self.evaluate(node.left)
        if not left:
            return None
        right = self.evaluate(node.right)
        if not right:
            return None
        left, right = list(dict.fromkeys(left)), list(dict.fromkeys(right))
        kept: list[_Occ] = []
        for field_name in FIELDS:
            ours = [o for o in left if o.field == field_name]
            theirs = [o for o in right if o.field == field_name]
            if not ours or not theirs:
                continue
            if len(ours) * len(theirs) <= _FEW_PAIRS:
                kept += self._near_pairs(ours, theirs, node.distance)
                continue
            for side, other in ((ours, _Positions(theirs, self)), (theirs, _Positions(ours, self))):
                for occ in side:
                    gap = other.nearest(occ, self, same_start=True)
                    if gap is not None and gap <= node.distance:
                        kept.append(occ)
        return kept or None

    def _near_pairs(self, ours: list[_Occ], theirs: list[_Occ], distance: int) -> list[_Occ]:
        """`_evaluate_near` on one field by comparing every pair, when there are few: what
        `_Positions.nearest` gives (the gap to the nearest one), without sorting."""
        name = ours[0].field
        words = {}
        for occ in (*ours, *theirs):  # first and last word of each occurrence
            words[occ] = (self.word_index(name, occ.start), self.word_index(name, occ.end - 1))
        self.steps += len(words)
        kept = []
        for side, other in ((ours, theirs), (theirs, ours)):
            for occ in side:
                first, last = words[occ]
                for partner in other:
                    if partner.start >= occ.start:  # occ is the earlier one
                        gap = words[partner][0] - last
                    else:
                        gap = first - words[partner][1]
                    if gap <= distance:  # (a negative gap is an overlap: 0 in nearest)
                        kept.append(occ)
                        break
        return kept

    def hit(self, rule: Rule, occs: list[_Occ]) -> Hit:
        unique = sorted(set(occs), key=lambda o: (FIELDS.index(o.field), o.start, o.end))
        self.steps += len(occs)
        evidence = [self._evidence(o) for o in _sample(unique)]
        evidence = sorted(set(evidence), key=_evidence_order)
        actors = sorted({o.actor for o in unique if o.actor})
        return Hit(
            rule=rule.id, priority=rule.priority, actors=tuple(actors), evidence=tuple(evidence)
        )

    def _evidence(self, occ: _Occ) -> Evidence:
        evidence = self._evidence_of.get(occ)
        if evidence is None:
            evidence = self._evidence_of[occ] = self._make_evidence(occ)
        return evidence

    def _make_evidence(self, occ: _Occ) -> Evidence:
        text = self.texts[occ.field]
        if text.isascii():  # ASCII folds one character to one, so offsets carry over
            start, end = occ.start, occ.end
        else:
            if occ.field not in self._origins:
                self._origins[occ.field] = fold_with_offsets(text)[1]
            origin = self._origins[occ.field]
            start, end = origin[occ.start], origin[occ.end - 1] + 1
        return Evidence(
            term=occ.term,
            field=occ.field,
            start=start,
            end=end,
            text=text[start:end],
            actor=occ.actor,
        )


def _evidence_order(e: Evidence) -> tuple[int, int, int, str, str]:
    """Position order; ties (one spot, two terms or actors) by name, so hits are stable."""
    return FIELDS.index(e.field), e.start, e.end, e.term, e.actor or ""


def _sample(occs: list[_Occ]) -> list[_Occ]:
    """At most MAX_EVIDENCE occurrences (in position order): the first of every distinct
    term and actor, then the earliest others. An item that names Kosovo 10,000 times is
    stored with enough evidence to show why it hit, not with 10,000 copies of it."""
    if len(occs) <= MAX_EVIDENCE:
        return occs
    firsts = list({(o.term, o.actor): o for o in reversed(occs)}.values())[:MAX_EVIDENCE]
    chosen = set(firsts)
    for occ in occs:
        if len(chosen) >= MAX_EVIDENCE:
            break
        chosen.add(occ)
    return sorted(chosen, key=lambda o: (FIELDS.index(o.field), o.start, o.end))


class RuleWatcher:
    """Compiled rules kept current: reloads when a rule file changes, and keeps the last good
    rules in force when an edit breaks them (the error is logged with its file:line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple = ()
        self.ruleset = load_rules(path)
        self.engine = Engine(self.ruleset)
        self._stamp = self._fingerprint()
        self.error: RuleError | None = None

    def _fingerprint(self) -> tuple:
        files = rule_files(self.path) if self.path.exists() else []
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)

    def refresh(self, force: bool = False) -> bool:
        """Reload if any rule file changed (or `force`); True when new rules took effect."""
        stamp = self._fingerprint()
        if stamp == self._stamp and not force:
            return False
        self._stamp = stamp
        try:
            ruleset = load_rules(self.path)
        except RuleError as exc:
            self.error = exc
            for problem in exc.problems:
                log.error("rules not reloaded, keeping the last good set: %s", problem)
            return False
        _warn_removed_files(self.ruleset, ruleset)
        self.ruleset, self.engine, self.error = ruleset, Engine(ruleset), None
        log.info("rules reloaded: %d rules, %d actors", len(ruleset.rules), len(ruleset.actors))
        return True


def _warn_removed_files(old: RuleSet, new: RuleSet) -> None:
    """A rule file that disappeared takes its rules with it: say so loudly, since a deleted
    file is more often a mistake (a bad checkout, a moved folder) than a decision."""
    for file in sorted(set(map(str, old.files)) - set(map(str, new.files))):
        rules = [r.id for r in old.rules if r.origin.rsplit(":", 1)[0] == file]
        actors = [a.id for a in old.actors.values() if a.origin.rsplit(":", 1)[0] == file]
        gone = [f"{len(rules)} rule(s)"] + ([f"{len(actors)} actor(s)"] if actors else [])
        names = ", ".join(rules + actors)
        log.warning(
            "rule file %s was removed; its %s no longer apply: %s", file, " and ".join(gone), names
        )


def explain(engine: Engine, rule: Rule, item: Item) -> tuple[list[str], bool]:
    """Human-readable account of a rule against one item: the verdict, then each term."""
    ctx = _Context(engine, item, engine.max_chars)
    evidence = ctx.evaluate(rule.query)
    verdict = "MATCH" if evidence is not None else "no match"
    lines = [f"{verdict}: {rule.id} ({rule.priority}) — {rule.title}", f"query: {rule.query_text}"]
    if evidence is not None:
        hit = ctx.hit(rule, evidence)
        lines.append(f"actors: {', '.join(hit.actors) or '-'}")
        for ev in hit.evidence:
            who = f" (@{ev.actor})" if ev.actor else ""
            lines.append(
                f"  matched {ev.text!r} for {ev.term!r}{who} in {ev.field} [{ev.start}:{ev.end}]"
            )
    lines.append("terms:")
    seen: set[tuple[str, bool]] = set()
    quiet = 0  # excluded words that are absent, as they should be: counted, not listed
    for node, negated in walk(rule.query):
        if isinstance(node, RelationRef):
            lines += _relation_lines(ctx, node)
            continue
        if not isinstance(node, Term | ActorRef):
            continue
        label, found = _leaf_state(engine, ctx, node)
        if (label, negated) in seen:
            continue
        seen.add((label, negated))
        if negated and not found:
            quiet += 1
        elif negated:
            lines.append(f"  ✗ present  NOT {label}")
        else:
            lines.append(f"  {'✓ found' if found else '✗ absent':9} {label}")
    if quiet:
        lines.append(f"  ✓ absent   {quiet} more NOT terms")
    return lines, evidence is not None


def _relation_lines(ctx: _Context, node: RelationRef) -> list[str]:
    """A relation the query asks for: found (with its sentence) or absent, and then the
    relations the item does hold, so a near miss shows what was read instead."""
    found = [f.relation for f in ctx.relations()]
    wanted = [
        r for r in found
        if r.action == node.action and node.subject in (None, r.subject)
        and node.object in (None, r.object)
    ]  # fmt: skip
    if wanted:
        return [f"  ✓ found   {_said(r)}" for r in wanted]
    lines = [f"  ✗ absent  {node.raw}"]
    lines += [f"      the item says: {_said(r)}" for r in found]
    if not found:
        lines.append("      no actor – action – actor in one sentence")
    return lines


def _said(relation: Relation) -> str:
    name = relation.action.upper().replace("-", "_")
    voice = " (passive)" if relation.voice == "passive" else ""
    return (
        f"@{relation.subject} {name} @{relation.object}{voice} — {relation.verb!r} in "
        f"{relation.field} {relation.sentence!r}"
    )


def _leaf_state(engine: Engine, ctx: _Context, leaf: Term | ActorRef) -> tuple[str, bool]:
    if isinstance(leaf, Term):
        return leaf.raw, bool(ctx.term_occs(leaf))
    found = bool(ctx.actor_occs(leaf.actor))
    label = f"@{leaf.actor}"
    aliases = engine.ruleset.actors[leaf.actor].aliases
    if not found and any(engine._ids.get((t.pattern, t.prefix)) in ctx.found for t in aliases):
        label += " (an alias occurs, but the actor's context/exclude words rule it out)"
    return label, found


def item_from_json(record: dict, number: int) -> Item:
    """An item for matching from a JSON object with optional title/summary/content/url."""

    def text(key: str) -> str:
        value = record.get(key)
        return value if isinstance(value, str) else ""

    return Item(
        id=str(record.get("id", number)),
        source="jsonl",
        url=text("url"),
        guid="",
        title=text("title"),
        summary=text("summary"),
        content=text("content"),
        published=text("published"),
        fingerprint="",
    )
