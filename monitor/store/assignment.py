"""What story assignment asks of the database (stories.StoryLookup): the open stories' items
carrying some keys, and how many items carry each entity key (`entity_counts`, kept up as
items are stored: the inverse document frequency that weighs what items name)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from monitor.clock import iso
from monitor.dedupe import Text
from monitor.models import Item
from monitor.store.base import StoreBase
from monitor.stories import MEMBERS_PER_KEY, Member, entity_keys

# Items of open stories carrying some keys, newest first and at most `per_key` a key, with
# the actors their hits found.
_MEMBERS = """
    SELECT key, story, id, source, url, guid, title, summary, content, published, fingerprint,
           first_seen, actors
    FROM (
        SELECT item_keys.key, items.story, items.id, items.source, items.url, items.guid,
               items.title, items.summary, items.content, items.published, items.fingerprint,
               items.first_seen,
               (SELECT group_concat(actors, '\x1f') FROM hits
                WHERE hits.item_id = items.id) AS actors,
               row_number() OVER (PARTITION BY item_keys.key
                                  ORDER BY items.first_seen DESC, items.rowid DESC) AS nth
        FROM item_keys JOIN items ON items.id = item_keys.item_id
        JOIN stories ON stories.id = items.story
        WHERE item_keys.key IN ({marks}) AND stories.last_seen >= ?
    )
    WHERE nth <= ?
"""
_COUNT_UP = """
    INSERT INTO entity_counts (key, items) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET items = items + excluded.items
"""


class StoredStories:
    """The store as assignment's lookup, for one cycle: stories open at `since`."""

    def __init__(self, table: AssignmentTable, since: datetime) -> None:
        self._table = table
        self._since = since

    def members(self, keys: Sequence[str]) -> dict[str, list[Member]]:
        return self._table.story_members(keys, self._since)

    def entity_counts(self, keys: Sequence[str]) -> dict[str, int]:
        return self._table.entity_counts(keys)

    def item_count(self) -> int:
        return self._table.item_count()


class AssignmentTable(StoreBase):
    def story_lookup(self, since: datetime) -> StoredStories:
        return StoredStories(self, since)

    def story_members(self, keys: Sequence[str], since: datetime) -> dict[str, list[Member]]:
        """Items of stories still open at `since` carrying these keys, by key."""
        found: dict[str, list[Member]] = {}
        made: dict[str, Member] = {}  # an item under several keys is read into a Member once
        for chunk in _chunks(keys, 500):
            sql = _MEMBERS.format(marks=",".join("?" * len(chunk)))
            rows = self.conn.execute(sql, [*chunk, iso(since), MEMBERS_PER_KEY])
            for key, story, *fields, first_seen, actors in rows:
                item_id = fields[0]
                if item_id not in made:
                    made[item_id] = _member(story, fields, first_seen, actors)
                found.setdefault(key, []).append(made[item_id])
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


def _member(story: str, fields: list, first_seen: str | None, actors: str | None) -> Member:
    item = Item(*(f or "" for f in fields))
    names = {a for part in (actors or "").split("\x1f") if part for a in json.loads(part)}
    found = frozenset(names)
    return Member(story, Text.of(item, first_seen or ""), found, entity_keys(item, found))


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
