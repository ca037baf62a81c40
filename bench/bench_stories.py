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
            t0 = _clocks()
            identities = [Identity.of(i) for i in new]
            t1 = _clocks()
            found_known = store.identify(new, identities)
            known = found_known.copies
            t2 = _clocks()
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
            t3 = _clocks()
            keys = [
                (k, a.identity.text.id) for a in arrivals for k in [*a.identity.keys, *a.entities]
            ]
            outcome = CycleOutcome("bench", 200, len(new), kept, keys=keys, stories=stories)
            store.save_cycles([(outcome, utcnow())], utcnow())
            t4 = _clocks()
        engine = Engine(load_rules(pack_path()))
        news = real_style(args.new)
        with rare_full_passes():
            t5 = _clocks()
            for item in news:
                engine.match_with_relations(item)
            t6 = _clocks()
    joined = sum(1 for item, story in stories if item != story)
    print(f"{args.new} new items into {args.stored} stored ({len(known)} known, {joined} joined)")
    print(f"  {'stage':24} {'wall s':>7} {'CPU s':>7} {'items/s':>9}")
    for name, (start, end) in [("identities (MinHash)", (t0, t1)), ("find_known", (t1, t2)),
                               ("story assignment", (t2, t3)), ("store the cycle", (t3, t4)),
                               ("matching real-style news", (t5, t6))]:  # fmt: skip
        wall, cpu = end[0] - start[0], end[1] - start[1]
        print(f"  {name:24} {wall:7.2f} {cpu:7.2f} {args.new / wall:9.0f}")


def _clocks() -> tuple[float, float]:
    """Wall-clock and CPU seconds: on a busy machine the CPU time of a stage is its own."""
    return time.perf_counter(), time.process_time()


if __name__ == "__main__":
    main()
