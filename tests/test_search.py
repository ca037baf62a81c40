"""`monitor search` folds like the rules: a query in one script finds the word written in
another (Вучић = Vučić, Μητσοτάκης = Mitsotakis), `title:` narrows to titles, and a database
made before the folded index existed gets it filled on open. Real SQLite files throughout."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_config
from sqlite_utils import Database

from monitor.models import CycleOutcome, Item
from monitor.searchtext import parse_search, snippet
from monitor.store import Store
from monitor.store.migrations import MIGRATIONS, _drop_unfolded_index

pytestmark = pytest.mark.usefixtures("both_stores")

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


@pytest.fixture
def config(tmp_path, feed_server) -> Path:
    path = write_config(tmp_path, [{"name": "Press", "url": feed_server.url("multilingual.xml")}])
    done = monitor(path, "once")
    assert done.returncode == 0, done.stderr
    return path


def titles(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line.split(": ", 1)[1] for line in result.stdout.splitlines() if "  Press: " in line]


def test_a_cyrillic_query_finds_latin_and_cyrillic_items(config):
    found = titles(monitor(config, "search", "Вучић"))
    assert "Vučić: Beograd neće priznati nezavisnost Kosova" in found
    assert "Вучић разговарао са Мицкоским у Скопљу" in found
    assert len(found) == 2


def test_an_ascii_query_finds_the_cyrillic_item_and_marks_the_original_word(config):
    result = monitor(config, "search", "vucic severne")
    assert titles(result) == ["Вучић разговарао са Мицкоским у Скопљу"]
    assert "[Северне]" in result.stdout  # the snippet is cut from the summary ...
    result = monitor(config, "search", "title:vucic title:mickoskim")
    assert titles(result) == ["Вучић разговарао са Мицкоским у Скопљу"]
    assert "[Вучић]" in result.stdout and "[Мицкоским]" in result.stdout  # ... or the title


def test_greek_queries_fold_to_the_latin_the_press_uses(config):
    assert set(titles(monitor(config, "search", "Μητσοτάκης"))) == {
        "Μητσοτάκης: η Ελλάδα στηρίζει την ευρωπαϊκή πορεία των Δυτικών Βαλκανίων",
        "Mitsotakis meets Albanian prime minister Rama in Athens",
    }
    # ου is "ou": Θεσσαλονίκη is thessaloniki, and a Latin query finds the Greek summary
    assert titles(monitor(config, "search", "thessaloniki")) == [
        "Μητσοτάκης: η Ελλάδα στηρίζει την ευρωπαϊκή πορεία των Δυτικών Βαλκανίων"
    ]


def test_diacritics_prefixes_and_fields(config):
    # Albanian ë folds away: Kosovës is kosoves, and kosov* covers Kosova, Kosovës, Kosovo
    assert titles(monitor(config, "search", "KOSOVES")) == [
        "Kurti: Kosova nuk do të heqë dorë nga reciprociteti"
    ]
    assert len(titles(monitor(config, "search", "kosov*"))) == 3
    # title: keeps only items with the word in the title
    assert set(titles(monitor(config, "search", "title:kosova"))) == {
        "Kurti: Kosova nuk do të heqë dorë nga reciprociteti",
        "Vučić: Beograd neće priznati nezavisnost Kosova",
    }
    assert titles(monitor(config, "search", "title:thessaloniki")) == []
    assert titles(monitor(config, "search", "Україна")) == []  # the title says України
    assert len(titles(monitor(config, "search", "Україн*"))) == 1
    assert titles(monitor(config, "search", "България")) == [
        "Radev: България няма да блокира Северна Македония"
    ]


def test_query_syntax_is_never_read_as_fts_operators() -> None:
    parsed = parse_search('title:"Вучић" NOT kosovo* OR lang:it,sr AND)')
    assert parsed is not None
    assert parsed.match == 'title : "vucic" AND "not" AND "kosovo" * AND "or" AND "and"'
    assert parsed.languages == ("it", "sr")
    assert parse_search("!!! ???") is None
    assert parse_search("lang:it") is None  # a filter alone looks for nothing


def test_snippet_marks_the_original_spelling() -> None:
    parsed = parse_search("vucic")
    assert parsed is not None
    text = "U Beogradu je Vučiću uručena nagrada, a Vučić je zahvalio."
    assert (
        snippet(["", text], parsed)
        == "U Beogradu je Vučiću uručena nagrada, a [Vučić] je zahvalio."
    )


def item(n: int, title: str) -> Item:
    return Item(f"id{n}", "S", f"https://x.example/{n}", "", title, "", "", "", f"fp{n}")


def test_an_older_database_gets_its_folded_index_on_open(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    for step in MIGRATIONS[:3]:  # the schema before the folded index
        step(db)
    db.conn.execute("PRAGMA user_version = 3")
    db["items"].insert({"id": "old", "source": "S", "title": "Вучић у Приштини", "summary": ""})
    db.conn.commit()
    db.conn.close()
    with Store(path) as store:
        assert [r.title for r in store.search("vucic pristini")] == ["Вучић у Приштини"]
        store.save_cycles([(CycleOutcome("S", 200, 1, [item(1, "Đukanović")]), NOW)], NOW)
        assert [r.title for r in store.search("djukanovic")] == ["Đukanović"]
        store.save_cycles([(CycleOutcome("S", 200, 1, [item(1, "Đukanović")]), NOW)], NOW)
        assert len(store.search("djukanovic")) == 1  # stored once, indexed once
        store.conn.execute("DELETE FROM item_sources WHERE item_id = 'id1'")
        store.conn.execute("DELETE FROM items WHERE id = 'id1'")
        assert store.search("djukanovic") == []  # the trigger took it out of the index


def test_a_database_with_the_old_unfolded_index_loses_it_and_its_triggers(tmp_path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    before = MIGRATIONS.index(_drop_unfolded_index)
    for step in MIGRATIONS[:before]:
        step(db)
    db.execute(f"PRAGMA user_version = {before}")
    db["items"].insert({"id": "i1", "source": "wire", "url": "https://w.example/1", "guid": "",
                        "title": "Vučić in Brussels", "summary": "", "content": "",
                        "published": "", "fingerprint": "", "story": "i1",
                        "first_seen": "2022-11-24T08:00:00Z"})  # fmt: skip
    db.conn.commit()
    assert db.execute("SELECT count(*) FROM items_fts").fetchone()[0] == 1
    db.close()
    with Store(path):
        pass
    names = {n for (n,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "items_fts" not in names and "items_ai" not in names
    conn = sqlite3.connect(path)
    with conn:  # deleting an item needs no index that is gone
        conn.execute("DELETE FROM items WHERE id = 'i1'")
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
