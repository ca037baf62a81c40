"""One cycle of the loopback farm on each store and work layout, side by side, interleaved
round by round: `monitor once` on SQLite, `monitor once` on PostgreSQL, and (when a broker
is reachable) one scheduler with 1 and 2 `monitor worker` processes on PostgreSQL.

Besides wall and CPU seconds and items stored, it reads what the capacity model in the
README is built from: per source, the database's commits and rows written (PostgreSQL's own
counters, `pg_stat_database`) and, with workers, the broker messages.

    python bench/bench_scale.py                      # 1,000 feeds x 50 items, 3 rounds
    python bench/bench_scale.py --quick              # 100 feeds x 20 items, 1 round
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_cycle  # noqa: E402
from bench_first_cycle import measure, monitor_config  # noqa: E402

POSTGRES = os.environ.get("NM_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/test")


def fresh_schema() -> str:
    """A new, empty schema on the benchmark's server, as a URL the store takes."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{POSTGRES}?options=-csearch_path%3D{schema}"


def drop_schema(url: str) -> None:
    import psycopg

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def server_counters() -> dict[str, int]:
    """The test database's commits and rows written so far (all sessions)."""
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return {"commits": int(row[0]), "rows": int(row[1])}


def stored_items(database: Path | str) -> int:
    from monitor.store import Store

    with Store(database) as store:
        return store.counts()["items"]


def run_once(folder: Path, config: Path, database: Path | str) -> dict:
    env = {**os.environ, "MONITOR_DATABASE": str(database)}
    once = [sys.executable, "-m", "monitor", "--config", str(config), "once"]
    before = server_counters() if isinstance(database, str) else None
    result = measure(once, folder, f"once-{uuid.uuid4().hex[:6]}", env=env)
    if before is not None:
        after = server_counters()
        result["db"] = {key: after[key] - before[key] for key in before}
    result["items"] = stored_items(database)
    return result


def sqlite_mode(folder: Path, config: Path) -> dict:
    return run_once(folder, config, folder / "monitor.db")


def postgres_mode(folder: Path, config: Path) -> dict:
    url = fresh_schema()
    try:
        return run_once(folder, config, url)
    finally:
        drop_schema(url)


MODES: dict[str, Callable[[Path, Path], dict]] = {
    "sqlite, one process": sqlite_mode,
    "postgresql, one process": postgres_mode,
}


def bench(feeds: int, items: int, hosts: int, rounds: int, workers: int) -> dict[str, list]:
    farm = subprocess.Popen(
        [sys.executable, bench_cycle.__file__, "--serve", "--feeds", str(feeds),
         "--items", str(items), "--hosts", str(hosts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    results: dict[str, list] = {mode: [] for mode in MODES}
    try:
        assert farm.stdout is not None
        ports = json.loads(farm.stdout.readline())
        names = list(MODES)
        for number in range(rounds):
            for mode in names[number % len(names) :] + names[: number % len(names)]:
                folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
                config = monitor_config(folder, ports, feeds, workers)
                print(f"round {number + 1}/{rounds}: {mode} ...", file=sys.stderr)
                results[mode].append(MODES[mode](folder, config))
    finally:
        if farm.stdin:
            farm.stdin.close()
        farm.wait(timeout=60)
    return results


def report(results: dict[str, list], feeds: int, items: int) -> None:
    print(f"\n{feeds} feeds x {items} items, median of {len(next(iter(results.values())))}\n")
    print("| layout | wall s | CPU s | items | items/s | commits/source | rows written/source |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = None
    for mode, runs in results.items():
        wall = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        stored = runs[-1]["items"]
        base = base or wall
        db = [r["db"] for r in runs if "db" in r]
        commits = f"{statistics.median(d['commits'] for d in db) / feeds:.2f}" if db else "-"
        rows = f"{statistics.median(d['rows'] for d in db) / feeds:.1f}" if db else "-"
        print(f"| {mode} | {wall:.1f} | {cpu:.1f} | {stored} | {stored / wall:,.0f} | "
              f"{commits} | {rows} |")  # fmt: skip


def main() -> None:
    parser = bench_cycle.farm_arguments(__doc__.split("\n")[0], "100 feeds x 20 items, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="parse workers per process")
    args = parser.parse_args()
    if args.quick:
        args.feeds, args.items, args.rounds = 100, 20, 1
    results = bench(args.feeds, args.items, args.hosts, args.rounds, args.workers)
    report(results, args.feeds, args.items)


if __name__ == "__main__":
    main()
