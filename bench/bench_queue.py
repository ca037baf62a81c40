"""Benchmark a first cycle spread over `monitor worker`s, next to `monitor once` in one process.

    python bench/bench_queue.py                    # 500 feeds x 20 items, 1 and 2 workers
    python bench/bench_queue.py --quick            # 100 feeds, a smoke run
    python bench/bench_queue.py --workers 1 2 4    # any counts of workers
    python bench/bench_queue.py --store postgresql # one store (default: SQLite, then PostgreSQL)

The farm of bench_cycle.py (aiohttp, its own process, `--hosts` ports) serves every feed; each
run gets a fresh database (a SQLite file, or a schema on the PostgreSQL of
NM_BENCH_POSTGRES, 127.0.0.1 by default, whose commits and rows written are counted).
A queued run is `monitor run --tick 1` with `[queue] broker`
(Redis on 127.0.0.1 by default, `--broker`) and N `monitor worker --pool solo` processes,
timed from the scheduler's start until every item is stored; the single-process run is
`monitor once` with parse workers off (`parse_workers = 1`) and on (one per CPU). Prints a
Markdown table.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_cycle import ROOT, farm_arguments, urls  # the script's folder is on the path

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


def config(folder: Path, ports: list[int], feeds: int, broker: str, parse_workers: int) -> Path:
    lines = [
        "[monitor]",
        f'database = "{folder / "bench.db"}"',
        f'rules = "{ROOT / "tests" / "data" / "rules"}"',
        f'outbox = "{folder / "outbox"}"',
        "[fetch]",
        "host_delay = 0",
        "jitter = 0",
        f"parse_workers = {parse_workers}",
        f"allow_private = {json.dumps([f'127.0.0.1:{port}' for port in ports])}",
    ]
    if broker:
        lines += ["[queue]", f'broker = "{broker}"', f'name = "bench-{uuid.uuid4().hex[:8]}"']
    for number, url in enumerate(urls(ports, feeds)):
        lines += ["[[sources]]", f'name = "feed {number}"', f'url = "{url}"', 'interval = "1d"']
    path = folder / "monitor.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stored(db: Path | str) -> int:
    if isinstance(db, str):  # PostgreSQL
        from monitor.store import Store

        with Store(db) as store:
            return store.counts()["items"]
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


class Database:
    """Where a run stores: a fresh SQLite file in its folder, or a fresh PostgreSQL schema
    (MONITOR_DATABASE for the processes of the run), with the server's write counters."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.url: Path | str = folder / "bench.db"
        self.before: dict[str, int] = {}
        if kind == "postgresql":
            self.url = fresh_schema()
            self.before = server_counters()

    def env(self) -> dict[str, str]:
        return {"MONITOR_DATABASE": str(self.url)}

    def writes(self) -> dict[str, int]:
        if not self.before:
            return {}
        after = server_counters()
        return {key: after[key] - self.before[key] for key in self.before}

    def drop(self) -> None:
        if isinstance(self.url, str):
            drop_schema(self.url)


def monitor(path: Path, *args: str, log: Path, env: dict[str, str] | None = None
            ) -> subprocess.Popen:  # fmt: skip
    env = {**os.environ, **(env or {}), "MONITOR_CONFIG": str(path)}
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen([sys.executable, "-m", "monitor", *args], env=env, stdout=out,
                            stderr=out, stdin=subprocess.DEVNULL)  # fmt: skip


def queued(ports: list[int], feeds: int, total: int, broker: str, workers: int, store: str
           ) -> tuple[float, dict[str, int]]:  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    path = config(folder, ports, feeds, broker, parse_workers=1)
    db = Database(store, folder)
    started = time.perf_counter()
    processes = [monitor(path, "run", "--tick", "1", log=folder / "scheduler.log", env=db.env())]
    processes += [monitor(path, "worker", "--pool", "solo", log=folder / f"worker{n}.log",
                          env=db.env()) for n in range(workers)]  # fmt: skip
    try:
        while stored(db.url) < total:
            if time.perf_counter() - started > 600:
                raise SystemExit(f"gave up after 600 s; see {folder}")
            time.sleep(0.1)
        return time.perf_counter() - started, db.writes()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        db.drop()


def once(ports: list[int], feeds: int, parse_workers: int, store: str
         ) -> tuple[float, dict[str, int]]:  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    path = config(folder, ports, feeds, "", parse_workers)
    db = Database(store, folder)
    started = time.perf_counter()
    process = monitor(path, "once", log=folder / "once.log", env=db.env())
    process.wait(timeout=600)
    seconds = time.perf_counter() - started
    writes = db.writes()
    db.drop()
    return seconds, writes


def main() -> None:
    parser = farm_arguments(__doc__.split("\n")[0], "100 feeds: a smoke run")
    parser.set_defaults(feeds=500, items=20, hosts=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], nargs="+",
                        default=["sqlite", "postgresql"])  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.feeds, args.hosts = min(args.feeds, 100), min(args.hosts, 20)
    total = args.feeds * args.items
    farm = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "bench_cycle.py"), "--serve",
         "--feeds", str(args.feeds), "--items", str(args.items), "--hosts", str(args.hosts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert farm.stdout is not None
        ports = json.loads(farm.stdout.readline())
        rows = []
        for store in args.store:
            rows += [
                (store, "`monitor once`, parsing in-process", once(ports, args.feeds, 1, store)),
                (
                    store,
                    "`monitor once`, a parse worker per CPU",
                    once(ports, args.feeds, 0, store),
                ),
            ]
            for count in args.workers:
                label = f"`monitor run` + {count} `monitor worker --pool solo`"
                rows.append((store, label, queued(ports, args.feeds, total, args.broker, count,
                                                  store)))  # fmt: skip
    finally:
        if farm.stdin:
            farm.stdin.close()
        farm.wait(timeout=30)
    print(f"\n{args.feeds} feeds x {args.items} items ({total:,} items) on {args.hosts} loopback "
          f"hosts, {os.cpu_count()} CPUs, test rules, a fresh database each run\n")  # fmt: skip
    print("| store | run | wall time (start to last item stored) | items/s "
          "| commits/source | rows written/source |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|")
    for store, label, (seconds, writes) in rows:
        commits = f"{writes['commits'] / args.feeds:.1f}" if writes else "-"
        written = f"{writes['rows'] / args.feeds:.0f}" if writes else "-"
        print(f"| {store} | {label} | {seconds:.1f} s | {total / seconds:,.0f} | {commits} "
              f"| {written} |")  # fmt: skip


if __name__ == "__main__":
    main()
