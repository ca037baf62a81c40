"""Stories measured on labelled reports: `monitor cluster` on the sets under tests/data/stories
(the same events from several outlets and languages, with distractors), scored against the
true events; and the daemon, polling the same reports from loopback feeds, groups them alike."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import FeedServer, Response, report_feed, write_config

from monitor.clock import from_iso
from monitor.cluster import score
from monitor.config import load_settings
from monitor.match import Engine
from monitor.normalise import canonical_url
from monitor.pipeline import poll
from monitor.rules import load_rules
from monitor.store import Store

DATA = Path(__file__).parent / "data" / "stories"
PACK = Path(__file__).parents[1] / "rules"
# Floors a little under what the sets measure today (README, "Stories: measured"): a change
# to identity or assignment that loses grouping quality fails here.
FLOORS = {"tuning": (0.80, 0.80), "heldout": (0.70, 0.77)}  # pairwise F1, B-cubed F1


def records(name: str) -> list[dict]:
    lines = (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def cluster(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "cluster", str(path), "--rules", str(PACK), *args],
        capture_output=True, text=True, timeout=120, cwd=path.parent,
        env={**os.environ, "MONITOR_CONFIG": str(path.parent / "none.toml")},
    )  # fmt: skip


def placements(run: subprocess.CompletedProcess[str]) -> list[dict]:
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_stories_of_the_labelled_sets_score_above_their_floors(name: str) -> None:
    run = cluster(DATA / f"{name}.jsonl", "--truth", "event")
    got = {p["id"]: p["story"] for p in placements(run)}
    truth = {r["id"]: r["event"] for r in records(name)}
    scores = score(got, truth)
    pair_floor, bcubed_floor = FLOORS[name]
    assert scores.pair_f1 >= pair_floor, scores
    assert scores.bcubed_f1 >= bcubed_floor, scores
    assert f"{len(truth)} labelled items: pairwise P" in run.stderr


def test_each_story_has_one_first_report_the_earliest() -> None:
    by_id = {r["id"]: r for r in records("tuning")}
    stories: dict[str, list[dict]] = {}
    for placement in placements(cluster(DATA / "tuning.jsonl")):
        stories.setdefault(placement["story"], []).append(placement)
    for members in stories.values():
        firsts = [m["id"] for m in members if m["first"]]
        assert len(firsts) == 1, members
        dated = [by_id[m["id"]]["published"] for m in members if by_id[m["id"]]["published"]]
        if dated:
            assert by_id[firsts[0]]["published"] == min(dated, key=from_iso)


def test_a_line_that_is_not_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"id": "a", "title": "KFOR patrol in Zvečan"}\n{"id": "b", "title"\n')
    run = cluster(bad)
    assert run.returncode == 1
    assert "items.jsonl:2: not valid JSON" in run.stderr


def test_the_daemon_groups_the_reports_as_cluster_does(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """The tuning set's first 50 reports arrive one by one (each outlet a feed on the loopback
    server, polled when its report is published): the stories in the database are the ones
    `monitor cluster` gives for the same lines."""
    chosen = sorted(records("tuning"), key=lambda r: r["published"] or "9")[:50]
    outlets = sorted({r["source"] for r in chosen})
    slug = {name: f"feed{n}" for n, name in enumerate(outlets)}
    sources = [{"name": name, "url": feed_server.url(slug[name])} for name in outlets]
    config = write_config(tmp_path, sources, rules=PACK)
    settings = load_settings(config)
    engine = Engine(load_rules(PACK))
    published: dict[str, list[dict]] = {name: [] for name in outlets}
    when = from_iso("2026-01-01T00:00:00Z")
    with Store(settings.database) as store:
        for record in chosen:
            published[record["source"]].insert(0, record)
            feed_server.routes[f"/{slug[record['source']]}"] = Response(
                200, report_feed(record["source"], published[record["source"]])
            )
            when = from_iso(record["published"]) if record["published"] else when
            poll(settings, store, engine, now=when + timedelta(seconds=1))
    with sqlite3.connect(settings.database) as db:  # every outlet's link, copies included
        rows = db.execute(
            "SELECT item_sources.url, items.story FROM item_sources JOIN items "
            "ON items.id = item_sources.item_id"
        ).fetchall()
    lines = tmp_path / "chosen.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    offline = {p["id"]: p["story"] for p in placements(cluster(lines))}
    by_url = {canonical_url(r["url"]): r["id"] for r in chosen}
    daemon = {by_url[url]: story for url, story in rows if url in by_url}
    assert len(daemon) == len(chosen)
    together = {(a, b) for a in daemon for b in daemon if a < b and daemon[a] == daemon[b]}
    offline_together = {(a, b) for a in daemon for b in daemon
                        if a < b and offline[a] == offline[b]}  # fmt: skip
    assert together == offline_together
