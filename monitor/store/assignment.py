"""What story assignment asks of the database (stories.StoryLookup): the open stories' items
carrying some keys, and how many items carry each entity key (`entity_counts`, kept up as
items are stored: the inverse document frequency that weighs what items name)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from monitor.clock import iso
from monitor.dedupe import BODY_CHARS, Known, Text
from monitor.store.base import StoreBase
from monitor.stories import ENTITY, MEMBERS_PER_KEY, Member

# The items of open stories among the latest `per_key` carrying each of some keys, with what
# they name (their entity keys, the rules' actors among them). `item_keys` is ordered by key
# and then by when the item came, so each key's latest holders are the end of one index
# range: a key that many stored items carry costs what a rare one does.
_MEMBERS = """
    SELECT wanted.value, items.story, items.id, items.source, items.title,
           substr(coalesce(nullif(items.summary, ''), items.content, ''), 1, ?) AS body,
           items.published, items.first_seen, items.entities
    FROM json_each(?) AS wanted
    JOIN item_keys ON item_keys.key = wanted.value AND item_keys.seq >= coalesce(
        (SELECT seq FROM item_keys AS held WHERE held.key = wanted.value
         ORDER BY seq DESC LIMIT 1 OFFSET ?), -1)
    JOIN items ON items.id = item_keys.item_id
    JOIN stories ON stories.id = items.story
    WHERE stories.last_seen >= ?
    ORDER BY item_keys.seq DESC
"""
# The items among some ids that are in stories open since a moment, with what they name.
_OPEN_AMONG = """
    SELECT items.id, items.story, items.source, items.title,
           substr(coalesce(nullif(items.summary, ''), items.content, ''), 1, ?) AS body,
           items.published, items.first_seen, items.entities
    FROM json_each(?) AS wanted
    JOIN items ON items.id = wanted.value
    JOIN stories ON stories.id = items.story
    WHERE stories.last_seen >= ?
"""
_COUNT_UP = """
    INSERT INTO entity_counts (key, items) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET items = entity_counts.items + excluded.items
"""


class StoredStories:
    """The store as assignment's lookup, for one cycle: stories open at `since`. With what
    the cycle's identity lookup found (`known`), the band keys' holders are those it read."""

    def __init__(self, table: AssignmentTable, since: datetime, known: Known | None) -> None:
        self._table = table
        self._since = since
        self._known = known

    def members(self, keys: Collection[str]) -> dict[str, list[Member]]:
        if self._known is None:
            return self._table.story_members(keys, self._since)
        named = [k for k in keys if k.startswith(ENTITY)]  # the others are band keys
        found = self._table.story_members(named, self._since) if named else {}
        bands = [k for k in keys if k in self._known.band_holders]  # a band key held before
        found.update(self._table.band_members(bands, self._known, self._since))
        return found

    def entity_counts(self, keys: Sequence[str]) -> dict[str, int]:
        return self._table.entity_counts(keys)

    def item_count(self) -> int:
        return self._table.item_count()


class AssignmentTable(StoreBase):
    def story_lookup(self, since: datetime, known: Known | None = None) -> StoredStories:
        return StoredStories(self, since, known)

    def story_members(self, keys: Collection[str], since: datetime) -> dict[str, list[Member]]:
        """Items of stories still open at `since` among the latest carrying these keys, by
        key, newest first."""
        found: dict[str, list[Member]] = {}
        made: dict[str, Member] = {}  # an item under several keys is read into a Member once
        wanted = [BODY_CHARS, json.dumps(list(keys)), MEMBERS_PER_KEY - 1, iso(since)]
        for key, story, item_id, *columns in self.conn.execute(_MEMBERS, wanted):
            member = made.get(item_id)
            if member is None:
                member = made[item_id] = _member(story, item_id, *columns)
            found.setdefault(key, []).append(member)
        return found

    def band_members(
        self, keys: Sequence[str], known: Known, since: datetime
    ) -> dict[str, list[Member]]:
        """`story_members` of band keys, from the holders the identity lookup read (the
        latest HOLDERS_PER_KEY, as `story_members` takes), and the texts it folded."""
        holders = {k: known.band_holders[k] for k in keys}
        ids = sorted({i for held in holders.values() for i in held})
        made: dict[str, Member] = {}
        for chunk in _chunks(ids, 50_000):
            wanted = [BODY_CHARS, json.dumps(list(chunk)), iso(since)]
            for item_id, story, *columns, entities in self.conn.execute(_OPEN_AMONG, wanted):
                made[item_id] = _member(story, item_id, *columns, entities, known.texts)
        found: dict[str, list[Member]] = {}
        for key, held in holders.items():
            members = [made[i] for i in reversed(held[-MEMBERS_PER_KEY:]) if i in made]
            if members:
                found[key] = members
        return found

    def entity_counts(self, keys: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in _chunks(keys, 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, items FROM entity_counts WHERE key IN ({marks})"
            counts.update(self.conn.execute(sql, chunk))
        return counts

    def item_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM items").fetchone()[0])

    def _count_entities(self, keys: Iterable[str]) -> None:
        """Inside a cycle's transaction: one more item carrying each of these entity keys
        (a key once per item)."""
        counted = Counter(k for k in keys if k.startswith("e:"))
        self.conn.executemany(_COUNT_UP, sorted(counted.items()))


def _member(
    story: str,
    item_id: str,
    source: str,
    title: str | None,
    body: str,
    published: str | None,
    first_seen: str | None,
    entities: str | None,
    texts: dict[str, Text] | None = None,
) -> Member:
    """A stored item as a story member; its text taken from `texts` when read already."""
    keys = frozenset(entities.split("\x1f")) if entities else frozenset()
    actors = frozenset(k[3:] for k in keys if k.startswith("e:@"))
    text = texts.get(item_id) if texts else None
    if text is None:
        text = Text.read(item_id, source, title or "", body, published or "", first_seen or "")
    return Member(story, text, actors, keys)


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
