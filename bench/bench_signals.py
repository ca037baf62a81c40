"""The detectors' cost per item, next to the cycle's other stages, in the same run.

A store is first filled by replaying the first `--history` days of the dev timeline
(tests/data/signals_dev.jsonl: the shipped rule pack, ~30 stories a day, each in one to
several outlets). The remaining days then arrive as the service would take them in, one
cycle per hour of items, and each stage is timed per cycle: identity and the store lookup
(dedupe), matching, relations (what `match_with_relations` costs over `match`), story
assignment, the store's write, and the detectors (`Detector.run`: marks, outlets, surges,
breaking stories, firsts). Printed as µs per item and as a share of the cycle.

    .venv/bin/python bench/bench_signals.py            # ~30 s
    .venv/bin/python bench/bench_signals.py --quick    # ~10 s
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from itertools import groupby
from pathlib import Path

from monitor.dedupe import Identity
from monitor.match import Engine
from monitor.models import CycleOutcome
from monitor.rules import load_rules
from monitor.settings import SignalSettings
from monitor.signals import Detector
from monitor.store import Store
from monitor.stories import OPEN_WINDOW, Arrival, Assigner, entity_keys
from monitor.trends import Timed, read_timeline, replay_into

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("dedupe", "match", "stories", "store", "detectors")


class Stopwatch:
    """Seconds spent per stage, summed over cycles."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.relations = 0.0  # of "match": what finding relations adds to matching

    def time(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.spent[stage] += now - start
        return now


def best(run, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def cycle(store: Store, engine: Engine, detector: Detector, batch: list[Timed],
          watch: Stopwatch) -> None:  # fmt: skip
    """One cycle of new items, timed stage by stage as pipeline.py runs them."""
    now, start = batch[-1].at, time.perf_counter()
    identities = [Identity.of(t.item) for t in batch]
    known = store.find_known([t.item for t in batch], identities)
    fresh = [(t.item, i) for t, i in zip(batch, identities, strict=True) if t.item.id not in known]
    start = watch.time("dedupe", start)
    matched = [(item, engine.match_with_relations(item)) for item, _ in fresh]
    start = watch.time("match", start)
    items = [item for item, _ in fresh]
    watch.relations += max(0.0, best(lambda: [engine.match_with_relations(i) for i in items])
                           - best(lambda: [engine.match(i) for i in items]))  # fmt: skip
    start = time.perf_counter()
    hits = [(item.id, h) for item, (found, _) in matched for h in found]
    relations = [(item.id, r) for item, (_, said) in matched for r in said]
    actors: dict[str, set[str]] = defaultdict(set)
    for item_id, hit in hits:
        actors[item_id].update(hit.actors)
    arrivals = [
        Arrival(i, frozenset(actors[item.id]), entity_keys(item, actors[item.id]))
        for item, i in fresh
    ]
    lookup = store.story_lookup(now - OPEN_WINDOW)
    assigner = Assigner.for_cycle(arrivals, lookup, now)
    stories = [(a.identity.text.id, assigner.assign(a)) for a in arrivals]
    start = watch.time("stories", start)
    outcome = CycleOutcome(
        source="bench", status=200, parsed=len(batch), new_items=items, hits=hits,
        keys=[(k, a.identity.text.id) for a in arrivals for k in (*a.identity.keys, *a.entities)],
        stories=stories,
        relations=relations,
        also_seen=[(known[t.item.id], t.item) for t in batch if t.item.id in known],
    )  # fmt: skip
    store.save_cycles([(outcome, now)], now)
    start = watch.time("store", start)
    detector.run()
    watch.time("detectors", start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=50, help="days replayed before timing")
    parser.add_argument("--quick", action="store_true", help="20 days of history, 5 timed")
    parser.add_argument("--cycle", choices=["hour", "day"], default="hour",
                        help="items per cycle: each hour's, or each day's")  # fmt: skip
    args = parser.parse_args()
    history, timed_days = (20, 5) if args.quick else (args.history, 60 - args.history)
    engine = Engine(load_rules(ROOT / "rules"))
    with (ROOT / "tests/data/signals_dev.jsonl").open(encoding="utf-8") as stream:
        timeline = read_timeline(stream, "signals_dev.jsonl")
    start = timeline[0].at
    split = start + timedelta(days=history)
    before = [t for t in timeline if t.at < split]
    after = [t for t in timeline if split <= t.at < split + timedelta(days=timed_days)]
    watch = Stopwatch()
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "bench.db") as store:
        settings = SignalSettings()
        replay_into(store, before, engine, settings)
        detector = Detector(store, settings)
        stamp = "%Y-%m-%dT%H" if args.cycle == "hour" else "%Y-%m-%d"
        cycles = 0
        for _, batch in groupby(after, key=lambda t: t.at.strftime(stamp)):
            cycle(store, engine, detector, list(batch), watch)
            cycles += 1
    spent, n = watch.spent, len(after)
    total = sum(spent.values())
    print(f"{n} items in {cycles} cycles (one per {args.cycle}), after {len(before)} items")
    print(f"{'stage':24} {'µs/item':>9} {'share':>7}")
    for stage in STAGES:
        print(f"{stage:24} {spent[stage] / n * 1e6:9.0f} {spent[stage] / total:7.1%}")
        if stage == "match":
            print(f"{'  of which relations':24} {watch.relations / n * 1e6:9.0f} "
                  f"{watch.relations / total:7.1%}")  # fmt: skip
    print(f"{'cycle (these stages)':24} {total / n * 1e6:9.0f} {1:7.1%}")


if __name__ == "__main__":
    main()
