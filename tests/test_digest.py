"""What a digest holds and how it is built, checked on messages received by a real SMTP server
on 127.0.0.1 and parsed back: parts, headers, encoding, escaping, grouping, highlighting."""

from __future__ import annotations

import re
from dataclasses import replace
from email import message_from_bytes, policy

import pytest
from conftest import write_config
from mailtools import RULES, T0, Tags, add_story, headings, parts, settings_for

from monitor.config import load_settings
from monitor.deliver import send_digests
from monitor.digest import prepare
from monitor.errors import ConfigError
from monitor.match import Engine
from monitor.pipeline import poll
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

DAILY = """
[[digests]]
name = "daily"
title = "Pregled — Priština"
timezone = "Europe/Rome"
to = ["Ana Vučić <ana@example.org>", "desk@example.org"]
"""


def stories(store: Store) -> None:
    add_story(store, "KFOR steps up patrols in northern Kosovo",
              "NATO-led KFOR increased patrols around North Mitrovica after gunfire.",
              published="2022-11-24T07:00:00Z")  # fmt: skip
    add_story(store, "EULEX mission extended", "The EU rule-of-law mission stays two more years.",
              published="2022-11-23T10:00:00Z")  # fmt: skip
    add_story(store, "Вучић: Србија ће наставити дијалог са Приштином",
              "Vučić said Serbia will keep talking to Kosovo.", source="RTS",
              published="2022-11-24T12:30:00Z")  # fmt: skip


def test_message_is_utf8_multipart_alternative_with_clear_headers(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY)
    store = Store(settings.database)
    stories(store)
    send_digests(settings, store, RULES, now=T0)

    [(mail_from, rcpt_tos, raw)] = smtp_server.inbox.envelopes
    assert mail_from == "monitor@example.org"
    assert rcpt_tos == ["ana@example.org", "desk@example.org"]  # names stripped for RCPT TO
    raw.decode("ascii")  # 7-bit clean on the wire: UTF-8 travels encoded
    message = message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_payload()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert "=?utf-8?" in raw.decode("ascii").split("\r\n\r\n")[0]  # RFC 2047 subject
    assert message["Subject"] == "Pregled — Priština — 3 new stories, 1 urgent — 24 Nov"
    assert message["To"].addresses[0].display_name == "Ana Vučić"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].datetime == T0
    db_id = store.conn.execute("SELECT message_id FROM digests").fetchone()[0]
    assert message["Message-ID"] == db_id
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", db_id)
    text, html_text = parts(message)
    assert "Вучић: Србија ће наставити дијалог са Приштином" in text
    assert "Вучић: Србија ће наставити дијалог са Приштином" in html_text
    # published times in the digest's time zone (Europe/Rome, CET in November)
    assert "first reported by Wire 08:00" in text and "first reported by RTS 13:30" in html_text
    # readers filter by list; unsubscribing mails the operator (the sender, unless set)
    assert message["List-Id"] == "Pregled — Priština <daily.example.org>"
    assert message["List-Unsubscribe"] == "<mailto:monitor@example.org?subject=unsubscribe%20daily>"


def test_html_is_self_contained_and_email_safe(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY)
    store = Store(settings.database)
    stories(store)
    [built] = prepare(settings, store, RULES, now=T0)
    tags = Tags(built.html)
    assert not tags.names() & {"script", "img", "link", "iframe", "object", "form", "input"}
    assert not [a for _, a in tags.tags if "src" in a]  # no external assets at all
    assert "max-width:680px" in built.html  # a readable column on wide screens
    assert '<meta name="color-scheme" content="light dark">' in built.html
    # text colour set wherever a background is, so dark-mode inversion keeps contrast
    for _, attrs in tags.tags:
        style = attrs.get("style") or ""
        if "background-color:#ffe08a" in style:
            assert "color:#1d2329" in style
    assert all(h.startswith(("https://", "http://")) for h in tags.hrefs())


def test_feed_content_is_escaped_and_only_web_links_survive(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY)
    store = Store(settings.database)
    add_story(
        store,
        "<script>alert('x')</script> KFOR patrols & \"troops\"",
        "<img src=x onerror=alert(1)> KFOR troops near Mitrovica",
        url="javascript:alert(document.cookie)",
        also=(("Mirror", "data:text/html,<script>alert(2)</script>"),),
    )
    add_story(store, "EULEX in Kosovo", "A plain story.", url="JAVASCRIPT:alert(3)")
    add_story(store, "EULEX again", "Another.", url="https://ok.example/a?b=1&c=2")
    send_digests(settings, store, RULES, now=T0)
    text, html = parts(smtp_server.inbox.messages()[0])

    tags = Tags(html)
    assert "script" not in tags.names() and "img" not in tags.names()
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; KFOR patrols &amp; &#34;troops&#34;"
        in html
    )
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "javascript:" not in html.lower() and "data:text" not in html
    assert tags.hrefs() == ["https://ok.example/a?b=1&c=2"]
    assert 'href="https://ok.example/a?b=1&amp;c=2"' in html
    # the plain-text part shows the text as it is, and no unsafe link
    assert "<script>alert('x')</script> KFOR patrols" in text
    assert "javascript:" not in text.lower()


def test_sections_follow_rule_order_each_story_once_with_highlights(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY)
    store = Store(settings.database)
    stories(store)
    add_story(store, "Belgrade and Pristina talk", "Serbia and Kosovo resume talks in Brussels.")
    send_digests(settings, store, RULES, now=T0)
    text, html = parts(smtp_server.inbox.messages()[0])

    # sections in the rule files' `order` (the broad "Kosovo" rule last), whatever the titles
    assert headings(text) == ["[URGENT] KFOR on the ground (1)", "Serbia and Kosovo (2)",
                              "Kosovo (1)"]  # fmt: skip
    # the KFOR story matched two rules: listed once, under the first in rule order
    assert text.count("KFOR steps up patrols in northern Kosovo") == 1
    assert html.count(">KFOR steps up patrols in northern Kosovo</a>") == 1
    assert "Why: KFOR on the ground — KFOR, Kosovo (also 1 other rule)" in text
    # matched terms highlighted in both parts
    assert re.search(r"<b>KFOR</b> increased <b>patrols</b>", html)
    assert "*KFOR* increased *patrols* around North *Mitrovica*" in text
    # the overview counts what the sections hold: the same numbers everywhere
    assert re.search(r"^\s+1\s+KFOR on the ground$", text, re.M)
    assert re.search(r"^\s+2\s+Serbia and Kosovo$", text, re.M)
    assert re.search(r"^\s+1\s+Kosovo$", text, re.M)
    assert "Actors: Kosovo 3, Serbia 2, KFOR 1" in text
    assert "Serbia and Kosovo&nbsp;2" in html and "Actors: Kosovo&nbsp;3" in html


def test_grouped_by_actor(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY + 'group_by = "actor"\n')
    store = Store(settings.database)
    stories(store)
    add_story(store, "Belgrade and Pristina talk", "Serbia and Kosovo resume talks.")
    send_digests(settings, store, RULES, now=T0)
    text, _ = parts(smtp_server.inbox.messages()[0])
    # urgent stories first, then actors busiest first, stories naming no actor last
    assert headings(text) == ["[URGENT] Urgent (1)", "Kosovo (2)", "Other stories (1)"]
    assert text.index("Other stories") < text.index("EULEX mission extended")


def test_same_story_from_several_sources_is_one_entry_listing_them(
    tmp_path, smtp_server, feed_server
):
    feeds = [
        {"name": "Wire", "url": feed_server.url("rss2.xml")},
        {"name": "Partner", "url": feed_server.url("duplicate_story.xml")},
    ]
    settings = load_settings(write_config(tmp_path, feeds, smtp=smtp_server))
    store = Store(settings.database)
    poll(settings, store, Engine(RULES))
    send_digests(settings, store, RULES)
    text, html = parts(smtp_server.inbox.messages()[0])
    assert text.count("Serbia and Kosovo agree to end licence plate dispute") == 1
    assert "first reported by Wire 23 Nov 23:05 · 2 outlets" in text
    # each source linked to its own copy of the story
    assert 'href="https://partner.example/world/2022/11/24/serbia-kosovo-plates"' in html


def test_failing_sources_are_named_so_silence_is_not_calm(tmp_path, smtp_server, feed_server):
    feeds = [
        {"name": "Wire", "url": feed_server.url("rss2.xml")},
        {"name": "Dead <b>feed</b>", "url": feed_server.url("missing.xml")},
    ]
    settings = load_settings(write_config(tmp_path, feeds, smtp=smtp_server))
    store = Store(settings.database)
    poll(settings, store, Engine(RULES))
    send_digests(settings, store, RULES)
    text, html = parts(smtp_server.inbox.messages()[0])
    assert re.search(r"! Dead <b>feed</b>: .*404", text)
    assert "Dead &lt;b&gt;feed&lt;/b&gt;" in html and "failing to fetch" in html
    # with send_empty, a quiet day still says which sources are failing
    quiet = replace(settings, digests=(replace(settings.digests[0], send_empty=True),))
    [again] = prepare(quiet, store, RULES)
    assert again.digest.empty and "Dead <b>feed</b>" in again.text
    assert prepare(settings, store, RULES) == []


def test_empty_digest_sent_only_when_configured(tmp_path, smtp_server):
    extra = """
    [[digests]]
    name = "quiet"
    to = ["quiet@example.org"]

    [[digests]]
    name = "heartbeat"
    title = "Heartbeat"
    to = ["ops@example.org"]
    send_empty = true
    """
    settings = settings_for(tmp_path, smtp_server, extra)
    store = Store(settings.database)
    built = send_digests(settings, store, RULES, now=T0)
    assert [b.digest.settings.name for b in built] == ["heartbeat"]
    [(_, rcpt, _)] = smtp_server.inbox.envelopes
    assert rcpt == ["ops@example.org"]
    message = smtp_server.inbox.messages()[0]
    assert message["Subject"] == "Heartbeat — 0 new stories — 24 Nov"
    text, html = parts(message)
    assert "Nothing new matched your rules" in text and "Nothing new matched" in html


def test_digests_with_different_recipients_share_hits(tmp_path, smtp_server):
    extra = """
    [[digests]]
    name = "analysts"
    to = ["analysts@example.org"]

    [[digests]]
    name = "security"
    tags = ["security"]
    to = ["security@example.org"]

    [[digests]]
    name = "editors"
    rules = ["watch/k*"]
    to = ["editors@example.org"]
    """
    settings = settings_for(tmp_path, smtp_server, extra)
    store = Store(settings.database)
    stories(store)
    send_digests(settings, store, RULES, now=T0)
    received = {tuple(rcpt): raw for _, rcpt, raw in smtp_server.inbox.envelopes}
    assert set(received) == {
        ("analysts@example.org",),
        ("security@example.org",),
        ("editors@example.org",),
    }
    texts = {k: parts(message_from_bytes(v, policy=policy.default))[0] for k, v in received.items()}
    kfor = "KFOR steps up patrols in northern Kosovo"
    assert all(kfor in t for t in texts.values())  # one hit, three digests
    assert "EULEX mission extended" not in texts[("security@example.org",)]
    assert "Приштином" in texts[("analysts@example.org",)]
    # each digest claimed its own copy of the hits: nothing goes out twice
    assert send_digests(settings, store, RULES, now=T0) == []
    assert len(smtp_server.inbox.envelopes) == 3


def test_dry_run_and_preview_do_not_claim_hits(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY)
    store = Store(settings.database)
    stories(store)
    assert len(prepare(settings, store, RULES)) == 1
    assert len(prepare(settings, store, RULES)) == 1  # building alone claims nothing
    assert smtp_server.inbox.envelopes == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[digests]]\nname = "d"\ngroup_by = "source"\n', "group_by: expected 'rule' or 'actor'"),
        ('[[digests]]\nname = "d"\ntimezone = "Mars/Base"\n', "unknown time zone 'Mars/Base'"),
        ('[[digests]]\nname = "d"\nto = ["nobody"]\n', "'nobody' is not an email address"),
    ],
)
def test_digest_settings_are_checked(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        settings_for(tmp_path, None, extra)
    assert "monitor.toml: digests[0] (d)" in str(error.value)


def test_a_flood_is_counted_but_only_max_stories_are_listed(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY + "max_stories = 2\n")
    store = Store(settings.database)
    stories(store)
    add_story(store, "Belgrade and Pristina talk", "Serbia and Kosovo resume talks.")
    [built] = send_digests(settings, store, RULES, now=T0)
    assert built.digest.stories == 4 and built.digest.omitted == 2
    text, html = parts(smtp_server.inbox.messages()[0])
    assert "4 new stories" in smtp_server.inbox.messages()[0]["Subject"]
    assert headings(text) == ["[URGENT] KFOR on the ground (1)", "Serbia and Kosovo (2)",
                              "Kosovo (1)"]  # fmt: skip
    assert "… and 1 more story here, not listed" in text and "… and 1 more story" in html
    # without a web view, the exact search that lists them
    assert "list them with: monitor search 'Kosovo'" in text
    assert text.count("\n* ") == 2
    # every hit was claimed: the overflow does not spill into the next digest
    assert send_digests(settings, store, RULES, now=T0) == []
