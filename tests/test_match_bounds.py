"""A huge or hostile item cannot stall matching: the engine's work is counted (not timed) and
must grow linearly with the item; fields are matched and stored only up to `max_text`; a hit
keeps a bounded sample of its evidence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import FeedServer, Response, write_config
from test_end_to_end import monitor

from monitor.match import MAX_EVIDENCE, Engine, clip
from monitor.models import Item
from monitor.rules import load_rules

SHIPPED = Path(__file__).parents[1] / "rules"
RULES = """\
actors:
  - id: nis
    aliases: [NIS]
    context: [oil, gas]
    window: 3
rules:
  - id: near
    query: 'alpha NEAR/2 beta'
  - id: phrase-near
    query: '"alpha beta" NEAR/1 (gamma OR beta)'
  - id: actor
    query: '@nis'
  - id: atleast
    query: 'ATLEAST 2 (alpha, beta, gamma, delta)'
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "r.yaml").write_text(RULES, encoding="utf-8")
    return Engine(load_rules(folder), max_chars=10**8)  # no cap: the algorithm is measured


def item(text: str, title: str = "") -> Item:
    return Item("i", "s", "", "", title, text, "", "", "")


def steps(engine: Engine, text: str) -> tuple[set[str], int]:
    hits, work = engine.match_counting(item(text))
    return {h.rule for h in hits}, work


def test_near_work_grows_linearly_with_the_occurrences(engine: Engine) -> None:
    """10,000 occurrences of each side, then 20,000: comparing every pair would be 4× the
    work (10^8 pairs, then 4 × 10^8); a lookup per occurrence is 2×."""
    rules, small = steps(engine, "alpha beta " * 10_000)
    assert {"near", "phrase-near", "atleast"} <= rules
    _, large = steps(engine, "alpha beta " * 20_000)
    assert 1.8 < large / small < 2.2
    assert small < 20 * 20_000  # a few steps per occurrence, nowhere near 10^8


def test_near_far_apart_occurrences_do_not_match_however_many(engine: Engine) -> None:
    spread = "alpha x x x x " * 5_000 + "beta x x x x " * 5_000
    rules, _ = steps(engine, spread)
    assert "near" not in rules  # only the last alpha and first beta could meet: 4 words
    rules, _ = steps(engine, spread.replace("alpha x x x x beta", "alpha x beta"))
    assert "near" in rules


def test_actor_context_work_grows_linearly(engine: Engine) -> None:
    rules, small = steps(engine, "NIS sells oil. " * 10_000)
    assert "actor" in rules
    _, large = steps(engine, "NIS sells oil. " * 20_000)
    assert 1.8 < large / small < 2.2
    rules, _ = steps(engine, "NIS x x x x x oil x x x x x " * 100)
    assert "actor" not in rules  # context too far away from every alias


def test_a_hit_keeps_a_bounded_sample_of_its_evidence(engine: Engine) -> None:
    hits = engine.match(item("alpha beta gamma " * 10_000))
    assert hits
    for hit in hits:
        assert len(hit.evidence) <= MAX_EVIDENCE
        assert hit.evidence == tuple(sorted(hit.evidence, key=lambda e: (e.start, e.term)))
    near = next(h for h in hits if h.rule == "phrase-near")
    assert {e.term for e in near.evidence} == {'"alpha beta"', "gamma", "beta"}  # each kept


def test_fields_are_matched_up_to_the_cap_only() -> None:
    engine = Engine(load_rules(SHIPPED), max_chars=1_000)
    filler = "The weather was mild and the markets were calm. " * 25  # 1,225 characters
    late = item(filler + "KFOR troops reinforce patrols in Zvečan after shooting.")
    assert engine.match(late) == []  # the terms stand past the first 1,000 characters
    assert Engine(load_rules(SHIPPED)).match(late)  # the default cap (100,000) reaches them


def test_the_cap_bounds_the_work_on_a_megabyte_item() -> None:
    engine = Engine(load_rules(SHIPPED))
    paragraph = (
        "KFOR troops reinforce patrols in Zvečan after Kosovo police and Serbian officials "
        "traded accusations; Vučić and Kurti met in Brussels with EU envoy Lajčák. "
    )
    huge = paragraph * (1_000_000 // len(paragraph))
    hits, work = engine.match_counting(item(huge))
    _, clipped_work = engine.match_counting(item(clip(huge, engine.max_chars)))
    assert hits and work == clipped_work  # what lies past the cap costs nothing
    assert all(len(h.evidence) <= MAX_EVIDENCE for h in hits)


def test_clip_cuts_at_a_word_boundary() -> None:
    assert clip("Kosovar reporters", 6) == "Kosovar reporters"[:6]  # no space to cut at
    assert clip("in Kosovar reporters", 8) == "in"
    assert clip("short", 100) == "short"


def test_stored_items_are_capped_at_max_text(tmp_path: Path, feed_server: FeedServer) -> None:
    body = "Kosovo and Serbia argue over car plates. " * 5_000  # 205,000 characters
    feed_server.routes["/big.xml"] = Response(200, (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>x</link>'
        f"<item><title>Plates row</title><link>https://news.example/1</link><guid>g</guid>"
        f"<description>{body}</description></item></channel></rss>"
    ).encode(), {"Content-Type": "application/rss+xml"})  # fmt: skip
    config = write_config(
        tmp_path, [{"name": "Big", "url": feed_server.url("big.xml")}], fetch={"max_text": 5000}
    )
    ran = monitor(config, "once")
    assert ran.returncode == 0, ran.stderr
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        (length,) = db.execute("SELECT length(summary) FROM items").fetchone()
        evidence = db.execute("SELECT evidence FROM hits").fetchall()
    assert 4_800 <= length <= 5_000
    assert evidence  # matched, on the capped text
