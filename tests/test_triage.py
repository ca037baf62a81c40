"""`monitor rules backtest` and `monitor rules suggest` on a real database filled by a
loopback cycle: a rule edit gains and loses known items, precision on judged items moves as
it should, nothing stored changes; suggest finds the words of the "not relevant" items, and
its clause, pasted into the rule, removes them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import TEST_RULES, write_config
from services import stored_rows

from monitor.config import load_settings
from monitor.models import Item
from monitor.store import Store
from monitor.triage import suggest

pytestmark = pytest.mark.usefixtures("both_stores")

KFOR_RULE = "query: '@kfor AND (patrol* OR troops OR reinforce*)'"
RELEVANT = [
    "KFOR troops patrol the north of Kosovo near Mitrovica",
    "KFOR reinforces its presence at the Jarinje crossing after Serbian protests",
    "Italian KFOR troops take over command in Pristina",
]
NOT_RELEVANT = [
    "KFOR 4 News: Oklahoma City police patrol after tornado",
    "Oklahoma troops deployed as storms hit, KFOR reports",
    "KFOR weather team: tornado season patrols in Edmond",
    "National Guard troops help Oklahoma flood victims, says KFOR",
]
UNMATCHED = ["Gunfire near a KFOR base in Zvečan overnight"]


def feed(titles: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://news.example/{n}</link><guid>g{n}</guid>"
        f"<description>{t}.</description></item>"
        for n, t in enumerate(titles)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Wire</title>'
        f"<link>https://news.example/</link><description>t</description>{items}</channel></rss>"
    ).encode()


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


@pytest.fixture
def config(tmp_path, feed_server) -> Path:
    from conftest import Response

    rules = tmp_path / "rules"
    shutil.copytree(TEST_RULES, rules)
    body = feed(RELEVANT + NOT_RELEVANT + UNMATCHED)
    feed_server.routes["/wire.xml"] = Response(200, body, {"Content-Type": "application/xml"})
    path = write_config(tmp_path, [{"name": "Wire", "url": feed_server.url("wire.xml")}],
                        rules=rules)  # fmt: skip
    done = monitor(path, "once")
    assert done.returncode == 0, done.stderr
    return path


def judge(config: Path, verdicts: dict[str, str]) -> None:
    """Record verdicts on the watch/kfor hits of the items with these titles, as the web
    view's buttons do."""
    with Store(load_settings(config).database) as store:
        rows = store.conn.execute(
            "SELECT hits.id, items.title FROM hits JOIN items ON items.id = hits.item_id "
            "WHERE hits.rule = 'watch/kfor'"
        ).fetchall()
        for hit_id, title in rows:
            if title in verdicts:
                store.record_feedback(hit_id, verdicts[title], datetime.now(UTC))


def edit_rule(config: Path, new_query: str) -> None:
    path = load_settings(config).rules / "watch" / "kosovo.yaml"
    text = path.read_text(encoding="utf-8")
    assert KFOR_RULE in text
    path.write_text(text.replace(KFOR_RULE, new_query), encoding="utf-8")


def stored_hits(config: Path) -> list[tuple]:
    return stored_rows(load_settings(config).database, "SELECT * FROM hits ORDER BY id")


def section(output: str, rule: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{rule}: "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), None)
    return lines[start:end]


def test_backtest_reports_gained_and_lost_items_and_precision(config):
    judge(config, {RELEVANT[1]: "relevant", RELEVANT[0]: "relevant", NOT_RELEVANT[0]: "relevant"}
          | {NOT_RELEVANT[1]: "not relevant"})  # fmt: skip
    judge(config, {NOT_RELEVANT[0]: "not relevant"})  # a second click corrects the first
    before = stored_hits(config)
    # the edit: reinforcements no longer count, gunfire does
    edit_rule(config, "query: '@kfor AND (patrol* OR troops OR gunfire)'")
    done = monitor(config, "rules", "backtest", "--since", "30d")
    assert done.returncode == 0, done.stderr
    kfor = section(done.stdout, "watch/kfor")
    assert kfor[0] == "watch/kfor: 7 stored, 7 now, +1 gained, -1 lost"
    assert f"  + {UNMATCHED[0]}" in " ".join(kfor) and f"  - {RELEVANT[1]}" in " ".join(kfor)
    # judged: 2 relevant + 2 not relevant; the edit loses one relevant item, keeps the others
    assert kfor[1] == (
        "  precision on 4 judged items: 2/4 = 0.50 as stored, 1/3 = 0.33 now "
        "(3 still hit, 1 relevant lost, 0 not relevant dropped)"
    )
    assert section(done.stdout, "watch/kosovo")[0].endswith("+0 gained, -0 lost")
    assert "1 of 3 rules change; nothing stored was changed" in done.stdout
    assert stored_hits(config) == before  # the digest sees exactly what it saw


def test_suggest_proposes_words_of_the_not_relevant_items_that_remove_them(config):
    judge(config, dict.fromkeys(RELEVANT, "relevant") | dict.fromkeys(NOT_RELEVANT, "not relevant"))
    done = monitor(config, "rules", "suggest", "watch/kfor")
    assert done.returncode == 0, done.stderr
    clause = done.stdout.splitlines()[-1]
    assert clause == "AND NOT (oklahoma OR tornado)"
    assert "removes 4 of 4 not relevant, 0 of 3 relevant" in done.stdout
    # pasted into the rule, the clause drops every not-relevant item and keeps the rest
    edit_rule(config, f"query: '@kfor AND (patrol* OR troops OR reinforce*) {clause}'")
    report = monitor(config, "rules", "backtest")
    kfor = section(report.stdout, "watch/kfor")
    assert kfor[0] == "watch/kfor: 7 stored, 3 now, +0 gained, -4 lost"
    assert "3/7 = 0.43 as stored, 3/3 = 1.00 now" in kfor[1]


def test_suggest_never_proposes_the_rules_own_words_or_words_of_relevant_items():
    def item(n: int, title: str) -> Item:
        return Item(f"i{n}", "Wire", "", "", title, "", "", "", "")

    judged = [
        (item(1, "KFOR patrol in Mitrovica, Kosovo"), "relevant"),
        (item(2, "KFOR patrol near the Oklahoma border of Kosovo"), "relevant"),
        (item(3, "KFOR patrol: Oklahoma storms"), "not relevant"),
        (item(4, "KFOR patrol: football match in Tulsa"), "not relevant"),
    ]
    result = suggest("watch/kfor", judged, own_terms={"kfor", "patrol"})
    words = [term.word for term in result.terms]
    assert "oklahoma" not in words and "kfor" not in words and "patrol" not in words
    assert result.dropped_bad == 2 and result.dropped_good == 0
    assert {"storms", "football"} & set(words) and {"tulsa", "football", "match"} & set(words)


def test_suggest_without_not_relevant_feedback_says_so(config):
    judge(config, dict.fromkeys(RELEVANT, "relevant"))
    done = monitor(config, "rules", "suggest", "watch/kfor")
    assert done.returncode == 1
    assert "no item is marked 'not relevant' for watch/kfor" in done.stderr


def test_backtest_refuses_a_bad_duration_and_a_broken_rule_folder(config, tmp_path):
    done = monitor(config, "rules", "backtest", "--since", "soon")
    assert done.returncode == 2 and "--since" in done.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "r.yaml").write_text("rules:\n  - id: x\n    query: 'a AND'\n", encoding="utf-8")
    done = monitor(config, "rules", "backtest", "--rules", str(broken))
    assert done.returncode == 2 and "r.yaml:" in done.stderr


def test_judged_items_outside_the_window_still_count_for_precision():
    from monitor.rules import load_rules
    from monitor.triage import backtest

    def item(n: int, title: str) -> Item:
        return Item(f"i{n}", "Wire", "", "", title, "", "", "", "")

    old = [item(1, RELEVANT[0]), item(2, NOT_RELEVANT[0]), item(3, RELEVANT[1])]
    verdicts = {("i1", "watch/kfor"): "relevant", ("i2", "watch/kfor"): "not relevant",
                ("i3", "watch/kfor"): "relevant"}  # fmt: skip
    report = backtest(load_rules(TEST_RULES), [], set(), verdicts, old)
    assert (report.items, report.judged_items) == (0, 3)
    kfor = next(change for change in report.changes if change.rule == "watch/kfor")
    assert (kfor.stored, kfor.replayed, kfor.gained, kfor.lost) == (0, 0, (), ())
    precision = kfor.precision
    assert precision is not None
    assert (precision.judged, precision.relevant, precision.hit_now, precision.relevant_now) == (
        3, 2, 3, 2
    )  # fmt: skip
