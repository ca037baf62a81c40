"""Push channels through Apprise: a real webhook receiver on 127.0.0.1 gets exactly one JSON
notification per urgent story through the `json://` scheme, also when it refuses the first
attempt and the service restarts in between; secrets in the URLs come from the environment
and are never stored or logged."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Response, write_config
from test_dedupe import entry, rss

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.scheduler import Daemon
from monitor.status import collect_status
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
TOKEN = "s3cr3t-hook-token"
WIRE = rss(
    entry("KFOR troops reinforce patrols in Zvečan after gunfire", "https://wire.example/1", "w1"),
    entry("KFOR patrols reinforced at the Jarinje crossing", "https://wire.example/2", "w2"),
    entry("EULEX mission extended by two years", "https://wire.example/3", "w3"),
)
DAILY = rss(
    entry("KFOR troops reinforce patrols in Zvečan after the gunfire", "https://daily.example/9",
          "d9"),
)  # fmt: skip


def channel(feed_server, **more: str) -> str:  # type: ignore[no-untyped-def]
    url = f"json://{feed_server.address}/hook/${{HOOK_TOKEN}}"
    lines = ["[[notify]]", 'name = "desk-chat"', f'urls = ["{url}"]']
    lines += [f"{key} = {value}" for key, value in more.items()]
    return "\n".join(lines) + "\n"


def configure(tmp_path, feed_server, notify: str):  # type: ignore[no-untyped-def]
    feed_server.routes["/wire"] = Response(200, WIRE, {"Content-Type": "application/xml"})
    sources = [{"name": "Wire", "url": feed_server.url("wire")}]
    return load_settings(write_config(tmp_path, sources, extra=notify))


def pushes(feed_server) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(body) for path, body in feed_server.posts if path == f"/hook/{TOKEN}"]


def test_one_push_per_urgent_story_across_a_failure_and_a_restart(
    tmp_path, feed_server, monkeypatch, caplog
):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    settings = configure(tmp_path, feed_server, channel(feed_server))
    feed_server.refuse_posts = 1  # the chat service is down for the first attempt

    Daemon(settings).tick(T0)
    assert len(pushes(feed_server)) == 1  # the other story's push waits for its retry
    status = "\n".join(collect_status(settings).lines())
    assert "notify:desk-chat" in status and "a service refused or was unreachable" in status

    # another outlet picks up the first story meanwhile; then the service restarts
    feed_server.routes["/daily"] = Response(200, DAILY, {"Content-Type": "application/xml"})
    grown = load_settings(write_config(tmp_path, [
        {"name": "Wire", "url": feed_server.url("wire")},
        {"name": "Daily", "url": feed_server.url("daily")},
    ], extra=channel(feed_server)))  # fmt: skip
    restarted = Daemon(grown)
    for minute in (1, 3, 10, 40):  # past the retry's backoff, then ticks with nothing new
        restarted.tick(T0 + minute * MIN)

    received = pushes(feed_server)
    assert sorted(p["title"] for p in received) == [
        "KFOR patrols reinforced at the Jarinje crossing",
        "KFOR troops reinforce patrols in Zvečan after gunfire",
    ]  # one per urgent story: not the routine one, not the other outlet's copy
    assert all(p["type"] == "info" and "Why: KFOR on the ground" in p["message"] for p in received)
    with Store(settings.database) as store:
        assert store.conn.execute("SELECT count(DISTINCT story) FROM items").fetchone()[0] == 3
        stored = b"".join(r[0] for r in store.conn.execute("SELECT message FROM digests"))
        attempts = " ".join(r[0] or "" for r in store.conn.execute("SELECT detail FROM deliveries"))
    assert TOKEN.encode() not in stored and TOKEN not in attempts
    assert not [r for r in caplog.records if TOKEN in r.getMessage()]


def test_a_digest_can_be_announced_on_a_channel(tmp_path, feed_server, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    settings = configure(tmp_path, feed_server, channel(feed_server, digests='["daily"]',
                                                        priority='"low"'))  # fmt: skip
    daemon = Daemon(settings)
    daemon.tick(T0)
    from monitor.deliver import send_digests

    with Store(settings.database) as store:
        send_digests(settings, store, daemon.rules.ruleset, now=T0 + MIN)
    titles = [p["title"] for p in pushes(feed_server)]
    assert len(titles) == 4  # three stories at priority low and up, then the digest's note
    assert titles[-1].startswith("Balkans watch — 3 new stories, 2 urgent")


def test_a_missing_variable_is_retried_and_named_without_a_value(tmp_path, feed_server):
    settings = configure(tmp_path, feed_server, channel(feed_server))
    Daemon(settings).tick(T0)
    assert pushes(feed_server) == []
    status = "\n".join(collect_status(settings).lines())
    assert "HOOK_TOKEN: not set in the environment" in status


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[[notify]]\nname = "x"\nurls = []\n', "notify[0] (x).urls: expected Apprise URLs"),
        ('[[notify]]\nname = "x"\nurls = ["slack"]\n', "expected an Apprise URL"),
        ('[[notify]]\nname = "x"\nurls = ["matrix://bot:hunter2@matrix.example/!room"]\n',
         "a password in a URL must come from the environment"),
        ('[[notify]]\nname = "x"\nurls = ["ntfy://t"]\ndigests = ["weekly"]\n',
         "notify[0] (x).digests: no digest named 'weekly'"),
        ('[[notify]]\nname = "x"\nurls = ["ntfy://t"]\npriority = "high"\n',
         "notify[0] (x).priority: expected one of low, normal, urgent"),
    ],
)  # fmt: skip
def test_notify_settings_are_checked(tmp_path, table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write_config(tmp_path, [], extra=table))
