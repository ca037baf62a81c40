"""The engine skips what cannot hold (rules indexed under a term not found, OR children and
AND parts whose every pattern is absent). That must never change a hit: here every rule of
the shipped pack is evaluated in full, node by node, on the labelled items under tests/data,
and the hits must be the engine's, evidence included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.match import Engine, _Context, _Occ, _Positions, item_from_json
from monitor.models import Hit, Item
from monitor.normalise import FOLD_TABLE, fold, fold_with_offsets
from monitor.query import Node, Term
from monitor.rules import Actor, load_rules

ROOT = Path(__file__).parents[1]
DATA = ROOT / "tests" / "data"


class _Everything(_Context):
    """Evaluation without any skipping or sharing: every child of every node, each node
    worked out where it stands, every context word of an actor looked at, NEAR always
    through sorted positions."""

    def evaluate(self, node: Node) -> list[_Occ] | None:
        return self._evaluate(node)

    def _possible(self, children: list[Node]) -> bool:
        return True

    def _or_children(self, node: Node) -> list[Node]:  # type: ignore[override]
        return list(node.children)  # type: ignore[attr-defined]

    def _present(self, actor: Actor) -> tuple[list[Term], list[Term]]:
        return list(actor.context), list(actor.exclude)

    def _near_pairs(self, ours: list[_Occ], theirs: list[_Occ], distance: int) -> list[_Occ]:
        kept = []
        for side, other in ((ours, _Positions(theirs, self)), (theirs, _Positions(ours, self))):
            for occ in side:
                gap = other.nearest(occ, self, same_start=True)
                if gap is not None and gap <= distance:
                    kept.append(occ)
        return kept


def reference_hits(engine: Engine, item: Item) -> list[Hit]:
    hits = []
    for rule in engine.rules:
        ctx = _Everything(engine, item, engine.max_chars)
        evidence = ctx.evaluate(rule.query)
        if evidence is not None:
            hits.append(ctx.hit(rule, evidence))
    return hits


def labelled_items() -> list[Item]:
    items = []
    for path in sorted(DATA.glob("*.jsonl")) + sorted(DATA.glob("stories/*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        items += [item_from_json(json.loads(line), n) for n, line in enumerate(lines) if line]
    return items


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules(ROOT / "rules"))


def test_skipping_never_changes_a_hit(engine: Engine) -> None:
    items = labelled_items()[::2]
    assert len(items) > 500
    with_hits = 0
    for item in items:
        hits = engine.match(item)
        assert hits == reference_hits(engine, item), item.title
        with_hits += bool(hits)
    assert with_hits > 100  # the comparison covers many hits, not only misses


def test_skipping_saves_work(engine: Engine) -> None:
    """Counted, not timed: the engine's steps against evaluating everything."""
    items = labelled_items()[::4]
    pruned = sum(engine.match_counting(item)[1] for item in items)
    full = 0
    for item in items:
        for rule in engine.rules:
            ctx = _Everything(engine, item, engine.max_chars)
            ctx.evaluate(rule.query)
            full += ctx.steps
    assert pruned < full


def _reference_offsets(text: str) -> tuple[str, list[int]]:
    parts, origin = [], []
    for i, ch in enumerate(text):
        out = FOLD_TABLE.get(ord(ch), ch)
        parts.append(out)
        origin.extend([i] * len(out))
    return "".join(parts), origin


@pytest.mark.parametrize(
    "text",
    ["Vučić", "Straße", "љубав Њујорк", "x\u0301y", "ﬁnal", "ǅ", "Ελλάδα", "KFOR — «Звечан»", ""],
)
def test_fold_with_offsets_maps_each_folded_character_home(text: str) -> None:
    folded, origin = fold_with_offsets(text)
    assert folded == fold(text)
    assert len(origin) == len(folded)
    if "Ε" not in text:  # Greek digraphs are rewritten before folding, keeping the length
        assert (folded, origin) == _reference_offsets(text)
