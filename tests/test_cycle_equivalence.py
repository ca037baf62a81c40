"""The cycle as it runs (sources in small batches, each stored before the next is fetched;
parsing in worker processes) gives what the straightforward cycle gives: every source in
one batch, parsed in the main process. Same farm, same rules, two databases: the same items,
the same copies recorded, the same hits with the same evidence, the same stories."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import FeedServer, Response, report_feed, write_config

from monitor.clock import from_iso
from monitor.cluster import score
from monitor.config import load_settings
from monitor.match import Engine
from monitor.pipeline import poll
from monitor.rules import load_rules
from monitor.store import Store
from monitor.workers import ParsePool

ROOT = Path(__file__).parents[1]
REPORTS = ROOT / "tests" / "data" / "stories" / "tuning.jsonl"
FEEDS = 24
NOW = from_iso("2026-03-01T12:00:00Z")


def publish(server: FeedServer) -> list[dict]:
    """The labelled reports spread over FEEDS feeds; every fifth one also syndicated by the
    next feed under its own link (a copy), every seventh with an edited title (a near one)."""
    records = [json.loads(line) for line in REPORTS.read_text("utf-8").splitlines() if line]
    feeds: list[list[dict]] = [[] for _ in range(FEEDS)]
    for n, record in enumerate(records):
        feeds[n % FEEDS].append(record)
        if n % 5 == 0:
            copy = dict(record, url=record["url"] + "?via=wire")
            if n % 7 == 0:
                copy["title"] = "UPDATE: " + record["title"]
            feeds[(n + 1) % FEEDS].append(copy)
    sources = []
    for number, entries in enumerate(feeds):
        server.routes[f"/feed{number}.xml"] = Response(200, report_feed(f"feed {number}", entries))
        sources.append({"name": f"feed {number}", "url": server.url(f"/feed{number}.xml")})
    return sources


def stored(db: Path) -> dict[str, object]:
    with sqlite3.connect(db) as conn:
        items = sorted(conn.execute("SELECT id, source, title, lang, url FROM items"))
        copies = sorted(conn.execute("SELECT item_id, source, url FROM item_sources"))
        hits = sorted(conn.execute("SELECT item_id, rule, priority, actors, evidence FROM hits"))
        members: dict[str, set[str]] = {}
        for item, story in conn.execute("SELECT id, story FROM items"):
            members.setdefault(story, set()).add(item)
        relations = sorted(conn.execute("SELECT * FROM relations"))
    stories = sorted(sorted(group) for group in members.values())
    return {"items": items, "copies": copies, "hits": hits, "stories": stories,
            "relations": [r[1:] for r in relations]}  # fmt: skip


def run(
    tmp_path: Path, sources: list[dict], name: str, batch: int, workers: int, take_in: int = 10_000
) -> dict:
    folder = tmp_path / name
    folder.mkdir()
    config = write_config(folder, sources, rules=ROOT / "rules", fetch={"parse_workers": workers})
    settings = load_settings(config)
    engine = Engine(load_rules(ROOT / "rules"))
    pool = ParsePool(workers) if workers > 1 else None
    try:
        with Store(settings.database) as store:
            reports = poll(
                settings, store, engine, now=NOW, pool=pool, batch=batch, take_in=take_in
            )
    finally:
        if pool is not None:
            pool.close()
    assert len(reports) == FEEDS and not any(r.error for r in reports)
    return stored(settings.database)


def test_parsing_in_workers_stores_what_parsing_in_process_stores(tmp_path, feed_server):
    sources = publish(feed_server)
    plain = run(tmp_path, sources, "in-process", batch=20, workers=1, take_in=30)
    parallel = run(tmp_path, sources, "workers", batch=20, workers=2, take_in=30)  # 20: workers
    assert plain["items"] and plain["hits"] and len(plain["copies"]) > len(plain["items"])
    for table in plain:
        assert parallel[table] == plain[table], table


def test_a_cycle_in_batches_stores_what_one_batch_stores(tmp_path, feed_server):
    """Items, copies, hits and relations are the same. Stories are built batch by batch as
    they are cycle by cycle: what a later batch names is not yet counted when an earlier one
    is placed, so a grouping may differ at the edges, and only there."""
    sources = publish(feed_server)
    whole = run(tmp_path, sources, "whole", batch=10_000, workers=1)
    batched = run(tmp_path, sources, "batched", batch=5, workers=1, take_in=30)
    for table in ("items", "copies", "hits", "relations"):
        assert batched[table] == whole[table], table
    label = {item: n for n, group in enumerate(whole["stories"]) for item in group}
    story = {item: n for n, group in enumerate(batched["stories"]) for item in group}
    agreement = score(story, label)
    assert agreement.pair_f1 >= 0.95 and agreement.bcubed_f1 >= 0.97, agreement
