"""Urgent alerts: sent soon after an urgent hit, batched within a window, capped per hour so a
flood becomes one message, each hit alerted once, independent of the digests."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from conftest import write_config
from mailtools import RULES, T0, add_story, headings, parts, settings_for

from monitor.alerts import check_alert, queue_alert, send_alerts
from monitor.cli import main
from monitor.clock import utcnow
from monitor.config import load_settings
from monitor.deliver import send_digests
from monitor.digest import record
from monitor.errors import ConfigError
from monitor.scheduler import Daemon
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

ALERTS = """
[[digests]]
name = "daily"
to = ["analyst@example.org"]

[alerts]
to = ["desk@example.org"]
batch = "5m"
max_per_hour = 2
timezone = "Europe/Belgrade"
"""
MIN = timedelta(minutes=1)


def urgent(store: Store, n: int, at: datetime = T0) -> None:
    title = f"KFOR patrols north Mitrovica, report {n}"
    add_story(store, title, f"KFOR troops reinforce patrols near Kosovo, report {n}.", now=at)


def routine(store: Store, at: datetime = T0) -> None:
    add_story(store, "EULEX mission extended", "The mission stays.", now=at)


def test_urgent_hits_are_batched_into_one_alert_after_the_window(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, ALERTS)
    store = Store(settings.database)
    urgent(store, 1, at=T0)
    routine(store, at=T0)

    early = send_alerts(settings, store, RULES, now=T0 + MIN)
    assert early.built is None and early.next_check == T0 + 5 * MIN
    urgent(store, 2, at=T0 + 2 * MIN)  # joins the open batch
    assert send_alerts(settings, store, RULES, now=T0 + 4 * MIN).built is None
    sent = send_alerts(settings, store, RULES, now=T0 + 5 * MIN)
    assert sent.built is not None

    [(_, rcpt, _)] = smtp_server.inbox.envelopes
    assert rcpt == ["desk@example.org"]
    message = smtp_server.inbox.messages()[0]
    assert (
        message["Subject"]
        == "Urgent — 2 stories: KFOR patrols north Mitrovica, report 2 and 1 more"
    )
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert headings(text) == ["[URGENT] KFOR on the ground (2)"]
    assert "EULEX" not in text  # only urgent hits alert
    assert "first reported by Wire 08:00" in text  # Europe/Belgrade
    assert "<b>" in html and "Actors:" not in text  # alerts skip the digest overview
    # each hit alerts once ...
    assert send_alerts(settings, store, RULES, now=T0 + 30 * MIN).built is None
    assert len(smtp_server.inbox.envelopes) == 1
    # ... and still belongs in the digest, which claims hits under its own name
    send_digests(settings, store, RULES, now=T0 + 60 * MIN)
    digest_text, _ = parts(smtp_server.inbox.messages()[1])
    assert "report 1" in digest_text and "report 2" in digest_text and "EULEX" in digest_text


def test_a_flood_is_capped_per_hour_and_arrives_as_one_message(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, ALERTS.replace('"5m"', '"0s"'))
    store = Store(settings.database)
    urgent(store, 1, at=T0)
    assert send_alerts(settings, store, RULES, now=T0).built is not None
    urgent(store, 2, at=T0 + 10 * MIN)
    assert send_alerts(settings, store, RULES, now=T0 + 10 * MIN).built is not None
    for n in range(3, 43):  # the flood: 40 urgent stories in the next 40 minutes
        urgent(store, n, at=T0 + (n - 3 + 11) * MIN)
        held = send_alerts(settings, store, RULES, now=T0 + (n - 3 + 11) * MIN)
        assert held.built is None and "2 alerts in the last hour" in held.reason
        assert held.next_check == T0 + 60 * MIN
    assert len(smtp_server.inbox.envelopes) == 2

    flood = send_alerts(settings, store, RULES, now=T0 + 60 * MIN)
    assert flood.built is not None and len(flood.built.digest.hit_ids) == 40
    assert len(smtp_server.inbox.envelopes) == 3
    assert smtp_server.inbox.messages()[2]["Subject"].startswith("Urgent — 40 stories: ")


def test_hits_older_than_max_age_are_left_to_the_digest(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, ALERTS + 'max_age = "1h"\n')
    store = Store(settings.database)
    urgent(store, 1, at=T0)
    stale = check_alert(settings, store, RULES, now=T0 + 2 * 60 * MIN)
    assert stale.built is None and "no new urgent hits" in stale.reason


def test_alerts_choose_rules_by_tag_and_priority(tmp_path, smtp_server):
    extra = ALERTS.replace('batch = "5m"', 'batch = "0s"\ntags = ["balkans"]\npriority = "normal"')
    settings = settings_for(tmp_path, smtp_server, extra)
    store = Store(settings.database)
    urgent(store, 1)
    routine(store)
    built = check_alert(settings, store, RULES, now=T0).built
    assert built is not None and built.digest.stories == 2


def test_queue_claims_hits_once_even_when_two_runs_race(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, ALERTS)
    store, other = Store(settings.database), Store(settings.database)
    urgent(store, 1)
    first = check_alert(settings, store, RULES, now=T0 + 10 * MIN)
    second = check_alert(settings, other, RULES, now=T0 + 10 * MIN)
    assert first.built and second.built
    assert record(store, first.built) is not None
    assert record(other, second.built) is None  # the unique claim refuses a second copy
    assert queue_alert(settings, store, RULES, now=T0 + 11 * MIN).built is None


def test_daemon_tick_polls_then_alerts_in_the_same_tick(tmp_path, smtp_server, feed_server):
    feeds = [{"name": "Wire", "url": feed_server.url("rss2.xml")}]
    config = write_config(tmp_path, feeds, smtp=smtp_server, digest=ALERTS.replace('"5m"', '"0s"'))
    Daemon(load_settings(config)).tick()
    [message] = smtp_server.inbox.messages()
    assert message["Subject"] == "Urgent: KFOR steps up patrols in northern Kosovo"
    assert message["To"] == "desk@example.org"


def test_cli_alerts_dry_run_no_wait_and_nothing_due(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, ALERTS)
    store = Store(settings.database)
    urgent(store, 1, at=utcnow())
    store.close()
    runner = CliRunner()
    cli = ["--config", str(settings.path), "alerts"]

    waiting = runner.invoke(main, cli)
    assert waiting.exit_code == 0, waiting.output
    assert "no alert sent: 1 hits waiting for the batch window (next chance" in waiting.output
    dry = runner.invoke(main, [*cli, "--dry-run", "--no-wait"])
    assert "Subject: Urgent: KFOR patrols north Mitrovica, report 1" in dry.output
    assert "*KFOR* *troops* *reinforce* *patrols*" in dry.output
    assert smtp_server.inbox.envelopes == []
    sent = runner.invoke(main, [*cli, "--no-wait"])
    assert "alert: Urgent: KFOR patrols north Mitrovica, report 1" in sent.output
    again = runner.invoke(main, [*cli, "--no-wait"])
    assert "no alert sent: no new urgent hits" in again.output
    assert len(smtp_server.inbox.envelopes) == 1
    status = runner.invoke(main, ["--config", str(settings.path), "status"])
    assert "outbox: 0 pending, 1 sent, 0 failed" in status.output
    assert re.search(r"alert:urgent: last built \S+, last sent \S+Z", status.output)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('batch = "5m"', "alerts.to: alerts need recipients"),
        ('to = ["d@example.org"]\nbatch = "soon"', "alerts.batch: expected a duration"),
        ('to = ["d@example.org"]\nmax_per_hour = 0', "alerts.max_per_hour: expected a whole"),
        ('to = ["d@example.org"]\npriority = "high"', "alerts.priority: expected one of"),
        ('to = ["d@example.org"]\nevery = "1m"', "alerts.every: unknown setting"),
    ],
)
def test_alert_settings_are_checked(tmp_path, table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_for(tmp_path, None, "[alerts]\n" + table + "\n")
