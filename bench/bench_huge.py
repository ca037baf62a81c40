"""One huge item against the shipped rule pack: how long matching takes, and how much work
(the engine's counted steps) it does, with the default per-field cap and without it.

    python bench/bench_huge.py [--sizes 42000,63000,1000000] [--repeat 3]

The item's summary is a real-sounding paragraph about the region, dense with the pack's terms
(actors, places, NEAR pairs), repeated to the size asked for: the worst case for matching,
since every repetition adds occurrences of every side of every NEAR.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(ROOT))

from monitor.match import MAX_CHARS, Engine  # noqa: E402
from monitor.models import Item  # noqa: E402
from monitor.rules import load_rules  # noqa: E402

PARAGRAPH = (
    "KFOR troops reinforced patrols in Zvečan and Leposavić after Kosovo police and Serbian "
    "officials traded accusations over the shooting near the border crossing at Jarinje. "
    "Vučić and Kurti met in Brussels with the EU envoy Lajčák, while Russia's ambassador in "
    "Belgrade and Chinese investors were named in the report on influence in the Western "
    "Balkans; EULEX judges and NATO officers followed the talks on licence plates. "
)


def huge_item(size: int) -> Item:
    text = (PARAGRAPH * (size // len(PARAGRAPH) + 1))[:size]
    return Item("huge", "bench", "", "", "Tensions in north Kosovo", text, "", "", "")


def measure(engine: Engine, item: Item, cap: int, repeat: int) -> tuple[float, int, int, int]:
    """(best seconds, steps, hits, evidence kept) for one item at one cap."""
    best = float("inf")
    hits: list = []
    steps = 0
    for _ in range(repeat):
        start = time.perf_counter()
        hits, steps = engine.match_counting(item, cap)
        best = min(best, time.perf_counter() - start)
    return best, steps, len(hits), sum(len(h.evidence) for h in hits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="42000,63000,1000000", help="item sizes in characters")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (best is shown)")
    args = parser.parse_args(argv)
    engine = Engine(load_rules(ROOT / "rules"))
    print(f"shipped pack: {len(engine.rules)} rules; default cap {MAX_CHARS:,} characters/field")
    print("| item | cap | match time | steps | hits | evidence kept |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        item = huge_item(size)
        for cap in (MAX_CHARS, 10**9):
            seconds, steps, hits, evidence = measure(engine, item, cap, args.repeat)
            shown = f"{cap:,}" if cap == MAX_CHARS else "none"
            print(
                f"| {size:,} chars | {shown} | {seconds * 1000:,.0f} ms | {steps:,} | {hits} "
                f"| {evidence} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
