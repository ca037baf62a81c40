"""APScheduler wiring only: a short tick polls the sources that are due (due-ness lives in
SQLite, so sources are rows, not jobs), and each digest runs on its own cron schedule.

Ticks never overlap and missed runs are coalesced. SIGINT/SIGTERM stop the scheduler after
the job in flight finishes."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts import queue_alert
from monitor.config import DigestSettings, Settings
from monitor.deliver import deliver_pending, deliverer_for, send_digests
from monitor.match import RuleWatcher
from monitor.pipeline import poll
from monitor.store import Store, utcnow

log = logging.getLogger(__name__)
DEFAULT_TICK_SECONDS = 30


class Daemon:
    """The long-running service: holds the settings and the rules it keeps current."""

    def __init__(self, settings: Settings, tick_seconds: int = DEFAULT_TICK_SECONDS) -> None:
        self.settings = settings
        self.tick_seconds = tick_seconds
        self.rules = RuleWatcher(settings.rules)
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # the tick and the digests share the rule watcher
        self.scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1}
        )

    def tick(self, now: datetime | None = None) -> None:
        """Poll the due sources, queue an urgent alert when one is due, then send what the
        outbox holds: new alerts and digests whose delivery failed earlier."""
        with self._lock:
            self.rules.refresh()
            engine = self.rules.engine
            ruleset = self.rules.ruleset
        store = Store(self.settings.database)
        try:
            store.sync_sources(self.settings.sources)
            names = store.due_sources((s.name for s in self.settings.sources), now or utcnow())
            due = [s for s in self.settings.sources if s.name in set(names)]
            if due:
                poll(self.settings, store, engine, due, now)
            if self.settings.alerts is not None:
                queue_alert(self.settings, store, ruleset, now)
            deliver_pending(store, deliverer_for(self.settings), now)
        finally:
            store.close()

    def digest(self, config: DigestSettings) -> None:
        with self._lock:
            ruleset = self.rules.ruleset
        store = Store(self.settings.database)
        try:
            send_digests(self.settings, store, ruleset, [config.name])
        finally:
            store.close()

    def _guarded(self, job, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            job(*args)
        except Exception:  # a job that fails must not take the daemon down with it
            log.exception("job %s failed; the daemon keeps running", job.__name__)

    def start(self) -> None:
        self.scheduler.add_job(
            self._guarded,
            IntervalTrigger(seconds=self.tick_seconds),
            args=[self.tick],
            id="tick",
            next_run_time=utcnow(),
        )
        for config in self.settings.digests:
            self.scheduler.add_job(
                self._guarded,
                config.trigger(),
                args=[self.digest, config],
                id=f"digest:{config.name}",
            )
            log.info("digest %s scheduled: %s %s", config.name, config.schedule, config.timezone)
        self.scheduler.start()
        log.info(
            "monitor running: %d sources, %d rules, tick every %ds, database %s",
            len(self.settings.sources),
            len(self.rules.ruleset.rules),
            self.tick_seconds,
            self.settings.database,
        )

    def stop(self) -> None:
        log.info("stopping: waiting for running jobs to finish")
        self.scheduler.shutdown(wait=True)
        log.info("stopped")

    def run_forever(self) -> None:
        """Start, block until SIGINT/SIGTERM, then stop cleanly."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        try:
            while not self.stopping.wait(1.0):
                pass
        finally:
            self.stop()
