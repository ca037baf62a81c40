"""Identity and story assignment at scale: N new items into a store of M recent items.

Times each stage the way a cycle runs it: the identities (MinHash sketches), the store lookup
(`find_known`), story assignment (one batched candidate lookup, then `Assigner.assign` per
item), and the store's write of the cycle. Synthetic, deterministic (fixed seed); titles are
drawn from a vocabulary of 5,000 words so unrelated items share words, as real ones do.

    .venv/bin/python bench/bench_stories.py --stored 200000 --new 50000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from monitor.clock import iso, utcnow
from monitor.dedupe import Identity
from monitor.models import CycleOutcome, Item
from monitor.normalise import fingerprint, item_id
from monitor.store import Store
from monitor.stories import OPEN_WINDOW, Assigner


def items(rng: random.Random, count: int, start: int, words: list[str]) -> list[Item]:
    now = utcnow()
    made = []
    for n in range(start, start + count):
        title = " ".join(rng.choices(words, k=rng.randint(6, 12)))
        body = " ".join(rng.choices(words, k=rng.randint(15, 40)))
        source = f"s{n % 500}"
        published = iso(now - timedelta(minutes=rng.randint(0, 60 * 24 * 6)))
        url = f"https://x.example/{n}"
        made.append(Item(item_id(source, f"g{n}", "", ""), source, url, f"g{n}", title, body,
                         "", published, fingerprint(title, body)))  # fmt: skip
    return made


def store_cycle(store: Store, batch: list[Item], stories: list[tuple[str, str]]) -> None:
    keys = [(k, i.id) for i in batch for k in Identity.of(i).keys]
    outcome = CycleOutcome("bench", 200, len(batch), batch, keys=keys, stories=stories)
    store.save_cycles([(outcome, utcnow())], utcnow())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stored", type=int, default=200_000)
    parser.add_argument("--new", type=int, default=50_000)
    args = parser.parse_args()
    rng = random.Random(12)
    words = [f"w{n}" for n in range(5000)]
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "b.db") as store:
        for start in range(0, args.stored, 50_000):
            chunk = items(rng, min(50_000, args.stored - start), start, words)
            store_cycle(store, chunk, [])
        new = items(rng, args.new, args.stored, words)
        t0 = time.perf_counter()
        identities = [Identity.of(i) for i in new]
        t1 = time.perf_counter()
        known = store.find_known(new, identities)
        t2 = time.perf_counter()
        fresh = [i for i in identities if i.text.id not in known]
        since = utcnow() - OPEN_WINDOW
        assigner = Assigner.for_cycle(fresh, lambda keys: store.story_members(keys, since))
        stories = [(i.text.id, assigner.assign(i, frozenset())) for i in fresh]
        t3 = time.perf_counter()
        kept = [i for i in new if i.id not in known]
        keys = [(k, i.text.id) for i in fresh for k in i.keys]
        outcome = CycleOutcome("bench", 200, len(new), kept, keys=keys, stories=stories)
        store.save_cycles([(outcome, utcnow())], utcnow())
        t4 = time.perf_counter()
    joined = sum(1 for item, story in stories if item != story)
    print(f"{args.new} new items into {args.stored} stored ({len(known)} known, {joined} joined)")
    for name, seconds in [("identities (MinHash)", t1 - t0), ("find_known", t2 - t1),
                          ("story assignment", t3 - t2), ("store the cycle", t4 - t3)]:  # fmt: skip
        print(f"  {name:22} {seconds:7.2f} s  {args.new / seconds:9.0f} items/s")


if __name__ == "__main__":
    main()
