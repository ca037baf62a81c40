"""The work on a fetched document that needs no database, done where the document is parsed
(in a parse worker for a big cycle, so that both cores work): parse and normalise it, drop
the items it repeats, and work out each item's band keys (the MinHash sketches, the costliest
part of identity) and, in a worker, its hits and relations (matching is pure: the same item
and rules give the same hits wherever they run). The cycle then looks the items up, keeps the
new ones with their hits and drops the rest."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass

from monitor.dedupe import Identity, Index
from monitor.match import Engine, clip_item
from monitor.models import FetchResult, Hit, Item, Relation, Source
from monitor.parse import read_items
from monitor.rules import RuleSet
from monitor.stories import entity_keys

Matched = tuple[list[Hit], list[Relation]]


@dataclass(frozen=True)
class Prepared:
    """One document, read: entries parsed, its items (each once), their band keys and, when
    matched here, their hits and relations (as matched on the item cut to `max_text`)."""

    parsed: int
    items: list[Item]
    near: list[tuple[str, ...]]
    matched: list[Matched] | None = None
    named: list[frozenset[str]] | None = None  # when matched: what each names (entity keys)

    def with_identities(self) -> list[tuple[Item, Identity]]:
        """Each item with its identity (the band keys as worked out here)."""
        pairs = zip(self.items, self.near, strict=True)
        return [(item, Identity.with_bands(item, near)) for item, near in pairs]


def prepare(
    result: FetchResult, source: Source, rules: bytes | None = None, max_text: int = 0
) -> Prepared | str:
    """`result` read (or why it cannot be); with `rules` (a pickled RuleSet), matched too,
    unless the source's items get their article text first (`fulltext`)."""
    return prepare_with(result, source, _engine(rules) if rules is not None else None, max_text)


def prepare_with(
    result: FetchResult, source: Source, engine: Engine | None, max_text: int = 0
) -> Prepared | str:
    """`prepare` with the rules' engine at hand (matching in the process that reads)."""
    read = read_items(result, source)
    if isinstance(read, str):
        return read
    parsed, found = read
    unique = unique_with(found)
    items = [item for item, _ in unique]
    near = [identity.near for _, identity in unique]
    if engine is None or source.fulltext:
        return Prepared(parsed, items, near)
    matched, named = [], []
    for item in items:
        cut = clip_item(item, max_text)  # what is stored, matched and placed
        hits, relations = engine.match_with_relations(cut, max_text)
        matched.append((hits, relations))
        named.append(entity_keys(cut, actors_of(hits)))
    return Prepared(parsed, items, near, matched, named)


def actors_of(hits: list[Hit]) -> frozenset[str]:
    """The actors the rules found in an item: evidence of the event for its story."""
    return frozenset(actor for hit in hits for actor in hit.actors)


def unique_with(items: list[Item]) -> list[tuple[Item, Identity]]:
    """Drop items repeated within one document (the same item as `dedupe` defines it); each
    kept item with its identity."""
    index = Index()
    unique = []
    for item in items:
        identity = Identity.of(item)
        if index.find(identity) is None:
            index.add(identity)
            unique.append((item, identity))
    return unique


def pickled_rules(ruleset: RuleSet) -> bytes:
    return pickle.dumps(ruleset, protocol=pickle.HIGHEST_PROTOCOL)


_compiled: dict[bytes, Engine] = {}  # in a worker: the engine of the rules last sent


def _engine(rules: bytes) -> Engine:
    """The engine for these pickled rules, compiled once per worker and rule version (the
    pack compiles in some 30 ms)."""
    digest = hashlib.blake2b(rules, digest_size=16).digest()
    engine = _compiled.get(digest)
    if engine is None:
        ruleset = pickle.loads(rules)
        _compiled.clear()
        engine = _compiled[digest] = Engine(ruleset)
    return engine
