"""Per-item cost of the shipped rule pack: the multilingual pack next to the pack as it was
before it (English and Serbian/Albanian only), on the same real-style items.

    python bench/bench_pack.py [--repeat N] [--before-rev REV | --before PATH]

Items are the labelled sets under tests/data (the English Balkans sets and the multilingual
ones), matched `--repeat` times each, best of three passes. For each pack: patterns in the
automaton, build time, microseconds per item for `Engine.match` (fold, scan, evaluation,
evidence) and for the scan alone, split into English and other items; then the per-item cost
of language detection, which normalising an item now also pays.

The pack before is read from git (`git archive REV rules`, default the last commit before
the multilingual work), so nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(ROOT))

from monitor.lang import detect  # noqa: E402
from monitor.match import Engine, _Context, item_from_json  # noqa: E402
from monitor.models import Item  # noqa: E402
from monitor.rules import load_rules  # noqa: E402

BEFORE_REV = "31e6fc0"  # the pack before the multilingual names, lists and guards
DATA = ROOT / "tests" / "data"
SETS = ("balkans_dev", "balkans_holdout", "balkans_blind", "multilingual_eval",
        "multilingual_blind")  # fmt: skip


def corpus() -> list[tuple[str, Item]]:
    """(language, item) for every labelled item; the English sets carry no language."""
    out = []
    for name in SETS:
        for number, line in enumerate((DATA / f"{name}.jsonl").read_text("utf-8").splitlines()):
            record = json.loads(line)
            out.append((record.get("lang", "en"), item_from_json(record, number)))
    return out


def rules_at(rev: str, into: Path) -> Path:
    """The rules/ tree of a git revision, unpacked under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "rules"],
                             capture_output=True, check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "rules"


def best(fn, passes: int = 3) -> float:
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(label: str, path: Path, items: list[tuple[str, Item]], repeat: int) -> None:
    start = time.perf_counter()
    engine = Engine(load_rules(path))
    built = time.perf_counter() - start
    print(f"{label}: {len(engine.rules)} rules, {len(engine.ruleset.actors)} actors, "
          f"{len(engine._raw):,} patterns, built in {built * 1000:.0f} ms")  # fmt: skip
    english = [i for lang, i in items if lang == "en"]
    others = [i for lang, i in items if lang != "en"]
    for group, chosen in (("English", english), ("other languages", others)):
        work = chosen * repeat
        full = best(lambda w=work: [engine.match(item) for item in w])
        scan = best(lambda w=work: [_Context(engine, item) for item in w])
        hits = sum(1 for item in chosen if engine.match(item))
        print(f"  {group:16} {len(chosen):4} items, {hits:4} hit: match "
              f"{full / len(work) * 1e6:6.1f} µs/item ({len(work) / full:,.0f}/s), "
              f"fold+scan {scan / len(work) * 1e6:6.1f} µs/item")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="times each item is matched")
    parser.add_argument("--before-rev", default=BEFORE_REV, help="git revision of the old pack")
    parser.add_argument("--before", type=Path, help="a rules folder to compare with instead")
    args = parser.parse_args(argv)
    items = corpus()
    print(f"{len(items)} items ({sum(1 for lang, _ in items if lang != 'en')} not English), "
          f"each matched {args.repeat} times, best of 3 passes")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        before = args.before or rules_at(args.before_rev, Path(tmp))
        measure(f"pack before ({args.before or args.before_rev})", before, items, args.repeat)
        measure("multilingual pack (rules/)", ROOT / "rules", items, args.repeat)
    detect("warm the model up before timing it")
    samples = [(i.title, i.summary) for _, i in items]
    took = best(lambda: [detect(t, s) for t, s in samples])
    print(f"language detection: {took / len(samples) * 1e6:.0f} µs/item")
    return 0


if __name__ == "__main__":
    sys.exit(main())
