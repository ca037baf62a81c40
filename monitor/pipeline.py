"""One poll cycle: fetch the sources, then each through parse → normalise → dedupe → match →
store. A source's failure is written onto its row and logged; it never stops the others.

A cycle is built for many sources: fetching runs concurrently across hosts (fetch.py), a body
that has not changed (304, or the same bytes as last time) is never parsed, changed bodies
are parsed in worker processes when there are many of them, and the whole cycle is stored in
one transaction. Each source's next check is its interval with a little jitter; a failing
source backs off exponentially (capped), and a server's Retry-After is honoured."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from monitor.articlelinks import explain
from monitor.clock import iso, utcnow
from monitor.collector import rare_full_passes
from monitor.dedupe import Identity, Index, Known
from monitor.errors import FetchError
from monitor.fetch import Politeness, Request, fetch_all
from monitor.fulltext import add_full_text
from monitor.match import MAX_CHARS, Engine, clip_item
from monitor.models import CycleOutcome, FetchResult, FetchState, Hit, Item, Relation, Source
from monitor.normalise import normalise_all
from monitor.parse import parse
from monitor.prepare import Prepared, actors_of, unique_with
from monitor.settings import FetchSettings, Settings
from monitor.store import Store
from monitor.stories import OPEN_WINDOW, Arrival, Assigner, entity_keys
from monitor.workers import PARALLEL_MIN, ParsePool, Read, reading

log = logging.getLogger(__name__)

# A cycle fetches and parses its sources BATCH_SOURCES at a time, and takes in (dedupes,
# matches, places in stories, stores in one transaction) what it parsed once it holds
# BATCH_ITEMS items: memory holds one such batch, not the cycle (an item costs about 26 KB
# while it is compared), and each take-in's fixed costs are shared by thousands of items
# (at 10,000 feeds x 5 items: 5,000 items 545 MB; 2,000 366 MB in the same time; 1,000
# 298 MB, 20% slower; bench/README.md).
BATCH_SOURCES = 100
BATCH_ITEMS = 2_000


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
    next_check: datetime | None = None


def source_request(source: Source, state: FetchState | None = None) -> Request:
    """How a source is fetched: conditionally when there is a state; page sources, being
    scraped rather than published as feeds, only where robots.txt allows."""
    return Request(source.name, source.url, state or FetchState(), robots=source.kind == "page")


def poll(
    settings: Settings,
    store: Store,
    engine: Engine,
    sources: Sequence[Source] | None = None,
    now: datetime | None = None,
    *,
    memory: Politeness | None = None,
    stop: threading.Event | None = None,
    pool: ParsePool | None = None,
    rng: random.Random | None = None,
    batch: int = BATCH_SOURCES,
    take_in: int = BATCH_ITEMS,
    shared: bool = False,
) -> list[SourceReport]:
    """Fetch the given sources (all by default) and run each through the pipeline.

    Sources are fetched and parsed `batch` at a time; once `take_in` items are parsed they
    are deduped, matched, placed in stories and stored (one transaction) before more is
    fetched: memory holds one such batch, not the cycle, and what a batch stored stays
    stored if a later one fails. `memory` carries politeness
    (per-host timing, robots.txt) across batches and cycles; `pool` parses in worker
    processes (one is started for this cycle if needed and none is given); when `stop` is
    set mid-cycle, the batch under way is abandoned and nothing of it is stored. `shared`:
    other workers take in at the same time, so each take-in reads and writes in one write
    transaction (the lookups must see what another worker stored a moment before)."""
    given = list(settings.sources if sources is None else sources)
    sources = _spread_hosts(given)
    started = now or utcnow()
    sync_config(settings, store, started, given)  # a task's few, not the many of the config
    memory = memory or Politeness()
    rng = rng or random.Random()
    own_pool = None
    workers = ParsePool.size(settings.fetch.parse_workers)
    if pool is None and workers > 1 and len(sources) >= PARALLEL_MIN:
        pool = own_pool = ParsePool(workers)
    reports: list[SourceReport] = []
    seconds = {"fetch": 0.0, "parse_match": 0.0, "store": 0.0}
    waiting: list[_Batch] = []  # fetched and read, not yet taken in
    try:
        for first in range(0, len(sources) + batch, batch):
            try:
                part = sources[first : first + batch]
                # the workers read the next batch while this process takes in the last ones
                fresh = _fetch_and_dispatch(settings, store, engine, part, memory, stop, pool,
                                            seconds, shared) if part else None  # fmt: skip
                if waiting and (fresh is None or sum(w.items for w in waiting) >= take_in):
                    # shared: the article pages of `fulltext` sources are fetched inside
                    # this transaction, so other workers wait for them (to be moved out)
                    with store.transaction() if shared else nullcontext():
                        reports += _take_in(settings, store, engine, waiting, now, started,
                                            memory, stop, rng, seconds)  # fmt: skip
                    waiting = []
                if fresh is not None:
                    waiting.append(fresh.collected(seconds))
            except CycleAbandoned:
                left = len(sources) - first + sum(len(w.sources) for w in waiting)
                log.warning("cycle abandoned for shutdown: %d sources left for next time", left)
                break
    finally:
        if own_pool is not None:
            own_pool.close()
    _log_cycle(reports, **seconds)
    place = {source.name: n for n, source in enumerate(given)}
    return sorted(reports, key=lambda report: place[report.name])  # in the order given


@dataclass
class _Batch:
    """Sources fetched and their changed documents read (or being read), waiting to be taken
    in. The bodies are dropped once read: the items are what is kept."""

    sources: list[Source]
    fetched: dict[str, FetchResult | FetchError]
    outcomes: dict[str, CycleOutcome]  # of sources with nothing to read
    to_read: list[tuple[FetchResult, Source, FetchState]]
    reading: Callable[[], list[Read]]
    reads: list[Read] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(len(read.items) for read in self.reads if not isinstance(read, str))

    def collected(self, seconds: dict[str, float]) -> _Batch:
        """The batch with its documents read (waiting for the workers if they still are)."""
        started = time.monotonic()
        self.reads = self.reading()
        for (result, source, _), read in zip(self.to_read, self.reads, strict=True):
            if isinstance(read, str):
                self.outcomes[source.name] = CycleOutcome(source.name, result.status, error=read)
        self.to_read = [(replace(r, body=b""), s, state) for r, s, state in self.to_read]
        self.fetched = {k: replace(r, body=b"") if isinstance(r, FetchResult) else r
                        for k, r in self.fetched.items()}  # fmt: skip
        seconds["parse_match"] += time.monotonic() - started
        return self


def _fetch_and_dispatch(
    settings: Settings,
    store: Store,
    engine: Engine,
    sources: list[Source],
    memory: Politeness,
    stop: threading.Event | None,
    pool: ParsePool | None,
    seconds: dict[str, float],
    shared: bool = False,
) -> _Batch:
    """Fetch some sources and set what changed to be read: in the workers, at once, when
    enough did; else here, when the batch is collected (matched as it is read when the
    database is `shared`: not while this worker holds the write lock)."""
    states = store.fetch_states(s.name for s in sources)
    requests = [source_request(s, states.get(s.name, FetchState())) for s in sources]
    t0 = time.monotonic()
    fetched = fetch_all(requests, settings.fetch, memory, stop)
    seconds["fetch"] += time.monotonic() - t0
    _check_stop(stop)
    outcomes, to_read = _to_read(sources, fetched, states)
    jobs = [(r, s) for r, s, _ in to_read]
    return _Batch(sources, fetched, outcomes, to_read,
                  reading(jobs, pool, engine, settings.fetch.max_text, shared))  # fmt: skip


def _take_in(
    settings: Settings,
    store: Store,
    engine: Engine,
    batches: list[_Batch],
    now: datetime | None,
    started: datetime,
    memory: Politeness,
    stop: threading.Event | None,
    rng: random.Random,
    seconds: dict[str, float],
) -> list[SourceReport]:
    """Dedupe, match and place in stories what some batches read, then store it all in one
    transaction; each source's report."""
    t1 = time.monotonic()
    sources = [s for b in batches for s in b.sources]
    fetched = {k: r for b in batches for k, r in b.fetched.items()}
    outcomes = {k: o for b in batches for k, o in b.outcomes.items()}
    to_read = [job for b in batches for job in b.to_read]
    reads = [read for b in batches for read in b.reads]
    with rare_full_passes():
        _dedupe_and_match(to_read, reads, store, engine, outcomes, settings.fetch, memory, stop,
                          now=started)  # fmt: skip
    _check_stop(stop)
    t2 = time.monotonic()
    moment = now or utcnow()
    failures = store.error_counts(s.name for s in sources)
    saves = []
    for source in sources:
        outcome, result = outcomes[source.name], fetched[source.name]
        wait = result.retry_after if isinstance(result, FetchError) else None
        delay = next_delay(source, outcome, failures.get(source.name, 0), settings.fetch, wait, rng)
        saves.append((outcome, moment + timedelta(seconds=delay)))
    with rare_full_passes():
        store.save_cycles(saves, moment, settings.fetch.flag_after)
    t3 = time.monotonic()
    reports = []
    for (outcome, next_check), source in zip(saves, sources, strict=True):
        report = _report(outcome, fetched[source.name].elapsed, next_check)
        _log(report)
        reports.append(report)
    seconds["parse_match"] += t2 - t1
    seconds["store"] += t3 - t2
    return reports


def _spread_hosts(sources: list[Source]) -> list[Source]:
    """The sources in turn host by host (the first of each host, then the second, ...), so
    that a batch holds few of one host's: a host is fetched one request at a time, and a
    batch waits for its slowest host."""
    by_host: dict[str, list[Source]] = {}
    for source in sources:
        by_host.setdefault(urlsplit(source.url).netloc.lower(), []).append(source)
    queues = list(by_host.values())
    spread = []
    for turn in range(max((len(q) for q in queues), default=0)):
        spread += [q[turn] for q in queues if turn < len(q)]
    return spread


def _log_cycle(reports: Sequence[SourceReport], **seconds: float) -> None:
    fields = {
        "event": "cycle",
        "sources": len(reports),
        "new": sum(r.new for r in reports),
        "hits": sum(r.hits for r in reports),
        "errors": sum(1 for r in reports if r.error),
        **{f"{stage}_seconds": round(value, 3) for stage, value in seconds.items()},
    }
    log.info(
        "cycle: %d sources, %d new items, %d hits, %d errors "
        "(fetch %.2fs, parse+match %.2fs, store %.2fs)",
        fields["sources"], fields["new"], fields["hits"], fields["errors"],
        seconds["fetch"], seconds["parse_match"], seconds["store"],
        extra=fields,
    )  # fmt: skip


def sync_config(
    settings: Settings, store: Store, now: datetime, sources: Sequence[Source] | None = None
) -> None:
    """Bring the configured sources (or only these of them) and digests into the database
    (writes only changes)."""
    store.sync_sources(settings.sources if sources is None else sources)
    store.sync_digests([(d.name, d.first_hits(now)) for d in settings.digests])


def next_delay(
    source: Source,
    outcome: CycleOutcome,
    failures_before: int,
    limits: FetchSettings,
    retry_after: float | None,
    rng: random.Random,
) -> float:
    """Seconds until a source is due again: its interval, give or take the jitter (so sources
    added together do not stay in step); after a failure, the interval doubled for each
    failure in a row, capped at `backoff_max`; never sooner than the server's Retry-After."""
    spread = 1 + rng.uniform(-limits.jitter, limits.jitter) if limits.jitter else 1.0
    if outcome.error is None:
        return source.interval * spread
    cap = max(limits.backoff_max, source.interval)
    delay = min(source.interval * 2 ** min(failures_before, 32) * spread, cap)
    return max(delay, retry_after or 0.0)


def _to_read(
    sources: Sequence[Source],
    fetched: dict[str, FetchResult | FetchError],
    states: dict[str, FetchState],
) -> tuple[dict[str, CycleOutcome], list[tuple[FetchResult, Source, FetchState]]]:
    """The outcomes of sources with nothing to read (failed, 304, the same bytes), and the
    documents to read, each with the validators to keep."""
    outcomes: dict[str, CycleOutcome] = {}
    to_read: list[tuple[FetchResult, Source, FetchState]] = []
    for source in sources:
        result = fetched[source.name]
        previous = states.get(source.name, FetchState())
        if isinstance(result, FetchError):
            outcomes[source.name] = CycleOutcome(source.name, result.status, error=str(result))
        elif result.not_modified:
            outcomes[source.name] = CycleOutcome(source.name, 304, state=previous)
        else:
            digest = hashlib.sha256(result.body).hexdigest()[:32]
            state = FetchState(result.etag, result.last_modified, digest)
            if digest == previous.content_hash:  # same bytes as last time: nothing to parse
                outcomes[source.name] = CycleOutcome(source.name, result.status, state=state)
            else:
                to_read.append((result, source, state))
    return outcomes, to_read


def _dedupe_and_match(
    to_read: list[tuple[FetchResult, Source, FetchState]],
    reads: list[Read],
    store: Store,
    engine: Engine,
    outcomes: dict[str, CycleOutcome],
    limits: FetchSettings | None = None,
    memory: Politeness | None = None,
    stop: threading.Event | None = None,
    *,
    now: datetime,
) -> None:
    """Split every parsed document's items into new ones (matched) and ones already stored,
    with one batch of lookups for the whole cycle, then place the new ones in stories. With
    `limits`, a `fulltext` source's new items get their article text before they are
    matched."""
    documents = [
        (result, source, state, read.parsed, read.with_identities(), read)
        for (result, source, state), read in zip(to_read, reads, strict=True)
        if not isinstance(read, str)
    ]
    every = [pair for *_, pairs, _ in documents for pair in pairs]
    pruned = store.pruned_ids(i.id for i, _ in every)
    live = [(item, identity) for item, identity in every if item.id not in pruned]
    found_known = store.identify([i for i, _ in live], [identity for _, identity in live])
    known = found_known.copies
    cycle = Index()
    arrivals: list[tuple[str, Arrival]] = []  # (source, new item) in the order met
    for result, source, state, parsed, pairs, read in documents:
        _check_stop(stop)
        new_items, also_seen, keys = [], [], []
        identities: dict[str, Identity] = {}
        for item, identity in pairs:
            if item.id in pruned:  # stored long ago and pruned since: not news
                continue
            stored = known.get(item.id) or cycle.find(identity)
            if stored:
                also_seen.append((stored, item))
                # the copy's own GUID and link lead to the stored item from now on
                keys += [(k, stored) for k in identity.exact]
            else:
                new_items.append(item)
                identities[item.id] = identity
                cycle.add(identity)
                keys += [(k, item.id) for k in identity.keys]
        if source.fulltext and limits is not None and new_items:
            new_items = add_full_text(source, new_items, limits, memory, stop)
        max_text = limits.max_text if limits is not None else MAX_CHARS
        new_items = [clip_item(item, max_text) for item in new_items]  # what is stored
        if read.matched is not None:  # matched in a worker, on the same cut
            hits, relations = _matched(read, new_items)
        else:
            hits, relations = _match_all(engine, new_items, max_text, stop)
        found = _arrivals(new_items, identities, hits, read)
        arrivals += [(source.name, arrival) for arrival in found]
        keys += [(k, a.identity.text.id) for a in found for k in sorted(a.entities)]
        outcomes[source.name] = CycleOutcome(
            source=source.name,
            status=result.status,
            parsed=parsed,
            new_items=new_items,
            hits=hits,
            also_seen=also_seen,
            state=state,
            keys=keys,
            relations=relations,
        )
    _place_in_stories(arrivals, store, outcomes, now, found_known)


def _matched(
    read: Prepared, items: Sequence[Item]
) -> tuple[list[tuple[str, Hit]], list[tuple[str, Relation]]]:
    """The hits and relations a worker found for these of a document's items."""
    assert read.matched is not None
    by_id = {item.id: found for item, found in zip(read.items, read.matched, strict=True)}
    hits, relations = [], []
    for item in items:
        found, said = by_id[item.id]
        hits.extend((item.id, hit) for hit in found)
        relations.extend((item.id, relation) for relation in said)
    return hits, relations


def _arrivals(
    items: Sequence[Item],
    identities: dict[str, Identity],
    hits: Sequence[tuple[str, Hit]],
    read: Prepared,
) -> list[Arrival]:
    """New items as story assignment sees them; the actors the rules found are evidence
    of the same event. What each names comes from the worker that matched it, if one did."""
    found_by: dict[str, list[Hit]] = {}
    for item_id, hit in hits:
        found_by.setdefault(item_id, []).append(hit)
    named_by: dict[str, frozenset[str]] = {}
    if read.named is not None:
        named_by = {item.id: keys for item, keys in zip(read.items, read.named, strict=True)}
    found = []
    for item in items:
        actors = actors_of(found_by.get(item.id, []))
        named = named_by.get(item.id)
        if named is None:
            named = entity_keys(item, actors)
        found.append(Arrival(identities[item.id], actors, named))
    return found


def _place_in_stories(
    arrivals: list[tuple[str, Arrival]],
    store: Store,
    outcomes: dict[str, CycleOutcome],
    now: datetime,
    known: Known,
) -> None:
    """Each new item's story, in the order the cycle met them, with one lookup for all
    (the stored items alike in wording are those identity compared them with)."""
    if not arrivals:
        return
    lookup = store.story_lookup(now - OPEN_WINDOW, known)
    assigner = Assigner.for_cycle([a for _, a in arrivals], lookup, now)
    stories: dict[str, list[tuple[str, str]]] = {}
    for source, arrival in arrivals:
        story = assigner.assign(arrival)
        stories.setdefault(source, []).append((arrival.identity.text.id, story))
    for source, placed in stories.items():
        outcomes[source] = dataclasses.replace(outcomes[source], stories=placed)


class CycleAbandoned(Exception):
    """The service is stopping: the cycle ends here and nothing of it is stored (its sources
    are fetched again on the next start, as if this cycle never ran)."""


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise CycleAbandoned


def _match_all(
    engine: Engine, items: Sequence[Item], max_text: int, stop: threading.Event | None
) -> tuple[list[tuple[str, Hit]], list[tuple[str, Relation]]]:
    """Each item's hits and its actor – action – actor relations (one scan gives both)."""
    hits, relations = [], []
    for item in items:
        _check_stop(stop)  # a shutdown does not wait for a long document's matching
        found, said = engine.match_with_relations(item, max_text)
        hits.extend((item.id, hit) for hit in found)
        relations.extend((item.id, relation) for relation in said)
    return hits, relations


@dataclass(frozen=True)
class Preview:
    source: Source
    url: str  # after redirects
    status: int
    items: list[Item]
    with_text: int  # items whose article text was fetched
    why: dict[str, str] = field(default_factory=dict)  # auto page: address -> why it was kept


def preview(settings: Settings, source: Source, articles: int = 3) -> Preview:
    """Fetch and parse one source now, as a cycle would, and store nothing. For a `fulltext`
    source, the article text of the first `articles` items is fetched too. Raises FetchError
    or ParseError (e.g. "0 items parsed: ...") instead of recording them."""
    fetched = fetch_all([source_request(source)], settings.fetch)[source.name]
    if isinstance(fetched, FetchError):
        raise fetched
    items = _unique(normalise_all(source.name, parse(fetched, source)))
    with_text = 0
    if source.fulltext and articles > 0 and items:
        limited = replace(source, fulltext_max=min(articles, source.fulltext_max))
        before = [i.content for i in items]
        items = add_full_text(limited, items, settings.fetch)
        with_text = sum(1 for old, new in zip(before, items, strict=True) if old != new.content)
    why = {}
    if source.selectors is not None and source.selectors.auto:
        why = explain(fetched.body, fetched.url, fetched.content_type)
    return Preview(source, fetched.url, fetched.status, items, with_text, why)


def _unique(items: list[Item]) -> list[Item]:
    return [item for item, _ in unique_with(items)]


def _report(
    outcome: CycleOutcome, seconds: float, next_check: datetime | None = None
) -> SourceReport:
    return SourceReport(
        name=outcome.source,
        status=outcome.status,
        parsed=outcome.parsed,
        new=len(outcome.new_items),
        seen=len(outcome.also_seen),
        hits=len(outcome.hits),
        error=outcome.error,
        seconds=seconds,
        next_check=next_check,
    )


def _log(report: SourceReport) -> None:
    """One line per source per cycle; its fields are also attached for JSON logs."""
    fields = {
        "event": "source",
        "source": report.name,
        "status": report.status,
        "parsed": report.parsed,
        "new": report.new,
        "seen": report.seen,
        "hits": report.hits,
        "seconds": round(report.seconds, 3),
        "error": report.error,
        "next_check": iso(report.next_check) if report.next_check else None,
    }
    if report.error:
        retry = f"; next try {report.next_check:%Y-%m-%d %H:%M:%S}Z" if report.next_check else ""
        log.error(
            "source %s: failed (HTTP %s, %.2fs): %s%s",
            report.name,
            report.status or "-",
            report.seconds,
            report.error,
            retry,
            extra=fields,
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
            extra=fields,
        )
