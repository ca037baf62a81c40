"""Digest size and build time as the number of stories grows, against the same digest with no
limit (every story listed, no byte budget), in the same run.

    .venv/bin/python bench/bench_digest.py             # 34, 200 and 500 stories
    .venv/bin/python bench/bench_digest.py --quick     # 34 and 200

Stories are synthetic headlines and ledes dense with the shipped pack's terms (actors, places,
topic words), matched by the shipped pack, stored in a throw-away SQLite file in one cycle."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.digest import _render, collect, render  # noqa: E402
from monitor.mailheaders import serialise  # noqa: E402
from monitor.match import Engine  # noqa: E402
from monitor.models import CycleOutcome, Item, Source  # noqa: E402
from monitor.rules import load_rules  # noqa: E402
from monitor.settings import DigestSettings  # noqa: E402
from monitor.store import Store  # noqa: E402

NOW = datetime(2022, 11, 24, 9, 0, tzinfo=UTC)
LEDES = [
    "Gunfire was heard overnight in North Mitrovica and KFOR stepped up patrols near the Ibar "
    "bridge, Kosovo Police said, as Serbia raised the readiness of its army along the line.",
    "Serbia and Kosovo resumed the EU-facilitated dialogue in Brussels on licence plates, with "
    "Vučić and Kurti meeting Lajčák; barricades near Jarinje were removed.",
    "Gazprom and NIS signed a new gas contract with Serbia as Russian influence in Republika "
    "Srpska grew; Dodik repeated calls for secession from Bosnia and Herzegovina.",
    "Chinese FK-3 air-defence systems arrived in Belgrade; the EU and NATO asked Serbia to align "
    "its foreign policy as part of the enlargement process.",
]


def stories(store: Store, engine: Engine, count: int) -> None:
    store.sync_sources([Source(f"Outlet {n}", f"https://o{n}.example/feed") for n in range(30)])
    saves = []
    for n in range(count):
        lede = LEDES[n % len(LEDES)]
        item = Item(f"s{n}", f"Outlet {n % 30}", f"https://o{n % 30}.example/{n}", "",
                    f"Report {n}: {lede[:70]}", f"Report {n}. {lede}", "",
                    "2022-11-24T07:00:00Z", f"s{n}", "en")  # fmt: skip
        hits = [(item.id, h) for h in engine.match(item)]
        saves.append((CycleOutcome(item.source, 200, 1, [item], hits), NOW + timedelta(hours=1)))
    store.save_cycles(saves, NOW)


def measure(count: int, ruleset, engine: Engine) -> list[tuple[str, int, int, int, float]]:  # type: ignore[no-untyped-def]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.db")
        stories(store, engine, count)
        config = DigestSettings(name="bench", title="Balkans watch", timezone="Europe/Rome")
        for label, settings, budget in (
            ("defaults (max_stories 80, budget)", config, True),
            ("no limit, no budget", replace(config, max_stories=10**6), False),
        ):
            started = time.perf_counter()
            digest = collect(store, settings, ruleset, NOW)
            built = (render if budget else _render)(digest, "m <m@example.org>", ["a@example.org"],
                                                    "")  # fmt: skip
            took = time.perf_counter() - started
            rows.append((label, built.digest.listed, len(built.html.encode()),
                         len(serialise(built.message)), took))  # fmt: skip
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ruleset = load_rules(ROOT / "rules")
    engine = Engine(ruleset)
    print("| stories | run | listed | HTML KB | message KB | build s |")
    print("|---:|---|---:|---:|---:|---:|")
    for count in (34, 200) if args.quick else (34, 200, 500):
        for label, listed, html, message, took in measure(count, ruleset, engine):
            print(f"| {count} | {label} | {listed} | {html / 1000:.0f} | {message / 1000:.0f} "
                  f"| {took:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
