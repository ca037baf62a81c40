"""OPML in and out: real exports of Google Reader, Liferea and Tiny Tiny RSS (tests/data/opml,
origin in tests/data/opml/README.md) into [[sources]] blocks and back, hostile XML refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, write_config

from monitor.config import load_settings
from monitor.errors import MonitorError
from monitor.opml import read_opml, source_blocks, write_opml

OPML = DATA / "opml"
REAL = sorted(OPML.glob("*.opml"))


def monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_real_exports_give_their_feeds_with_folders_as_tags() -> None:
    greader = read_opml((OPML / "greader_subscriptions.opml").read_bytes(), "g")
    assert [(f.name, f.tags) for f in greader] == [
        ("Good Math, Bad Math", ()),
        ("Explosm.net, Comics", ("comics", "sub")),
        ("Saturday Morning Breakfast Cereal (updated daily)", ("comics", "sub")),
        ("Android Developers Blog", ("dev",)),
    ]
    liferea = read_opml((OPML / "liferea_subscriptions.opml").read_bytes(), "l")
    assert len(liferea) == 6 and {f.tags for f in liferea} == {("myfeeds",)}
    assert "Gizmag: Personal Computing" in [f.name for f in liferea]  # a line break in text
    ttrss = read_opml((OPML / "ttrss_subscriptions.opml").read_bytes(), "t")
    assert len(ttrss) == 8 and ttrss[0].tags == ("test",)
    assert "Titanic RSS - der endgültige Feed" in [f.name for f in ttrss]


@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_import_write_export_import_keeps_every_feed(path: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    before = config.read_text(encoding="utf-8")
    done = monitor("--config", str(config), "sources", "import", str(path), "--write")
    assert done.returncode == 0, done.stderr
    assert config.read_text(encoding="utf-8").startswith(before.rstrip("\n"))  # loses nothing
    original = read_opml(path.read_bytes(), path.name)
    settings = load_settings(config)
    assert [(s.name, s.url, s.tags) for s in settings.sources] == [
        (f.name, f.url, f.tags) for f in original
    ]
    exported = monitor("--config", str(config), "sources", "export")
    assert exported.returncode == 0 and 'version="2.0"' in exported.stdout
    again = read_opml(exported.stdout.encode(), "exported")
    assert [(f.name, f.url, f.tags) for f in again] == [(f.name, f.url, f.tags) for f in original]
    # a second import finds them all configured already
    twice = monitor("--config", str(config), "sources", "import", str(path))
    assert twice.stdout.strip() == "" and twice.stderr.count("already configured") == len(original)


def test_export_of_the_shipped_config_reads_back(tmp_path: Path) -> None:
    shipped = Path(__file__).parent.parent / "monitor.toml"
    settings = load_settings(shipped)
    feeds = [s for s in settings.sources if s.kind == "feed"]
    text = write_opml(list(settings.sources), "t")
    back = read_opml(text.encode(), "t")
    assert [(f.name, f.url, f.tags) for f in back] == [(s.name, s.url, s.tags) for s in feeds]
    out = tmp_path / "feeds.opml"
    done = monitor("--config", str(shipped), "sources", "export", "-o", str(out))
    assert done.returncode == 0 and read_opml(out.read_bytes(), "o") == back
    assert "page source(s) left out" in done.stderr


def test_categories_names_and_addresses() -> None:
    doc = b"""<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Region"><outline text="BIRN" xmlUrl="https://balkaninsight.com/feed/"
        category="/Balkans/Investigative, think tanks"/></outline>
      <outline text="BIRN" xmlUrl="https://example.org/other.xml"/>
      <outline text="Bad" xmlUrl="javascript:alert(1)"/>
      <outline xmlUrl="https://news.example.net/rss"/>
    </body></opml>"""
    feeds = read_opml(doc, "x")
    assert feeds[0].tags == ("region", "balkans", "investigative", "think-tanks")
    assert feeds[3].name == "news.example.net"
    proposed = source_blocks(feeds, [])
    assert [why for _, why in proposed.skipped] == ["not an http(s) address"]
    assert 'name = "BIRN (2)"' in proposed.blocks[1]  # names stay unique


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;'
         b'&a;&a;&a;&a;&a;&a;&a;">]><opml><body><outline text="&b;" xmlUrl="http://x/"/>'
         b"</body></opml>", "refused"),
        (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
         b'<opml><body><outline text="&e;" xmlUrl="http://x/"/></body></opml>', "refused"),
        (b'<opml version="2.0">\n<body>\n<outline text="a"\n</body></opml>', "x.opml:4:"),
        (b"<rss><channel/></rss>", "not OPML"),
    ],
    ids=["entity-expansion", "external-entity", "malformed", "not-opml"],
)  # fmt: skip
def test_hostile_or_broken_xml_is_one_clear_error(doc: bytes, message: str) -> None:
    with pytest.raises(MonitorError, match=message):
        read_opml(doc, "x.opml")


def test_cli_refuses_an_entity_bomb_and_leaves_the_config_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    before = config.read_text(encoding="utf-8")
    bomb = tmp_path / "bomb.opml"
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 12))
    body = '<opml><body><outline text="&e11;" xmlUrl="http://x/"/></body></opml>'
    bomb.write_text(f'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY e0 "lol">{entities}]>{body}')
    done = monitor("--config", str(config), "sources", "import", str(bomb), "--write")
    assert done.returncode == 1 and f"{bomb}: refused" in done.stderr
    assert config.read_text(encoding="utf-8") == before
