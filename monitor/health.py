"""How the running service is doing, for its operator: a heartbeat check (`monitor status
--check`, the Docker HEALTHCHECK), and an optional HTTP endpoint on 127.0.0.1 that serves
`/healthz` (200 when the last tick is recent, 503 otherwise) and Prometheus `/metrics`."""

from __future__ import annotations

import logging
import platform
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from monitor import __version__
from monitor.clock import iso, utcnow
from monitor.models import SourceStatus
from monitor.store import Store

log = logging.getLogger(__name__)


def max_tick_age(tick_seconds: float, timeout: float) -> float:
    """How old the last finished tick may be before the service counts as stuck: a few
    ticks, plus room for a slow cycle to finish its fetches."""
    return max(120.0, 3 * tick_seconds + 3 * timeout)


def beat_interval(tick_seconds: float) -> float:
    """How often the running service writes that it is alive: twice a tick, so one beat
    lost to a busy database does not make it look stopped."""
    return max(0.5, tick_seconds / 2)


def max_beat_age(tick_seconds: float) -> float:
    """A service silent for two ticks (plus a little for a busy database) is not running."""
    return 2 * tick_seconds + BEAT_SLACK


BEAT_SLACK = 5.0  # seconds: a beat waits at most this long for a busy database


def heartbeat_check(store: Store, now: datetime | None = None) -> tuple[bool, str]:
    """Whether a `monitor run` on this database is alive and ticking, with a one-line
    reason: stopped (cleanly, or silent for two ticks), stuck in a tick, or ok."""
    beat = store.heartbeat()
    if beat is None or beat.alive_at is None:
        return False, "no tick recorded: is `monitor run` running on this database?"
    now = now or utcnow()
    if beat.stopped_at is not None and beat.stopped_at >= beat.alive_at:
        return False, f"stopped at {iso(beat.stopped_at)}"
    silent = (now - beat.alive_at).total_seconds()
    if silent > max_beat_age(beat.tick_seconds):
        return False, (
            f"no heartbeat for {silent:.0f}s (since {iso(beat.alive_at)}), more than two "
            f"ticks of {beat.tick_seconds:g}s: not running"
        )
    if beat.last_tick is None:
        return True, "running, first tick not finished yet"
    age = (now - beat.last_tick).total_seconds()
    limit = max_tick_age(beat.tick_seconds, beat.timeout)
    if age > limit:
        return (
            False,
            f"running, but the last tick finished {age:.0f}s ago (more than {limit:.0f}s): stuck?",
        )
    return True, f"last tick {age:.0f}s ago (at {iso(beat.last_tick)})"


def record_heartbeat(store: Store, tick_seconds: float, timeout: float, now: datetime) -> None:
    store.record_heartbeat(now, tick_seconds, timeout)


FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)  # seconds per fetch

# One sample per counter, not two: the `_created` series doubles what a scraper stores and
# no dashboard reads it.
disable_created_metrics()


class Metrics:
    """The service's Prometheus metrics, in a registry of its own: `news_monitor_*` for the
    service, plus the standard `process_*` and `python_info` series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("news_monitor_build", "The running version.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.ticks = Counter("news_monitor_ticks", "Scheduler ticks run.", registry=r)
        self.last_tick = Gauge(
            "news_monitor_last_tick_timestamp_seconds", "When the last tick finished.", registry=r
        )
        self.tick_seconds = Gauge(
            "news_monitor_last_tick_duration_seconds", "How long the last tick took.", registry=r
        )
        self.fetches = Counter(
            "news_monitor_fetches", "Source fetches by outcome.", ["outcome"], registry=r
        )
        self.fetch_seconds = Histogram(
            "news_monitor_fetch_duration_seconds",
            "Time to fetch one source (connect to last byte).",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.new_items = Counter("news_monitor_new_items", "New items stored.", registry=r)
        self.hits = Counter("news_monitor_hits", "Rule hits stored.", registry=r)
        self.pruned = Counter(
            "news_monitor_pruned_items", "Items removed by retention.", registry=r
        )
        self.deliveries = Counter(
            "news_monitor_deliveries",
            "Delivery attempts of digests and alerts by outcome "
            "(sent, retry: failed for now, failed: for good, abandoned: at shutdown).",
            ["outcome"],
            registry=r,
        )
        self.sources = Gauge(
            "news_monitor_sources", "Configured sources by state.", ["state"], registry=r
        )
        self.outbox = Gauge(
            "news_monitor_outbox_messages", "Messages in the outbox by state.", ["state"],
            registry=r,
        )  # fmt: skip

    def observe_cycle(self, reports: Sequence[Any]) -> None:
        for report in reports:
            if report.error:
                outcome = "error"
            elif report.status == 304:
                outcome = "not_modified"
            else:
                outcome = "ok"
            self.fetches.labels(outcome).inc()
            self.fetch_seconds.observe(report.seconds)
            self.new_items.inc(report.new)
            self.hits.inc(report.hits)

    def observe_delivery(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()

    def observe_store(self, sources: Sequence[SourceStatus], outbox: dict[str, int]) -> None:
        states = {"ok": 0, "failing": 0, "flagged": 0}
        for source in sources:
            states["ok" if source.state == "new" else source.state] += 1
        for state, count in states.items():
            self.sources.labels(state).set(count)
        for state, count in outbox.items():
            self.outbox.labels(state).set(count)


MAX_CONNECTIONS = 8  # scrapers and health checks at once; more are turned away at once
IDLE_TIMEOUT = 5.0  # seconds a connection may sit without sending its request


class _BoundedServer(ThreadingHTTPServer):
    """One thread per connection, but at most MAX_CONNECTIONS of them: a client opening
    connections and leaving them idle gets its extras closed, not a thread each."""

    daemon_threads = True
    request_queue_size = 64  # accepted (and then served or turned away) rather than left waiting

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0  # connections turned away because every slot was taken

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class HealthServer:
    """`/healthz` and `/metrics` over HTTP (GET and HEAD only), served from a thread of the
    daemon; bounded connections, idle ones timed out."""

    def __init__(
        self,
        address: tuple[str, int],
        healthy: Callable[[], tuple[bool, str]],
        metrics: Metrics,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = idle_timeout  # an idle or trickling client is dropped after this

            def do_GET(self) -> None:
                self._reply(*self._answer())

            def do_HEAD(self) -> None:
                status, kind, body = self._answer()
                self._reply(status, kind, body, with_body=False)

            def _answer(self) -> tuple[int, str, bytes]:
                path = self.path.split("?")[0]
                if path == "/healthz":
                    ok, reason = healthy()
                    return 200 if ok else 503, "text/plain", f"{reason}\n".encode()
                if path == "/metrics":
                    return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)
                return 404, "text/plain", b"try /healthz or /metrics\n"

            def _reply(self, status: int, kind: str, body: bytes, with_body: bool = True) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a scrape every few seconds is not worth a log line

        self.httpd = _BoundedServer(address, Handler)
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("health endpoint on http://%s:%d/healthz and /metrics", *self.address)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
