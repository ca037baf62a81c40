"""The web view's and the backtest's queries on a store of N items (stories of 1-4 items,
each carried by 1-3 outlets, hits on most), each next to a baseline in the same run:

- "latest stories" with provenance (first report, outlets, languages, hits per story) against
  the bare `SELECT ... FROM stories ORDER BY last_seen DESC LIMIT 200` it decorates;
- one story's page, the mentions chart's query, and the folded search;
- `rules backtest` (items read from the store and replayed through the shipped pack) against
  the engine matching the same items already in memory.

Synthetic and deterministic (fixed seed).

    .venv/bin/python bench/bench_ui.py --items 20000     # --quick: 2,000 items
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from monitor.clock import iso, utcnow
from monitor.match import Engine
from monitor.models import CycleOutcome, Evidence, Hit, Item
from monitor.packaged import pack_path
from monitor.rules import load_rules
from monitor.store import Store
from monitor.triage import backtest
from monitor.ui.server import LATEST_STORIES

PHRASES = [
    "KFOR troops patrol the north of Kosovo near Mitrovica",
    "Vučić meets Kurti in Brussels for EU-facilitated dialogue",
    "Gazprom and NIS talk gas prices in Belgrade",
    "Dodik threatens Republika Srpska secession referendum",
    "Tajani visits Pristina and Belgrade, urges de-escalation",
    "Weather: a sunny weekend across the region",
]
ACTORS = ["kfor", "kosovo", "serbia", "vucic", "kurti", "eu", "gazprom", "nis", "dodik"]


def fill(store: Store, count: int, rng: random.Random) -> None:
    now = utcnow()
    items, hits, stories = [], [], []
    story = ""
    for n in range(count):
        story = story if story and rng.random() < 0.6 else f"s{n}"
        title = f"{rng.choice(PHRASES)} ({n})"
        published = iso(now - timedelta(hours=rng.randint(0, 24 * 29)))
        lang = rng.choice(["en", "sh", "it", ""])
        items.append(Item(f"i{n}", f"outlet{n % 40}", f"https://x.example/{n}", f"g{n}", title,
                          title, "", published, f"f{n}", lang))  # fmt: skip
        stories.append((f"i{n}", story))
        if rng.random() < 0.8:
            actors = tuple(rng.sample(ACTORS, 2))
            evidence = (Evidence("KFOR", "title", 0, 4, "KFOR"),)
            hits.append((f"i{n}", Hit(f"balkans/r{n % 16}", "normal", actors, evidence)))
    also = [(f"i{n}", items[n]) for n in range(0, count, 3)]
    for source in {f"outlet{k}" for k in range(40)}:
        mine = [i for i in items if i.source == source]
        ids = {i.id for i in mine}
        outcome = CycleOutcome(source, 200, len(mine), mine,
                               hits=[h for h in hits if h[0] in ids],
                               stories=[s for s in stories if s[0] in ids])  # fmt: skip
        store.save_cycles([(outcome, now)], now)
    carried = CycleOutcome("outlet-copy", 200, 0, (), also_seen=also)
    store.save_cycles([(carried, now)], now)


def timed(call, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 2_000 if args.quick else args.items
    rng = random.Random(16)
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "ui.db") as store:
        fill(store, count, rng)
        conn = sqlite3.connect(store.path)
        story_ids = [
            r[0] for r in conn.execute("SELECT id FROM stories ORDER BY random() LIMIT 50")
        ]
        bare = "SELECT id, title, last_seen FROM stories ORDER BY last_seen DESC LIMIT 200"
        ruleset = load_rules(pack_path())
        engine = Engine(ruleset)
        since = utcnow() - timedelta(days=30)
        in_memory = list(store.items_since(since))
        stored, verdicts = store.rules_hit_since(since), store.verdicts()
        rows = {
            "latest stories with provenance (ms)": timed(
                lambda: conn.execute(LATEST_STORIES).fetchall(), 5),
            "  baseline: bare latest stories (ms)": timed(lambda: conn.execute(bare).fetchall(), 5),
            "one story's page (ms)": timed(lambda: [store.story_page(s) for s in story_ids]) / 50,
            "mentions chart, 30 days (ms)": timed(lambda: store.mentions(since), 3),
            "folded search 'kfor mitrovica' (ms)": timed(
                lambda: store.search("kfor mitrovica", 50), 5),
            "backtest, store + replay (ms/item)": timed(
                lambda: backtest(ruleset, store.items_since(since), stored, verdicts)) / count,
            "  baseline: engine on items in memory (ms/item)": timed(
                lambda: [engine.match(i) for i in in_memory]) / count,
        }  # fmt: skip
    print(json.dumps({"items": count, **{k: round(v, 3) for k, v in rows.items()}}, indent=1))


if __name__ == "__main__":
    main()
