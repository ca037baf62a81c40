"""Benchmark a first cycle spread over `monitor worker`s, next to `monitor once` in one process.

    python bench/bench_queue.py                    # 500 feeds x 20 items, 1 and 2 workers
    python bench/bench_queue.py --quick            # 100 feeds, a smoke run
    python bench/bench_queue.py --workers 1 2 4    # any counts of workers

The farm of bench_cycle.py (aiohttp, its own process, `--hosts` ports) serves every feed; each
run gets a fresh SQLite database. A queued run is `monitor run --tick 1` with `[queue] broker`
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


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def monitor(path: Path, *args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MONITOR_CONFIG": str(path)}
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen([sys.executable, "-m", "monitor", *args], env=env, stdout=out,
                            stderr=out, stdin=subprocess.DEVNULL)  # fmt: skip


def queued(ports: list[int], feeds: int, total: int, broker: str, workers: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    path = config(folder, ports, feeds, broker, parse_workers=1)
    started = time.perf_counter()
    processes = [monitor(path, "run", "--tick", "1", log=folder / "scheduler.log")]
    processes += [monitor(path, "worker", "--pool", "solo", log=folder / f"worker{n}.log")
                  for n in range(workers)]  # fmt: skip
    try:
        while stored(folder / "bench.db") < total:
            if time.perf_counter() - started > 600:
                raise SystemExit(f"gave up after 600 s; see {folder}")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def once(ports: list[int], feeds: int, parse_workers: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    path = config(folder, ports, feeds, "", parse_workers)
    started = time.perf_counter()
    process = monitor(path, "once", log=folder / "once.log")
    process.wait(timeout=600)
    return time.perf_counter() - started


def main() -> None:
    parser = farm_arguments(__doc__.split("\n")[0], "100 feeds: a smoke run")
    parser.set_defaults(feeds=500, items=20, hosts=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
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
        rows = [("`monitor once`, parsing in-process", once(ports, args.feeds, 1)),
                ("`monitor once`, a parse worker per CPU", once(ports, args.feeds, 0))]  # fmt: skip
        for count in args.workers:
            label = f"`monitor run` + {count} `monitor worker --pool solo`"
            rows.append((label, queued(ports, args.feeds, total, args.broker, count)))
    finally:
        if farm.stdin:
            farm.stdin.close()
        farm.wait(timeout=30)
    print(f"\n{args.feeds} feeds x {args.items} items ({total:,} items) on {args.hosts} loopback "
          f"hosts, {os.cpu_count()} CPUs, test rules, a fresh database each run\n")  # fmt: skip
    print("| run | wall time (start to last item stored) | items/s |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} s | {total / seconds:,.0f} |")


if __name__ == "__main__":
    main()
