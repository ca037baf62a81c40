"""What the operator sees: `/healthz` and `/metrics` on 127.0.0.1, `monitor status` (failing
sources first, outbox counts) and `monitor status --check` for container health checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import Response, free_port, make_rss, write_config

from monitor.clock import utcnow
from monitor.config import load_settings
from monitor.health import record_heartbeat
from monitor.scheduler import Daemon
from monitor.status import collect_status
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sources(server) -> list[dict]:
    server.routes["/good.xml"] = Response(200, make_rss("good", range(3)))
    server.routes["/bad.xml"] = Response(500, b"oops")
    return [
        {"name": "Good", "url": server.url("good.xml")},
        {"name": "Bad", "url": server.url("bad.xml")},
    ]


def test_health_endpoint_and_metrics(tmp_path, feed_server):
    config = write_config(tmp_path, sources(feed_server))
    port = free_port()
    daemon = Daemon(load_settings(config), tick_seconds=1, health_port=port)
    daemon.start_health()
    try:
        daemon.tick()
        status, text = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and text.startswith("ok: last tick")
        status, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert "news_monitor_ticks_total 1.0" in metrics
        assert 'news_monitor_fetches_total{outcome="ok"} 1.0' in metrics
        assert 'news_monitor_fetches_total{outcome="error"} 1.0' in metrics
        assert "news_monitor_fetch_duration_seconds_count 2.0" in metrics
        assert "news_monitor_new_items_total 3.0" in metrics
        assert 'news_monitor_sources{state="failing"} 1.0' in metrics
        assert 'news_monitor_outbox_messages{state="pending"} 0.0' in metrics
        assert "_created" not in metrics and "process_cpu_seconds_total" in metrics
        daemon.last_tick = time.monotonic() - 3600  # as if the ticks had stopped an hour ago
        status, text = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and "stuck?" in text
        assert get(f"http://127.0.0.1:{port}/other")[0] == 404
    finally:
        daemon.health.stop()
        daemon.pool.close()


def monitor(config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


def test_status_lists_failing_sources_first_with_outbox(tmp_path, feed_server):
    config = write_config(tmp_path, sources(feed_server))
    monitor(config, "once")
    text = monitor(config, "status").stdout
    lines = text.splitlines()
    assert lines[0].startswith("service: NOT RUNNING OR STUCK (no tick recorded")
    assert "2 configured, 1 failing" in lines[1]
    bad, good = lines[3], lines[4]
    assert bad.startswith("Bad") and "FAILING" in bad and "HTTP 500" in bad and "[1x since" in bad
    assert good.startswith("Good") and " ok " in good and "never" not in good
    assert good.split()[-2:] == ["3", "0"]  # items and hits in the last day
    assert lines[-1] == "outbox: 0 pending, 0 sent, 0 failed"

    data = json.loads(monitor(config, "status", "--json").stdout)
    assert [s["name"] for s in data["sources"]] == ["Bad", "Good"]
    assert data["sources"][1]["items_day"] == 3 and data["outbox"]["pending"] == 0
    assert data["overdue"] == 0 and "overdue" not in lines[1]


def test_status_counts_the_sources_the_polling_leaves_waiting(tmp_path, feed_server):
    """Sources due for minutes mean the service (or its workers) cannot keep up."""
    config = write_config(tmp_path, sources(feed_server))
    monitor(config, "once")
    report = collect_status(load_settings(config))
    late = report.now - timedelta(minutes=10)
    report.sources = [replace(report.sources[0], next_check=late), *report.sources[1:]]
    assert report.overdue() == 1
    assert (
        "2 configured, 1 failing, 1 overdue (due over 5 min ago: add workers)"
        in (report.lines()[1])
    )
    report.sources[0] = replace(report.sources[0], next_check=report.now - timedelta(minutes=1))
    assert report.overdue() == 0


def test_status_check_follows_the_heartbeat(tmp_path):
    config = write_config(tmp_path, [])
    assert monitor(config, "status", "--check").returncode == 1
    store = Store(load_settings(config).database)
    try:
        record_heartbeat(store, 30, 20, utcnow() - timedelta(seconds=10))
        assert monitor(config, "status", "--check").returncode == 0
        record_heartbeat(store, 30, 20, utcnow() - timedelta(hours=1))
        silent = monitor(config, "status", "--check")
        store.record_alive(utcnow(), 30, 20)  # alive, but its tick has not finished for an hour
        stuck = monitor(config, "status", "--check")
        store.record_stopped(utcnow())
        stopped = monitor(config, "status", "--check")
    finally:
        store.close()
    assert silent.returncode == 1 and "not running" in silent.stdout
    assert stuck.returncode == 1 and "stuck?" in stuck.stdout
    assert stopped.returncode == 1 and "stopped at" in stopped.stdout
