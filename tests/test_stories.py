"""Stories: new items join the open story of a related item or open their own, through a real
poll of loopback feeds into a real database; search shows each result's story."""

from __future__ import annotations

import pytest
from sqlite_utils import Database
from test_dedupe import entry, monitor, rss, run_digest

from monitor.models import Item
from monitor.store import Store
from monitor.store.migrations import MIGRATIONS, _add_entity_counts
from monitor.stories import entity_keys

pytestmark = pytest.mark.usefixtures("both_stores")


def dated(title: str, link: str, guid: str, day: str) -> str:
    return entry(title, link, guid).replace("Thu, 24 Nov 2022", day)


def test_one_event_from_several_outlets_is_one_story(tmp_path, feed_server, smtp_server):
    text, db, _ = run_digest(tmp_path, feed_server, smtp_server, {
        "wire": rss(entry("Gunfire near Mitrovica bridge, KFOR sends troops to Kosovo north",
                          "https://wire.example/1", "w1")),
        "daily": rss(entry("KFOR troops sent to Mitrovica bridge after gunfire in Kosovo",
                           "https://daily.example/2", "d2")),
        "other": rss(entry("Kosovo parliament fails again to elect a speaker",
                           "https://other.example/3", "o3")),
    })  # fmt: skip
    stories = dict(db.execute("SELECT url, story FROM items").fetchall())
    assert stories["https://wire.example/1"] == stories["https://daily.example/2"]
    assert stories["https://other.example/3"] != stories["https://wire.example/1"]
    size = db.execute("SELECT items FROM stories WHERE id = ?", [stories["https://wire.example/1"]])
    assert size.fetchone()[0] == 2
    # the received digest lists the event once, with both outlets, and counts stories
    assert "2 new stories" in text and text.count("\n* ") == 2
    assert "2 outlets" in " ".join(text.split())
    found = monitor(tmp_path / "monitor.toml", "search", "mitrovica gunfire")
    assert "story: Gunfire near Mitrovica bridge" in found.stdout
    assert "(2 items)" in found.stdout


def test_two_incidents_in_one_town_a_week_apart_are_two_stories(tmp_path, feed_server,
                                                               smtp_server):  # fmt: skip
    _, db, _ = run_digest(tmp_path, feed_server, smtp_server, {
        "wire": rss(dated("Explosion damages police station in Zvečan, Kosovo",
                          "https://wire.example/1", "w1", "Mon, 14 Nov 2022"),
                    dated("Explosion damages municipal building in Zvečan, Kosovo",
                          "https://wire.example/2", "w2", "Mon, 21 Nov 2022")),
    })  # fmt: skip
    assert db.execute("SELECT count(DISTINCT story) FROM items").fetchone()[0] == 2


def test_items_of_the_previous_schema_become_one_item_stories(tmp_path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    for step in MIGRATIONS[:4]:
        step(db)
    db.execute("PRAGMA user_version = 4")
    for n in (1, 2):
        db["items"].insert({"id": f"i{n}", "source": "wire", "url": f"https://w.example/{n}",
                            "guid": "", "title": f"Old story {n}", "summary": "", "content": "",
                            "published": "", "fingerprint": "",
                            "first_seen": "2022-11-24T08:00:00Z"})  # fmt: skip
    db.conn.commit()
    db.close()
    with Store(path):
        pass
    rows = Database(path).execute("SELECT id, story FROM items ORDER BY id").fetchall()
    assert rows == [("i1", "i1"), ("i2", "i2")]
    titles = Database(path).execute("SELECT title, items FROM stories ORDER BY id").fetchall()
    assert titles == [("Old story 1", 1), ("Old story 2", 1)]


def test_items_stored_before_names_were_keys_get_their_names(tmp_path) -> None:
    """A database made before stories weighed what items name: its items get their name keys
    and counts, so a new report can still join a story opened before the upgrade."""
    path = tmp_path / "old.db"
    db = Database(path)
    before = MIGRATIONS.index(_add_entity_counts)
    for step in MIGRATIONS[:before]:
        step(db)
    db.execute(f"PRAGMA user_version = {before}")
    for n, title in (
        (1, "Lavrov arrives in Belgrade for talks with Vučić"),
        (2, "Vučić receives Lavrov: Serbia will not impose sanctions"),
    ):
        db["items"].insert({"id": f"i{n}", "source": f"s{n}", "url": f"https://w.example/{n}",
                            "guid": "", "title": title, "summary": "", "content": "",
                            "published": "", "fingerprint": "", "story": f"i{n}",
                            "first_seen": "2022-11-24T08:00:00Z"})  # fmt: skip
    db["hits"].insert({"item_id": "i1", "rule": "r", "priority": "normal",
                       "actors": '["vucic"]', "evidence": "[]",
                       "created_at": "2022-11-24T08:00:00Z"})  # fmt: skip
    db.conn.commit()
    db.close()
    with Store(path):
        pass
    db = Database(path)
    counts = dict(db.execute("SELECT key, items FROM entity_counts").fetchall())
    assert counts["e:lavr"] == 2 and counts["e:vuci"] == 2 and counts["e:@vucic"] == 1
    keys = {k for (k,) in db.execute("SELECT key FROM item_keys WHERE item_id = 'i1'")}
    assert {"e:lavr", "e:belg", "e:vuci", "e:@vucic"} <= keys


def named(title: str, summary: str = "") -> set[str]:
    item = Item("i", "s", "", "", title, summary, "", "", "")
    return {k[2:] for k in entity_keys(item)}


def test_what_an_item_names_reads_across_scripts_and_case_endings() -> None:
    assert {"zvec", "kfor"} <= named("Incident u Zvečanu: sukob građana i pripadnika Kfora")
    assert {"zvec", "kfor"} <= named("Звечан: Кфор бацао сузавац на окупљене")
    assert {"zvec", "kfor"} <= named("KFOR: nëntë ushtarë të plagosur në Zveçan")
    # a Title Case headline names only what it writes in capitals
    assert named("Peacekeepers Hurt as Serbs Clash With NATO Troops") == {"nato"}
    # an opening word is a name only when the item says so elsewhere, or ends it in a colon
    assert "inci" not in named("Incident in Zvecan", "Police said the Zvecan office was hit.")
    assert "vuci" in named("Vučić: Kurti is to blame", "Serbia's president spoke in Belgrade.")
    assert {"ch92a", "#92"} & named("Serbia gets more CH-92A drones") == {"ch92a"}
    assert "tues" not in named("Talks end", "Negotiators met on Tuesday in Brussels.")
