"""Benchmark one poll cycle over a loopback farm of feeds, side by side with a naive loop.

    python bench/bench_cycle.py            # 1,000 feeds x 50 items (about a minute in all)
    python bench/bench_cycle.py --quick    # 100 feeds x 50 items, a smoke run

A farm server (aiohttp, in its own process) serves every feed on 127.0.0.1, spread over
`--hosts` ports (each port counts as one host for per-host politeness), with an ETag and 304
for a matching If-None-Match. Each contender runs in a fresh process so its peak memory
(ru_maxrss, and the largest worker process for parse workers) is its own:

- news-monitor, first cycle: every feed fetched, parsed, normalised, matched and stored;
- news-monitor, second cycle: nothing changed, every feed answers 304;
- the same with parsing kept in the main process (`parse_workers = 1`);
- naive: `feedparser.parse(url)` for each feed in turn, storing nothing.

Politeness pauses are set to 0 here (`--host-delay` to change): they cost wall-clock time by
design, not work. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
# Every item is its own story: titles and teasers drawn at random (fixed seeds) from the
# words of the labelled news items under tests/data (about 4,900 words, mostly English, some
# in the region's languages and scripts), mixed with common function words. The words that
# hold a term of the shipped pack (names of people, places and institutions it watches, its
# topic words) are kept apart: WATCHED_SHARE of the items get one or two of them, the rest
# none, so that most items hit no rule, as in real feeds. No item is a near-duplicate of
# another: the same eight headlines over and over would be folded into a handful of stories
# and never stored.
CORPUS = ("balkans_dev", "balkans_blind", "balkans_holdout", "signals_dev")
WATCHED_SHARE = 0.3
_FUNCTION_WORDS = (
    "the a an of in on at to for with from by after before over and or but as is are was "
    "were will has have says said new more than about into against"
)
FUNCTION_WORDS = _FUNCTION_WORDS.split()
_WORD_RE = re.compile(r"[^\W\d_](?:[\w'’.-]*[^\W_])?")


@functools.cache
def vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The corpus's words: (plain, watched by the shipped pack)."""
    from monitor.match import Engine
    from monitor.normalise import fold
    from monitor.packaged import pack_path
    from monitor.rules import load_rules

    words: set[str] = set()
    for name in CORPUS:
        for line in (ROOT / "tests" / "data" / f"{name}.jsonl").read_text("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                text = f"{record.get('title', '')} {record.get('summary', '')}"
                words.update(w for w in _WORD_RE.findall(text) if len(w) > 1)
    engine = Engine(load_rules(pack_path()))
    watched = {w for w in words if engine.scan(fold(w), "title")}
    return tuple(sorted(words - watched)), tuple(sorted(watched))


def _words(rng: random.Random, count: int, plain: tuple[str, ...]) -> list[str]:
    return [
        rng.choice(FUNCTION_WORDS) if rng.random() < 0.3 else rng.choice(plain)
        for _ in range(count)
    ]


def item_text(feed: int, n: int) -> tuple[str, str]:
    """An item's title and teaser: the same for the same feed and number, every run."""
    plain, watched = vocabulary()
    rng = random.Random(feed * 1_000_003 + n)
    title = _words(rng, rng.randint(7, 11), plain)
    summary = _words(rng, rng.randint(35, 55), plain)
    if rng.random() < WATCHED_SHARE:
        title.insert(rng.randrange(len(title)), rng.choice(watched))
        if rng.random() < 0.5:
            summary.insert(rng.randrange(len(summary)), rng.choice(watched))
    title[0], summary[0] = (
        title[0][:1].upper() + title[0][1:],
        summary[0][:1].upper() + summary[0][1:],
    )
    return escape(" ".join(title)), escape(escape(" ".join(summary) + "."))


# -- the farm ----------------------------------------------------------------------------------


def feed_body(feed: int, items: int) -> bytes:
    entries = []
    for n in range(items):
        title, summary = item_text(feed, n)
        entries.append(
            f"<item><title>{title} ({feed}-{n})</title>"
            f"<link>https://news{feed % 97}.example/{feed}/story-{n}?utm_source=rss</link>"
            f"<guid>https://news{feed % 97}.example/{feed}/story-{n}</guid>"
            f"<description>&lt;p&gt;{summary} Item {n} of feed {feed}.&lt;/p&gt;</description>"
            f"<pubDate>{pub_date(feed, n)}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://news.example/{feed}</link>"
        f"<description>bench</description>{''.join(entries)}</channel></rss>"
    ).encode()


def pub_date(feed: int, n: int) -> str:
    """Within the last two days (items from years ago would be old news)."""
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return format_datetime(today - timedelta(minutes=n * 53 + feed % 60))


def serve(feeds: int, items: int, hosts: int) -> None:
    """Run the farm until stdin closes; print the ports (one JSON line) when ready."""
    import asyncio

    from aiohttp import web

    bodies = [feed_body(f, items) for f in range(feeds)]

    async def handle(request: web.Request) -> web.StreamResponse:
        feed = int(request.match_info["feed"])
        etag = f'"{feed}-1"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=bodies[feed], content_type="application/rss+xml", headers={"ETag": etag}
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/feed/{feed}.xml", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ports = []
        for _ in range(hosts):
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        print(json.dumps(ports), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


def urls(ports: list[int], feeds: int) -> list[str]:
    return [f"http://127.0.0.1:{ports[f % len(ports)]}/feed/{f}.xml" for f in range(feeds)]


# -- the contenders (each in its own process) ----------------------------------------------------


def peak_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child, in MB (Linux: KB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def run_monitor(ports: list[int], feeds: int, workers: int, host_delay: float) -> dict:
    from monitor.match import RuleWatcher
    from monitor.models import Source
    from monitor.pipeline import poll
    from monitor.settings import FetchSettings, Settings
    from monitor.store import Store
    from monitor.workers import ParsePool

    folder = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    settings = Settings(
        path=folder / "bench.toml",
        database=folder / "bench.db",
        rules=ROOT / "tests" / "data" / "rules",
        outbox=folder / "outbox",
        sources=tuple(Source(f"feed {i}", url) for i, url in enumerate(urls(ports, feeds))),
        fetch=FetchSettings(
            host_delay=host_delay,
            parse_workers=workers,
            allow_private=tuple(f"127.0.0.1:{port}" for port in ports),  # the farm only
        ),
    )
    engine = RuleWatcher(settings.rules).engine
    store = Store(settings.database)
    pool = ParsePool(ParsePool.size(workers)) if ParsePool.size(workers) > 1 else None
    timings = []
    try:
        for _ in range(2):
            started = time.perf_counter()
            reports = poll(settings, store, engine, pool=pool)
            timings.append(
                {
                    "seconds": time.perf_counter() - started,
                    "new": sum(r.new for r in reports),
                    "hits": sum(r.hits for r in reports),
                    "not_modified": sum(1 for r in reports if r.status == 304),
                    "errors": sum(1 for r in reports if r.error),
                }
            )
    finally:
        store.close()
        if pool is not None:
            pool.close()
    own, child = peak_mb()
    return {"cycles": timings, "peak_mb": own, "worker_peak_mb": child}


def run_naive(ports: list[int], feeds: int) -> dict:
    import feedparser

    started = time.perf_counter()
    entries = sum(len(feedparser.parse(url).entries) for url in urls(ports, feeds))
    own, _ = peak_mb()
    return {"seconds": time.perf_counter() - started, "entries": entries, "peak_mb": own}


# -- the harness ---------------------------------------------------------------------------------


def contender(args: argparse.Namespace, ports: list[int], *extra: str) -> dict:
    command = [sys.executable, __file__, "--ports", json.dumps(ports), "--feeds", str(args.feeds)]
    command += ["--host-delay", str(args.host_delay), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(args: argparse.Namespace) -> None:
    farm = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--feeds", str(args.feeds),
         "--items", str(args.items), "--hosts", str(args.hosts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert farm.stdout is not None
        ports = json.loads(farm.stdout.readline())
        parallel = contender(args, ports, "--monitor", "--workers", "0")
        single = contender(args, ports, "--monitor", "--workers", "1")
        naive = contender(args, ports, "--naive")
    finally:
        if farm.stdin:
            farm.stdin.close()
        farm.wait(timeout=30)
    report(args, parallel, single, naive)


def report(args: argparse.Namespace, parallel: dict, single: dict, naive: dict) -> None:
    total = args.feeds * args.items
    cpus = os.cpu_count() or 1
    print(
        f"\n{args.feeds} feeds x {args.items} items ({total:,} items) on {args.hosts} loopback "
        f"hosts, {cpus} CPUs, test rules; peak memory is max RSS\n"
    )
    print("| run | cycle | time | items/s | new items | hits | 304s | peak memory |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, result in (
        (f"news-monitor, {cpus} parse workers", parallel),
        ("news-monitor, parsing in-process", single),
    ):
        workers = f" + {result['worker_peak_mb']:.0f} MB/worker" if result["worker_peak_mb"] else ""
        for name, cycle in zip(("first", "unchanged (304)"), result["cycles"], strict=True):
            print(
                f"| {label} | {name} | {cycle['seconds']:.2f} s | "
                f"{total / cycle['seconds']:,.0f} | {cycle['new']:,} | {cycle['hits']:,} | "
                f"{cycle['not_modified']:,} | {result['peak_mb']:.0f} MB{workers} |"
            )
    print(
        f"| naive `feedparser.parse(url)` loop | every run | {naive['seconds']:.2f} s | "
        f"{naive['entries'] / naive['seconds']:,.0f} | – | – | – | {naive['peak_mb']:.0f} MB |"
    )


def farm_arguments(description: str, quick: str) -> argparse.ArgumentParser:
    """A parser with the farm's options (`--quick` is `quick`), for the benchmarks using it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=100, help="ports the farm listens on")
    return parser


def main() -> None:
    parser = farm_arguments(__doc__.split("\n")[0], "100 feeds: a smoke run")
    parser.add_argument("--host-delay", type=float, default=0.0)
    # internal: the farm and the contenders run as separate processes of this script
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--monitor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.feeds, args.hosts = min(args.feeds, 100), min(args.hosts, 20)
    if args.serve:
        serve(args.feeds, args.items, args.hosts)
    elif args.monitor:
        ports = json.loads(args.ports)
        print(json.dumps(run_monitor(ports, args.feeds, args.workers, args.host_delay)))
    elif args.naive:
        print(json.dumps(run_naive(json.loads(args.ports), args.feeds)))
    else:
        bench(args)


if __name__ == "__main__":
    main()
