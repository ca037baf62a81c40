"""Items and their hits: what a cycle stores, what is already known, what a digest has not
yet carried, full-text search and retention."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import from_iso, iso
from monitor.dedupe import HOLDERS_PER_KEY, Identity, Known, Text, is_band, resolve
from monitor.lang import expand
from monitor.models import (
    CycleOutcome,
    Evidence,
    Hit,
    Item,
    Outlet,
    SearchResult,
    StoredHit,
    StoryProvenance,
)
from monitor.normalise import fold
from monitor.provenance import outlet_kind
from monitor.searchtext import as_tsquery, parse_search, snippet
from monitor.store.assignment import AssignmentTable
from monitor.store.signals import SignalTable
from monitor.store.sources import SourceTable

_UNDELIVERED = """
    SELECT hits.id, hits.rule, hits.priority, hits.actors, hits.evidence, hits.created_at,
           items.id, items.title, items.summary, items.content, items.url, items.published,
           items.source, items.lang, coalesce(items.story, ''),
           (SELECT group_concat(source || '\x1e' || coalesce(url, ''), '\x1f')
            FROM (SELECT source, url FROM item_sources
                  WHERE item_sources.item_id = items.id ORDER BY seen_at, source) AS carriers)
    FROM hits JOIN items ON items.id = hits.item_id
    WHERE NOT EXISTS (SELECT 1 FROM digest_hits dh WHERE dh.name = ? AND dh.hit_id = hits.id)
      AND hits.created_at >= ?
    ORDER BY hits.created_at DESC, hits.id DESC
"""
_SEARCH = """
    SELECT items.id, items.title, items.url, items.source, items.published,
           items.title, items.summary, items.content,
           coalesce(stories.title, ''), coalesce(stories.items, 1)
    FROM items_search JOIN items ON items.rowid = items_search.rowid
    LEFT JOIN stories ON stories.id = items.story
    WHERE {match} {languages} ORDER BY {rank} LIMIT ?
"""
_FTS5 = {"match": "items_search MATCH ?", "rank": "rank"}
# the folded columns' terms, title weighted A, summary B, content C (pg_migrations.py)
_TSQUERY = {
    "match": "items_search.terms @@ ?::tsquery",
    "rank": "ts_rank(items_search.terms, ?::tsquery) DESC, items.rowid DESC",
}
_STORY_UPSERT = """
    INSERT INTO stories (id, title, first_item, first_seen, last_seen, items)
    VALUES (?, ?, ?, ?, ?, 1)
    ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, items = stories.items + 1
"""
# Every outlet's copy of the items of some stories, with the source's tags.
_PROVENANCE = """
    SELECT items.story, coalesce(stories.title, items.title), item_sources.source,
           coalesce(item_sources.url, items.url),
           CASE WHEN item_sources.source = items.source THEN items.published ELSE '' END,
           item_sources.seen_at, items.lang, sources.tags
    FROM items JOIN item_sources ON item_sources.item_id = items.id
    LEFT JOIN stories ON stories.id = items.story
    LEFT JOIN sources ON sources.name = item_sources.source
    WHERE items.story IN ({marks})
"""
# Per key its first holder or its latest `HOLDERS_PER_KEY`: the holders up to (or from) the
# seq `offset` places from one end of the key's range (`item_keys` is ordered by key, then by
# when the item came); a key with fewer holders gives them all.
_HOLDERS = """
    SELECT wanted.value, item_keys.item_id, item_keys.seq FROM json_each(?) AS wanted
    JOIN item_keys ON item_keys.key = wanted.value AND item_keys.seq {beyond} coalesce(
        (SELECT seq FROM item_keys AS held WHERE held.key = wanted.value
         ORDER BY seq {order} LIMIT 1 OFFSET ?), -1)
"""
_FIRST_HOLDER = _HOLDERS.format(beyond="<=", order="ASC")
_LATEST_HOLDERS = _HOLDERS.format(beyond=">=", order="DESC")
# Stories that have a hit claimed under a name (an alert already sent or on its way).
_CLAIMED_STORIES = """
    SELECT DISTINCT items.story FROM digest_hits
    JOIN hits ON hits.id = digest_hits.hit_id JOIN items ON items.id = hits.item_id
    WHERE digest_hits.name = ? AND items.story IN ({marks})
"""
# Items old enough to go, except those whose hits went into a digest (sent or waiting).
_DOOMED = """
    CREATE TEMP TABLE doomed AS SELECT id FROM items
    WHERE first_seen < ? AND id NOT IN (
        SELECT hits.item_id FROM hits JOIN digest_hits ON digest_hits.hit_id = hits.id)
"""


class ItemTable(AssignmentTable, SourceTable, SignalTable):
    def find_known(
        self, items: Sequence[Item], identities: Sequence[Identity] | None = None
    ) -> dict[str, str]:
        """For items already stored (the same item as `dedupe` defines it): item id -> the
        stored item's id. Items not in the result are new. `identities`, when the caller has
        them, are the items' own (`Identity.of` each)."""
        return self.identify(items, identities).copies

    def identify(
        self, items: Sequence[Item], identities: Sequence[Identity] | None = None
    ) -> Known:
        """`find_known`, with the stored items the new ones were compared with: for
        `story_lookup`, which compares them again."""
        if identities is None:
            identities = [Identity.of(item) for item in items]
        return resolve(identities, self._key_holders, self._texts)

    def _key_holders(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """The stored items carrying each key, oldest first: an exact key's first holder
        (the item it identifies), a band key's latest `HOLDERS_PER_KEY`."""
        held: dict[str, list[str]] = {}
        exact: list[str] = []
        bands: list[str] = []
        for key in keys:
            (bands if is_band(key) else exact).append(key)
        for wanted, holders, offset in (
            (exact, _FIRST_HOLDER, 0),
            (bands, _LATEST_HOLDERS, HOLDERS_PER_KEY - 1),
        ):
            rows = self.conn.execute(holders, [json.dumps(wanted), offset]).fetchall()
            for key, stored, _ in sorted(rows, key=lambda row: row[2]):
                held.setdefault(key, []).append(stored)
        return held

    def _texts(self, ids: Sequence[str]) -> dict[str, Text]:
        texts = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT id, source, url, guid, title, summary, content, published, fingerprint,"
                f" first_seen FROM items WHERE id IN ({marks})"
            )
            for *fields, first_seen in self.conn.execute(sql, chunk):
                item = Item(*(f or "" for f in fields))
                texts[item.id] = Text.of(item, first_seen or "")
        return texts

    def save_cycles(
        self,
        saves: Sequence[tuple[CycleOutcome, datetime]],
        now: datetime,
        flag_after: int | None = None,
    ) -> None:
        """Store many sources' outcomes (each with its next check time) in one transaction:
        one batched insert per table instead of a few per source. A source failing for
        `flag_after` seconds or more is flagged."""
        stamp = iso(now)
        flag_before = iso(now - timedelta(seconds=flag_after)) if flag_after else None
        new_items = [(o.source, i) for o, _ in saves for i in o.new_items]
        seen = [(o.source, stored, i) for o, _ in saves for stored, i in o.also_seen]
        story_of = {item: story for o, _ in saves for item, story in o.stories}
        entities_of = _entities_by_item(k for o, _ in saves for k in o.keys)
        with self.transaction():
            self._insert(
                "items",
                [
                    {
                        **vars(i),
                        "first_seen": stamp,
                        "story": story_of.get(i.id, i.id),
                        "entities": entities_of.get(i.id),
                    }
                    for _, i in new_items
                ],
            )
            self.conn.executemany(
                _STORY_UPSERT,
                [(story_of.get(i.id, i.id), i.title, i.id, stamp, stamp) for _, i in new_items],
            )
            self._index_folded([i for _, i in new_items])
            self._insert(
                "item_sources",
                [
                    {"item_id": stored, "source": source, "url": i.url, "seen_at": stamp}
                    for source, stored, i in [(s, i.id, i) for s, i in new_items] + seen
                ],
            )
            self._insert(
                "hits", [_hit_row(item_id, hit, stamp) for o, _ in saves for item_id, hit in o.hits]
            )
            self._insert_keys([key for o, _ in saves for key in o.keys])
            self._count_entities(k for o, _ in saves for k, _ in o.keys)
            self._save_relations([r for o, _ in saves for r in o.relations], stamp)
            for outcome, next_check in saves:
                self._record_status(outcome, stamp, iso(next_check), flag_before)

    def pruned_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of these item ids that were stored once and pruned since."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(ids)), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id FROM pruned_items WHERE id IN ({marks})"
            found.update(r[0] for r in self.conn.execute(sql, chunk))
        return found

    def prune(self, before: datetime, now: datetime) -> int:
        """Delete items first seen before `before`, with their hits and source links, except
        items whose hits went into a digest (delivered or waiting to be). Their ids are kept
        for a while, so a feed still listing an old story does not bring it back as new.
        Returns how many items were deleted."""
        cutoff = iso(before)
        with self.transaction():
            self.conn.execute("DROP TABLE IF EXISTS temp.doomed")
            self.conn.execute(_DOOMED, [cutoff])
            count = self.conn.execute("SELECT count(*) FROM temp.doomed").fetchone()[0]
            self.conn.execute(
                "INSERT OR IGNORE INTO pruned_items (id, pruned_at) SELECT id, ? FROM temp.doomed",
                [iso(now)],
            )
            for table in ("hits", "item_sources", "item_keys"):
                self.conn.execute(
                    f"DELETE FROM {table} WHERE item_id IN (SELECT id FROM temp.doomed)"
                )
            self.conn.execute("DELETE FROM items WHERE id IN (SELECT id FROM temp.doomed)")
            # A tombstone older than the retention age has done its job.
            self.conn.execute("DELETE FROM pruned_items WHERE pruned_at < ?", [cutoff])
            self._prune_signal_history(cutoff)
            self.conn.execute("DROP TABLE temp.doomed")
        return int(count)

    def undelivered_hits(self, digest: str, since: datetime | None = None) -> list[StoredHit]:
        """Hits not yet placed in any digest of this name, with their item, newest first;
        with `since`, only hits stored from then on."""
        rows = self.conn.execute(_UNDELIVERED, [digest, iso(since) if since else ""])
        return [_stored_hit(row) for row in rows]

    def story_provenance(self, story_ids: Iterable[str]) -> dict[str, StoryProvenance]:
        """Who reported each of these stories: every outlet once, at its first copy, the
        first report first (earliest published time, then earliest first seen)."""
        outlets: dict[str, dict[str, Outlet]] = {}
        titles: dict[str, str] = {}
        for chunk in _chunks(sorted(set(story_ids)), 500):
            sql = _PROVENANCE.format(marks=",".join("?" * len(chunk)))
            for story, title, source, url, published, seen, lang, tags in self.conn.execute(
                sql, chunk
            ):
                titles[story] = title or ""
                kind = outlet_kind(json.loads(tags or "[]"))
                outlet = Outlet(source, url or "", published or "", seen or "", lang or "", kind)
                known = outlets.setdefault(story, {}).get(source)
                if known is None or _report_order(outlet) < _report_order(known):
                    outlets[story][source] = outlet
        return {
            story: StoryProvenance(story, titles[story], tuple(sorted(by_source.values(),
                                                                      key=_report_order)))
            for story, by_source in outlets.items()
        }  # fmt: skip

    def alerted_stories(self, claim: str, story_ids: Iterable[str]) -> set[str]:
        """Those of these stories that have a hit claimed under `claim` already."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(story_ids)), 500):
            sql = _CLAIMED_STORIES.format(marks=",".join("?" * len(chunk)))
            found.update(r[0] for r in self.conn.execute(sql, [claim, *chunk]))
        return found

    def search(self, query: str, limit: int = 20) -> list[SearchResult]:
        """Full-text search over folded text (see monitor/searchtext.py): every term must
        occur; `title:`, `summary:`, `content:` and `lang:` narrow it."""
        parsed = parse_search(query)
        if parsed is None:
            return []
        codes = expand(parsed.languages)
        langs = f"AND items.lang IN ({','.join('?' * len(codes))})" if codes else ""
        if self.postgres:
            sql, match = _SEARCH.format(languages=langs, **_TSQUERY), as_tsquery(parsed)
            rows = self.conn.execute(sql, [match, *codes, match, limit])
        else:
            sql = _SEARCH.format(languages=langs, **_FTS5)
            rows = self.conn.execute(sql, [parsed.match, *codes, limit])
        return [
            SearchResult(*row[:5], snippet([row[6], row[7], row[5]], parsed), row[8], row[9])
            for row in rows
        ]

    def _insert_keys(self, keys: Sequence[tuple[str, str]]) -> None:
        """(key, item id) pairs into `item_keys`, each ordered after the keys of the items
        stored before its item (`seq`, the item's row number)."""
        seq = self._row_numbers({item_id for _, item_id in keys})
        rows = [(key, seq[item_id], item_id) for key, item_id in keys if item_id in seq]
        self.conn.executemany(
            "INSERT OR IGNORE INTO item_keys (key, seq, item_id) VALUES (?, ?, ?)", rows
        )

    def _row_numbers(self, ids: Iterable[str]) -> dict[str, int]:
        sql = (
            "SELECT items.id, items.rowid FROM json_each(?) AS wanted"
            " JOIN items ON items.id = wanted.value"
        )
        return dict(self.conn.execute(sql, [json.dumps(sorted(ids))]))

    def _index_folded(self, items: Sequence[Item]) -> None:
        """Folded title, summary and content of newly inserted items into `items_search`
        (the rows an `INSERT OR IGNORE` skipped are already there, and are left alone)."""
        by_id = {item.id: item for item in items}
        for chunk in _chunks(sorted(by_id), 500):
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT rowid, id FROM items WHERE id IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM items_search s WHERE s.rowid = items.rowid)"
            )
            rows = [
                (rowid, fold(by_id[i].title), fold(by_id[i].summary), fold(by_id[i].content))
                for rowid, i in self.conn.execute(sql, chunk)
            ]
            self.conn.executemany(
                "INSERT INTO items_search (rowid, title, summary, content) VALUES (?, ?, ?, ?)",
                rows,
            )

    def counts(self) -> dict[str, int]:
        return {
            t: self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("sources", "items", "hits", "digests")
        }


def _stored_hit(row: tuple[Any, ...]) -> StoredHit:
    (hit_id, rule, priority, actors, evidence, created, item_id, title, summary, content, url,
     published, source, lang, story, carriers) = row  # fmt: skip
    # every source that carried the story, with the address it gave it; first seen first
    links = [tuple(p.split("\x1e", 1)) for p in (carriers or "").split("\x1f") if p]
    links.sort(key=lambda link: link[0] != source)
    return StoredHit(
        hit_id=hit_id,
        rule=rule,
        priority=priority,
        actors=tuple(json.loads(actors or "[]")),
        evidence=tuple(Evidence(**e) for e in json.loads(evidence or "[]")),
        created_at=from_iso(created),
        item_id=item_id,
        title=title or "",
        summary=summary or "",
        content=content or "",
        url=url or "",
        published=published or "",
        source=source,
        source_links=tuple((n, u) for n, u in links) or ((source, url or ""),),
        lang=lang or "",
        story=story,
    )


def _report_order(outlet: Outlet) -> tuple[int, str, str, str]:
    """Outlets with a published time first, by it; then the rest by when first seen."""
    return (0 if outlet.published else 1, outlet.reported, outlet.seen, outlet.source)


def _hit_row(item_id: str, hit: Hit, stamp: str) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "rule": hit.rule,
        "priority": hit.priority,
        "actors": json.dumps(list(hit.actors)),
        "evidence": json.dumps([vars(e) for e in hit.evidence], ensure_ascii=False),
        "created_at": stamp,
    }


def _entities_by_item(keys: Iterable[tuple[str, str]]) -> dict[str, str]:
    """What each item names (its entity keys), as `items.entities` keeps it."""
    named: dict[str, list[str]] = {}
    for key, item_id in keys:
        if key.startswith("e:"):
            named.setdefault(item_id, []).append(key)
    return {item_id: "\x1f".join(sorted(set(found))) for item_id, found in named.items()}


def _chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
