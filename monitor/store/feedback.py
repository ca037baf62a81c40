"""Triage: analysts' verdicts on hits (`feedback`), the story page the web view shows, the
mentions chart, and what `rules backtest` and `rules suggest` read back."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from monitor.clock import iso
from monitor.errors import StoreError
from monitor.models import (
    VERDICTS,
    Feedback,
    HitView,
    Item,
    Mentions,
    StoryItem,
    StoryPage,
    Verdict,
)
from monitor.store.base import StoreBase

_ITEM_COLUMNS = "id, source, url, guid, title, summary, content, published, fingerprint, lang"
# The latest verdict on each (item, rule): a later click corrects an earlier one.
_LATEST = """
    SELECT item_id, rule, verdict FROM feedback f
    WHERE id = (SELECT max(id) FROM feedback g WHERE g.item_id = f.item_id AND g.rule = f.rule)
"""
_STORY_ITEMS = """
    SELECT id, title, url, source, published, first_seen, lang,
           (SELECT group_concat(source || '\x1e' || coalesce(url, ''), '\x1f')
            FROM (SELECT source, url FROM item_sources
                  WHERE item_sources.item_id = items.id ORDER BY seen_at, source) AS carriers)
    FROM items WHERE story = ? ORDER BY first_seen, published, id
"""
_STORY_HITS = """
    SELECT hits.id, hits.item_id, hits.rule, hits.priority, hits.actors, hits.evidence,
           (SELECT verdict FROM feedback WHERE feedback.item_id = hits.item_id
              AND feedback.rule = hits.rule ORDER BY feedback.id DESC LIMIT 1)
    FROM hits JOIN items ON items.id = hits.item_id
    WHERE items.story = ? ORDER BY hits.id
"""
# Distinct items per actor per day; the item's own date when it has one.
_MENTIONS = """
    SELECT coalesce(nullif(substr(items.published, 1, 10), ''), substr(items.first_seen, 1, 10))
             AS day, actor.value, count(DISTINCT items.id)
    FROM hits JOIN items ON items.id = hits.item_id, json_each(hits.actors) AS actor
    WHERE items.first_seen >= ?
    GROUP BY day, actor.value ORDER BY day, actor.value
"""


class FeedbackTable(StoreBase):
    def record_feedback(self, hit_id: int, verdict: str, now: datetime) -> Feedback:
        """Record a verdict on a stored hit; the hit's item and rule are kept with it."""
        if verdict not in VERDICTS:
            raise StoreError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        row = self.conn.execute("SELECT item_id, rule FROM hits WHERE id = ?", [hit_id]).fetchone()
        if row is None:
            raise StoreError(f"no hit {hit_id}")
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO feedback (hit_id, item_id, rule, verdict, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                [hit_id, row[0], row[1], verdict, iso(now)],
            )
            feedback_id = int(cursor.fetchone()[0])
        return Feedback(feedback_id, hit_id, row[0], row[1], verdict, now)  # type: ignore[arg-type]

    def verdicts(self) -> dict[tuple[str, str], Verdict]:
        """(item id, rule) -> the latest verdict on it."""
        return {(item, rule): verdict for item, rule, verdict in self.conn.execute(_LATEST)}

    def judged_items(self, rule: str) -> list[tuple[Item, Verdict]]:
        """The items a verdict was given on for this rule, with the latest verdict."""
        sql = (
            f"SELECT {', '.join('items.' + c for c in _ITEM_COLUMNS.split(', '))}, v.verdict "
            f"FROM ({_LATEST}) v JOIN items ON items.id = v.item_id WHERE v.rule = ? "
            "ORDER BY items.rowid"
        )
        return [(_item(row[:-1]), row[-1]) for row in self.conn.execute(sql, [rule])]

    def items_by_id(self, item_ids: Sequence[str]) -> list[Item]:
        """The stored items with these ids (those still stored), in storage order."""
        found: list[Item] = []
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE id IN ({marks}) ORDER BY rowid"
            found += [_item(row) for row in self.conn.execute(sql, chunk)]
        return found

    def items_since(self, since: datetime, batch: int = 1000) -> Iterator[Item]:
        """Stored items first seen from `since` on, oldest first, read in batches."""
        rows = self.conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE first_seen >= ? ORDER BY rowid",
            [iso(since)],
        )
        while chunk := rows.fetchmany(batch):
            yield from (_item(row) for row in chunk)

    def rules_hit_since(self, since: datetime) -> set[tuple[str, str]]:
        """(item id, rule) of every stored hit on items first seen from `since` on."""
        sql = (
            "SELECT hits.item_id, hits.rule FROM hits JOIN items ON items.id = hits.item_id "
            "WHERE items.first_seen >= ?"
        )
        return {(item, rule) for item, rule in self.conn.execute(sql, [iso(since)])}

    def story_page(self, story_id: str) -> StoryPage | None:
        """One story with its items, their outlets and their hits with verdicts."""
        story = self.conn.execute(
            "SELECT id, title, first_seen, last_seen, first_item FROM stories WHERE id = ?",
            [story_id],
        ).fetchone()
        if story is None:
            return None
        hits: dict[str, list[HitView]] = {}
        for hit_id, item_id, rule, priority, actors, evidence, verdict in self.conn.execute(
            _STORY_HITS, [story_id]
        ):
            hits.setdefault(item_id, []).append(
                HitView(hit_id, rule, priority, tuple(json.loads(actors or "[]")),
                        _terms(evidence), verdict or "")
            )  # fmt: skip
        items = [
            StoryItem(*row[:7], _outlets(row[7], row[3], row[2]), tuple(hits.get(row[0], ())))
            for row in self.conn.execute(_STORY_ITEMS, [story_id])
        ]
        return StoryPage(*story[:4], items=tuple(items), first_item=story[4] or "")

    def stories_of(self, item_ids: Sequence[str]) -> dict[str, str]:
        """item id -> its story's id."""
        found: dict[str, str] = {}
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, coalesce(story, id) FROM items WHERE id IN ({marks})"
            found.update(dict(self.conn.execute(sql, chunk).fetchall()))
        return found

    def story_of_hit(self, hit_id: int) -> str | None:
        """The id of the story whose item a hit is on."""
        row = self.conn.execute(
            "SELECT coalesce(items.story, items.id) FROM hits JOIN items ON items.id = hits.item_id"
            " WHERE hits.id = ?",
            [hit_id],
        ).fetchone()
        return row[0] if row else None

    def mentions(self, since: datetime) -> list[Mentions]:
        """Items naming each actor per day, for items first seen from `since` on."""
        return [Mentions(*row) for row in self.conn.execute(_MENTIONS, [iso(since)])]


def _item(row: Sequence[Any]) -> Item:
    return Item(*(value or "" for value in row))


def _terms(evidence: str | None) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for entry in json.loads(evidence or "[]"):
        seen.setdefault(entry.get("text", ""), None)
    return tuple(term for term in seen if term)


def _outlets(carriers: str | None, source: str, url: str) -> tuple[tuple[str, str], ...]:
    links = [tuple(part.split("\x1e", 1)) for part in (carriers or "").split("\x1f") if part]
    links.sort(key=lambda link: link[0] != source)
    return tuple((name, link) for name, link in links) or ((source, url or ""),)
