"""Identity and story assignment at scale: N new items into a store of M recent items.

Times each stage the way a cycle runs it: the identities (MinHash sketches), the store lookup
(`find_known`), story assignment (one batched candidate lookup, then `Assigner.assign` per
item), and the store's write of the cycle, next to matching the same items with the shipped
rule pack on real-style news (the stage assignment must stay below). Synthetic, deterministic (fixed
seed); titles are drawn from a vocabulary of 5,000 words so unrelated items share words, as
real ones do.

    .venv/bin/python bench/bench_stories.py --stored 200000 --new 50000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from monitor.clock import iso, utcnow
from monitor.collector import rare_full_passes
from monitor.dedupe import Identity
from monitor.match import Engine, item_from_json
from monitor.models import CycleOutcome, Item
from monitor.normalise import fingerprint, item_id
from monitor.packaged import pack_path
from monitor.rules import load_rules
from monitor.store import Store
from monitor.stories import OPEN_WINDOW, Arrival, Assigner, entity_keys

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def items(rng: random.Random, count: int, start: int, words: list[str]) -> list[Item]:
    now = utcnow()
    made = []
    for n in range(start, start + count):
        title = " ".join(rng.choices(words, k=rng.randint(6, 12)) + names(rng, 2))
        body = " ".join(rng.choices(words, k=rng.randint(15, 40)) + names(rng, 4))
        source = f"s{n % 500}"
        published = iso(now - timedelta(minutes=rng.randint(0, 60 * 24 * 6)))
        url = f"https://x.example/{n}"
        made.append(Item(item_id(source, f"g{n}", "", ""), source, url, f"g{n}", title, body,
                         "", published, fingerprint(title, body)))  # fmt: skip
    return made


_SYLLABLES = [c + v for c in "bdgklmnprstvz" for v in "aeiou"]


def names(rng: random.Random, count: int) -> list[str]:
    """Proper names, a few very common (a country), most rare (a village, a minister):
    Zipf-like over 20,000, so what items name costs what it costs on real news. Spelled in
    syllables, so names differ in the first letters that stories compare."""
    return [_name(int(rng.paretovariate(0.6)) % 20_000) for _ in range(count)]


def _name(number: int) -> str:
    syllables = len(_SYLLABLES)
    parts = [_SYLLABLES[(number // syllables**n) % syllables] for n in range(3)]
    return "".join(parts).capitalize() + "ić"


def real_style(count: int) -> list[Item]:
    """`count` items cycled from the labelled real-style news under tests/data (the Balkan and
    multilingual sets and the signal timelines): what the pack meets in a cycle, for the stage
    the others are measured against. The synthetic items above hardly touch the pack."""
    records = []
    for path in sorted(DATA.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    records = [r for r in records if r.get("title")]
    return [item_from_json(records[n % len(records)], n) for n in range(count)]


def store_cycle(store: Store, batch: list[Item], stories: list[tuple[str, str]]) -> None:
    keys = [(k, i.id) for i in batch for k in [*Identity.of(i).keys, *entity_keys(i)]]
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
        with rare_full_passes():  # as a cycle runs
            t0 = time.perf_counter()
            identities = [Identity.of(i) for i in new]
            t1 = time.perf_counter()
            found_known = store.identify(new, identities)
            known = found_known.copies
            t2 = time.perf_counter()
            kept = [i for i in new if i.id not in known]
            by_id = {i.id: i for i in kept}
            arrivals = [
                Arrival(i, frozenset(), entity_keys(by_id[i.text.id]))
                for i in identities
                if i.text.id in by_id
            ]
            now = utcnow()
            assigner = Assigner.for_cycle(
                arrivals, store.story_lookup(now - OPEN_WINDOW, found_known), now
            )
            stories = [(a.identity.text.id, assigner.assign(a)) for a in arrivals]
            t3 = time.perf_counter()
            keys = [
                (k, a.identity.text.id) for a in arrivals for k in [*a.identity.keys, *a.entities]
            ]
            outcome = CycleOutcome("bench", 200, len(new), kept, keys=keys, stories=stories)
            store.save_cycles([(outcome, utcnow())], utcnow())
            t4 = time.perf_counter()
        engine = Engine(load_rules(pack_path()))
        news = real_style(args.new)
        with rare_full_passes():
            t5 = time.perf_counter()
            for item in news:
                engine.match_with_relations(item)
            t6 = time.perf_counter()
    joined = sum(1 for item, story in stories if item != story)
    print(f"{args.new} new items into {args.stored} stored ({len(known)} known, {joined} joined)")
    for name, seconds in [("identities (MinHash)", t1 - t0), ("find_known", t2 - t1),
                          ("story assignment", t3 - t2), ("store the cycle", t4 - t3),
                          ("matching real-style news", t6 - t5)]:  # fmt: skip
        print(f"  {name:22} {seconds:7.2f} s  {args.new / seconds:9.0f} items/s")


if __name__ == "__main__":
    main()
