"""One poll cycle: fetch every source, then each through parse → normalise → dedupe → match →
store. A source's failure is written onto its row and logged; it never stops the others."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import Settings
from monitor.errors import FetchError, MonitorError
from monitor.fetch import Request, fetch_all
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
            source, fetched[source.name], store.fetch_state(source.name), store, engine
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
) -> CycleOutcome:
    """Everything after the fetch, for one source: what to write back for it."""
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
