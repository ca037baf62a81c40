"""Item identity end to end: feeds on a loopback server, `monitor once`, then the digest as the
real SMTP server receives it. Each case is one the old identity rule lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FeedServer, Response, SmtpServer, write_config
from services import database_of

from monitor.dedupe import Identity, Index, url_key
from monitor.models import Item
from monitor.normalise import canonical_url, fingerprint, item_id
from monitor.store import Store
from monitor.store.migrations import MIGRATIONS

RULES = """\
rules:
  - id: kfor
    title: KFOR
    priority: normal
    query: 'kfor OR kosovo'
"""


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


def rss(*items: str, title: str = "feed") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}'
        f"</title><link>https://example.org/</link><description>t</description>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


def entry(title: str, link: str, guid: str = "", teaser: str = "") -> str:
    return (
        f"<item><title>{title}</title><link>{link.replace('&', '&amp;')}</link>"
        + (f"<guid isPermaLink='false'>{guid}</guid>" if guid else "")
        + (f"<description>{teaser}</description>" if teaser else "")
        + "<pubDate>Thu, 24 Nov 2022 09:30:00 +0100</pubDate></item>"
    )


Polled = tuple[str, Any, str]  # the plain text, a connection to the database, the output


def run_digest(tmp_path: Path, server: FeedServer, smtp: SmtpServer, feeds: dict[str, bytes],
               kinds: dict[str, dict] | None = None) -> Polled:  # fmt: skip
    """Serve `feeds` (source name -> body), poll once, send the digest; its plain text, the
    database, and the poll's output."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "watch.yaml").write_text(RULES, encoding="utf-8")
    sources = []
    for name, body in feeds.items():
        server.routes[f"/{name}"] = Response(200, body, {"Content-Type": "application/xml"})
        sources.append({"name": name, "url": server.url(name), **(kinds or {}).get(name, {})})
    config = write_config(tmp_path, sources, smtp=smtp, rules=rules)
    polled = monitor(config, "once")
    assert polled.returncode == 0, polled.stderr
    sent = monitor(config, "digest")
    assert sent.returncode == 0, sent.stderr
    message = smtp.inbox.messages()[-1]
    return (
        message.get_body(("plain",)).get_content(),
        Store(database_of(tmp_path)).conn,  # statements of the store's dialect, either database
        polled.stdout,
    )


TEASER = (
    "NATO-led peacekeepers stepped up patrols near the main bridge in Mitrovica on Thursday "
    "after gunfire was heard overnight in the north of Kosovo, the mission said."
)


def test_two_sites_with_the_same_guid_are_two_stories(tmp_path, feed_server, smtp_server):
    text, db, out = run_digest(tmp_path, feed_server, smtp_server, {
        "alpha": rss(entry("Kosovo parliament elects new speaker", "https://a.example/a", "1001")),
        "beta": rss(entry("KFOR hands over border post to police", "https://b.example/b", "1001")),
    })  # fmt: skip
    assert "Kosovo parliament elects new speaker" in text
    assert "KFOR hands over border post to police" in text
    assert text.count("\n* ") == 2  # two stories in the digest, each from its own outlet
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 2
    assert "beta: HTTP 200, 1 parsed, 1 new" in out


def test_list_page_items_with_one_title_are_each_their_own(tmp_path, feed_server, smtp_server):
    def page(numbers: list[int]) -> bytes:
        rows = "".join(f'<li><a href="/press/{n}">KFOR Press Release</a></li>' for n in numbers)
        return f"<html><body><ul>{rows}</ul></body></html>".encode()

    kinds = {"kfor": {"kind": "page", "selectors": {"item": "li", "link": "a"}}}
    feed_server.routes["/kfor"] = Response(200, page([1, 2, 3]), {"Content-Type": "text/html"})
    text, _, out = run_digest(tmp_path, feed_server, smtp_server,
                               {"kfor": page([1, 2, 3])}, kinds)  # fmt: skip
    assert "3 parsed, 3 new" in out
    assert all(f"/press/{n}" in text for n in (1, 2, 3))
    # a later release under the same title is news too
    config = tmp_path / "monitor.toml"
    feed_server.routes["/kfor"] = Response(200, page([1, 2, 3, 4]), {"Content-Type": "text/html"})
    later = monitor(config, "once")
    assert "4 parsed, 1 new, 3 already seen" in later.stdout, later.stdout + later.stderr
    assert monitor(config, "digest").returncode == 0
    newest = smtp_server.inbox.messages()[-1].get_body(("plain",)).get_content()
    assert "/press/4" in newest and "/press/1" not in newest


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # a one-word title edit, the same teaser
        (
            ("KFOR steps up patrols in northern Kosovo", TEASER),
            ("KFOR steps up patrols across northern Kosovo", TEASER),
        ),
        # another outlet's teaser under the same headline
        (
            ("KFOR steps up patrols in northern Kosovo", TEASER),
            (
                "KFOR steps up patrols in northern Kosovo",
                "Soldiers of the Kosovo Force were seen on the roads around Zvečan and Leposavić.",
            ),
        ),
        # the same article syndicated under another headline
        (
            ("KFOR steps up patrols in northern Kosovo", TEASER),
            ("Peacekeepers on the streets of Mitrovica", TEASER),
        ),
    ],
    ids=["title-edit", "other-teaser", "syndicated"],
)
def test_near_duplicates_are_listed_once(tmp_path, feed_server, smtp_server, first, second):
    text, db, _ = run_digest(tmp_path, feed_server, smtp_server, {
        "wire": rss(entry(first[0], "https://wire.example/1", "w-1", first[1])),
        "daily": rss(entry(second[0], "https://daily.example/2", "d-2", second[1])),
    })  # fmt: skip
    assert text.count("wire.example/1") == 1
    assert "daily.example/2" not in text.split("wire.example/1")[0]  # not a story of its own
    assert "1 story" in text and text.count("\n* ") == 1
    assert "first reported by wire" in text and "2 outlets" in text  # the story's provenance
    # recorded as another copy of the same item, with the copy's own link
    copies = db.execute("SELECT source, url FROM item_sources ORDER BY source").fetchall()
    assert copies == [("daily", "https://daily.example/2"), ("wire", "https://wire.example/1")]


def test_one_article_under_many_addresses_is_one_story(tmp_path, feed_server, smtp_server):
    addresses = [
        "https://www.news.example/kosovo/patrols/?page=2,11&id=7",
        "http://news.example/kosovo/patrols?id=7&page=2,11&xtor=RSS-3",
        "https://news.example/kosovo/patrols/?ito=1&page=2,11&CMP=share&id=7&_ga=2.1",
        "https://NEWS.example/kosovo/patrols?mkt_tok=abc&id=7&spm=a.b&page=2,11",
    ]
    feeds = {
        f"s{n}": rss(entry(f"Kosovo story seen from outlet {n}", url, f"g{n}"))
        for n, url in enumerate(addresses)
    }
    text, db, _ = run_digest(tmp_path, feed_server, smtp_server, feeds)
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    assert "1 story" in text
    stored = db.execute("SELECT url FROM items").fetchone()[0]
    assert stored == "https://www.news.example/kosovo/patrols/?id=7&page=2,11"  # kept as served
    assert db.execute("SELECT count(*) FROM item_sources").fetchone()[0] == 4


def test_one_outlet_repeating_a_headline_on_other_days_is_not_a_copy() -> None:
    def item(n: int, day: int) -> Item:
        return Item(item_id("s", f"g{n}", "", ""), "s", f"https://s.example/{n}", f"g{n}",
                    "Police arrest two men after shooting in Mitrovica", "", "",
                    f"2022-11-{day:02d}T10:00:00Z", "")  # fmt: skip

    index = Index()
    index.add(Identity.of(item(1, 10)))
    assert index.find(Identity.of(item(2, 10))) is None  # one outlet, another link
    other = Item(**{**vars(item(3, 10)), "source": "t", "id": item_id("t", "g3", "", "")})
    assert index.find(Identity.of(other)) == item(1, 10).id  # another outlet, same day
    later = Item(**{**vars(other), "published": "2022-11-17T10:00:00Z"})
    assert index.find(Identity.of(later)) is None  # a week later: another incident


def test_urls_as_identity() -> None:
    assert url_key("http://www.a.example/x/?b=2&a=1") == url_key("https://a.example/x?a=1&b=2")
    assert url_key("https://a.example/x?page=2") != url_key("https://a.example/x?page=3")
    assert canonical_url("https://a.example/list?page=2,11") == "https://a.example/list?page=2,11"


def test_a_database_of_the_previous_schema_keeps_knowing_its_items(tmp_path) -> None:
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    db = Database(path)
    for step in MIGRATIONS[:3]:  # the schema before identity keys
        step(db)
    db.execute("PRAGMA user_version = 3")
    old_id = "0123456789abcdef0123"  # the old rule: a hash of the GUID alone
    db["items"].insert({"id": old_id, "source": "wire", "url": "http://www.w.example/a/",
                        "guid": "1001", "title": "KFOR steps up patrols in northern Kosovo",
                        "summary": TEASER, "content": "", "published": "",
                        "fingerprint": fingerprint("x", ""),
                        "first_seen": "2022-11-24T08:00:00Z"})  # fmt: skip
    db.conn.commit()
    db.close()
    same_guid = Item(item_id("wire", "1001", "", ""), "wire", "", "1001", "t", "", "", "", "f")
    same_link = Item("x1", "other", "https://w.example/a", "", "t", "", "", "", "f")
    near = Item("x2", "daily", "https://d.example/2", "d2",
                "KFOR steps up patrols in northern Kosovo", "other words", "", "", "g")  # fmt: skip
    new = Item("x3", "wire", "", "1002", "Elsewhere entirely", "", "", "", "h")
    with Store(path) as store:
        known = store.find_known([same_guid, same_link, near, new])
    assert known == {same_guid.id: old_id, same_link.id: old_id, near.id: old_id}
