"""The whole flow as a user runs it: `monitor once` then `monitor digest`, as real processes,
against feeds on a loopback HTTP server and a real SMTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FeedServer, write_config
from services import database_of

from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


def sources(server: FeedServer) -> list[dict]:
    return [
        {"name": "Wire", "url": server.url("rss2.xml"), "tags": ["news"]},
        {"name": "Partner", "url": server.url("duplicate_story.xml")},
        {"name": "Think tank", "url": server.url("atom.xml")},
        {"name": "Dead", "url": server.url("missing.xml")},
    ]


def test_once_then_digest_delivers_one_message_once(tmp_path, feed_server, smtp_server):
    config = write_config(tmp_path, sources(feed_server), smtp=smtp_server)

    first = monitor(config, "once")
    assert first.returncode == 0, first.stderr
    assert "Dead: HTTP 404" in first.stdout  # the broken source is reported ...
    assert "Wire: HTTP 200, 5 parsed, 5 new" in first.stdout  # ... and did not stop the others
    assert "Partner: HTTP 200, 3 parsed, 1 new, 2 already seen" in first.stdout

    db = Store(database_of(tmp_path)).conn  # either database, in the store's dialect
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 5 + 1 + 4
    hit_rules = {r for (r,) in db.execute("SELECT rule FROM hits")}
    assert {"watch/kosovo", "watch/kfor", "watch/serbia-kosovo"} <= hit_rules
    # the same story from two feeds is one item listed under both sources
    shared = db.execute("SELECT count(*) FROM item_sources GROUP BY item_id HAVING count(*) > 1")
    assert len(shared.fetchall()) == 2

    sent = monitor(config, "digest")
    assert sent.returncode == 0, sent.stderr
    assert len(smtp_server.inbox.envelopes) == 1
    message = smtp_server.inbox.messages()[0]
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "analyst@example.org"
    assert "urgent" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "KFOR steps up patrols in northern Kosovo" in text
    # the think tank's Cyrillic report: a story of its own, or an outlet of the one it joined
    assert ("Вучић: Србија ће наставити дијалог са Приштином" in html
            or 'href="https://thinktank.example/sr/vucic-dijalog"' in html)  # fmt: skip
    assert "<b>" in html and "Dead" in text  # highlights, and the failed source is named

    # a second round finds nothing new and sends nothing
    again = monitor(config, "once")
    assert "0 new items" in again.stdout
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 10
    resent = monitor(config, "digest")
    assert "nothing new to send" in resent.stdout
    assert len(smtp_server.inbox.envelopes) == 1


def test_digest_dry_run_sends_and_records_nothing(tmp_path, feed_server, smtp_server):
    config = write_config(tmp_path, sources(feed_server)[:1], smtp=smtp_server)
    monitor(config, "once")
    dry = monitor(config, "digest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Subject: Balkans watch" in dry.stdout
    assert "*KFOR*" in dry.stdout  # matched terms highlighted in the plain-text part
    assert smtp_server.inbox.envelopes == []
    real = monitor(config, "digest")
    assert real.returncode == 0
    assert len(smtp_server.inbox.envelopes) == 1  # the dry run did not use up the hits


def test_without_smtp_digest_goes_to_outbox(tmp_path, feed_server):
    config = write_config(tmp_path, sources(feed_server)[:1])
    monitor(config, "once")
    result = monitor(config, "digest", "--preview", str(tmp_path / "preview.html"))
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    assert b"multipart/alternative" in files[0].read_bytes()
    assert "<html" in (tmp_path / "preview.html").read_text(encoding="utf-8")


def test_search_finds_stored_items(tmp_path, feed_server):
    config = write_config(tmp_path, sources(feed_server)[:1])
    monitor(config, "once")
    found = monitor(config, "search", "kosovo plates")
    assert "Serbia and Kosovo agree to end licence plate dispute" not in found.stdout  # 'plate'
    found = monitor(config, "search", "kosovo licence")
    assert "Serbia and Kosovo agree to end licence plate dispute" in found.stdout
    listing = monitor(config, "sources")
    assert "Wire" in listing.stdout and "200" in listing.stdout


def test_demo_runs_offline_and_writes_a_digest(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--dir", str(tmp_path / "demo"),
         "--rules", str(Path(__file__).parent / "data" / "rules")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Polled 5 sample sources" in result.stdout
    assert list((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert (tmp_path / "demo" / "digest-preview.html").exists()
