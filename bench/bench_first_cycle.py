"""A first cycle side by side: news-monitor, a minimal reference pipeline, rss2email and a naive
feedparser loop, over the same loopback farm, interleaved in one run.

    python bench/bench_first_cycle.py                  # 1,000 feeds x 50 items, the shipped pack
    python bench/bench_first_cycle.py --rounds 3       # three interleaved rounds, medians
    python bench/bench_first_cycle.py --quick          # 100 feeds: under a minute
    python bench/bench_first_cycle.py --feeds 10000 --skip rss2email,naive
    python bench/bench_first_cycle.py --tick-check     # also: does an idle daemon tick write?

The farm is `bench_cycle.py`'s (an aiohttp server in its own process, feeds spread over
`--hosts` loopback ports, ETag and 304). Each round runs, each in a fresh process:

- news-monitor first cycle: `monitor once` on a fresh database with the shipped pack (every
  feed as a source, `host_delay = 0`, the farm's ports allowed), then the unchanged cycle:
  `monitor once` again, every feed answers 304;
- the reference pipeline, `reference_pipeline.py` (aiohttp, lxml, one Aho-Corasick pass over
  the pack's patterns with word-boundary checks, one SQLite transaction with FTS5, a pool of
  parse workers);
- rss2email 3.14, `r2e run --no-send`, installed into `bench/.venv-baselines` (created on
  first use) and configured by writing its config file directly with every farm feed;
- the naive loop, `bench_cycle.py --naive`: `feedparser.parse(url)` per feed, in turn.

The order of the four rotates from round to round; `--skip` leaves some out, and a run whose
process tree grows past `--limit-mb` is stopped and reported as such. For each run: wall
time, CPU time (user + system, worker processes included), the largest process's peak RSS
(`ru_maxrss` from `wait4`, which covers every process of the run; each run is started through
a small launcher so that it is the run's own) and the peak of the summed RSS of the run's
process tree (sampled every 20 ms from /proc). With `--rounds N` each figure is the median.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_cycle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINES = HERE / ".venv-baselines"
RSS2EMAIL = "rss2email==3.14"
UNITS = ("monitor", "reference", "rss2email", "naive")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# -- measuring one process tree --------------------------------------------------------------------


def tree_rss_kb(root: int) -> int:
    """Summed resident memory of the descendants of `root` (not `root` itself), in KB."""
    total, todo = 0, _children(root)
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE_KB
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        todo += _children(pid)
    return total


def _children(pid: int) -> list[int]:
    try:
        found = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
        return found
    except (FileNotFoundError, ProcessLookupError):
        return []


# A small launcher between this harness and each contender: a process started by a process
# inherits, in its ru_maxrss, the resident size of the process it was forked from (Linux keeps
# the high-water mark across exec), so a contender started from the harness directly would
# show the harness's own memory as a floor. The launcher is a bare Python (about 10 MB); what
# it reports is wait4's rusage of the contender, which covers the contender and every worker
# it waited for.
LAUNCHER = """
import json, os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
               "cpu": usage.ru_utime + usage.ru_stime}, out)
"""


def measure(
    command: list[str], folder: Path, name: str, env: dict | None = None, limit_mb: float = 0
) -> dict:
    """Run `command` in a fresh process (its output to files in `folder`): wall and CPU
    seconds, and peak memory (its largest process, and its whole process tree). With
    `limit_mb`, the run is stopped when its tree's memory goes past it (`"stopped"`)."""
    out, err, usage = (folder / f"{name}.{ext}" for ext in ("out", "err", "usage"))
    launch = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(usage), *command]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            launch, stdout=stdout, stderr=stderr, env=env, start_new_session=True
        )
        peak_tree, stopped = 0, False
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_tree, stopped
            while not stop.wait(0.02):
                peak_tree = max(peak_tree, tree_rss_kb(process.pid))
                if limit_mb and peak_tree > limit_mb * 1024 and not stopped:
                    stopped = True
                    os.killpg(process.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        process.wait()
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    if stopped:
        tree = peak_tree / 1024
        return {"seconds": seconds, "tree_mb": tree, "stdout": "", "stderr": "", "stopped": True}
    result = json.loads(usage.read_text()) if usage.exists() else {"code": process.returncode}
    if process.returncode != 0 or result["code"] != 0:
        tail = err.read_text()[-3000:]
        raise SystemExit(f"{' '.join(command[:5])} failed ({result['code']}):\n{tail}")
    return {
        "seconds": seconds,
        "cpu": result["cpu"],
        "peak_mb": result["maxrss_kb"] / 1024,
        "tree_mb": peak_tree / 1024,
        "stdout": out.read_text(),
        "stderr": err.read_text(),
    }


# -- setting up each contender -------------------------------------------------------------------


def monitor_config(folder: Path, ports: list[int], feeds: int, workers: int) -> Path:
    from monitor.packaged import pack_path

    lines = [
        "[monitor]",
        f'database = "{folder / "monitor.db"}"',
        f'rules = "{pack_path()}"',
        f'outbox = "{folder / "outbox"}"',
        "",
        "[fetch]",
        "host_delay = 0",
        f"parse_workers = {workers}",
        f"allow_private = {json.dumps([f'127.0.0.1:{port}' for port in ports])}",
    ]
    for number, url in enumerate(bench_cycle.urls(ports, feeds)):
        lines += ["", "[[sources]]", f'name = "feed {number}"', f'url = "{url}"']
    path = folder / "monitor.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rss2email_config(folder: Path, ports: list[int], feeds: int) -> tuple[Path, Path]:
    """rss2email's config file (read by configparser: a [DEFAULT] section, then one
    [feed.NAME] section with its url per feed) and a data file path it creates itself."""
    lines = [
        "[DEFAULT]",
        "to = bench@example.invalid",
        "from = bench@example.invalid",
        "same-server-fetch-interval = 0",
        "verbose = error",
    ]
    for number, url in enumerate(bench_cycle.urls(ports, feeds)):
        lines += ["", f"[feed.feed-{number}]", f"url = {url}"]
    config = folder / "rss2email.cfg"
    config.write_text("\n".join(lines) + "\n")
    return config, folder / "rss2email.json"


def baselines_python() -> Path:
    """The benchmark's own environment for rss2email, created and filled on first use."""
    python = BASELINES / "bin" / "python"
    if not (BASELINES / "bin" / "r2e").exists():
        print(f"creating {BASELINES} with {RSS2EMAIL} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BASELINES)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", RSS2EMAIL]
        subprocess.run(pip, check=True)
    return python


_CYCLE_RE = re.compile(r"cycle: .*\(fetch ([\d.]+)s, parse\+match ([\d.]+)s, store ([\d.]+)s\)")


def logged_stages(log: str) -> tuple[float, ...] | None:
    """The stage times of news-monitor's own log line for the cycle."""
    found = _CYCLE_RE.search(log)
    return tuple(map(float, found.groups())) if found else None


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- one round -------------------------------------------------------------------------------------


def run_unit(unit: str, args: argparse.Namespace, ports: list[int], folder: Path) -> dict:
    python = sys.executable
    feeds = args.feeds
    if unit == "monitor":
        config = monitor_config(folder, ports, feeds, args.workers)
        once = [python, "-m", "monitor", "--config", str(config), "once"]
        first = measure(once, folder, "monitor-first", limit_mb=args.limit_mb)
        if first.get("stopped"):
            return {"monitor first": first}
        db = folder / "monitor.db"
        first["items"] = count_rows(db, "items")
        first["hits"] = count_rows(db, "hits")
        first["stages"] = logged_stages(first["stderr"])
        unchanged = measure(once, folder, "monitor-unchanged", limit_mb=args.limit_mb)
        unchanged["items"] = count_rows(db, "items") - first["items"]
        unchanged["stages"] = logged_stages(unchanged["stderr"])
        unchanged["not_modified"] = unchanged["stdout"].count(": HTTP 304,")
        return {"monitor first": first, "monitor unchanged": unchanged}
    if unit == "reference":
        url_file = folder / "urls.txt"
        url_file.write_text("\n".join(bench_cycle.urls(ports, feeds)) + "\n")
        command = [python, str(HERE / "reference_pipeline.py"), "--urls", str(url_file)]
        command += ["--db", str(folder / "reference.db"), "--workers", str(args.ref_workers)]
        result = measure(command, folder, "reference", limit_mb=args.limit_mb)
        if result.get("stopped"):
            return {"reference": result}
        report = json.loads(result["stdout"].strip().splitlines()[-1])
        result.update(items=report["stored"], hits=report["with_terms"], report=report)
        return {"reference": result}
    if unit == "rss2email":
        config, data = rss2email_config(folder, ports, feeds)
        r2e = str(baselines_python().parent / "r2e")
        env = {**os.environ, "XDG_RUNTIME_DIR": str(folder)}  # its lock file: ours alone
        command = [r2e, "-c", str(config), "-d", str(data), "run", "--no-send"]
        result = measure(command, folder, "rss2email", env=env, limit_mb=args.limit_mb)
        if result.get("stopped"):
            return {"rss2email": result}
        state = json.loads(data.read_text())
        result["items"] = sum(len(feed.get("seen", {})) for feed in state["feeds"])
        result["errors"] = result["stderr"].count("[ERROR]")
        return {"rss2email": result}
    if unit == "naive":
        command = [python, bench_cycle.__file__, "--naive", "--ports", json.dumps(ports)]
        result = measure([*command, "--feeds", str(feeds)], folder, "naive", limit_mb=args.limit_mb)
        if result.get("stopped"):
            return {"naive": result}
        result["items"] = json.loads(result["stdout"].strip().splitlines()[-1])["entries"]
        return {"naive": result}
    raise ValueError(unit)


def bench(args: argparse.Namespace) -> None:
    units = [u for u in UNITS if u not in args.skip]
    if "rss2email" in units:
        baselines_python()
    farm = subprocess.Popen(
        [sys.executable, bench_cycle.__file__, "--serve", "--feeds", str(args.feeds),
         "--items", str(args.items), "--hosts", str(args.hosts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    rounds: list[dict] = []
    try:
        assert farm.stdout is not None
        ports = json.loads(farm.stdout.readline())
        for number in range(args.rounds):
            order = units[number % len(units) :] + units[: number % len(units)]
            folder = Path(tempfile.mkdtemp(prefix="bench-first-cycle-"))
            results: dict = {}
            for unit in order:
                print(f"round {number + 1}/{args.rounds}: {unit} ...", file=sys.stderr)
                results.update(run_unit(unit, args, ports, folder))
            rounds.append(results)
            last = number == args.rounds - 1
            if args.tick_check and last and "monitor unchanged" in results:
                tick = tick_check(folder / "monitor.toml")
    finally:
        if farm.stdin:
            farm.stdin.close()
        farm.wait(timeout=60)
    report(args, rounds)
    if args.tick_check and "monitor unchanged" in rounds[-1]:
        print_tick(tick)


# -- the report ------------------------------------------------------------------------------------

ROWS = (
    ("monitor first", "news-monitor `monitor once`, fresh database (fetch, parse, normalise, "
     "dedupe, match, store, index)"),
    ("monitor unchanged", "news-monitor `monitor once` again, every feed 304"),
    ("reference", "reference pipeline (aiohttp, lxml, fold, one Aho-Corasick pass, "
     "one SQLite transaction + FTS5)"),
    ("rss2email", "rss2email 3.14 `r2e run --no-send`"),
    ("naive", "naive `feedparser.parse(url)` loop, stores nothing"),
)  # fmt: skip


def median(rounds: list[dict], row: str, key: str) -> float:
    return statistics.median(r[row][key] for r in rounds)


def report(args: argparse.Namespace, rounds: list[dict]) -> None:
    total = args.feeds * args.items
    print(
        f"\n{args.feeds:,} feeds x {args.items} items ({total:,} items) on {args.hosts} "
        f"loopback ports, shipped rule pack, {os.cpu_count()} CPUs, "
        f"{len(rounds)} interleaved round(s){', medians' if len(rounds) > 1 else ''}\n"
    )
    print(
        "| run | wall time | CPU time | items stored | largest process | whole tree "
        "| vs monitor first |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    present = [(row, label) for row, label in ROWS if row in rounds[0]]
    stopped = {row for row, _ in present if any(r.get(row, {}).get("stopped") for r in rounds)}
    first = median(rounds, "monitor first", "seconds") if "monitor first" in rounds[0] else None
    if "monitor first" in stopped:
        first = None
    for row, label in present:
        if row in stopped:
            gone = next(r[row] for r in rounds if r.get(row, {}).get("stopped"))
            print(
                f"| {label} | stopped after {gone['seconds']:.0f} s: its memory went past "
                f"{args.limit_mb:,.0f} MB | | | | {gone['tree_mb']:.0f} MB | |"
            )
            continue
        seconds = median(rounds, row, "seconds")
        ratio = f"{seconds / first:.2f}×" if first else "–"
        items = rounds[-1][row].get("items")
        stored = f"{items:,}" if row not in ("naive", "monitor unchanged") else "–"
        if row == "naive":
            stored = f"– ({items:,} parsed)"
        if row == "monitor unchanged":
            stored = f"{items:,} new"
        print(
            f"| {label} | {seconds:.2f} s | {median(rounds, row, 'cpu'):.1f} s | {stored} | "
            f"{median(rounds, row, 'peak_mb'):.0f} MB | {median(rounds, row, 'tree_mb'):.0f} MB "
            f"| {ratio} |"
        )
    print()
    if first:
        for row, name, goal in (
            ("rss2email", "rss2email", " (goal: at least 10×)"),
            ("naive", "the naive loop", ""),
        ):
            if row in rounds[0] and row not in stopped:
                other = median(rounds, row, "seconds")
                print(
                    f"- news-monitor's first cycle vs {name}: **{other / first:.2f}×** as fast"
                    + goal
                )
        if "reference" in rounds[0] and "reference" not in stopped:
            ref = median(rounds, "reference", "seconds")
            print(
                f"- news-monitor's first cycle vs the reference pipeline: **{first / ref:.2f}×** "
                "its time (goal: at most 1.3×)"
            )
        for row in ("monitor first", "monitor unchanged"):
            if row in rounds[0] and (stages := rounds[-1][row].get("stages")):
                print(
                    f"- {row}, the cycle as news-monitor logs it (last round): fetch "
                    f"{stages[0]:.2f} s, parse + match {stages[1]:.2f} s, store {stages[2]:.2f} s; "
                    "the rest of the wall time is start-up (imports, the pack, the workers)"
                )
        if "monitor unchanged" in rounds[0]:
            last = rounds[-1]["monitor unchanged"]
            print(
                f"- unchanged cycle: {last['not_modified']:,} of {args.feeds:,} feeds answered 304"
            )
        hits = rounds[-1]["monitor first"]["hits"]
        found = rounds[-1]["reference"].get("hits") if "reference" in rounds[0] else None
        print(
            f"- news-monitor stored {hits:,} hits"
            + (f"; the reference found pack terms in {found:,} items" if found is not None else "")
        )
    if "reference" in rounds[0] and "reference" not in stopped:
        ref = rounds[-1]["reference"]["report"]
        print(
            f"- reference stages (last round): fetch {ref['fetch_seconds']:.2f} s (parsing "
            f"overlaps it), rest of parsing {ref['parse_seconds']:.2f} s, FTS index and commit "
            f"{ref['index_seconds']:.2f} s; {ref['patterns']:,} patterns, {ref['workers']} workers"
        )
    if "rss2email" in rounds[0] and rounds[-1]["rss2email"].get("errors"):
        print(f"- rss2email logged {rounds[-1]['rss2email']['errors']} errors")
    if len(rounds) > 1:
        print("\nEvery round (wall seconds):\n")
        print("| run | " + " | ".join(f"round {n + 1}" for n in range(len(rounds))) + " |")
        print("|---|" + "---:|" * len(rounds))
        for row, _ in present:
            cells = " | ".join(f"{r[row]['seconds']:.2f}" for r in rounds if row in r)
            print(f"| {row} | {cells} |")


# -- an idle daemon tick ---------------------------------------------------------------------------


def snapshot(db: Path) -> dict:
    """What would show a write: the files' sizes and times, SQLite's data_version as seen
    from a connection of our own (it moves when any other connection commits), and a digest
    of every table."""
    import hashlib

    files = {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in db.parent.glob(db.name + "*")
    }
    conn = sqlite3.connect(db)
    tables = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        digest = hashlib.blake2b()
        for row in conn.execute(f'SELECT * FROM "{name}"'):
            digest.update(repr(row).encode())
        tables[name] = digest.hexdigest()
    return {"files": files, "tables": tables, "conn": conn,
            "data_version": conn.execute("PRAGMA data_version").fetchone()[0]}  # fmt: skip


def tick_check(config: Path) -> dict:
    """A daemon tick after the cycles with nothing due (every source was just polled), after
    one that lets the detectors take in what the cycles stored."""
    command = [sys.executable, __file__, "--tick", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_tick(config: Path) -> dict:
    from monitor.config import load_settings
    from monitor.scheduler import Daemon
    from monitor.signals import Detector
    from monitor.store import open_store

    settings = load_settings(config)
    daemon = Daemon(settings)
    with open_store(settings) as store:
        now = __import__("monitor.clock", fromlist=["utcnow"]).utcnow()
        due = list(store.due_sources((s.name for s in settings.sources), now))
    # the detectors take in what `monitor once` stored, a bounded number of items a tick:
    # work, not idleness; the tick measured comes once they are through
    for _ in range(1000):
        daemon.tick()
        with open_store(settings) as store:
            if not Detector(store, settings.signals).pending():
                break
    before = snapshot(settings.database)
    started = time.perf_counter()
    daemon.tick()
    seconds = time.perf_counter() - started
    daemon.pool.close()
    after = snapshot(settings.database)
    version_after = before["conn"].execute("PRAGMA data_version").fetchone()[0]
    return {
        "due": len(due),
        "seconds": seconds,
        "data_version_moved": version_after != before["data_version"],
        "files_changed": sorted(
            n for n in after["files"] if after["files"][n] != before["files"].get(n)
        ),
        "tables_changed": sorted(
            n for n in after["tables"] if after["tables"][n] != before["tables"].get(n)
        ),
    }


def print_tick(tick: dict) -> None:
    wrote = tick["data_version_moved"] or tick["tables_changed"]
    print(file=sys.stderr, flush=True)
    print(
        f"\nA daemon tick with {tick['due']} sources due took {tick['seconds'] * 1000:.0f} ms and "
        f"{'WROTE to' if wrote else 'did not write to'} the database: data_version "
        f"{'moved' if tick['data_version_moved'] else 'unchanged'}; tables changed: "
        f"{', '.join(tick['tables_changed']) or 'none'}; files changed: "
        f"{', '.join(tick['files_changed']) or 'none'}"
    )


def main() -> None:
    parser = bench_cycle.farm_arguments(__doc__.split("\n")[0], "100 feeds on 20 ports")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    parser.add_argument("--workers", type=int, default=0, help="news-monitor parse_workers")
    parser.add_argument("--ref-workers", type=int, default=2, help="reference parse workers")
    parser.add_argument("--skip", default="", help=f"comma-separated, of: {','.join(UNITS)}")
    parser.add_argument(
        "--limit-mb", type=float, default=8000, help="stop a run whose memory goes past this"
    )
    parser.add_argument("--tick-check", action="store_true", help="time an idle daemon tick")
    parser.add_argument("--tick", type=Path, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.tick:
        print(json.dumps(run_tick(args.tick)))
        return
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := args.skip - set(UNITS):
        parser.error(f"--skip: unknown {', '.join(sorted(unknown))}")
    if args.quick:
        args.feeds, args.hosts = min(args.feeds, 100), min(args.hosts, 20)
    bench(args)


if __name__ == "__main__":
    main()
