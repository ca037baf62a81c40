"""Helpers for the digest, delivery and alert tests: stories stored through the real store and
matched by the real engine, settings from a real monitor.toml, received mail parsed."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from conftest import TEST_RULES, SmtpServer, write_config

from monitor.config import load_settings
from monitor.match import Engine
from monitor.models import CycleOutcome, Item, Source
from monitor.pipeline import sync_config
from monitor.rules import load_rules
from monitor.settings import Settings
from monitor.store import Store

T0 = datetime(2022, 11, 24, 9, 0, tzinfo=UTC)
RULES = load_rules(TEST_RULES)
ENGINE = Engine(RULES)


def settings_for(
    folder: Path, smtp: SmtpServer | None = None, extra: str = "", sources: list | None = None
) -> Settings:
    """Settings from a monitor.toml; `extra` is TOML for [[digests]] and [alerts]. Its
    digests count as configured since the day before T0, as if a service had been running."""
    settings = load_settings(write_config(folder, sources or [], smtp=smtp, digest=extra))
    with Store(settings.database) as store:
        sync_config(settings, store, T0 - timedelta(days=1))
    return settings


def add_story(
    store: Store,
    title: str,
    summary: str,
    *,
    source: str = "Wire",
    url: str = "",
    published: str = "2022-11-24T07:00:00Z",
    also: tuple[tuple[str, str], ...] = (),
    now: datetime = T0,
    story: str = "",
    tags: tuple[str, ...] = (),
    lang: str = "",
) -> str:
    """Store one story as the pipeline would (matched by the test rules); `also` names other
    sources that carried it, as (source, url); `story` is the id of a story it joins, `tags`
    the tags of its source. Returns the item id."""
    item_id = hashlib.sha1(f"{source}|{title}".encode()).hexdigest()[:16]
    url = url or f"https://news.example/{item_id}"
    item = Item(item_id, source, url, "", title, summary, "", published, item_id, lang)
    hits = [(item_id, h) for h in ENGINE.match(item)]
    assert hits, f"test story matched no rule: {title}"
    names = [source, *(name for name, _ in also)]
    store.sync_sources(
        [Source(n, f"https://{n.lower().replace(' ', '-')}.example/feed",
                tags=tags if n == source else ()) for n in names]
    )  # fmt: skip
    next_check = now + timedelta(minutes=30)
    joins = [(item_id, story)] if story else []
    saves = [(CycleOutcome(source, 200, 1, [item], hits, stories=joins), next_check)]
    for name, other_url in also:
        dup = Item(item_id + name, name, other_url, "", title, summary, "", published, "")
        saves.append((CycleOutcome(name, 200, 1, also_seen=[(item_id, dup)]), next_check))
    store.save_cycles(saves, now)
    return item_id


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) of a received multipart/alternative message, with \\n line ends."""
    return (
        message.get_body(("plain",)).get_content().replace("\r\n", "\n"),
        message.get_body(("html",)).get_content().replace("\r\n", "\n"),
    )


class Tags(HTMLParser):
    """Every start tag with its attributes, to check what the HTML part may hold."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for t, a in self.tags if t == "a" and "href" in a]

    def names(self) -> set[str]:
        return {t for t, _ in self.tags}


def headings(text: str) -> list[str]:
    """Section headings of the plain-text part (the lines underlined with dashes)."""
    lines = text.splitlines()
    return [lines[i - 1] for i, line in enumerate(lines) if i and re.fullmatch(r"-{3,}", line)]
