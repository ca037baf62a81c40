"""Hits into digest messages: select a digest's undelivered hits, group them into stories, rank
and place each story once, render HTML and plain text with Jinja2, and record the message
(claiming its hits) before it is sent.

A digest is read in two minutes: a "Top stories" block, then one section per rule heading in
the order the rule files give, each story once under its first rule in that order, with who
reported it first, one "why" line and at most six highlights. The message keeps to a byte
budget whatever the number of hits; the rest is counted and pointed to.

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
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.clock import from_iso, iso, utcnow
from monitor.lang import expand
from monitor.mailheaders import POLICY, header_text, serialise
from monitor.models import Evidence, SourceStatus, StoredHit, StoryProvenance
from monitor.provenance import summary as provenance_line
from monitor.rules import RuleSet
from monitor.settings import DigestSettings, Settings, UiSettings
from monitor.signals import what_changed
from monitor.store import AlreadyClaimed, Store

log = logging.getLogger(__name__)
SNIPPET_CHARS = 240
MAX_HIGHLIGHTS = 6  # marks in one snippet: the actors and the rule's rarest terms
TOP_STORIES = 5  # stories in the "Top stories" block (when there are more than this)
OTHER_OUTLETS = 4  # outlets linked under a story; the rest are counted
HTML_BUDGET = 100_000  # bytes of the HTML part: Gmail clips a body over about 102 KB
MESSAGE_BUDGET = 200_000  # bytes of the whole message as sent
PRIORITY_ORDER = {"urgent": 0, "normal": 1, "low": 2}
NO_ACTOR = "Other stories"
TOP = "top"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_MSGID_RE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_LIST_RE = re.compile(r"[^A-Za-z0-9-]+")

_env = Environment(
    loader=PackageLoader("monitor", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

Pieces = list[tuple[str, bool]]  # (text, highlighted)
TEXT_WIDTH = 76  # plain-text lines, for terminal mail clients


def _wrap(text: str, indent: str = "  ", first: str | None = None) -> str:
    """Plain-text paragraphs wrapped for a terminal, every line indented."""
    return textwrap.fill(
        text,
        TEXT_WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


_env.filters["wrap"] = _wrap
_env.filters["iso"] = lambda moment: iso(moment) if moment else ""
_env.filters["day"] = lambda moment: f"{moment:%Y-%m-%d}" if moment else ""


@dataclass
class Entry:
    """One story in a digest, with every rule, actor and outlet that goes with it."""

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
    story: str = ""
    rule_ids: list[str] = field(default_factory=list)  # first in rule order first
    provenance: StoryProvenance | None = field(default=None, repr=False)
    reported: str = ""  # "first reported by … · 6 outlets (2 wire) · 3 languages"
    why: str = ""  # the one line that says why it is here
    others: list[tuple[str, str]] = field(default_factory=list)  # other outlets, linked
    more_outlets: int = 0  # outlets beyond `others`, counted
    page: str = ""  # the story's page in the web view, when one is configured
    growth: int = 0  # outlets that picked it up since the last digest of this name

    @property
    def urgent(self) -> bool:
        return self.priority == "urgent"

    def add(self, hit: StoredHit, rule_title: str, actor_names: dict[str, str]) -> None:
        """Another rule matched the same story: list it, and its terms for highlighting."""
        if rule_title not in self.rules:
            self.rules.append(rule_title)
        if hit.rule not in self.rule_ids:
            self.rule_ids.append(hit.rule)
        self.actor_ids += [a for a in hit.actors if a not in self.actor_ids]
        names = [actor_names.get(a, a) for a in hit.actors]
        self.actors += [a for a in names if a not in self.actors]
        if self.hit is None or hit.item_id == self.hit.item_id:  # offsets are the item's own
            self.evidence += hit.evidence
            self.terms = _terms(self.evidence)
        if _rank(hit.priority) < _rank(self.priority):
            self.priority = hit.priority


@dataclass
class Section:
    key: str  # "top", a rule heading, an actor id, "urgent" or "" (stories with no actor)
    title: str
    priority: str
    entries: list[Entry] = field(default_factory=list)
    omitted: int = 0  # stories over the message's limit: counted here, not listed
    rest: str = ""  # where the omitted ones are: the web view, or a `monitor search` line
    hidden: list[Entry] = field(default_factory=list, repr=False)  # the omitted ones

    @property
    def heading(self) -> str:
        urgent = "[URGENT] " if self.priority == "urgent" else ""
        return f"{urgent}{self.title} ({self.count})"

    @property
    def count(self) -> int:
        return len(self.entries) + self.omitted


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
    web_view: str = ""  # the web view's address, when configured
    chart: bytes = field(default=b"", repr=False)  # PNG of mentions per actor per day

    @property
    def empty(self) -> bool:
        return not self.hit_ids

    @property
    def listed(self) -> int:
        return sum(len(s.entries) for s in self.sections)


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
    ui: UiSettings | None = None,
) -> Digest:
    """The digest as it would go out now: its hits not yet sent in a digest of this name
    (or the `hits` given; with `since`, only hits stored from then on), grouped into
    stories, and the configured sources that are failing."""
    now = now or utcnow()
    ui = ui or UiSettings()
    if hits is None:
        hits = store.undelivered_hits(digest.name, since)
    rows = [h for h in hits if selects(digest, h.rule, ruleset) and speaks(digest, h.lang)]
    actor_names = {a.id: a.name for a in ruleset.actors.values()} if ruleset else {}
    tz = ZoneInfo(digest.timezone)
    entries = _stories(rows, ruleset, tz, actor_names)
    provenance = store.story_provenance(entries) if entries else {}
    previous = _last_built(store, digest.name)
    for entry in entries.values():
        _describe(entry, provenance.get(entry.story), tz, now, ui, previous)
    top = _top(entries) if kind == "digest" else []
    sections = _sections(entries, top, ruleset, actor_names, digest.group_by)
    omitted = _limit(sections, digest.max_stories)
    _fill_snippets(sections, rows)
    for section in sections:
        section.rest = _rest(section, ui)
    failing = [s for s in store.failing_sources() if source_names is None or s.name in source_names]
    result = Digest(
        settings=digest,
        subject="",
        sections=sections,
        hit_ids=[r.hit_id for r in rows],
        failed_sources=failing if kind == "digest" else [],
        counts_by_rule=[(s.title, s.count) for s in sections],
        counts_by_actor=_actor_counts(list(entries.values())),
        created=now,
        stories=len(entries),
        urgent=sum(1 for e in entries.values() if e.urgent),
        kind=kind,
        omitted=omitted,
        changes=what_changed(store, digest, ruleset, now) if kind == "digest" else [],
        web_view=ui.base_url,
    )
    if digest.chart and kind == "digest":
        from monitor.chart import chart_png, mentions

        result.chart = chart_png(mentions(rows, actor_names, tz))
    result.subject = alert_subject(result) if kind == "alert" else digest_subject(result)
    return result


def _last_built(store: Store, name: str) -> str:
    """When the previous digest of this name was built (ISO), "" for the first one."""
    found = next((h.last_built for h in store.last_sent() if h.name == name), None)
    return iso(found) if found else ""


def _limit(sections: list[Section], limit: int) -> int:
    """Keep a message mail-sized: list at most `limit` stories, sections in order;
    the rest are still claimed and counted, so a flood never backs up into the next one."""
    room = limit
    for section in sections:
        keep = max(0, min(room, len(section.entries)))
        section.omitted += len(section.entries) - keep
        section.hidden += section.entries[keep:]
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


def _heading(rule_id: str, ruleset: RuleSet | None) -> str:
    """The section a rule's stories go under: its `section`, else its title."""
    if ruleset is None:
        return rule_id
    try:
        return ruleset.rule(rule_id).heading
    except KeyError:
        return rule_id


def _rule_rank(rule_id: str, ruleset: RuleSet | None) -> tuple[float, int, str]:
    """A rule's place in the digest: the rule files' `order`, then their order."""
    if ruleset is None:
        return (0.0, 0, rule_id)
    return (*ruleset.rank(rule_id), rule_id)


def _actor_counts(entries: list[Entry]) -> list[tuple[str, int]]:
    """Stories per actor (a story matched by two rules counts once)."""
    counts = Counter(name for entry in entries for name in entry.actors)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))


def _stories(
    rows: list[StoredHit], ruleset: RuleSet | None, tz: ZoneInfo, actor_names: dict[str, str]
) -> dict[str, Entry]:
    """Each story once, with every rule, actor and term that matched any of its items; its
    first rule (in the rule files' order) leads, and its best-carried item gives the title."""
    rows = sorted(rows, key=lambda r: (_rule_rank(r.rule, ruleset), -r.hit_id))
    best = _best_items(rows)
    entries: dict[str, Entry] = {}
    for row in rows:
        if row.story_id not in entries:
            entries[row.story_id] = _entry(best[row.story_id], tz)
        entries[row.story_id].add(row, _rule_title(row.rule, ruleset), actor_names)
    return entries


def _best_items(rows: list[StoredHit]) -> dict[str, StoredHit]:
    """Per story, the hit whose item reads best as the story: carried by most outlets, then
    the first published."""
    best: dict[str, StoredHit] = {}
    for row in rows:
        known = best.get(row.story_id)
        if known is None or _carried(row) < _carried(known):
            best[row.story_id] = row
    return best


def _carried(row: StoredHit) -> tuple[int, int, str]:
    return (-len(row.source_links), 0 if row.published else 1, row.published)


def _describe(
    entry: Entry,
    provenance: StoryProvenance | None,
    tz: ZoneInfo,
    now: datetime,
    ui: UiSettings,
    previous: str,
) -> None:
    """The story's provenance line, its other outlets, its page and its growth."""
    entry.page = ui.story_url(entry.story)
    if provenance is None or not provenance.outlets:
        entry.others = [(n, u) for n, u in entry.source_links if u != entry.url][1:]
        return
    entry.provenance = provenance
    entry.reported = provenance_line(provenance, tz, now)
    first = provenance.first
    others = [(o.source, o.url if _is_web(o.url) else "") for o in provenance.outlets[1:]]
    if first is not None and entry.url and first.url != entry.url:
        others = [(n, u) for n, u in others if u != entry.url]
    entry.others = others[:OTHER_OUTLETS]
    entry.more_outlets = len(others) - len(entry.others)
    entry.growth = provenance.new_since(previous)
    entry.sources = [o.source for o in provenance.outlets]
    entry.source_links = [(o.source, o.url if _is_web(o.url) else "") for o in provenance.outlets]
    entry.lang = ", ".join(provenance.languages) or entry.lang


def _why(entry: Entry) -> str:
    """One short line: the rule that placed it, the actors, how many other rules agree."""
    why = entry.rules[0] if entry.rules else ""
    if entry.actors:
        shown = ", ".join(entry.actors[:3])
        why += f" — {shown}" + (f" +{len(entry.actors) - 3}" if len(entry.actors) > 3 else "")
    others = len(entry.rules) - 1
    if others > 0:
        why += f" (also {others} other rule{'s' if others > 1 else ''})"
    return why


def _top(entries: dict[str, Entry]) -> list[Entry]:
    """The stories that matter most: priority, outlets and their kinds, growth since the
    last digest, recency. Only when there are more stories than the block holds."""
    if len(entries) <= TOP_STORIES:
        return []

    def weight(e: Entry) -> tuple[int, int, int, int, str]:
        outlets = len(e.provenance.outlets) if e.provenance else len(e.sources)
        kinds = len(e.provenance.kinds()) if e.provenance else 0
        recent = e.hit.published if e.hit else ""
        return (_rank(e.priority), -outlets, -kinds, -e.growth, _negate(recent))

    return sorted(entries.values(), key=weight)[:TOP_STORIES]


def _negate(stamp: str) -> str:
    """A sort key that puts newer ISO stamps first (undated last)."""
    return "".join(chr(0x10FFFF - ord(c)) for c in stamp) if stamp else "\U0010ffff"


def _sections(
    entries: dict[str, Entry],
    top: list[Entry],
    ruleset: RuleSet | None,
    actor_names: dict[str, str],
    group_by: str,
) -> list[Section]:
    """The top block, then the rest by rule heading (or by actor)."""
    chosen = {id(e) for e in top}
    rest = [e for e in entries.values() if id(e) not in chosen]
    for entry in entries.values():
        entry.why = _why(entry)
    sections = _by_actor(rest, actor_names) if group_by == "actor" else _by_rule(rest, ruleset)
    if not top:
        return sections
    priority = min((e.priority for e in top), key=_rank)
    return [Section(TOP, "Top stories", priority, list(top)), *sections]


def _by_rule(entries: list[Entry], ruleset: RuleSet | None) -> list[Section]:
    """A section per rule heading, in the rule files' order; a story sits under its first
    rule in that order (an urgent story elsewhere is marked as such)."""
    sections: dict[str, Section] = {}
    places: dict[str, tuple[float, int, str]] = {}
    for entry in entries:
        rule = entry.rule_ids[0]
        heading, place = _heading(rule, ruleset), _rule_rank(rule, ruleset)
        priority = _rule_priority(rule, ruleset, entry.priority)
        section = sections.setdefault(heading, Section(heading, heading, priority))
        places[heading] = min(places.get(heading, place), place)
        if _rank(priority) < _rank(section.priority):
            section.priority = priority
        section.entries.append(entry)
    for section in sections.values():
        _order(section.entries)
    return sorted(sections.values(), key=lambda s: places[s.key])


def _rule_priority(rule_id: str, ruleset: RuleSet | None, default: str) -> str:
    if ruleset is None:
        return default
    try:
        return ruleset.rule(rule_id).priority
    except KeyError:
        return default


def _by_actor(entries: list[Entry], names: dict[str, str]) -> list[Section]:
    """An urgent section first, then a section per actor, the busiest first; a story sits
    under the first actor it names, and stories naming no actor come last."""
    urgent = Section("urgent", "Urgent", "urgent")
    sections: dict[str, Section] = {}
    for entry in entries:
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


def _entry(hit: StoredHit, tz: ZoneInfo) -> Entry:
    """A story as its best item shows it; its rules, actors and terms come with `add`."""
    title = _one_line(hit.title) or hit.url or "(untitled)"
    links = [(name, url if _is_web(url) else "") for name, url in hit.source_links]
    return Entry(
        title=title,
        url=hit.url if _is_web(hit.url) else "",
        sources=list(hit.sources),
        published=_local_time(hit.published, tz),
        snippet=[],  # filled in once the listed stories are known
        priority="low",
        source_links=links or [(s, "") for s in hit.sources],
        lang=hit.lang,
        hit=hit,
        story=hit.story_id,
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


def _fill_snippets(sections: list[Section], rows: list[StoredHit]) -> None:
    """Snippets only for the stories listed (floods stay cheap); a term's rarity is how few
    of the digest's stories it matched in, so common words are the first to go unmarked."""
    rarity = Counter(t.lower() for r in rows for t in {e.text for e in r.evidence})
    for section in sections:
        for entry in section.entries:
            if entry.hit is not None:
                entry.snippet = snippet(entry.hit, entry.evidence, rarity)


def snippet(hit: StoredHit, evidence: list[Evidence], rarity: Counter[str] | None = None) -> Pieces:
    """A window of the item's text around its first match, as (text, highlighted) pieces,
    with at most MAX_HIGHLIGHTS marks: actors first, then the rarest terms."""
    field_name = next(
        (f for f in ("summary", "content") if any(e.field == f for e in evidence)), None
    )
    if field_name is None:
        field_name = "summary" if hit.summary else "content"
    text = hit.field_text(field_name)
    found = [e for e in evidence if e.field == field_name and 0 <= e.start < e.end <= len(text)]
    anchor = min((e.start for e in found), default=0)
    start = max(0, anchor - 60)
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):  # end on a word boundary
        end = text.rfind(" ", anchor, end) if text.rfind(" ", anchor, end) > anchor else end
    if start > 0:
        start = text.find(" ", start, anchor) + 1 or start
    marks = _highlights([e for e in found if e.start >= start and e.end <= end], rarity)
    pieces: Pieces = [("… ", False)] if start > 0 else []
    cursor = start
    for m_start, m_end in marks:
        pieces += [(text[cursor:m_start], False), (text[m_start:m_end], True)]
        cursor = m_end
    pieces.append((text[cursor:end], False))
    if end < len(text):
        pieces.append((" …", False))
    return [p for p in pieces if p[0]]


def _highlights(evidence: list[Evidence], rarity: Counter[str] | None) -> list[tuple[int, int]]:
    """What explains the hit: each actor and distinctive term once, at most MAX_HIGHLIGHTS,
    never two marks overlapping."""
    rarity = rarity or Counter()
    ranked = sorted(evidence, key=lambda e: (e.actor is None, rarity[e.text.lower()], e.start))
    chosen: list[tuple[int, int]] = []
    texts: set[str] = set()
    for e in ranked:
        if e.text.lower() in texts or any(e.start < b and a < e.end for a, b in chosen):
            continue
        chosen.append((e.start, e.end))
        texts.add(e.text.lower())
        if len(chosen) == MAX_HIGHLIGHTS:
            break
    return sorted(chosen)


def _rest(section: Section, ui: UiSettings) -> str:
    """Where the stories not listed can be read: the web view, else the search to run."""
    if not section.omitted:
        return ""
    if ui.base_url:
        return f"{ui.base_url}/"
    actors = Counter(a for e in section.hidden for a in e.actors[:1])
    words = actors.most_common(1)[0][0] if actors else section.hidden[0].title
    return f"monitor search {_shell_quote(words)}"


def _shell_quote(text: str) -> str:
    """A search phrase a shell passes through unchanged: the words, quoted twice."""
    words = re.findall(r"\w+", text)[:8]
    return "'\"" + " ".join(words) + "\"'" if len(words) > 1 else f"'{''.join(words)}'"


def render(digest: Digest, sender: str, recipients: list[str], operator: str = "") -> BuiltMessage:
    """The message as it will be sent: multipart/alternative, plain text then HTML, UTF-8;
    kept within the byte budgets by listing fewer stories (the rest are counted)."""
    built = _render(digest, sender, recipients, operator)
    while digest.listed and not _fits(built):
        keep = max(0, int(digest.listed * HTML_BUDGET / max(len(built.html.encode()), 1)) - 1)
        keep = min(keep, digest.listed - 1)
        digest.omitted = _limit(digest.sections, keep)
        for section in digest.sections:
            section.rest = _rest(section, UiSettings(digest.web_view))
        built = _render(digest, sender, recipients, operator)
    return built


def _fits(built: BuiltMessage) -> bool:
    return len(built.html.encode()) < HTML_BUDGET and len(serialise(built.message)) < MESSAGE_BUDGET


def _render(digest: Digest, sender: str, recipients: list[str], operator: str) -> BuiltMessage:
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
    message["List-Id"] = _list_id(digest.settings, domain)
    address = operator or _address(sender)
    if address:
        subject = quote(f"unsubscribe {digest.settings.name}")
        message["List-Unsubscribe"] = f"<mailto:{quote(address, safe='@')}?subject={subject}>"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    if digest.chart:
        _attach_chart(message, digest.chart)
    return BuiltMessage(digest, message_id, message, text, html)


def _list_id(settings: DigestSettings, domain: str) -> str:
    """`Balkans watch <balkans-daily.example.org>` (RFC 2919), so readers can filter."""
    name = _LIST_RE.sub("-", settings.name).strip("-").lower() or "digest"
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", domain).strip("-.").lower() or "local"
    return f"{header_text(settings.title or settings.name, 80)} <{name}.{host}>"


def _attach_chart(message: EmailMessage, png: bytes) -> None:
    """The weekly chart inline, referred to by the HTML part as cid:chart."""
    html_part = message.get_body(("html",))
    if html_part is not None:
        html_part.add_related(png, "image", "png", cid="<chart@news-monitor>")


def _address(sender: str) -> str:
    m = re.search(r"<([^<>@\s]+@[^<>@\s]+)>", sender)
    if m:
        return m.group(1)
    return sender.strip() if re.fullmatch(r"[^<>@\s]+@[^<>@\s]+", sender.strip()) else ""


def sender_of(settings: Settings) -> str:
    return settings.smtp.sender if settings.smtp else "News Monitor <monitor@localhost>"


def operator_of(settings: Settings) -> str:
    """Where List-Unsubscribe requests go: the configured operator, else the sender."""
    return settings.operator or _address(sender_of(settings))


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
        digest = collect(
            store, config, ruleset, now, source_names=source_names, since=since, ui=settings.ui
        )
        if digest.empty and not config.send_empty:
            log.info("digest %s: nothing new, not sent", config.name)
            continue
        built.append(render(digest, sender_of(settings), list(config.to), operator_of(settings)))
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
