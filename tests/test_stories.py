"""Stories: new items join the open story of a related item or open their own, through a real
poll of loopback feeds into a real database; search shows each result's story."""

from __future__ import annotations

from sqlite_utils import Database
from test_dedupe import entry, monitor, rss, run_digest

from monitor.store import Store
from monitor.store.migrations import MIGRATIONS


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
