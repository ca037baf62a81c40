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
timed from the scheduler's start until every item is stored, then started again with every
source due (each feed answers 304) until every source was polled again; the single-process
run is `monitor once` with parse workers off (`parse_workers = 1`) and on (one per CPU), and
the latter again on the same database, where every feed answers 304. Counted per source: the
server's transactions and the rows written to the store's tables (PostgreSQL), and the
commands the Redis broker processed (idle polling included). Prints a Markdown table.
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


def server_counters(url: str) -> dict[str, int]:
    """The server's transactions so far (all sessions of the database: reads in autocommit are
    transactions too) and the rows written to the tables of `url`'s schema (the store's own;
    catalog rows of temporary tables are not counted). Read after the run's connections have
    closed, when the server has taken in their counts."""
    import psycopg

    time.sleep(0.5)
    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        done = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
        written = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables "
            "WHERE schemaname = %s",
            (schema,),
        ).fetchone()
    assert done is not None and written is not None
    return {"commits": int(done[0]), "rows": int(written[0])}


def broker_commands(broker: str) -> int:
    """Commands the Redis broker has processed so far (all clients), or -1 for another broker."""
    if not broker.startswith("redis"):
        return -1
    import redis

    client = redis.Redis.from_url(broker)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


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


def query(db: Path | str, statement: str) -> str | None:
    """One statement on the run's database (the benchmark's own look at it): its first value."""
    if isinstance(db, str):  # PostgreSQL
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            try:
                cursor = conn.execute(statement)
            except psycopg.errors.UndefinedTable:  # not created yet
                return None
            row = cursor.fetchone() if cursor.description else None
    else:
        try:
            with sqlite3.connect(db, timeout=30) as conn:
                row = conn.execute(statement).fetchone()
        except sqlite3.OperationalError:  # not created yet
            return None
    return None if row is None or row[0] is None else str(row[0])


def count(db: Path | str, statement: str) -> int:
    return int(query(db, statement) or 0)


class Database:
    """Where a run stores: a fresh SQLite file in its folder, or a fresh PostgreSQL schema
    (MONITOR_DATABASE for the processes of the run), with the server's write counters."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.url: Path | str = folder / "bench.db"
        self.before: dict[str, int] = {}
        if kind == "postgresql":
            self.url = fresh_schema()
            self.before = server_counters(self.url)

    def env(self) -> dict[str, str]:
        return {"MONITOR_DATABASE": str(self.url)}

    def reset(self) -> None:
        if self.before:
            self.before = server_counters(str(self.url))

    def writes(self) -> dict[str, int]:
        if not self.before:
            return {}
        after = server_counters(str(self.url))
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
           ) -> list[tuple[float, dict[str, int]]]:  # fmt: skip
    """A scheduler and `workers` workers from a fresh database until every item is stored;
    then, started again, with every source due (all answer 304) until each was polled again.
    Each with its time and writes."""
    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    path = config(folder, ports, feeds, broker, parse_workers=1)
    db = Database(store, folder)
    first = service(path, db, broker, workers, "SELECT count(*) FROM items", total)
    latest = query(db.url, "SELECT max(last_checked) FROM sources")
    query(db.url, f"UPDATE sources SET next_check = '{latest}'")
    checked = f"SELECT count(*) FROM sources WHERE last_checked > '{latest}'"
    unchanged = service(path, db, broker, workers, checked, feeds)
    db.drop()
    return [first, unchanged]


def service(path: Path, db: Database, broker: str, workers: int, done: str, total: int
            ) -> tuple[float, dict[str, int]]:  # fmt: skip
    """Start a scheduler and its workers, time them until `done` counts `total`, stop them."""
    db.reset()
    commands = broker_commands(broker)
    folder = path.parent
    started = time.perf_counter()
    processes = [monitor(path, "run", "--tick", "1", log=folder / "scheduler.log", env=db.env())]
    processes += [monitor(path, "worker", "--pool", "solo", log=folder / f"worker{n}.log",
                          env=db.env()) for n in range(workers)]  # fmt: skip
    try:
        while count(db.url, done) < total:
            if time.perf_counter() - started > 600:
                raise SystemExit(f"gave up after 600 s; see {folder}")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        time.sleep(1)  # the last task writes its sources' states after its items
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    writes = db.writes()
    if commands >= 0:
        writes["broker"] = broker_commands(broker) - commands
    return seconds, writes


def once(ports: list[int], feeds: int, parse_workers: int, store: str, again: bool = False
         ) -> list[tuple[float, dict[str, int]]]:  # fmt: skip
    """`monitor once` on a fresh database; with `again`, twice more on the same one, where every
    feed answers 304: the first of them also takes in what the detectors left of the first
    cycle (they take in at most 10,000 events a run), the second is the bare unchanged cycle.
    Each with its time and server writes."""
    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    path = config(folder, ports, feeds, "", parse_workers)
    db = Database(store, folder)
    runs = []
    for _ in range(3 if again else 1):
        db.reset()
        started = time.perf_counter()
        process = monitor(path, "once", log=folder / "once.log", env=db.env())
        process.wait(timeout=600)
        runs.append((time.perf_counter() - started, db.writes()))
    db.drop()
    return runs[::2]


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
            rows.append((store, "`monitor once`, parsing in-process",
                         once(ports, args.feeds, 1, store)[0]))  # fmt: skip
            first, unchanged = once(ports, args.feeds, 0, store, again=True)
            rows.append((store, "`monitor once`, a parse worker per CPU", first))
            rows.append((store, "`monitor once` again, every feed 304", unchanged))
            for workers in args.workers:
                label = f"`monitor run` + {workers} `monitor worker --pool solo`"
                first, unchanged = queued(ports, args.feeds, total, args.broker, workers, store)
                rows.append((store, label, first))
                rows.append((store, f"{label} again, every feed 304", unchanged))
    finally:
        if farm.stdin:
            farm.stdin.close()
        farm.wait(timeout=30)
    print(f"\n{args.feeds} feeds x {args.items} items ({total:,} items) on {args.hosts} loopback "
          f"hosts, {os.cpu_count()} CPUs, test rules, a fresh database each run\n")  # fmt: skip
    print("| store | run | wall time (start to done) | items/s | sources/s "
          "| transactions/source | rows written/source | broker commands/source |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for store, label, (seconds, writes) in rows:
        commits = f"{writes['commits'] / args.feeds:.1f}" if "commits" in writes else "-"
        written = f"{writes['rows'] / args.feeds:.0f}" if "rows" in writes else "-"
        broker = f"{writes['broker'] / args.feeds:.1f}" if "broker" in writes else "-"
        items = "0 new" if "304" in label else f"{total / seconds:,.0f}"
        print(f"| {store} | {label} | {seconds:.1f} s | {items} | {args.feeds / seconds:,.0f} "
              f"| {commits} | {written} | {broker} |")  # fmt: skip


if __name__ == "__main__":
    main()
