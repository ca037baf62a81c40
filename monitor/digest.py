"""Hits into digest messages: select a digest's undelivered hits, group them, render HTML and
plain text with Jinja2, and record the message (claiming its hits) before it is sent."""

from __future__ import annotations

import fnmatch
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.config import DigestSettings, Settings
from monitor.rules import RuleSet
from monitor.store import Store, utcnow

log = logging.getLogger(__name__)
SNIPPET_CHARS = 320
PRIORITY_ORDER = {"urgent": 0, "normal": 1, "low": 2}

_env = Environment(
    loader=PackageLoader("monitor", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Entry:
    """One story in a digest, with every rule that matched it."""

    title: str
    url: str
    sources: list[str]
    published: str
    snippet: list[tuple[str, bool]]  # (text, highlighted)
    rules: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict, repr=False)

    def add(self, row: dict[str, Any], rule_title: str) -> None:
        """Another rule matched the same story: list it and highlight its terms too."""
        self.rules.append(rule_title)
        self.actors += [a for a in row["actors"] if a not in self.actors]
        self.evidence += row["evidence"]
        self.terms = sorted({e["text"] for e in self.evidence}, key=str.lower)
        self.snippet = snippet(self.row, self.evidence)


@dataclass
class Section:
    rule: str
    title: str
    priority: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def heading(self) -> str:
        urgent = "[URGENT] " if self.priority == "urgent" else ""
        return f"{urgent}{self.title} ({len(self.entries)})"


@dataclass
class Digest:
    settings: DigestSettings
    subject: str
    sections: list[Section]
    hit_ids: list[int]
    failed_sources: list[dict[str, Any]]
    counts_by_rule: list[tuple[str, int]]
    counts_by_actor: list[tuple[str, int]]
    created: datetime

    @property
    def empty(self) -> bool:
        return not self.hit_ids


@dataclass(frozen=True)
class BuiltMessage:
    digest: Digest
    message_id: str
    message: EmailMessage
    text: str
    html: str


def selects(digest: DigestSettings, rule_id: str, ruleset: RuleSet | None) -> bool:
    """Whether a digest covers a rule: by id or glob, or by one of the rule's tags."""
    if any(fnmatch.fnmatchcase(rule_id, pattern) for pattern in digest.rules):
        return True
    if digest.tags and ruleset is not None:
        try:
            tags = ruleset.rule(rule_id).tags
        except KeyError:
            return False
        return bool(set(tags) & set(digest.tags))
    return False


def collect(
    store: Store, digest: DigestSettings, ruleset: RuleSet | None, now: datetime | None = None
) -> Digest:
    """The digest as it would go out now: its hits not yet sent in a digest of this name."""
    now = now or utcnow()
    rows = [r for r in store.undelivered_hits(digest.name) if selects(digest, r["rule"], ruleset)]
    sections = _sections(rows, ruleset, ZoneInfo(digest.timezone))
    urgent = sum(1 for r in rows if r["priority"] == "urgent")
    stories = len({r["item_id"] for r in rows})
    title = digest.title or digest.name
    local = now.astimezone(ZoneInfo(digest.timezone))
    subject = f"{title} — {stories} new {'story' if stories == 1 else 'stories'}"
    if urgent:
        subject += f", {urgent} urgent"
    subject += f" — {local.day} {local:%b}"
    actor_names = {a.id: a.name for a in ruleset.actors.values()} if ruleset else {}
    return Digest(
        settings=digest,
        subject=subject,
        sections=sections,
        hit_ids=[r["hit_id"] for r in rows],
        failed_sources=store.failed_sources_since(store.last_digest_time(digest.name)),
        counts_by_rule=Counter(_rule_title(r["rule"], ruleset) for r in rows).most_common(),
        counts_by_actor=Counter(
            actor_names.get(a, a) for r in rows for a in r["actors"]
        ).most_common(),
        created=now,
    )


def _rule_title(rule_id: str, ruleset: RuleSet | None) -> str:
    if ruleset is None:
        return rule_id
    try:
        return ruleset.rule(rule_id).title
    except KeyError:
        return rule_id


def _sections(rows: list[dict[str, Any]], ruleset: RuleSet | None, tz: ZoneInfo) -> list[Section]:
    """Urgent rules first; each story once, under the most urgent rule it matched, listing
    every rule, actor and term that matched it."""
    rows = sorted(rows, key=lambda r: (PRIORITY_ORDER.get(r["priority"], 9), r["rule"]))
    sections: dict[str, Section] = {}
    entries: dict[str, Entry] = {}
    for row in rows:
        title = _rule_title(row["rule"], ruleset)
        if row["item_id"] in entries:
            entries[row["item_id"]].add(row, title)
            continue
        section = sections.setdefault(row["rule"], Section(row["rule"], title, row["priority"]))
        entry = _entry(row, tz, title)
        entries[row["item_id"]] = entry
        section.entries.append(entry)
    return sorted(sections.values(), key=lambda s: (PRIORITY_ORDER.get(s.priority, 9), s.title))


def _entry(row: dict[str, Any], tz: ZoneInfo, rule_title: str) -> Entry:
    evidence = row["evidence"]
    published = ""
    if row["published"]:
        moment = datetime.fromisoformat(row["published"].replace("Z", "+00:00"))
        published = moment.astimezone(tz).strftime("%d %b %Y %H:%M %Z")
    return Entry(
        title=row["title"] or row["url"] or "(untitled)",
        url=row["url"] if _is_web(row["url"]) else "",
        sources=row["sources"],
        published=published,
        snippet=snippet(row, evidence),
        rules=[rule_title],
        actors=list(row["actors"]),
        terms=sorted({e["text"] for e in evidence}, key=str.lower),
        evidence=list(evidence),
        row=row,
    )


def _is_web(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in {"http", "https"}


def snippet(row: dict[str, Any], evidence: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """A window of the item's text around its first match, as (text, highlighted) pieces."""
    field_name = next(
        (f for f in ("summary", "content") if any(e["field"] == f for e in evidence)), None
    )
    if field_name is None:
        field_name = "summary" if row["summary"] else "content"
    text = row[field_name] or ""
    marks = sorted((e["start"], e["end"]) for e in evidence if e["field"] == field_name)
    start = max(0, marks[0][0] - 80) if marks else 0
    end = min(len(text), start + SNIPPET_CHARS)
    if start > 0:
        start = text.find(" ", start) + 1 or start
    pieces: list[tuple[str, bool]] = [("… ", False)] if start > 0 else []
    cursor = start
    for m_start, m_end in marks:
        if m_start < cursor or m_end > end:
            continue
        pieces += [(text[cursor:m_start], False), (text[m_start:m_end], True)]
        cursor = m_end
    pieces.append((text[cursor:end], False))
    if end < len(text):
        pieces.append((" …", False))
    return [p for p in pieces if p[0]]


def render(digest: Digest, sender: str, recipients: list[str]) -> BuiltMessage:
    context = {"digest": digest, "settings": digest.settings}
    text = _env.get_template("digest.txt").render(**context)
    html = _env.get_template("digest.html").render(**context)
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients) or "undisclosed-recipients:;"
    message["Date"] = format_datetime(digest.created)
    domain = sender.rpartition("@")[2].strip("> ") or "news-monitor.local"
    message_id = make_msgid(idstring=digest.settings.name, domain=domain)
    message["Message-ID"] = message_id
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return BuiltMessage(digest, message_id, message, text, html)


def sender_of(settings: Settings) -> str:
    return settings.smtp.sender if settings.smtp else "News Monitor <monitor@localhost>"


def prepare(
    settings: Settings,
    store: Store,
    ruleset: RuleSet | None,
    names: list[str] | None = None,
    now: datetime | None = None,
) -> list[BuiltMessage]:
    """Build every configured digest (or those named) that has something to send."""
    built = []
    for config in settings.digests:
        if names and config.name not in names:
            continue
        digest = collect(store, config, ruleset, now)
        if digest.empty and not config.send_empty:
            log.info("digest %s: nothing new, not sent", config.name)
            continue
        built.append(render(digest, sender_of(settings), list(config.to)))
    return built


def record(store: Store, built: BuiltMessage) -> int:
    """Record a built digest and claim its hits; delivery happens after this commits."""
    digest = built.digest
    return store.record_digest(
        name=digest.settings.name,
        subject=digest.subject,
        message_id=built.message_id,
        recipients=list(digest.settings.to),
        message=built.message.as_bytes(policy=policy.SMTP),  # CRLF line ends, as SMTP wants
        hit_ids=digest.hit_ids,
        now=digest.created,
    )
