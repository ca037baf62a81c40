"""Hits into digest messages: select a digest's undelivered hits, group them, render HTML and
plain text with Jinja2, and record the message (claiming its hits) before it is sent.

Everything that came from a feed is untrusted: the HTML template autoescapes it, and links
are kept only when they are http(s)."""

from __future__ import annotations

import fnmatch
import logging
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.clock import from_iso, iso, utcnow
from monitor.config import DigestSettings, Settings
from monitor.lang import expand
from monitor.mailheaders import POLICY, header_text, serialise
from monitor.models import Evidence, SourceStatus, StoredHit
from monitor.rules import RuleSet
from monitor.signals import what_changed
from monitor.store import AlreadyClaimed, Store

log = logging.getLogger(__name__)
SNIPPET_CHARS = 320
PRIORITY_ORDER = {"urgent": 0, "normal": 1, "low": 2}
NO_ACTOR = "Other stories"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_MSGID_RE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")

_env = Environment(
    loader=PackageLoader("monitor", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

Pieces = list[tuple[str, bool]]  # (text, highlighted)
TEXT_WIDTH = 76  # plain-text lines, for terminal mail clients


def _wrap(text: str, indent: str = "  ") -> str:
    """Plain-text paragraphs wrapped for a terminal, every line indented."""
    return textwrap.fill(
        text,
        TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


_env.filters["wrap"] = _wrap
_env.filters["iso"] = lambda moment: iso(moment) if moment else ""
_env.filters["day"] = lambda moment: f"{moment:%Y-%m-%d}" if moment else ""


@dataclass
class Entry:
    """One story in a digest, with every rule, actor and source that goes with it."""

    title: str
    url: str
    sources: list[str]
    published: str
    snippet: Pieces
    rules: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    priority: str = "normal"
    source_links: list[tuple[str, str]] = field(default_factory=list)  # (name, web URL or "")
    lang: str = ""  # the item's detected language, shown beside its date
    actor_ids: list[str] = field(default_factory=list)
    hit: StoredHit | None = field(default=None, repr=False)  # the hit it was listed for

    @property
    def urgent(self) -> bool:
        return self.priority == "urgent"

    def add(self, hit: StoredHit, rule_title: str, actor_names: dict[str, str]) -> None:
        """Another rule matched the same story: list it, and its terms for highlighting."""
        if rule_title not in self.rules:
            self.rules.append(rule_title)
        self.actor_ids += [a for a in hit.actors if a not in self.actor_ids]
        names = [actor_names.get(a, a) for a in hit.actors]
        self.actors += [a for a in names if a not in self.actors]
        self.evidence += hit.evidence
        self.terms = _terms(self.evidence)
        if _rank(hit.priority) < _rank(self.priority):
            self.priority = hit.priority


@dataclass
class Section:
    key: str  # rule id, actor id, "urgent" or "" (stories with no actor)
    title: str
    priority: str
    entries: list[Entry] = field(default_factory=list)
    omitted: int = 0  # stories over the message's limit: counted here, not listed

    @property
    def heading(self) -> str:
        urgent = "[URGENT] " if self.priority == "urgent" else ""
        return f"{urgent}{self.title} ({len(self.entries) + self.omitted})"


@dataclass
class Digest:
    settings: DigestSettings
    subject: str
    sections: list[Section]
    hit_ids: list[int]
    failed_sources: list[SourceStatus]
    counts_by_rule: list[tuple[str, int]]
    counts_by_actor: list[tuple[str, int]]
    created: datetime
    stories: int = 0
    urgent: int = 0
    kind: str = "digest"  # digest | alert
    omitted: int = 0
    changes: list[str] = field(default_factory=list)  # "What changed" (signals.py)

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


def speaks(digest: DigestSettings, lang: str) -> bool:
    """Whether a digest keeps items in this language. An item whose language could not be
    told is kept: a headline too short to detect is no reason to lose a story."""
    return not digest.languages or not lang or lang in expand(digest.languages)


def collect(
    store: Store,
    digest: DigestSettings,
    ruleset: RuleSet | None,
    now: datetime | None = None,
    *,
    source_names: set[str] | None = None,
    hits: list[StoredHit] | None = None,
    kind: str = "digest",
    since: datetime | None = None,
) -> Digest:
    """The digest as it would go out now: its hits not yet sent in a digest of this name
    (or the `hits` given; with `since`, only hits stored from then on), and the configured
    sources that are failing."""
    now = now or utcnow()
    if hits is None:
        hits = store.undelivered_hits(digest.name, since)
    rows = [h for h in hits if selects(digest, h.rule, ruleset) and speaks(digest, h.lang)]
    actor_names = {a.id: a.name for a in ruleset.actors.values()} if ruleset else {}
    sections = _sections(rows, ruleset, ZoneInfo(digest.timezone), actor_names, digest.group_by)
    entries = [e for s in sections for e in s.entries]
    stories, urgent = len(entries), sum(1 for e in entries if e.urgent)
    omitted = _limit(sections, digest.max_stories)
    for section in sections:  # snippets only for the stories listed: floods stay cheap
        for entry in section.entries:
            if entry.hit is not None:
                entry.snippet = snippet(entry.hit, entry.evidence)
    failing = [s for s in store.failing_sources() if source_names is None or s.name in source_names]
    result = Digest(
        settings=digest,
        subject="",
        sections=sections,
        hit_ids=[r.hit_id for r in rows],
        failed_sources=failing if kind == "digest" else [],
        counts_by_rule=Counter(_rule_title(r.rule, ruleset) for r in rows).most_common(),
        counts_by_actor=_actor_counts(rows, actor_names),
        created=now,
        stories=stories,
        urgent=urgent,
        kind=kind,
        omitted=omitted,
        changes=what_changed(store, digest, ruleset, now) if kind == "digest" else [],
    )
    result.subject = alert_subject(result) if kind == "alert" else digest_subject(result)
    return result


def _limit(sections: list[Section], limit: int) -> int:
    """Keep a message mail-sized: list at most `limit` stories, most urgent sections first;
    the rest are still claimed and counted, so a flood never backs up into the next one."""
    room = limit
    for section in sections:
        keep = max(0, min(room, len(section.entries)))
        section.omitted = len(section.entries) - keep
        del section.entries[keep:]
        room -= keep
    return sum(s.omitted for s in sections)


def digest_subject(digest: Digest) -> str:
    """e.g. "Balkans watch — 14 new stories, 2 urgent — 25 Nov"."""
    title = digest.settings.title or digest.settings.name
    local = digest.created.astimezone(ZoneInfo(digest.settings.timezone))
    n = digest.stories
    subject = f"{title} — {n} new {'story' if n == 1 else 'stories'}"
    if digest.urgent:
        subject += f", {digest.urgent} urgent"
    return header_text(f"{subject} — {local.day} {local:%b}")


def alert_subject(digest: Digest) -> str:
    """e.g. "Urgent: KFOR steps up patrols" or "Urgent — 3 stories: KFOR steps up … and 2 more"."""
    title = digest.settings.title or "Urgent"
    entries = [e for s in digest.sections for e in s.entries]
    if not entries:
        return header_text(f"{title}: nothing new")
    first = header_text(entries[0].title, 90)
    if digest.stories == 1:
        return header_text(f"{title}: {first}")
    return header_text(f"{title} — {digest.stories} stories: {first} and {digest.stories - 1} more")


def _one_line(text: str) -> str:
    """Header-safe text: no line breaks or control characters from feed titles."""
    return " ".join(_CONTROL_RE.sub(" ", text).split())


def _rank(priority: str) -> int:
    return PRIORITY_ORDER.get(priority, 9)


def _rule_title(rule_id: str, ruleset: RuleSet | None) -> str:
    if ruleset is None:
        return rule_id
    try:
        return ruleset.rule(rule_id).title
    except KeyError:
        return rule_id


def _actor_counts(rows: list[StoredHit], names: dict[str, str]) -> list[tuple[str, int]]:
    """Stories per actor (a story matched by two rules counts once)."""
    pairs = {(names.get(a, a), r.item_id) for r in rows for a in r.actors}
    counts = Counter(name for name, _ in pairs)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))


def _sections(
    rows: list[StoredHit],
    ruleset: RuleSet | None,
    tz: ZoneInfo,
    actor_names: dict[str, str],
    group_by: str,
) -> list[Section]:
    """Each story once, with every rule, actor and term that matched it; urgent first.
    A story goes under its most urgent rule and, among equals, the most specific one (the
    rule with fewest stories here), so broad rules do not swallow everything."""
    breadth = Counter(r.rule for r in rows)
    rows = sorted(rows, key=lambda r: (_rank(r.priority), breadth[r.rule], r.rule, -r.hit_id))
    entries: dict[str, Entry] = {}
    first_row: dict[str, StoredHit] = {}
    for row in rows:
        title = _rule_title(row.rule, ruleset)
        if row.item_id in entries:
            entries[row.item_id].add(row, title, actor_names)
            continue
        entries[row.item_id] = _entry(row, tz, title, actor_names)
        first_row[row.item_id] = row
    if group_by == "actor":
        return _by_actor(entries, actor_names)
    return _by_rule(entries, first_row, ruleset)


def _by_rule(
    entries: dict[str, Entry], first_row: dict[str, StoredHit], ruleset: RuleSet | None
) -> list[Section]:
    """A section per rule; a story sits under the most urgent rule it matched."""
    sections: dict[str, Section] = {}
    for item_id, entry in entries.items():
        row = first_row[item_id]
        title = _rule_title(row.rule, ruleset)
        section = sections.setdefault(row.rule, Section(row.rule, title, row.priority))
        section.entries.append(entry)
    for section in sections.values():
        _order(section.entries)
    return sorted(sections.values(), key=lambda s: (_rank(s.priority), s.title.lower()))


def _by_actor(entries: dict[str, Entry], names: dict[str, str]) -> list[Section]:
    """An urgent section first, then a section per actor, the busiest first; a story sits
    under the first actor it names, and stories naming no actor come last."""
    urgent = Section("urgent", "Urgent", "urgent")
    sections: dict[str, Section] = {}
    for entry in entries.values():
        if entry.urgent:
            urgent.entries.append(entry)
            continue
        key = entry.actor_ids[0] if entry.actor_ids else ""
        title = names.get(key, key) if key else NO_ACTOR
        sections.setdefault(key, Section(key, title, "normal")).entries.append(entry)
    ordered = sorted(
        sections.values(), key=lambda s: (s.key == "", -len(s.entries), s.title.lower())
    )
    for section in [urgent, *ordered]:
        _order(section.entries)
    return ([urgent] if urgent.entries else []) + ordered


def _order(entries: list[Entry]) -> None:
    """Most urgent first, then newest first (ISO dates sort as text; undated last)."""
    entries.sort(key=lambda e: e.hit.published if e.hit else "", reverse=True)
    entries.sort(key=lambda e: _rank(e.priority))


def _entry(hit: StoredHit, tz: ZoneInfo, rule_title: str, actor_names: dict[str, str]) -> Entry:
    evidence = list(hit.evidence)
    title = _one_line(hit.title) or hit.url or "(untitled)"
    links = [(name, url if _is_web(url) else "") for name, url in hit.source_links]
    return Entry(
        title=title,
        url=hit.url if _is_web(hit.url) else "",
        sources=list(hit.sources),
        published=_local_time(hit.published, tz),
        snippet=[],  # filled in once the listed stories are known
        rules=[rule_title],
        actors=[actor_names.get(a, a) for a in hit.actors],
        actor_ids=list(hit.actors),
        terms=_terms(evidence),
        evidence=evidence,
        priority=hit.priority,
        source_links=links or [(s, "") for s in hit.sources],
        lang=hit.lang,
        hit=hit,
    )


def _local_time(published: str | None, tz: ZoneInfo) -> str:
    if not published:
        return ""
    if len(published) == 10:  # a day the source gave without a time: shown as that day
        return _day(published)
    try:
        moment = from_iso(published)
    except ValueError:
        return ""
    return moment.astimezone(tz).strftime("%d %b %Y %H:%M %Z")


def _day(stamp: str) -> str:
    try:
        return date.fromisoformat(stamp).strftime("%d %b %Y")
    except ValueError:
        return ""


def _terms(evidence: list[Evidence]) -> list[str]:
    return sorted({e.text for e in evidence}, key=str.lower)


def _is_web(url: str | None) -> bool:
    """Only http(s) links go into a message: no javascript:, data:, file: or mailto:."""
    if not url or any(c in url for c in "\x00\r\n\t<>\"'` "):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def snippet(hit: StoredHit, evidence: list[Evidence]) -> Pieces:
    """A window of the item's text around its first match, as (text, highlighted) pieces."""
    field_name = next(
        (f for f in ("summary", "content") if any(e.field == f for e in evidence)), None
    )
    if field_name is None:
        field_name = "summary" if hit.summary else "content"
    text = hit.field_text(field_name)
    marks = sorted({(e.start, e.end) for e in evidence if e.field == field_name})
    start = max(0, marks[0][0] - 80) if marks else 0
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):  # end on a word boundary, unless that loses a match
        last_mark = max((e for _, e in marks if e <= end), default=start)
        end = max(text.rfind(" ", last_mark, end), last_mark) or end
    if start > 0:
        start = text.find(" ", start, marks[0][0]) + 1 or start
    pieces: Pieces = [("… ", False)] if start > 0 else []
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
    """The message as it will be sent: multipart/alternative, plain text then HTML, UTF-8."""
    context = {"digest": digest, "settings": digest.settings}
    text = _env.get_template("digest.txt").render(**context)
    html = _env.get_template("digest.html").render(**context)
    message = EmailMessage(policy=POLICY)  # refuses to write a header with a line break
    message["Subject"] = header_text(digest.subject)
    message["From"] = header_text(sender, limit=None)
    message["To"] = header_text(", ".join(recipients), limit=None) or "undisclosed-recipients:;"
    message["Date"] = format_datetime(digest.created)
    domain = sender.rpartition("@")[2].strip("> ") or "news-monitor.local"
    idstring = _MSGID_RE.sub("-", digest.settings.name).strip("-.") or "digest"
    message_id = make_msgid(idstring=idstring, domain=domain)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
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
    dry_run: bool = False,
) -> list[BuiltMessage]:
    """Build every configured digest (or those named) that has something to send. A digest
    built for the first time starts from now, or `backfill` before (a dry run only looks)."""
    built = []
    source_names = {s.name for s in settings.sources}
    moment = now or utcnow()
    for config in settings.digests:
        if names and config.name not in names:
            continue
        since = store.digest_start(config.name, config.first_hits(moment), not dry_run)
        digest = collect(store, config, ruleset, now, source_names=source_names, since=since)
        if digest.empty and not config.send_empty:
            log.info("digest %s: nothing new, not sent", config.name)
            continue
        built.append(render(digest, sender_of(settings), list(config.to)))
    return built


def record(store: Store, built: BuiltMessage) -> int | None:
    """Record a built message and claim its hits; delivery happens after this commits.
    None when a concurrent run claimed the same hits first (that run sends them)."""
    digest = built.digest
    try:
        return store.record_digest(
            name=digest.settings.name,
            subject=digest.subject,
            message_id=built.message_id,
            recipients=list(digest.settings.to),
            message=serialise(built.message),  # CRLF line ends; no header with a line break
            hit_ids=digest.hit_ids,
            now=digest.created,
        )
    except AlreadyClaimed as exc:
        log.warning("%s; this copy is dropped", exc)
        return None
