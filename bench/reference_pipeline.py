"""A minimal reference pipeline for the first-cycle benchmark: the same kinds of work as a
news-monitor first cycle, with nothing else.

    python bench/reference_pipeline.py --urls URLS.txt --db OUT.db [--workers 2]

1. fetch every URL with aiohttp (at most 32 requests in flight, one per host at a time:
   news-monitor's defaults);
2. parse RSS 2.0 with lxml (title, link, guid, description with its HTML reduced to text,
   pubDate), in a pool of worker processes fed by chunks of feeds as they arrive (fetching
   waits while the workers are behind, so memory stays bounded whatever the feed count);
3. fold title and description with `monitor.normalise.fold` (the same folding the pack's
   patterns went through, so that a Cyrillic or Greek term is found at all);
4. one Aho-Corasick pass (pyahocorasick) per field over every pattern of the shipped pack,
   collected as `monitor.match.Engine` collects them (`pack_terms`), with the same
   word-boundary checks (a prefix term may run on to the end of its word);
5. one SQLite transaction storing every item (a unique guid: duplicates are dropped) with the
   terms it contains, then an FTS5 index (title, summary) over them.

No rule is evaluated: which terms occur is all the matching there is, an upper bound on the
speed of a real evaluator. Prints one JSON line: counts and seconds per stage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path

CHUNK = 16  # feeds per task sent to a parse worker

# -- the pack's patterns -------------------------------------------------------------------------


def pack_terms(path: Path | None = None) -> list[tuple[str, bool]]:
    """Every (folded pattern, is prefix) of the rule pack, as `Engine._build` collects them:
    actors' aliases, context and exclude words, the action verbs, and every term of every
    rule (below a NOT too: the scan finds them before anything is evaluated)."""
    from monitor.packaged import pack_path
    from monitor.query import Term, walk
    from monitor.rules import load_rules

    ruleset = load_rules(path or pack_path())
    terms: dict[tuple[str, bool], None] = {}
    for actor in ruleset.actors.values():
        for term in (*actor.aliases, *actor.context, *actor.exclude):
            terms[term.pattern, term.prefix] = None
    for action in ruleset.actions.values():
        for term in (*action.active, *action.passive):
            terms[term.pattern, term.prefix] = None
    for rule in ruleset.rules:
        for node, _ in walk(rule.query):
            if isinstance(node, Term):
                terms[node.pattern, node.prefix] = None
    return list(terms)


# -- the worker: parse, fold, scan ---------------------------------------------------------------

_AUTOMATON = None


def init_worker(terms: list[tuple[str, bool]]) -> None:
    import ahocorasick

    global _AUTOMATON
    slots: dict[str, list] = {}
    for number, (pattern, prefix) in enumerate(terms):
        slot = slots.setdefault(pattern, [len(pattern), None, None])
        slot[2 if prefix else 1] = number
    automaton = ahocorasick.Automaton()
    for pattern, slot in slots.items():
        automaton.add_word(pattern, tuple(slot))
    automaton.make_automaton()
    _AUTOMATON = automaton


def scan(folded: str, found: set[int]) -> None:
    """Add to `found` the patterns that occur in `folded` as whole words (or word prefixes)."""
    size = len(folded)
    for end, (length, exact, prefix) in _AUTOMATON.iter(folded):  # type: ignore[union-attr]
        start = end - length + 1
        if start > 0 and folded[start - 1].isalnum():
            continue
        if prefix is not None:
            found.add(prefix)
        if exact is not None and (end + 1 >= size or not folded[end + 1].isalnum()):
            found.add(exact)


def html_text(markup: str) -> str:
    if "<" not in markup:
        return " ".join(markup.split())
    import lxml.html

    return " ".join(
        lxml.html.fragment_fromstring(markup, create_parent="div").text_content().split()
    )


def parse_chunk(chunk: list[tuple[str, bytes]]) -> list[tuple]:
    """Rows (feed, guid, link, title, summary, published, terms) of every item of the feeds."""
    from lxml import etree

    from monitor.normalise import fold

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    rows = []
    for url, body in chunk:
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError:
            continue
        for item in root.iter("item"):
            title = " ".join((item.findtext("title") or "").split())
            link = (item.findtext("link") or "").strip()
            guid = (item.findtext("guid") or "").strip() or link
            summary = html_text(item.findtext("description") or "")
            published = None
            if date := item.findtext("pubDate"):
                with contextlib.suppress(TypeError, ValueError):
                    published = parsedate_to_datetime(date).isoformat()
            found: set[int] = set()
            scan(fold(title), found)
            scan(fold(summary), found)
            terms = " ".join(map(str, sorted(found)))
            rows.append((url, guid, link, title, summary, published, terms))
    return rows


# -- the main process: fetch, hand out, store ------------------------------------------------------

SCHEMA = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, feed TEXT, guid TEXT UNIQUE, link TEXT,"
    " title TEXT, summary TEXT, published TEXT, terms TEXT)",
    "CREATE VIRTUAL TABLE items_fts USING fts5(title, summary, content='items',"
    " content_rowid='id')",
)


async def run(urls: list[str], db: Path, workers: int, concurrency: int) -> dict:
    import aiohttp

    started = time.perf_counter()
    terms = pack_terms()
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(workers, initializer=init_worker, initargs=(terms,))
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in SCHEMA:
        conn.execute(statement)
    conn.execute("BEGIN")
    counts = {"feeds": len(urls), "fetched": 0, "errors": 0, "items": 0, "with_terms": 0}
    # Bounded memory: fetchers wait while the queue of fetched bodies is full, and the queue
    # waits while two chunks per worker are being parsed.
    bodies: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=CHUNK * workers)
    parsing = asyncio.Semaphore(2 * workers)

    def store(rows: list[tuple]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO items (feed, guid, link, title, summary, published, terms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        counts["items"] += len(rows)
        counts["with_terms"] += sum(1 for row in rows if row[6])

    async def parse_and_store(chunk: list[tuple[str, bytes]]) -> None:
        try:
            store(await loop.run_in_executor(pool, parse_chunk, chunk))
        finally:
            parsing.release()

    async def hand_out() -> None:
        tasks, chunk = [], []
        while (body := await bodies.get()) is not None:
            chunk.append(body)
            if len(chunk) >= CHUNK:
                await parsing.acquire()
                tasks.append(asyncio.create_task(parse_and_store(chunk)))
                chunk = []
        if chunk:
            await parsing.acquire()
            tasks.append(asyncio.create_task(parse_and_store(chunk)))
        await asyncio.gather(*tasks)

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=1)
    timeout = aiohttp.ClientTimeout(total=20)
    todo = iter(urls)
    consumer = asyncio.create_task(hand_out())
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def fetcher() -> None:
            for url in todo:  # shared: each fetcher takes the next URL
                try:
                    async with session.get(url) as response:
                        body = await response.read() if response.status == 200 else None
                except (TimeoutError, aiohttp.ClientError):
                    body = None
                if body is None:
                    counts["errors"] += 1
                    continue
                counts["fetched"] += 1
                await bodies.put((url, body))

        await asyncio.gather(*(fetcher() for _ in range(concurrency)))
    fetched = time.perf_counter()
    await bodies.put(None)
    await consumer
    parsed = time.perf_counter()
    conn.execute(
        "INSERT INTO items_fts (rowid, title, summary) SELECT id, title, summary FROM items"
    )
    conn.execute("COMMIT")
    counts["stored"] = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    conn.close()
    pool.shutdown()
    done_at = time.perf_counter()
    counts.update(
        patterns=len(terms),
        workers=workers,
        fetch_seconds=round(fetched - started, 3),
        parse_seconds=round(parsed - fetched, 3),
        index_seconds=round(done_at - parsed, 3),
        seconds=round(done_at - started, 3),
    )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=Path, required=True, help="one feed URL a line")
    parser.add_argument("--db", type=Path, required=True, help="a new SQLite file")
    parser.add_argument("--workers", type=int, default=2, help="parse worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    args = parser.parse_args()
    urls = args.urls.read_text().split()
    print(json.dumps(asyncio.run(run(urls, args.db, args.workers, args.concurrency))))


if __name__ == "__main__":
    main()
