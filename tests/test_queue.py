"""The task queue with real parts: Redis (or RabbitMQ) on 127.0.0.1, a scheduler and `monitor
worker` processes on one SQLite file, feeds served by loopback HTTP servers (one port = one
host), mail to an aiosmtpd server. Skipped, saying why, when the broker is not running
(NM_REQUIRE_SERVICES=1 makes that a failure)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    RABBITMQ,
    REDIS,
    FeedServer,
    Response,
    farm_limits,
    make_rss,
    require_service,
    settled,
    write_config,
)
from mailtools import parts
from services import CutProxy, database_of
from test_service_daemon import query, wait_for
from test_service_operations import monitor

from monitor.config import describe_error, load_settings
from monitor.errors import ConfigError, FetchError
from monitor.fetch import Politeness, Request, fetch_all
from monitor.store import Store

# -- configuration ---------------------------------------------------------------------------

pytestmark = pytest.mark.usefixtures("both_stores")


def queue_config(tmp_path: Path, queue: str, sources: list[dict] | None = None, **kw) -> Path:
    return write_config(tmp_path, sources or [], extra=f"[queue]\n{textwrap.dedent(queue)}", **kw)


def test_queue_settings_default_to_no_broker(tmp_path):
    settings = load_settings(write_config(tmp_path, []))
    assert not settings.queue.enabled and settings.queue.broker == ""
    queue = settings.queue
    assert (queue.name, queue.batch, queue.lease) == ("monitor", 50, 1800)


def test_queue_settings_are_read_and_the_environment_wins(tmp_path, monkeypatch):
    config = queue_config(tmp_path, """
        broker = "redis://:s3cret@127.0.0.1:6379/0"
        name = "balkans"
        batch = 20
        lease = "5m"
    """)  # fmt: skip
    queue = load_settings(config).queue
    assert (queue.broker, queue.name, queue.batch, queue.lease) == (
        "redis://:s3cret@127.0.0.1:6379/0", "balkans", 20, 300)  # fmt: skip
    assert queue.shown == "redis://:***@127.0.0.1:6379/0" and "s3cret" not in queue.shown
    monkeypatch.setenv("MONITOR_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
    queue = load_settings(config).queue
    assert queue.broker == "amqp://guest:guest@127.0.0.1:5672//"
    assert queue.shown == "amqp://guest:***@127.0.0.1:5672//"


@pytest.mark.parametrize(
    ("queue", "line", "message"),
    [
        ('broker = "redis://127.0.0.1/0"\nprefetch = 4', 2, "queue.prefetch: unknown setting"),
        ('broker = "http://user:pw@host/"', 1, "expected a redis:// or amqp:// address"),
        ("broker = 6379", 1, "queue.broker: expected text"),
        ("batch = 0", 1, "queue.batch: expected 1 to 1000 sources per task"),
        ('lease = "soon"', 1, "queue.lease: expected a duration"),
        ('name = "a queue"', 1, "queue.name: expected a name"),
    ],
)
def test_queue_setting_errors_name_file_and_line(tmp_path, queue, line, message):
    config = queue_config(tmp_path, queue)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    described = describe_error(config, caught.value)
    header = config.read_text("utf-8").splitlines().index("[queue]") + 1
    assert described.startswith(f"{config}:{header + line}: ") and message in described
    assert "pw@" not in described  # a password in a wrong address is not repeated


def test_status_names_the_broker_without_its_password(tmp_path):
    config = queue_config(tmp_path, 'broker = "redis://:s3cret@127.0.0.1:6379/3"')
    done = monitor(config, "status")
    assert done.returncode == 0, done.stderr
    assert "queue: redis://:***@127.0.0.1:6379/3: sources are polled by the workers" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr
    shown = json.loads(monitor(config, "status", "--json").stdout)["queue"]
    assert shown == "redis://:***@127.0.0.1:6379/3"
    plain = write_config(tmp_path, [])
    assert "queue:" not in monitor(plain, "status").stdout


def test_worker_without_a_broker_is_a_config_error(tmp_path):
    config = write_config(tmp_path, [])
    done = monitor(config, "worker")
    assert done.returncode == 2
    assert "queue.broker: not set" in done.stderr and "Traceback" not in done.stderr


# -- the shared host gate --------------------------------------------------------------------


def test_host_gate_is_one_claim_at_a_time_across_connections(tmp_path):
    db = database_of(tmp_path)
    with Store(db) as one, Store(db) as two:
        assert one.claim_host("a.example", 100.0, 130.0) is None
        assert two.claim_host("a.example", 101.0, 131.0) == (29.0, 0.0)  # busy, not resting
        assert two.claim_host("b.example", 101.0, 131.0) is None  # other hosts are free
        two.release_host("a.example", 999.0, 200.0)  # not its claim: changes nothing
        assert two.claim_host("a.example", 102.0, 132.0) == (28.0, 0.0)
        one.release_host("a.example", 130.0, 105.0)  # done; the host rests until 105
        assert two.claim_host("a.example", 103.0, 133.0) == (0.0, 2.0)
        assert two.claim_host("a.example", 105.0, 135.0) is None
        # a claim that is never released (its worker died) runs out by itself
        assert one.claim_host("a.example", 134.0, 164.0) == (1.0, 0.0)
        assert one.claim_host("a.example", 135.0, 165.0) is None


def test_a_retry_after_keeps_every_worker_off_the_host(tmp_path, feed_server):
    """One worker is told to come back in two minutes; another, on its own connection to
    the database, does not ask that host at all, and its source waits as long. A poll
    without a shared gate (`monitor once`, `monitor run`) is not held back."""
    feed_server.routes["/busy.xml"] = Response(503, b"busy", {"Retry-After": "120"})
    feed_server.routes["/other.xml"] = Response(200, make_rss("other", range(1)))
    limits = farm_limits(feed_server)
    with Store(tmp_path / "gates.db") as one, Store(tmp_path / "gates.db") as two:
        told = fetch_all([Request("a", feed_server.url("busy.xml"))], limits, Politeness(one))
        held = fetch_all([Request("b", feed_server.url("other.xml"))], limits, Politeness(two))
    assert isinstance(told["a"], FetchError) and told["a"].retry_after == 120
    assert isinstance(held["b"], FetchError) and "asked to be left alone for" in str(held["b"])
    assert 110 < (held["b"].retry_after or 0) <= 120
    assert feed_server.hits("/other.xml") == 0
    alone = fetch_all([Request("c", feed_server.url("other.xml"))], limits, Politeness())
    assert not isinstance(alone["c"], FetchError) and feed_server.hits("/other.xml") == 1


# -- processes -------------------------------------------------------------------------------


def start_worker(config: Path, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "monitor", "worker", "--pool", "solo", *args],
                            stdout=out, stderr=out, env=env, stdin=subprocess.DEVNULL)  # fmt: skip


# The scheduler as `monitor run` runs it, in a process of its own; a line "digest" on its
# standard input sends the first digest now (its cron time would be hours away), as its job
# would; the end of the input stops it.
SCHEDULER = """
import sys, threading
from monitor.cli.common import setup_logging
from monitor.config import load_settings
from monitor.scheduler import Daemon

setup_logging("info", "text")
settings = load_settings(sys.argv[1])
daemon = Daemon(settings, tick_seconds=1)

def commands():
    for line in sys.stdin:
        if line.strip() == "digest":
            daemon.digest(settings.digests[0])
            print("digest done", file=sys.stderr, flush=True)
    daemon.stopping.set()

threading.Thread(target=commands, daemon=True).start()
daemon.run_forever()
"""


def start_scheduler(config: Path, log: Path) -> subprocess.Popen:
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-c", SCHEDULER, str(config)], stdin=subprocess.PIPE,
                            stdout=out, stderr=out, text=True)  # fmt: skip


def in_task(log: Path) -> bool:
    """The worker writing this log has taken a task and not finished it."""
    text = log.read_text("utf-8")
    return text.count("] received") > text.count("] succeeded")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a farm of hosts -------------------------------------------------------------------------


@pytest.fixture
def farm() -> Iterator[list[FeedServer]]:
    """Ten loopback servers: ten hosts, as per-host politeness counts them."""
    servers = [FeedServer() for _ in range(10)]
    threads = [threading.Thread(target=s.httpd.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield servers
    for server in servers:
        server.httpd.shutdown()
        server.httpd.server_close()


def publish(servers: list[FeedServer], feeds: int, items: int, delay: float,
            hitting: int = 0) -> tuple[list[dict], list[str]]:  # fmt: skip
    """`feeds` feeds of `items` numbered items, spread over the servers; the first `hitting`
    feeds are about Kosovo (their items hit the test rules), the rest about the weather.
    The sources, and every guid served."""
    sources, guids = [], []
    for number in range(feeds):
        server = servers[number % len(servers)]
        name = f"kosovo-{number}" if number < hitting else f"weather-{number}"
        server.routes[f"/{name}.xml"] = Response(200, make_rss(name, range(items)), delay=delay)
        sources.append({"name": name, "url": server.url(f"/{name}.xml"), "interval": "1h"})
        guids += [f"{name}-{n}" for n in range(items)]
    return sources, sorted(guids)


def most_at_once(server: FeedServer) -> int:
    """The most requests this host was serving at the same moment."""
    events = sorted([(start, 1) for _, start, _ in server.timeline]
                    + [(end, -1) for _, _, end in server.timeline])  # fmt: skip
    level = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        level += step
        peak = max(peak, level)
    return peak


def shortest_gap(server: FeedServer) -> float:
    spans = sorted((start, end) for _, start, end in server.timeline)
    return min((b[0] - a[1] for a, b in itertools.pairwise(spans)), default=9.9)


def queue_extra(broker: str, lease: str = "15s", batch: int = 50) -> str:
    return f"""
        [queue]
        broker = "{broker}"
        name = "test-{uuid.uuid4().hex[:12]}"
        batch = {batch}
        lease = "{lease}"
    """


# -- end to end ------------------------------------------------------------------------------

FEEDS, ITEMS, HITTING = 500, 4, 10


def test_scheduler_and_two_workers_one_killed_store_everything_once(
    tmp_path, farm, redis_broker, smtp_server
):
    sources, expected = publish(farm, FEEDS, ITEMS, delay=0.01, hitting=HITTING)
    config = write_config(tmp_path, sources, smtp=smtp_server, fetch={"jitter": 0},
                          extra=queue_extra(redis_broker))  # fmt: skip
    db = database_of(tmp_path)
    started = time.monotonic()
    scheduler = start_scheduler(config, tmp_path / "scheduler.log")
    workers = [start_worker(config, tmp_path / f"worker{n}.log") for n in range(2)]
    try:
        count = "SELECT count(*) FROM items"
        wait_for(lambda: (query(db, count) or [(0,)])[0][0] >= len(expected) // 10, "a tenth")
        wait_for(lambda: in_task(tmp_path / "worker0.log"), "the first worker in a task")
        workers[0].kill()  # SIGKILL, in the middle of a task
        workers[0].wait(timeout=10)
        stored = "SELECT guid FROM items ORDER BY guid"
        wait_for(lambda: [g for (g,) in query(db, stored)] == expected, "every item stored")
        seconds = time.monotonic() - started
        scheduler.stdin.write("digest\n")
        scheduler.stdin.flush()
        wait_for(lambda: len(smtp_server.inbox.envelopes) >= 1, "the digest")
    finally:
        if scheduler.stdin:
            scheduler.stdin.close()
        stop([*workers, scheduler])
    assert scheduler.returncode == 0
    print(f"\n{len(expected)} items from {FEEDS} feeds in {seconds:.1f}s, one worker killed")

    # every item once, each hit once, every source's last poll recorded as a success
    assert query(db, "SELECT count(*), count(DISTINCT guid) FROM items") == [(len(expected),) * 2]
    hits = query(db, "SELECT item_id, rule, count(*) FROM hits GROUP BY 1, 2")
    assert len(hits) == HITTING * ITEMS and all(n == 1 for *_, n in hits)
    assert query(db, "SELECT count(*) FROM sources WHERE last_error IS NULL"
                     " AND last_success IS NOT NULL") == [(FEEDS,)]  # fmt: skip
    # politeness held across both workers: never two requests to one host at once
    assert [most_at_once(server) for server in farm] == [1] * len(farm)

    # one digest, of every story the Kosovo items make, sent by the scheduler
    assert len(smtp_server.inbox.envelopes) == 1
    (message,) = smtp_server.inbox.messages()
    text, html = parts(message)
    stories = query(db, "SELECT count(DISTINCT story) FROM items WHERE id IN"
                        " (SELECT item_id FROM hits)")[0][0]  # fmt: skip
    hit_links = {url for (url,) in query(db, "SELECT url FROM items WHERE id IN"
                                          " (SELECT item_id FROM hits)")}  # fmt: skip
    listed = [line.strip() for line in text.splitlines() if line.startswith("  https://")]
    assert message["To"] == "analyst@example.org"
    assert message["Subject"].startswith(f"Balkans watch — {stories} new stories")
    assert len(listed) == stories > 0 and set(listed) <= hit_links, text
    assert all(link in html for link in listed)
    assert "weather-" not in text
    worker_logs = [(tmp_path / f"worker{n}.log").read_text("utf-8") for n in range(2)]
    assert "] received" in worker_logs[0] and "source " in worker_logs[1]  # both had work
    assert "Traceback" not in worker_logs[1]
    assert "source " not in (tmp_path / "scheduler.log").read_text("utf-8")  # it only queued


def test_two_workers_share_each_host_one_request_at_a_time(tmp_path, farm, redis_broker):
    """Every batch queued twice, so both workers poll the same sources at the same moment:
    each host still serves one request at a time, at least host_delay apart, and each item
    is stored once."""
    hosts = farm[:3]
    sources, expected = publish(hosts, 45, 3, delay=0.02)
    config = write_config(tmp_path, sources, fetch={"jitter": 0, "host_delay": 0.05},
                          extra=queue_extra(redis_broker, lease="1h", batch=15))  # fmt: skip
    settings = load_settings(config)
    db = database_of(tmp_path)
    from monitor.tasks import TASK, make_app

    app = make_app(settings.queue)
    names = [s.name for s in settings.sources]
    for first in range(0, len(names), 15):
        for _ in range(2):
            app.send_task(TASK, args=[names[first : first + 15]], queue=settings.queue.name)
    # one worker of one process, one of a prefork pool of two: three pollers at once
    workers = [start_worker(config, tmp_path / "worker0.log"),
               start_worker(config, tmp_path / "worker1.log", "--pool", "prefork",
                            "--concurrency", "2")]  # fmt: skip
    try:
        stored = "SELECT guid FROM items ORDER BY guid"
        wait_for(lambda: [g for (g,) in query(db, stored)] == expected, "every item stored")
        checks = "SELECT count(*) FROM sources WHERE last_checked IS NOT NULL"
        wait_for(lambda: query(db, checks) == [(len(names),)], "every source recorded")
        time.sleep(1.0)  # both copies of the last tasks are done, or nearly
    finally:
        stop(workers)
    assert query(db, "SELECT count(*), count(DISTINCT guid) FROM items") == [(len(expected),) * 2]
    for server in hosts:
        timeline = settled(server, 30)
        assert len(timeline) >= 15 * 1  # each of its sources fetched, by one worker or both
        assert most_at_once(server) == 1
        assert shortest_gap(server) >= 0.045  # host_delay, less the clock's grain
    logs = [(tmp_path / f"worker{n}.log").read_text("utf-8") for n in range(2)]
    assert all("source " in log for log in logs), "both workers polled"


def test_a_broker_outage_pauses_work_with_one_line_and_it_resumes(tmp_path, farm, redis_broker):
    """The broker is away when the scheduler and a worker start: the scheduler says so
    once, fetches nothing itself and keeps the sources due; when the broker is back, the
    worker connects and polls them."""
    forwarder = CutProxy(REDIS, up=False)
    broker = redis_broker.replace(f":{REDIS[1]}/", f":{forwarder.port}/")
    sources, expected = publish(farm[:2], 6, 2, delay=0)
    config = write_config(tmp_path, sources, extra=queue_extra(broker))
    log, worker_log = tmp_path / "scheduler.log", tmp_path / "worker.log"
    scheduler = start_scheduler(config, log)
    worker = start_worker(config, worker_log)
    db = database_of(tmp_path)
    try:
        wait_for(lambda: "unreachable" in log.read_text("utf-8"), "the outage logged")
        time.sleep(2.5)  # more ticks, each trying again
        assert query(db, "SELECT count(*) FROM items") == [(0,)]
        forwarder.restore()
        stored = "SELECT guid FROM items ORDER BY guid"
        wait_for(lambda: [g for (g,) in query(db, stored)] == expected, "every item stored")
    finally:
        scheduler.stdin.close()
        stop([worker, scheduler])
        forwarder.cut()
    text = log.read_text("utf-8")
    assert text.count("unreachable") == 1 and "Traceback" not in text
    assert f"broker {broker} unreachable, 6 sources wait until it is back" in text
    assert "reachable again" in text
    assert "Traceback" not in worker_log.read_text("utf-8")
    assert not [line for line in text.splitlines() if "source " in line]  # it only queued


@pytest.mark.sqlite_only("the broker under test; the store is the Redis tests' concern")
def test_amqp_broker_carries_tasks_too(tmp_path, farm):
    require_service(*RABBITMQ, "RabbitMQ")
    sources, expected = publish(farm[:2], 6, 2, delay=0)
    config = write_config(tmp_path, sources, fetch={"jitter": 0},
                          extra=queue_extra("amqp://guest:guest@127.0.0.1:5672//"))  # fmt: skip
    db = database_of(tmp_path)
    scheduler = start_scheduler(config, tmp_path / "scheduler.log")
    workers = [start_worker(config, tmp_path / "worker.log")]
    try:
        stored = "SELECT guid FROM items ORDER BY guid"
        wait_for(lambda: [g for (g,) in query(db, stored)] == expected, "every item stored")
    finally:
        scheduler.stdin.close()
        stop([*workers, scheduler])
        drop_queue(config)
    text = (tmp_path / "scheduler.log").read_text("utf-8")
    assert "amqp://guest:***@127.0.0.1:5672//" in text and "guest:guest" not in text


def drop_queue(config: Path) -> None:
    """RabbitMQ keeps a queue until it is deleted: the test's own goes when it is done."""
    from monitor.tasks import make_app

    queue = load_settings(config).queue
    with make_app(queue).connection_for_write() as connection:
        connection.default_channel.queue_delete(queue.name)
