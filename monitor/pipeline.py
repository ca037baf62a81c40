"""One poll cycle: fetch every source, then each through parse → normalise → dedupe → match →
store. A source's failure is written onto its row and logged; it never stops the others."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.config import FetchSettings, Settings
from monitor.errors import FetchError, MonitorError
from monitor.fetch import Request, fetch_all
from monitor.fulltext import add_full_text
from monitor.match import Engine
from monitor.models import FetchResult, FetchState, Item, Source
from monitor.normalise import normalise_all
from monitor.parse import parse
from monitor.store import CycleOutcome, Store, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceReport:
    name: str
    status: int | None
    parsed: int
    new: int
    seen: int
    hits: int
    error: str | None
    seconds: float


def poll(
    settings: Settings,
    store: Store,
    engine: Engine,
    sources: Sequence[Source] | None = None,
    now: datetime | None = None,
) -> list[SourceReport]:
    """Fetch the given sources (all by default) and run each through the pipeline."""
    sources = list(settings.sources if sources is None else sources)
    store.sync_sources(settings.sources)
    requests = [Request(s.name, s.url, store.fetch_state(s.name)) for s in sources]
    started = time.monotonic()
    fetched = fetch_all(requests, settings.fetch)
    fetch_seconds = time.monotonic() - started
    reports = []
    for source in sources:
        t0 = time.monotonic()
        outcome = process(
            source,
            fetched[source.name],
            store.fetch_state(source.name),
            store,
            engine,
            limits=settings.fetch,
        )
        moment = now or utcnow()
        store.save_cycle(outcome, moment, moment + timedelta(seconds=source.interval))
        report = _report(outcome, time.monotonic() - t0)
        _log(report)
        reports.append(report)
    log.info(
        "cycle: %d sources, %d new items, %d hits, %d errors (fetch %.2fs)",
        len(reports),
        sum(r.new for r in reports),
        sum(r.hits for r in reports),
        sum(1 for r in reports if r.error),
        fetch_seconds,
    )
    return reports


def process(
    source: Source,
    fetched: FetchResult | FetchError,
    previous: FetchState,
    store: Store,
    engine: Engine,
    limits: FetchSettings | None = None,
) -> CycleOutcome:
    """Everything after the fetch, for one source: what to write back for it. With `limits`,
    a `fulltext` source's new items get their article text before they are matched."""
    if isinstance(fetched, FetchError):
        return CycleOutcome(source.name, fetched.status, error=str(fetched))
    if fetched.not_modified:
        return CycleOutcome(source.name, 304, state=previous)
    digest = hashlib.sha256(fetched.body).hexdigest()[:32]
    state = FetchState(fetched.etag, fetched.last_modified, digest)
    if digest == previous.content_hash:  # same bytes as last time: nothing to parse
        return CycleOutcome(source.name, fetched.status, state=state)
    try:
        entries = parse(fetched, source)
    except MonitorError as exc:
        return CycleOutcome(source.name, fetched.status, error=str(exc))
    items = _unique(normalise_all(source.name, entries))
    known = store.find_known(items)
    new_items = [i for i in items if i.id not in known]
    if source.fulltext and limits is not None and new_items:
        new_items = add_full_text(source, new_items, limits)
    also_seen = [(known[i.id], i) for i in items if i.id in known]
    hits = [(item.id, hit) for item in new_items for hit in engine.match(item)]
    return CycleOutcome(
        source=source.name,
        status=fetched.status,
        parsed=len(entries),
        new_items=new_items,
        hits=hits,
        also_seen=also_seen,
        state=state,
    )


@dataclass(frozen=True)
class Preview:
    source: Source
    url: str  # after redirects
    status: int
    items: list[Item]
    with_text: int  # items whose article text was fetched


def preview(settings: Settings, source: Source, articles: int = 3) -> Preview:
    """Fetch and parse one source now, as a cycle would, and store nothing. For a `fulltext`
    source, the article text of the first `articles` items is fetched too. Raises FetchError
    or ParseError (e.g. "0 items parsed: ...") instead of recording them."""
    fetched = fetch_all([Request(source.name, source.url)], settings.fetch)[source.name]
    if isinstance(fetched, FetchError):
        raise fetched
    items = _unique(normalise_all(source.name, parse(fetched, source)))
    with_text = 0
    if source.fulltext and articles > 0 and items:
        limited = replace(source, fulltext_max=min(articles, source.fulltext_max))
        before = [i.content for i in items]
        items = add_full_text(limited, items, settings.fetch)
        with_text = sum(1 for old, new in zip(before, items, strict=True) if old != new.content)
    return Preview(source, fetched.url, fetched.status, items, with_text)


def _unique(items: list[Item]) -> list[Item]:
    """Drop items repeated within one document (same id, URL or fingerprint)."""
    seen: set[str] = set()
    unique = []
    for item in items:
        keys = {f"id:{item.id}", f"fp:{item.fingerprint}"}
        if item.url:
            keys.add(f"url:{item.url}")
        if keys & seen:
            continue
        seen |= keys
        unique.append(item)
    return unique


def _report(outcome: CycleOutcome, seconds: float) -> SourceReport:
    return SourceReport(
        name=outcome.source,
        status=outcome.status,
        parsed=outcome.parsed,
        new=len(outcome.new_items),
        seen=len(outcome.also_seen),
        hits=len(outcome.hits),
        error=outcome.error,
        seconds=seconds,
    )


def _log(report: SourceReport) -> None:
    if report.error:
        log.error(
            "source %s: failed (HTTP %s): %s", report.name, report.status or "-", report.error
        )
    else:
        log.info(
            "source %s: HTTP %s, %d parsed, %d new, %d already seen, %d hits (%.2fs)",
            report.name,
            report.status,
            report.parsed,
            report.new,
            report.seen,
            report.hits,
            report.seconds,
        )
