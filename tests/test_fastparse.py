"""The fast path gives what feedparser gives, or steps aside; worker processes give what
in-process parsing gives."""

from __future__ import annotations

import sqlite3

import feedparser
import pytest
from conftest import FEEDS, Response, make_rss, write_config

from monitor.config import load_settings
from monitor.fastparse import fast_parse
from monitor.match import RuleWatcher
from monitor.normalise import normalise_all
from monitor.parse import _from_feedparser
from monitor.pipeline import poll
from monitor.store import Store
from monitor.workers import PARALLEL_MIN, ParsePool

BASE = "https://news.example/feed"


def slow_path(body: bytes) -> list:
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    return [_from_feedparser(e, BASE) for e in parsed.entries]


@pytest.mark.parametrize(
    "name", ["rss2.xml", "atom.xml", "duplicate_story.xml", "latin1.xml", "generated"]
)
def test_fast_path_reads_like_feedparser(name):
    body = make_rss("gen", range(50)) if name == "generated" else (FEEDS / name).read_bytes()
    fast = fast_parse(body)
    assert fast is not None
    assert normalise_all("s", fast) == normalise_all("s", slow_path(body))


@pytest.mark.parametrize(
    "body",
    [
        (FEEDS / "rss1.rdf").read_bytes(),  # RSS 1.0: feedparser's
        (FEEDS / "bozo.xml").read_bytes(),  # not well-formed
        (FEEDS / "broken.xml").read_bytes(),
        (FEEDS / "not_a_feed.html").read_bytes(),
        b"",
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaa">]><rss version="2.0">'
        b"<channel><item><title>&a;</title><link>http://x/</link></item></channel></rss>",
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></title><id>1</id>'
        b'<link href="http://x/"/></entry></feed>',
        b'<rss version="2.0"><channel><item><title>t</title><guid>http://x/1</guid>'
        b"</item></channel></rss>",  # no <link>: feedparser takes the guid
        b'<rss version="2.0"><channel><item><title>t</title><link>http://x/</link>'
        b"<pubDate>sometime soon</pubDate></item></channel></rss>",
        b'<rss version="2.0"><channel><title>no items</title></channel></rss>',
    ],
)
def test_fast_path_steps_aside_when_in_doubt(body):
    assert fast_parse(body) is None


def test_worker_processes_store_what_one_process_stores(tmp_path, feed_server):
    count = PARALLEL_MIN + 2
    for n in range(count):
        feed_server.routes[f"/f{n}.xml"] = Response(200, make_rss(f"kosovo-{n}", range(5)))
    feed_server.routes["/f0.xml"] = Response(200, (FEEDS / "bozo.xml").read_bytes())
    feed_server.routes["/f1.xml"] = Response(200, b"<rss><channel>")  # broken
    results = {}
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        sources = [{"name": f"F{n}", "url": feed_server.url(f"f{n}.xml")} for n in range(count)]
        settings = load_settings(write_config(folder, sources, fetch={"parse_workers": workers}))
        store = Store(settings.database)
        pool = ParsePool(workers) if workers > 1 else None
        try:
            reports = poll(settings, store, RuleWatcher(settings.rules).engine, pool=pool)
        finally:
            store.close()
            if pool:
                pool.close()
        db = sqlite3.connect(settings.database)
        results[workers] = (
            [(r.name, r.parsed, r.new, r.hits, r.error) for r in reports],
            db.execute("SELECT id, title, url, published FROM items ORDER BY id").fetchall(),
            db.execute("SELECT item_id, rule FROM hits ORDER BY 1, 2").fetchall(),
        )
    assert results[1] == results[2]
    reports = results[2][0]
    assert reports[0][1] == 3 and "cut off" in reports[1][4]
    assert len(results[2][2]) == 5 * (count - 2) + 1  # each kosovo item, and one in bozo.xml


def _soup_text(markup: str) -> str:
    """html_to_text as it was first written, with BeautifulSoup: the reference."""
    import html

    from bs4 import BeautifulSoup

    from monitor.normalise import _BLOCK_TAGS, clean_text

    if not markup:
        return ""
    if "<" not in markup:
        return clean_text(html.unescape(markup))
    soup = BeautifulSoup(markup, "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before(" ")
        tag.insert_after(" ")
    return clean_text(soup.get_text())


def test_html_to_text_reads_like_beautifulsoup():
    import json
    import warnings

    from monitor.normalise import html_to_text

    corpus = [
        "<p>a</p><p>b</p>", "x <!-- c --> y", "<script>bad()</script>tail", "a<br>b",
        "<div>a<span>b</span>c</div>d", "Hello <b>world</b>", "&amp;lt; <i>x</i>",
        "<p>unclosed <b>bold", "</p>stray", "<?php echo 1 ?> z", "<", "a < b and c > d",
        "<table><tr><td>1</td><td>2</td></tr></table>", "<style>p{}</style><p>t</p>",
        "<html><head><title>T</title></head><body>B</body></html>", "  <li>one<li>two  ",
        "\x00<p>ctl\x07</p>", "<p>Vučić &amp; Đilas</p>", "<template><p>t</p></template>after",
        "a\u200b b\u00a0c\n\td",
    ]  # fmt: skip
    for file in FEEDS.iterdir():
        parsed = feedparser.parse(file.read_bytes(), sanitize_html=False)
        for e in parsed.entries:
            corpus += [e.get("title", ""), e.get("summary", "")]
            corpus += [c.get("value", "") for c in e.get("content", [])]
    lines = (FEEDS.parent / "balkans_dev.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines[:500]:
        corpus += [v for v in json.loads(line).values() if isinstance(v, str)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        different = [m for m in corpus if html_to_text(m) != _soup_text(m)]
    assert different == []
