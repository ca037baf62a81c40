"""APScheduler wiring only: a short tick polls the sources that are due (due-ness lives in
SQLite, so sources are rows, not jobs), each digest runs on its own cron schedule, and a
retention job prunes old items.

Ticks never overlap and missed runs are coalesced. The config and rule files are reloaded
when they change or on SIGHUP; a broken edit keeps the last good settings and is logged as
`file:line`. SIGINT/SIGTERM abandon fetches in flight (they are fetched again next time),
let a write in progress commit, close the database and exit. One service per database: a
lock file next to it turns a second `monitor run` away."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts import queue_alert
from monitor.clock import utcnow
from monitor.config import describe_error, load_settings
from monitor.deliver import deliver_pending, deliverer_for, send_digests
from monitor.errors import ConfigError, MonitorError, RuleError, StoreError
from monitor.fetch import Politeness
from monitor.health import (
    HealthServer,
    Metrics,
    beat_interval,
    max_tick_age,
    record_heartbeat,
)
from monitor.match import RuleWatcher
from monitor.notify import queue_pushes
from monitor.pipeline import poll, sync_config
from monitor.settings import DigestSettings, Settings
from monitor.signals import run_signals
from monitor.store import InstanceLock, ServerLock, StoreLocked, instance_lock, open_store
from monitor.store.postgres import masked
from monitor.workers import ParsePool

if TYPE_CHECKING:
    from monitor.tasks import Dispatcher

log = logging.getLogger(__name__)
DEFAULT_TICK_SECONDS = 30
MIN_TICK_SECONDS = 1  # a shorter tick would poll the database in a busy loop
DIGEST_RETRY = timedelta(minutes=1)  # a digest the database refused is tried again this soon


class Daemon:
    """The long-running service: holds the settings and the rules it keeps current."""

    def __init__(
        self,
        settings: Settings,
        tick_seconds: int = DEFAULT_TICK_SECONDS,
        health_port: int | None = None,
    ) -> None:
        if tick_seconds < MIN_TICK_SECONDS:
            raise ConfigError(f"tick of {tick_seconds}s: it must be at least {MIN_TICK_SECONDS}s")
        self.settings = settings
        self.tick_seconds = tick_seconds
        self.rules = RuleWatcher(settings.rules)
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self._lock = threading.Lock()  # guards settings and rules against the reload
        self._reload_lock = threading.Lock()  # the tick and SIGHUP may both try to reload
        self.scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1}
        )
        self.politeness = Politeness()  # per-host pacing and robots.txt, kept across ticks
        self.pool = ParsePool(ParsePool.size(settings.fetch.parse_workers))
        self.metrics = Metrics()
        self.last_tick = time.monotonic()  # the start counts as a tick for the health check
        self._config_stamp = file_stamp(settings.path)
        self._synced: Settings | None = None  # the settings last brought into the database
        self.health_address = ("127.0.0.1", health_port) if health_port else settings.health.address
        self.health: HealthServer | None = None
        self._beat: threading.Thread | None = None
        self._dispatcher: Dispatcher | None = None
        self.instance: InstanceLock | ServerLock | None = None  # held while run_forever runs
        self._leading_now = True

    def dispatcher(self) -> Dispatcher:
        """The task queue's producer, made when a broker is first configured (Celery is
        imported only then)."""
        if self._dispatcher is None:
            from monitor.tasks import Dispatcher

            self._dispatcher = Dispatcher()
        return self._dispatcher

    # -- jobs ------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> None:
        """Poll the due sources, queue an urgent alert when one is due, then send what the
        outbox holds: new alerts and digests whose delivery failed earlier."""
        self.reload()
        with self._lock:
            self.rules.refresh()
            engine, ruleset, settings = self.rules.engine, self.rules.ruleset, self.settings
        started = time.monotonic()
        with open_store(settings) as store:
            moment = now or utcnow()
            if settings is not self._synced:  # a tick reads and writes no config otherwise
                sync_config(settings, store, moment)
                self._synced = settings
            names = set(store.due_sources((s.name for s in settings.sources), moment))
            due = [s for s in settings.sources if s.name in names]
            if due and settings.queue.enabled:  # the workers poll them
                self.dispatcher().dispatch(settings, store, [s.name for s in due], moment)
            elif due:
                reports = poll(
                    settings,
                    store,
                    engine,
                    due,
                    now,
                    memory=self.politeness,
                    stop=self.stopping,
                    pool=self.pool,
                )
                self.metrics.observe_cycle(reports)
            run_signals(store, settings.signals)
            sending = not self.stopping.is_set() and self.leading()
            if settings.alerts is not None and sending:
                queue_alert(settings, store, ruleset, now)
            if settings.notify and sending:
                queue_pushes(settings, store, ruleset, now)
            if sending:
                deliver_pending(
                    store, deliverer_for(settings), now, self.stopping,
                    self.metrics.observe_delivery,
                )  # fmt: skip
            record_heartbeat(store, self.tick_seconds, settings.fetch.timeout, utcnow())
            self.metrics.observe_store(store.source_statuses(), store.outbox_state())
        self.last_tick = time.monotonic()
        self.metrics.ticks.inc()
        self.metrics.last_tick.set(time.time())
        self.metrics.tick_seconds.set(self.last_tick - started)

    def leading(self) -> bool:
        """Whether this scheduler is the one that sends: it holds the instance lock (on
        PostgreSQL a lost session loses it, and another scheduler may have it now)."""
        held = self.instance is None or self.instance.still_held()
        if held != self._leading_now:
            self._leading_now = held
            if held:
                log.warning("instance lock held again: sending digests and alerts")
            else:
                log.warning("instance lock lost to another scheduler: sending nothing")
        return held

    def digest(self, config: DigestSettings) -> None:
        """Send one digest now. If the database stays locked past the busy timeout, the
        digest is tried again a minute later rather than waiting for its next cron time."""
        with self._lock:
            ruleset, settings = self.rules.ruleset, self.settings
        if not self.leading():
            return
        try:
            with open_store(settings) as store:
                send_digests(settings, store, ruleset, [config.name], stop=self.stopping,
                             observe=self.metrics.observe_delivery)  # fmt: skip
                store.record_digest_run(config.name, utcnow())
        except StoreError as exc:
            retry = utcnow() + DIGEST_RETRY
            log.error("digest %s not sent, trying again at %s: %s", config.name, retry, exc)
            self.scheduler.add_job(
                self._guarded,
                DateTrigger(run_date=retry),
                args=[self.digest, config],
                id=f"retry:{config.name}",
                replace_existing=True,
            )

    def prune(self, now: datetime | None = None) -> int:
        """Delete items older than the retention age (items in digests are kept)."""
        now = now or utcnow()
        with self._lock:
            settings = self.settings
        with open_store(settings) as store:
            count = store.prune(now - timedelta(seconds=settings.retention.max_age), now)
        self.metrics.pruned.inc(count)
        log.info("retention: %d items older than %ds pruned", count, settings.retention.max_age)
        return count

    def _guarded(self, job, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            job(*args)
        except StoreError as exc:  # e.g. locked for longer than the busy timeout: next time
            log.error("job %s failed, retried on its next run: %s", job.__name__, exc)
        except Exception:  # a job that fails must not take the daemon down with it
            log.exception("job %s failed; the daemon keeps running", job.__name__)

    # -- reload ----------------------------------------------------------------------------

    def reload(self, force: bool = False) -> bool:
        """Take up an edited config file (and rules) if it changed, or always with `force`.
        A config that does not load leaves the running settings as they are."""
        with self._reload_lock:
            return self._reload(force)

    def _reload(self, force: bool) -> bool:
        stamp = file_stamp(self.settings.path)
        if stamp == self._config_stamp and not force:
            return False
        self._config_stamp = stamp
        try:
            settings = load_settings(self.settings.path)
        except ConfigError as exc:
            log.error(
                "config not reloaded, keeping the last good settings: %s",
                describe_error(self.settings.path, exc),
            )
            return False
        with self._lock:
            if settings.database != self.settings.database:
                log.warning("a new database path takes effect only after a restart")
                settings = replace(settings, database=self.settings.database)
            if settings.rules != self.settings.rules:
                try:
                    self.rules = RuleWatcher(settings.rules)
                except RuleError as exc:
                    for problem in exc.problems:
                        log.error("rules not reloaded, keeping the last good set: %s", problem)
                    settings = replace(settings, rules=self.settings.rules)
            elif force:
                self.rules.refresh(force=True)
            self.settings = settings
        if self.scheduler.running:
            self._schedule()
        log.info(
            "config reloaded: %d sources, %d digests", len(settings.sources), len(settings.digests)
        )
        return True

    # -- life cycle ------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        age = time.monotonic() - self.last_tick
        limit = max_tick_age(self.tick_seconds, self.settings.fetch.timeout)
        if age > limit:
            return False, f"last tick {age:.0f}s ago, more than {limit:.0f}s: stuck?"
        return True, f"ok: last tick {age:.0f}s ago"

    def _beat_forever(self) -> None:
        """Write that the service is alive, every half tick, on a thread of its own: a tick
        busy with slow fetches must not make a running service look stopped, and a stopped
        one must look stopped within two ticks."""
        while not self.stopping.wait(beat_interval(self.tick_seconds)):
            try:
                with open_store(self.settings) as store:
                    store.record_alive(utcnow(), self.tick_seconds, self.settings.fetch.timeout)
            except StoreError as exc:  # busy for now: the next beat will do
                log.debug("heartbeat not written: %s", exc)

    def _record_stop(self) -> None:
        try:
            with open_store(self.settings) as store:
                store.record_stopped(utcnow())
        except StoreError as exc:
            log.warning("could not record the stop (status will say so within two ticks): %s",
                        exc)  # fmt: skip

    def _schedule(self) -> None:
        """(Re)create the digest and retention jobs from the current settings."""
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest:") or job.id == "retention":
                job.remove()
        for config in self.settings.digests:
            self.scheduler.add_job(
                self._guarded,
                config.trigger(),
                args=[self.digest, config],
                id=f"digest:{config.name}",
            )
            log.info("digest %s scheduled: %s %s", config.name, config.schedule, config.timezone)
        retention = self.settings.retention
        self.scheduler.add_job(
            self._guarded,
            CronTrigger.from_crontab(retention.schedule, timezone=UTC),
            args=[self.prune],
            id="retention",
        )

    def _catch_up(self, now: datetime | None = None) -> None:
        """Send, once, each digest whose scheduled time passed while the service was down
        (at most its `catch_up` ago; older misses wait for the next run)."""
        now = now or utcnow()
        with open_store(self.settings) as store:
            last_runs = {d.name: store.last_digest_run(d.name) for d in self.settings.digests}
        for config in self.settings.digests:
            missed = missed_run(config, last_runs[config.name], now)
            if missed is None:
                continue
            log.info("digest %s: the run due at %s was missed; sending it now", config.name,
                     missed.isoformat())  # fmt: skip
            self.scheduler.add_job(
                self._guarded,
                DateTrigger(run_date=now),
                args=[self.digest, config],
                id=f"catch-up:{config.name}",
                replace_existing=True,
            )

    def _check_storage(self, lock: InstanceLock | ServerLock) -> None:
        """Take the instance lock and prove the database and outbox writable before the
        first tick, so a wrong path stops the service with one clear line."""
        try:
            lock.acquire()
            with open_store(self.settings) as store:
                store.record_start(utcnow())
                # the start counts as a tick, and clears the last run's stop record
                store.record_heartbeat(utcnow(), self.tick_seconds, self.settings.fetch.timeout)
                store.record_alive(utcnow(), self.tick_seconds, self.settings.fetch.timeout)
        except StoreLocked as exc:  # busy, not broken: the ticks will get their turn
            log.warning("database busy at start, carrying on: %s", exc)
        except StoreError as exc:
            lock.release()
            raise _unusable(exc) from None
        outbox = self.settings.outbox
        if self.settings.smtp is None and not _writable_folder(outbox):
            lock.release()
            raise ConfigError(f"{self.settings.path}: monitor.outbox: {outbox} is not a folder "
                              "this service can write")  # fmt: skip

    def start_health(self) -> None:
        """Serve /healthz and /metrics, if an address is configured."""
        if self.health_address is None or self.health is not None:
            return
        try:
            self.health = HealthServer(self.health_address, self.healthy, self.metrics)
        except OSError as exc:
            host, port = self.health_address
            raise MonitorError(f"cannot serve the health endpoint on {host}:{port}: {exc}") from exc
        self.health.start()

    def start(self) -> None:
        self.start_health()
        self.scheduler.add_job(
            self._guarded,
            IntervalTrigger(seconds=self.tick_seconds),
            args=[self.tick],
            id="tick",
            next_run_time=utcnow(),
        )
        self._schedule()
        self._catch_up()
        self.scheduler.start()
        self._beat = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)
        self._beat.start()
        log.info(
            "monitor running: %d sources, %d rules, tick every %ds, database %s%s",
            len(self.settings.sources),
            len(self.rules.ruleset.rules),
            self.tick_seconds,
            masked(str(self.settings.database)),
            f", polled by the workers of {self.settings.queue.shown}"
            if self.settings.queue.enabled else "",
        )  # fmt: skip

    def stop(self) -> None:
        log.info("stopping: abandoning fetches in flight, waiting for writes to finish")
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self._beat is not None:
            self._beat.join()
            self._beat = None
            self._record_stop()
        self.pool.close()
        if self.health is not None:
            self.health.stop()
            self.health = None
        log.info("stopped")

    def run_forever(self) -> None:
        """Start, block until SIGINT/SIGTERM, then stop cleanly. SIGHUP reloads the config
        and rules. Refuses to start while another service holds this database."""
        # the handlers first: the start is recorded (and seen by `status`) before the first
        # tick, and a signal sent as soon as it shows must not meet the default action
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())
        lock = instance_lock(self.settings.database, self.settings.busy_timeout)
        self._check_storage(lock)
        self.instance = lock
        try:
            self.start()
            try:
                while not self.stopping.wait(0.5):
                    if self.reload_requested.is_set():
                        self.reload_requested.clear()
                        log.info("SIGHUP: reloading config and rules")
                        self.reload(force=True)
            finally:
                self.stop()
        finally:
            lock.release()


def _unusable(exc: StoreError) -> MonitorError:
    """A database, lock file or outbox the service cannot use at start is a configuration
    problem (exit 2, which the systemd unit does not restart); another service already
    running on the database is not."""
    if "already running" in str(exc):
        return exc
    return ConfigError(str(exc))


def missed_run(config: DigestSettings, last_run: datetime | None, now: datetime) -> datetime | None:
    """The latest scheduled time of this digest after `last_run` and no later than now, if
    it lies within the digest's `catch_up` grace; None when nothing is to be caught up (or
    the digest never ran: a new digest waits for its first scheduled time)."""
    if last_run is None or not config.catch_up:
        return None
    trigger = config.trigger()
    start = max(last_run, now - timedelta(seconds=config.catch_up)) + timedelta(seconds=1)
    found = None
    moment = trigger.get_next_fire_time(None, start)
    while moment is not None and moment <= now:
        found = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return found


def _writable_folder(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK)


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
