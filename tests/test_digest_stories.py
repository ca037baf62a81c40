"""The digest as a reader scans it: each story once with who reported it first, its outlets,
kinds and languages; sections in the rule files' order; a byte budget whatever the number of
hits; at most six highlights; lines a terminal can show; links to the web view. Checked on
messages built from a real SQLite store and, where it says so, received by a real SMTP
server on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from mailtools import ENGINE, RULES, T0, add_story, headings, parts, settings_for

from monitor.alerts import send_alerts
from monitor.deliver import send_digests
from monitor.digest import HTML_BUDGET, MAX_HIGHLIGHTS, MESSAGE_BUDGET, prepare
from monitor.errors import RuleError
from monitor.mailheaders import serialise
from monitor.models import CycleOutcome, Item, Source
from monitor.provenance import OUTLET_KINDS, outlet_kind
from monitor.rules import load_rules
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

DAILY = """
[[digests]]
name = "daily"
title = "Balkans watch"
timezone = "Europe/Rome"
to = ["desk@example.org"]
"""
ALERTS = (
    DAILY
    + """
[alerts]
to = ["desk@example.org"]
batch = "0s"
timezone = "Europe/Rome"
"""
)
MIN = timedelta(minutes=1)
DENSE = (
    "KFOR troops reinforce patrols in Kosovo after gunfire: KFOR said troops from Pristina, "
    "Mitrovica and Priština patrols reinforced the Kosovo Force near Serbia and Belgrade, "
    "while Vučić and Srbija answered that K-FOR patrols must leave Kosovo."
)


def test_a_story_from_three_outlets_is_listed_once_with_its_provenance(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY)
    store = Store(settings.database)
    first = add_story(store, "KFOR troops reinforce patrols in Zvečan",
                      "KFOR troops reinforce patrols near Kosovo.", source="Agency",
                      tags=("wire", "balkans"), published="2022-11-24T06:12:00Z",
                      lang="en")  # fmt: skip
    add_story(store, "KFOR pojačao patrole na severu Kosova",
              "KFOR troops reinforce patrols, Kosovo.", source="Tanjug", tags=("state-media",),
              published="2022-11-24T07:40:00Z", story=first, lang="sr")  # fmt: skip
    add_story(store, "NATO's KFOR adds troops to patrols in Zvečan, Kosovo",
              "KFOR troops reinforce patrols in Kosovo north.", source="Blog",
              published="2022-11-24T08:00:00Z", story=first, lang="en",
              also=(("Mirror", "https://mirror.example/kfor"),))  # fmt: skip
    send_digests(settings, store, RULES, now=T0)
    message = smtp_server.inbox.messages()[0]
    text, html = parts(message)

    assert message["Subject"].startswith("Balkans watch — 1 new story, 1 urgent")
    assert text.count("\n* ") == 1  # three items, one story
    # the best-carried item gives the title (two outlets carried the blog's copy)
    assert "* NATO's KFOR adds troops to patrols in Zvečan, Kosovo" in text
    line = "first reported by Agency 07:12 · 4 outlets (1 wire, 1 state media) · 2 languages"
    assert line in " ".join(text.split()) and line in html
    # the other outlets as links, each to its own copy
    assert 'href="https://mirror.example/kfor"' in html and "Also: " in text
    assert re.search(r'href="https://news\.example/[0-9a-f]+"[^>]*>Tanjug</a>', html)


def test_the_kind_of_an_outlet_is_its_first_kind_tag() -> None:
    assert outlet_kind(["balkans", "state-media", "wire"]) == "state-media"
    assert outlet_kind(["balkans"]) == ""
    assert set(OUTLET_KINDS) == {
        "wire",
        "state-media",
        "public-media",
        "independent",
        "official",
        "think-tank",
    }


def test_an_alerted_story_is_not_alerted_again_as_it_grows(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, ALERTS)
    store = Store(settings.database)
    first = add_story(store, "KFOR troops reinforce patrols in Zvečan",
                      "KFOR troops reinforce patrols near Kosovo.", now=T0)  # fmt: skip
    assert send_alerts(settings, store, RULES, now=T0 + MIN).built is not None
    add_story(store, "KFOR sends more troops on patrols to Zvečan",
              "KFOR troops reinforce patrols, Kosovo.", source="Daily", story=first,
              now=T0 + 10 * MIN)  # fmt: skip
    again = send_alerts(settings, store, RULES, now=T0 + 11 * MIN)
    assert again.built is None and again.reason == "no new urgent hits"
    assert len(smtp_server.inbox.envelopes) == 1
    # a new story still alerts
    add_story(store, "KFOR patrols reinforced in Leposavić", "KFOR troops patrol Kosovo.",
              source="Third", now=T0 + 12 * MIN)  # fmt: skip
    assert send_alerts(settings, store, RULES, now=T0 + 13 * MIN).built is not None
    # the grown story goes into the digest, once, with both outlets
    send_digests(settings, store, RULES, now=T0 + 60 * MIN)
    digest_text, _ = parts(smtp_server.inbox.messages()[-1])
    assert digest_text.count("\n* ") == 2
    assert "· 2 outlets" in digest_text


def many_stories(store: Store, count: int) -> None:
    """`count` distinct stories from 25 outlets, stored in one cycle, each with many terms."""
    store.sync_sources([Source(f"Outlet {n}", f"https://o{n}.example/feed") for n in range(25)])
    saves = []
    for n in range(count):
        item_id = f"story{n:04d}"
        title = f"KFOR patrols report {n}: troops reinforce the line near Mitrovica, day {n}"
        item = Item(item_id, f"Outlet {n % 25}", f"https://o{n % 25}.example/{n}", "", title,
                    f"Report {n}. {DENSE}", "", "2022-11-24T07:00:00Z", item_id, "en")  # fmt: skip
        hits = [(item_id, h) for h in ENGINE.match(item)]
        saves.append((CycleOutcome(item.source, 200, 1, [item], hits), T0 + 30 * MIN))
    store.save_cycles(saves, T0)


def test_500_stories_stay_within_the_byte_budget(tmp_path):
    settings = settings_for(tmp_path, None, DAILY)
    store = Store(settings.database)
    many_stories(store, 500)
    [built] = prepare(settings, store, RULES, now=T0)
    digest = built.digest
    assert digest.stories == 500
    assert len(built.html.encode()) < HTML_BUDGET
    assert len(serialise(built.message)) < MESSAGE_BUDGET
    # whatever is not listed is counted, and the counts agree everywhere
    assert digest.listed + digest.omitted == 500
    assert sum(count for _, count in digest.counts_by_rule) == 500
    assert f"{digest.omitted} more stories here" in built.text
    for title, count in digest.counts_by_rule:
        assert f"{title} ({count})" in built.text
    # at most six highlights in each snippet, the actors among them
    for entry in (e for s in digest.sections for e in s.entries):
        marked = [text for text, lit in entry.snippet if lit]
        assert 0 < len(marked) <= MAX_HIGHLIGHTS
        assert "KFOR" in marked
        assert len({m.lower() for m in marked}) == len(marked)


def test_the_top_stories_block_comes_first_and_each_story_appears_once(tmp_path):
    settings = settings_for(tmp_path, None, DAILY)
    store = Store(settings.database)
    for n in range(7):
        add_story(store, f"Kosovo assembly session {n} ends without a speaker",
                  "The Kosovo assembly met again.", source=f"Paper {n}")  # fmt: skip
    add_story(store, "KFOR troops reinforce patrols in Zvečan",
              "KFOR troops reinforce patrols near Kosovo.", source="Agency",
              also=(("Second", "https://second.example/k"),
                    ("Third", "https://third.example/k")))  # fmt: skip
    [built] = prepare(settings, store, RULES, now=T0)
    assert headings(built.text)[:1] == ["[URGENT] Top stories (5)"]
    top = built.digest.sections[0].entries
    assert top[0].title == "KFOR troops reinforce patrols in Zvečan"  # urgent, three outlets
    titles = [e.title for s in built.digest.sections for e in s.entries]
    assert len(titles) == len(set(titles)) == 8


def test_a_story_goes_under_its_first_rule_in_rule_order(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(
        "actors:\n  - {id: kfor, name: KFOR, kind: organisation, aliases: [KFOR]}\n"
        "rules:\n"
        "  - {id: broad, title: Everything on KFOR, query: '@kfor', order: 90}\n"
        "  - {id: patrols, title: Patrols, query: '@kfor AND patrol*', order: 5,"
        " section: Security}\n"
        "  - {id: troops, title: Troops, query: '@kfor AND troops', order: 6,"
        " section: Security}\n",
        encoding="utf-8",
    )
    ruleset = load_rules(rules)
    assert [r.order for r in ruleset.rules] == [90, 5, 6]
    settings = settings_for(tmp_path, None, DAILY)
    store = Store(settings.database)
    engine_hits = load_engine(ruleset)
    store_items(store, engine_hits, ["KFOR patrols the north", "KFOR troops arrive",
                                     "KFOR statement"])  # fmt: skip
    [built] = prepare(settings, store, ruleset, now=T0)
    # one "Security" section for the two rules that name it, before the broad rule's
    assert headings(built.text) == ["Security (2)", "Everything on KFOR (1)"]


def load_engine(ruleset):  # type: ignore[no-untyped-def]
    from monitor.match import Engine

    return Engine(ruleset)


def store_items(store: Store, engine, titles: list[str]) -> None:  # type: ignore[no-untyped-def]
    store.sync_sources([Source("Wire", "https://wire.example/feed")])
    saves = []
    for n, title in enumerate(titles):
        item = Item(f"i{n}", "Wire", f"https://wire.example/{n}", "", title, title, "",
                    "2022-11-24T07:00:00Z", f"i{n}")  # fmt: skip
        hits = [(item.id, h) for h in engine.match(item)]
        saves.append((CycleOutcome("Wire", 200, 1, [item], hits), T0))
    store.save_cycles(saves, T0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("order: soon", "rule 'r': order must be a whole number, got 'soon'"),
        ("order: true", "rule 'r': order must be a whole number, got True"),
        ("section: [a, b]", "rule 'r': section must be a heading (text)"),
        ('section: ""', "rule 'r': section must be a heading (text)"),
    ],
)
def test_section_and_order_are_checked_with_file_and_line(tmp_path, entry, message):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        f"rules:\n  - id: r\n    title: R\n    query: kosovo\n    {entry}\n", encoding="utf-8"
    )
    with pytest.raises(RuleError) as error:
        load_rules(rules)
    [problem] = error.value.problems
    assert problem.startswith(f"{rules / 'r.yaml'}:5: ") and message in problem


def test_text_lines_fit_76_columns_and_days_stay_days(tmp_path):
    settings = settings_for(tmp_path, None, DAILY)
    store = Store(settings.database)
    add_story(store, "Kosovo " + "and a very long headline about the assembly " * 3,
              "Kosovo " + "words " * 80, published="2022-11-23")  # fmt: skip
    many_stories(store, 12)
    [built] = prepare(settings, store, RULES, now=T0)
    long_lines = [
        line for line in built.text.splitlines()
        if len(line) > 76 and not line.strip().startswith(("https://", "http://"))
    ]  # fmt: skip
    assert long_lines == []
    assert "23 Nov 2022" in built.text and "23 Nov 2022 00:00" not in built.text


def test_with_a_web_view_stories_and_the_rest_link_to_it(tmp_path):
    extra = DAILY + 'max_stories = 3\n\n[ui]\nbase_url = "https://watch.example.org/"\n'
    settings = settings_for(tmp_path, None, extra)
    store = Store(settings.database)
    many_stories(store, 8)
    [built] = prepare(settings, store, RULES, now=T0)
    story = built.digest.sections[0].entries[0].story
    assert f'href="https://watch.example.org/-/story/{story}"' in built.html
    assert re.search(r'href="https://watch\.example\.org/"[^>]*>read them in the web view</a>',
                     built.html)  # fmt: skip
    assert "monitor search" not in built.text


def test_the_web_view_address_is_checked(tmp_path):
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ui\.base_url: expected an http\(s\) address"):
        settings_for(tmp_path, None, DAILY + '\n[ui]\nbase_url = "watch.example.org"\n')


def test_a_digest_over_several_days_carries_an_inline_chart(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, DAILY + "chart = true\n")
    store = Store(settings.database)
    for day in (21, 22, 22, 23, 24):
        add_story(store, f"Kosovo and Serbia talks, round {day} in Brussels {day * 7}",
                  "Serbia and Kosovo met again.", published=f"2022-11-{day}T09:00:00Z",
                  source=f"Paper {day}")  # fmt: skip
    send_digests(settings, store, RULES, now=T0)
    raw = smtp_server.inbox.envelopes[0][2]
    message = smtp_server.inbox.messages()[0]
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    html_part, image = related.get_payload()
    assert image.get_content_type() == "image/png" and image["Content-ID"] == "<chart@news-monitor>"
    assert image.get_content().startswith(b"\x89PNG")
    assert 'src="cid:chart@news-monitor"' in html_part.get_content()
    assert len(raw) < MESSAGE_BUDGET
    # a digest of one day has no chart
    store2 = Store(tmp_path / "other.db")
    add_story(store2, "Kosovo assembly meets", "Kosovo.", published="2022-11-24T09:00:00Z")
    from monitor.digest import collect

    one_day = collect(store2, settings.digests[0], RULES, T0)
    assert one_day.chart == b""
