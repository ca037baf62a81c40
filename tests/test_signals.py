"""What changed: surges against each series' own baseline, breaking stories, firsts; cold
start; `monitor trends` from the database and from a JSONL replay; the "What changed" block
of digests and urgent alerts for signals, read back from a real SMTP server; and the
detectors measured on timelines with known events."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_config
from mailtools import parts
from scipy import stats
from services import database_of

from monitor.alerts import queue_alert
from monitor.cli import main
from monitor.config import describe_error, load_settings
from monitor.deliver import deliver_pending, deliverer_for, send_digests
from monitor.errors import ConfigError
from monitor.match import Engine
from monitor.models import Item
from monitor.rules import load_rules
from monitor.settings import SignalSettings
from monitor.signals import tail
from monitor.store import Store
from monitor.trends import Timed, read_timeline, replay, replay_into, score

pytestmark = pytest.mark.usefixtures("both_stores")

DATA = Path(__file__).parent / "data"
PACK = Path(__file__).resolve().parent.parent / "rules"
RULESET = load_rules(PACK)
ENGINE = Engine(RULESET)
START = datetime(2026, 9, 1, tzinfo=UTC)
# Made-up words, so that two stories about one actor share no more than the actor's name
WORDS = [a + b + c for a in ("ba", "ko", "mi", "tu", "ze") for b in ("ra", "li", "no", "vu")
         for c in ("sk", "nt", "rd", "mp", "lt")]  # fmt: skip


@pytest.mark.parametrize("dispersion", [1.0, 1.5, 4.0])
@pytest.mark.parametrize(("count", "mean"), [(1, 0.3), (5, 1.0), (14, 2.1), (40, 9.8), (3, 5.0)])
def test_tail_is_the_negative_binomial_survival_function(count, mean, dispersion):
    if dispersion == 1.0:
        expected = stats.poisson.sf(count - 1, mean)
    else:
        expected = stats.nbinom.sf(count - 1, mean / (dispersion - 1), 1 / dispersion)
    assert tail(count, mean, dispersion) == pytest.approx(expected, rel=1e-6, abs=1e-15)


class Builder:
    """A timeline of items, written as a replay reads them."""

    def __init__(self, seed: int = 1) -> None:
        self.rng, self.items, self.n = random.Random(seed), [], 0

    def story(self, title: str, at: datetime, outlets: int = 1, spread: float = 2.0) -> None:
        self.n += 1
        words = " ".join(self.rng.sample(WORDS, 7))
        for k in range(outlets):
            when = at + timedelta(hours=0 if k == 0 else self.rng.uniform(0, spread))
            self.items.append({"id": f"i{self.n}-{k}", "title": f"{title} {words}",
                               "summary": f"{title} {words}.", "source": f"outlet-{k}",
                               "published": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "url": f"https://o{k}.example/{self.n}"})  # fmt: skip

    def background(self, days: int, per_day: dict[str, int]) -> None:
        for day in range(days):
            for title, count in per_day.items():
                for _ in range(count):
                    hour = self.rng.uniform(6, 22)
                    self.story(title, START + timedelta(days=day, hours=hour))

    def write(self, path: Path) -> Path:
        self.items.sort(key=lambda i: i["published"])
        path.write_text("".join(json.dumps(i) + "\n" for i in self.items), encoding="utf-8")
        return path

    def timeline(self) -> list[Timed]:
        items = sorted(self.items, key=lambda i: i["published"])
        return read_timeline(iter(json.dumps(i) for i in items), "built")


def kfor_surge(days: int = 20) -> Builder:
    """Daily KFOR and Dodik stories, then KFOR troop movements in 8 distinct stories."""
    timeline = Builder()
    timeline.background(days, {"KFOR": 2, "Dodik": 2})
    for n in range(8):
        at = START + timedelta(days=days, hours=8 + n / 3)
        timeline.story("KFOR troops reinforce patrols", at)
    return timeline


def test_a_surge_of_distinct_stories_is_raised_with_its_numbers():
    signals = replay(kfor_surge().timeline(), ENGINE, SignalSettings())
    [surge] = [s for s in signals if s.kind == "surge" and s.actors == ("kfor",)]
    assert surge.count >= 4 and surge.baseline < 3 and surge.p < 0.001
    assert surge.at < START + timedelta(days=20, hours=11)  # while it happens
    assert not [s for s in signals if s.kind == "surge" and "dodik" in s.actors]


def test_one_story_in_many_outlets_is_breaking_not_a_surge():
    timeline = Builder()
    timeline.background(20, {"KFOR": 2, "Dodik": 2})
    for day in range(20):  # stories usually gain an outlet or two
        timeline.story("Dodik", START + timedelta(days=day, hours=12), outlets=2)
    timeline.story("Dodik secession", START + timedelta(days=20, hours=9), outlets=14, spread=3)
    signals = replay(timeline.timeline(), ENGINE, SignalSettings())
    assert not [s for s in signals if s.kind == "surge" and "dodik" in s.actors]
    [breaking] = [s for s in signals if s.kind == "breaking"]
    assert breaking.actors == ("dodik",) and breaking.count >= 4


def test_cold_start_raises_nothing_until_there_is_history():
    signals = replay(kfor_surge(days=10).timeline(), ENGINE, SignalSettings())
    assert signals == []  # 10 days < min_history: no surge, no first
    settings = SignalSettings(min_history=5 * 86400)
    assert [s.kind for s in replay(kfor_surge(days=10).timeline(), ENGINE, settings)
            if s.actors == ("kfor",)] == ["surge"]  # fmt: skip


def test_first_mention_and_first_pair():
    timeline = Builder()
    timeline.background(20, {"KFOR": 2, "Dodik": 2})
    timeline.story("Wagner Group recruiters seen with Dodik", START + timedelta(days=20, hours=9))
    signals = replay(timeline.timeline(), ENGINE, SignalSettings())
    kinds = {(s.kind, s.actors) for s in signals}
    assert ("first-mention", ("wagner",)) in kinds
    assert ("first-pair", ("dodik", "wagner")) in kinds
    assert ("first-mention", ("dodik",)) not in kinds  # seen every day


@pytest.fixture(scope="module")
def measured() -> dict[str, object]:
    """The dev and holdout timelines replayed once (tests/data/signals_*; README figures)."""
    results = {}
    for name in ("dev", "holdout"):
        with (DATA / f"signals_{name}.jsonl").open(encoding="utf-8") as stream:
            timeline = read_timeline(stream, name)
        events = json.loads((DATA / f"signals_{name}_events.json").read_text(encoding="utf-8"))
        results[name] = score(replay(timeline, ENGINE, SignalSettings()), events, 60 / 7)
    return results


@pytest.mark.parametrize(("name", "found", "false_per_week"), [("dev", 7, 0.25),
                                                                ("holdout", 7, 0.5)])  # fmt: skip
def test_known_events_are_found_with_few_false_alarms(measured, name, found, false_per_week):
    result = measured[name]
    assert result.found >= found, result.missed
    assert result.false_per_week <= false_per_week, result.false_alarms
    assert sorted(result.delays)[len(result.delays) // 2] <= 6.0  # median hours to detection


def test_trends_replays_a_jsonl_as_the_issue_specifies(tmp_path):
    path = kfor_surge().write(tmp_path / "items.jsonl")
    result = CliRunner().invoke(main, ["trends", "--rules", str(PACK), "--json",
                                       "--from-jsonl", str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines and all(set(line) == {"kind", "actors", "rule", "story", "at", "count",
                                       "baseline"} for line in lines)  # fmt: skip
    surge = next(line for line in lines if line["kind"] == "surge" and line["actors"] == ["kfor"])
    assert surge["at"].startswith("2026-09-21T") and surge["rule"] is None
    assert isinstance(surge["story"], str) and surge["count"] >= 4
    text = CliRunner().invoke(main, ["trends", "--rules", str(PACK), "--from-jsonl", str(path)])
    assert "KFOR: " in text.output and "stories in" in text.output and "a day over" in text.output


def test_trends_names_the_line_it_cannot_replay(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "title": "KFOR", "published": "2026-09-01T08:00:00Z"}\n'
                    '{"id": 2, "title": "KFOR", "published": "yesterday"}\n')  # fmt: skip
    result = CliRunner().invoke(main, ["trends", "--rules", str(PACK), "--from-jsonl", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: 'published' must be an ISO 8601 time" in result.output


ALERTING = """
[[digests]]
name = "daily"
title = "Balkans watch"
to = ["analyst@example.org"]
backfill = "60d"

[alerts]
to = ["desk@example.org"]
batch = "0s"
max_per_hour = 1
"""


def surged_store(tmp_path: Path, smtp) -> tuple:  # type: ignore[no-untyped-def]
    settings = load_settings(write_config(tmp_path, [], smtp=smtp, digest=ALERTING, rules=PACK))
    store = Store(settings.database)
    replay_into(store, kfor_surge().timeline(), ENGINE, settings.signals)
    return settings, store


def test_digest_opens_with_what_changed(tmp_path, smtp_server):
    settings, store = surged_store(tmp_path, smtp_server)
    now = START + timedelta(days=21)
    send_digests(settings, store, RULESET, now=now)
    [message] = smtp_server.inbox.messages()
    text, html = parts(message)
    block = text.split("WHAT CHANGED", 1)[1].split("\n\n", 1)[0]
    assert "KFOR: " in block and "stories in" in block and "a day over 20 days" in block
    assert text.index("WHAT CHANGED") < text.index("Actors: ")  # before the overview
    assert html.index("What changed") < html.index("Actors: ") and "KFOR: " in html


def test_urgent_signals_are_alerted_once_under_the_hourly_cap(tmp_path, smtp_server):
    settings, store = surged_store(tmp_path, smtp_server)
    now = START + timedelta(days=20, hours=12)
    queue_alert(settings, store, RULESET, now)  # the urgent hits take the hour's one alert
    deliver_pending(store, deliverer_for(settings), now)
    assert len(smtp_server.inbox.messages()) == 1
    later = now + timedelta(hours=1, minutes=1)
    queue_alert(settings, store, RULESET, later)  # now the surge of an urgent rule's story
    deliver_pending(store, deliverer_for(settings), later)
    first, second = smtp_server.inbox.messages()
    assert "signal" not in first["Subject"] and "KFOR: " in second["Subject"]
    text, _ = parts(second)
    assert "KFOR: " in text and "stories in" in text
    queue_alert(settings, store, RULESET, later + timedelta(hours=2))
    deliver_pending(store, deliverer_for(settings), later + timedelta(hours=2))
    assert len(smtp_server.inbox.messages()) == 2  # claimed: never alerted twice


def test_signals_from_the_database_by_actor(tmp_path, smtp_server):
    settings, store = surged_store(tmp_path, smtp_server)
    store.close()
    runner = CliRunner()
    args = ["--config", str(settings.path), "trends", "--since", "3650d"]
    kfor = runner.invoke(main, [*args, "--actor", "kfor", "--json"])
    assert kfor.exit_code == 0, kfor.output
    assert {json.loads(line)["kind"] for line in kfor.output.splitlines()} == {"surge"}
    assert "no surges" in runner.invoke(main, [*args, "--actor", "dodik"]).output


def test_the_service_stage_takes_in_only_what_is_new(tmp_path, smtp_server):
    settings, store = surged_store(tmp_path, smtp_server)
    from monitor.signals import run_signals

    before = len(store.signals())
    assert run_signals(store, settings.signals) == []  # nothing new since the replay
    item = Item("late", "outlet-1", "https://o1.example/late", "", "Dodik harbour", "", "",
                "", "late")  # fmt: skip
    hits = [("late", h) for h in ENGINE.match(item)]
    from monitor.models import CycleOutcome

    moment = START + timedelta(days=21)
    store.save_cycles([(CycleOutcome("outlet-1", 200, 1, [item], hits), moment)], moment)
    run_signals(store, replace(settings.signals))
    assert store.signal_progress()[0] == store.conn.execute(
        "SELECT max(rowid) FROM items").fetchone()[0]  # fmt: skip
    assert len(store.signals()) >= before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[signals]\nthreshold = 2\n", ":2: signals.threshold: expected a probability"),
        ("[signals]\nmin_stories = 0\n", ":2: signals.min_stories: expected a whole number"),
        ('[signals]\nmin_history = "soon"\n', ":2: signals.min_history: expected a duration"),
        ("[signals]\nthreshhold = 0.01\n", ":2: signals.threshhold: unknown setting"),
    ],
)
def test_bad_signal_settings_name_file_line_and_key(tmp_path, text, message):
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert describe_error(path, caught.value).startswith(f"{path}{message}")


def test_signal_settings_are_read(tmp_path):
    path = tmp_path / "monitor.toml"
    path.write_text('[signals]\nthreshold = 0.01\nmin_history = "3d"\nfirst_days = 30\n'
                    "alerts = false\n", encoding="utf-8")  # fmt: skip
    signals = load_settings(path).signals
    assert (signals.threshold, signals.min_history, signals.first_days) == (0.01, 3 * 86400, 30)
    assert signals.alerts is False and signals.baseline_days == 28


def test_a_stored_history_is_taken_in_over_several_runs_oldest_first(tmp_path):
    """An upgraded database: items stored before the detectors existed are taken in a
    bounded number per run, each once, and nothing raised twice."""
    from monitor.signals import Detector

    with Store(tmp_path / "old.db") as store:
        timeline = kfor_surge().timeline()
        for entry in timeline:  # stored as the cycle would, with no detector running
            store.save_cycles([(outcome_of(store, entry), entry.at)], entry.at)
        detector, raised, progress = Detector(store, SignalSettings(), max_events=100), [], None
        runs = 0
        while runs < 1000 and store.signal_progress() != progress:  # until one takes nothing
            progress = store.signal_progress()
            raised += detector.run()
            runs += 1
        assert runs > len(timeline) // 100
        everything = replay(timeline, ENGINE, SignalSettings())
        assert sorted((s.kind, s.series, s.at) for s in raised) == sorted(
            (s.kind, s.series, s.at) for s in everything
        )


def outcome_of(store: Store, entry: Timed):  # type: ignore[no-untyped-def]
    from monitor.trends import _outcome

    return _outcome(store, ENGINE, entry)


def test_a_service_tick_stores_then_runs_the_detectors(tmp_path, feed_server):
    from conftest import Response

    from monitor.scheduler import Daemon

    items = "".join(
        f"<item><title>Dodik story {n}</title><link>https://w.example/{n}</link><guid>w-{n}</guid>"
        f"<description>Russia supplied weapons to Serbia, report {n} says.</description></item>"
        for n in range(3)
    )
    channel = "<title>W</title><link>https://w.example/</link><description>d</description>"
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel>{channel}{items}</channel></rss>'
    feed_server.routes["/w.xml"] = Response(200, feed.encode(), {"Content-Type": "application/xml"})
    config = write_config(tmp_path, [{"name": "Wire", "url": feed_server.url("w.xml")}], rules=PACK)
    Daemon(load_settings(config)).tick()
    with Store(database_of(tmp_path)) as store:
        stored = store.conn.execute("SELECT count(*), max(rowid) FROM items").fetchone()
        assert stored[0] == 3
        assert store.signal_progress()[0] == stored[1]  # the tick took them in
        marks = store.conn.execute("SELECT count(*) FROM story_marks WHERE series = 'actor:dodik'")
        assert marks.fetchone()[0] >= 1
        assert store.conn.execute("SELECT count(*) FROM relations").fetchone()[0] == 3
