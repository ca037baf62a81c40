"""The task queue (`[queue] broker`): the scheduler leases the sources that are due and queues
them, a batch per task; `monitor worker` processes poll them with the usual pipeline.

Exactly once, as far as a queue allows: a task is acknowledged only when its sources were
polled and stored (`task_acks_late`), so a worker killed mid-task leaves it to be delivered
again (at once on AMQP, after the visibility timeout on Redis, which is the lease) and a
child process lost in the prefork pool has its task put back (`task_reject_on_worker_lost`);
each worker reserves one task at a time (`worker_prefetch_multiplier`). A task done twice
stores nothing twice: each take-in dedupes against the database inside one write
transaction (`pipeline.poll(shared=True)`), and items and hits are inserted on unique keys.
Messages are JSON (source names), never pickle, and no result backend is kept: what a task
did is in the database and the logs."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache

from celery import Celery, Task
from kombu.exceptions import OperationalError

from monitor.config import describe_error, load_settings
from monitor.errors import ConfigError, StoreError
from monitor.fetch import Politeness
from monitor.match import RuleWatcher
from monitor.pipeline import poll
from monitor.scheduler import file_stamp
from monitor.settings import QueueSettings, Settings
from monitor.store import Store, open_store

log = logging.getLogger(__name__)
TASK = "monitor.poll_sources"
STORE_RETRY_SECONDS = 10  # a task the database refused is queued again this much later
# A broker that does not answer fails a publish in about a second, not after Celery's minute
# of retries: the tick has digests and alerts to get on with, and the next tick tries again.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 0.5}


@lru_cache(maxsize=4)
def make_app(queue: QueueSettings) -> Celery:
    """A Celery app for this broker and queue, with the poll task registered."""
    app = Celery("monitor", broker=queue.broker, set_as_current=False)
    app.conf.update(
        task_default_queue=queue.name,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis gives an unacknowledged task to another worker after this long: the lease,
        # after which the scheduler would queue the sources again anyway.
        broker_transport_options={"visibility_timeout": queue.lease, "socket_connect_timeout": 5},
        broker_connection_timeout=5,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for its broker for good
        worker_hijack_root_logger=False,  # the project's log format (text or JSON) stays
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    app.task(name=TASK, bind=True, acks_late=True)(poll_task)
    return app


# -- the producer: the scheduler's side --------------------------------------------------


class Dispatcher:
    """Queues due sources for the workers, and says once when the broker goes away and once
    when it is back (a tick in between logs nothing more)."""

    def __init__(self) -> None:
        self.unreachable = False

    def dispatch(self, settings: Settings, store: Store, names: list[str], now: datetime) -> int:
        """Lease the due sources among `names` and queue them, `batch` to a task; the number
        queued. Leases of sources that could not be queued are given back."""
        queue = settings.queue
        until = now + timedelta(seconds=queue.lease)
        leased = store.lease_due_sources(names, now, until)
        sent = 0
        try:
            app = make_app(queue)
            with app.producer_or_acquire() as producer:
                for first in range(0, len(leased), queue.batch):
                    part = leased[first : first + queue.batch]
                    app.send_task(TASK, args=[part], queue=queue.name, producer=producer,
                                  retry=True, retry_policy=PUBLISH_RETRY)  # fmt: skip
                    sent += len(part)
        except (OperationalError, OSError) as exc:
            store.release_sources(leased[sent:], until, now)
            self._down(queue, exc, len(leased) - sent)
            return sent
        if self.unreachable:
            log.warning("broker %s reachable again: queueing sources", queue.shown)
            self.unreachable = False
        if leased:
            log.info("queued %d sources in %d tasks on %s", len(leased),
                     -(-len(leased) // queue.batch), queue.shown)  # fmt: skip
        return sent

    def _down(self, queue: QueueSettings, exc: BaseException, waiting: int) -> None:
        if not self.unreachable:
            reason = str(exc).replace(queue.broker, queue.shown) or type(exc).__name__
            log.error("broker %s unreachable, %d sources wait until it is back: %s",
                      queue.shown, waiting, reason)  # fmt: skip
        self.unreachable = True


# -- the consumer: `monitor worker` ------------------------------------------------------


class WorkerState:
    """What a worker process keeps between tasks: the settings and rules (reloaded when
    their files change) and politeness (robots.txt, each host's crawl delay)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stamp = file_stamp(settings.path)
        self.rules = RuleWatcher(settings.rules)
        self.politeness = Politeness()

    def current(self) -> Settings:
        stamp = file_stamp(self.settings.path)
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                self.settings = replace(load_settings(self.settings.path),
                                        database=self.settings.database)  # fmt: skip
                log.info("config reloaded: %d sources", len(self.settings.sources))
            except ConfigError as exc:
                log.error("config not reloaded, keeping the last good settings: %s",
                          describe_error(self.settings.path, exc))  # fmt: skip
        self.rules.refresh()
        return self.settings


_state: WorkerState | None = None  # set by run_worker; forked pool processes inherit it


def poll_task(task: Task, names: list[str]) -> dict[str, int]:
    """Poll these sources through the pipeline, as `monitor run` would, in a database other
    workers share: per-host turns in the database, each take-in one write transaction."""
    assert _state is not None, "poll_task runs in `monitor worker` only"
    settings = _state.current()
    known = {source.name: source for source in settings.sources}
    sources = [known[name] for name in names if name in known]
    if len(sources) < len(names):  # left to their lease: a reloaded scheduler drops them
        log.warning("task names %d sources this config does not have", len(names) - len(sources))
    # the workers are the parallelism; a pool of parse processes in each would oversubscribe
    serial = replace(settings, fetch=replace(settings.fetch, parse_workers=1))
    try:
        with open_store(settings) as store:
            _state.politeness.shared = store
            reports = poll(serial, store, _state.rules.engine, sources,
                           memory=_state.politeness, shared=True)  # fmt: skip
    except StoreError as exc:
        log.error("database unavailable, %d sources queued again in %ds: %s",
                  len(names), STORE_RETRY_SECONDS, exc)  # fmt: skip
        raise task.retry(countdown=STORE_RETRY_SECONDS, max_retries=None) from None
    finally:
        _state.politeness.shared = None
    return {"sources": len(reports), "new": sum(r.new for r in reports)}


def run_worker(settings: Settings, pool: str, concurrency: int) -> int:
    """Consume the configured queue until SIGTERM (finish the task under way) or SIGQUIT;
    the worker's exit status."""
    global _state
    queue = settings.queue
    if not queue.enabled:
        example = 'broker = "redis://127.0.0.1:6379/0"'
        raise ConfigError(f"{settings.path}: queue.broker: not set (`monitor worker` takes "
                          f"its tasks from a broker, e.g. {example})")  # fmt: skip
    _state = WorkerState(settings)
    _quiet_reconnects()
    app = make_app(queue)
    worker = app.Worker(
        pool_cls=pool,
        concurrency=concurrency,
        queues=[queue.name],
        hostname=f"monitor-{os.getpid()}@{socket.gethostname()}",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        quiet=True,
        loglevel=logging.getLogger().level,
    )
    log.info("worker: %s pool of %d, queue %s on %s, database %s", pool, concurrency,
             queue.name, queue.shown, settings.database)  # fmt: skip
    worker.start()
    return int(worker.exitcode or 0)


class _OneLine(logging.Filter):
    """A lost broker connection as one line: Celery logs a traceback with it, and then one
    line a retry while the broker stays away."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({record.exc_info[1]})"
            record.args = None
            record.exc_info = None
        return True


def _quiet_reconnects() -> None:
    for name in ("celery.worker.consumer.consumer", "celery.worker.consumer.connection"):
        logging.getLogger(name).addFilter(_OneLine())
