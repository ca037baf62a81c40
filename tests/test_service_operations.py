"""Operating the service as an operator would, with real processes and signals: a tick under a
second is refused, `status` notices a stopped or killed service within two ticks, a deleted
rule file is named in a warning, and a feed cut off in transfer is a failed fetch that stores
nothing until the whole document comes."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_RULES, FeedServer, Response, write_config
from test_store_concurrency import kosovo_feed


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def start(config: Path, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--tick", "1", *args],
                            stdout=out, stderr=out, env=env)  # fmt: skip


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize("tick", ["0", "-5"])
def test_a_tick_under_one_second_is_a_clear_error(tmp_path, tick):
    config = write_config(tmp_path, [])
    done = monitor(config, "run", "--tick", tick)
    assert done.returncode == 2
    assert "--tick" in done.stderr and ">=1" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "monitor.db.lock").exists()  # refused before anything started


def test_status_says_stopped_after_a_clean_stop_and_a_kill(tmp_path, feed_server):
    feed_server.routes["/k.xml"] = Response(200, kosovo_feed("k", 2))
    config = write_config(tmp_path, [{"name": "K", "url": feed_server.url("k.xml")}])
    log = tmp_path / "daemon.log"

    service = start(config, log)
    try:
        assert wait_until(lambda: monitor(config, "status", "--check").returncode == 0)
    finally:
        stop(service)
    stopped = monitor(config, "status", "--check")  # at once: the stop was recorded
    assert stopped.returncode == 1 and "stopped at" in stopped.stdout

    service = start(config, log)
    try:
        assert wait_until(lambda: monitor(config, "status", "--check").returncode == 0)
        service.kill()  # no chance to record anything
        service.wait(timeout=10)
        killed = monitor(config, "status", "--check")
        # Within two ticks (1 s each) and a little slack it counts as not running.
        assert wait_until(lambda: monitor(config, "status", "--check").returncode == 1, 20)
        after = monitor(config, "status")
    finally:
        stop(service)
    assert "Traceback" not in killed.stderr + after.stderr
    assert "not running" in after.stdout and "NOT RUNNING" in after.stdout


def test_deleting_a_rule_file_is_a_warning_naming_it_and_its_rules(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(TEST_RULES, rules)
    extra = rules / "watch" / "extra.yaml"
    extra.write_text(
        "rules:\n"
        "  - id: eulex-watch\n    title: EULEX\n    query: 'eulex'\n"
        "  - id: nato-watch\n    title: NATO\n    query: 'nato'\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, [], rules=rules)
    log = tmp_path / "daemon.log"
    service = start(config, log)
    try:
        assert wait_until(lambda: "monitor running" in log.read_text(encoding="utf-8"))
        extra.unlink()
        assert wait_until(lambda: "rules reloaded" in log.read_text(encoding="utf-8"))
    finally:
        stop(service)
    warning = [line for line in log.read_text(encoding="utf-8").splitlines() if "removed" in line]
    assert len(warning) == 1 and "WARNING" in warning[0]
    assert str(extra) in warning[0]
    assert "eulex-watch" in warning[0] and "nato-watch" in warning[0]


def count_items(config_folder: Path) -> int:
    db = sqlite3.connect(config_folder / "monitor.db")
    try:
        return db.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        db.close()


def test_a_feed_cut_off_in_transfer_stores_nothing_until_it_comes_whole(
    tmp_path, feed_server: FeedServer
):
    whole = kosovo_feed("k", 3)
    cut = whole.index(b"<item>", whole.index(b"k-1")) + 40  # inside the third item
    feed_server.routes["/k.xml"] = Response(
        200, whole, {"Content-Type": "application/rss+xml", "ETag": '"v1"'}, cut_at=cut
    )
    config = write_config(tmp_path, [{"name": "K", "url": feed_server.url("k.xml")}])

    first = monitor(config, "once")
    assert first.returncode == 1 and "Traceback" not in first.stderr  # a source failed
    assert "cut off" in first.stdout
    assert count_items(tmp_path) == 0

    feed_server.routes["/k.xml"] = Response(
        200, whole, {"Content-Type": "application/rss+xml", "ETag": '"v1"'}
    )
    second = monitor(config, "once")
    assert second.returncode == 0, second.stderr
    # Fetched again in full (no conditional request answered 304 from the cut copy).
    assert count_items(tmp_path) == 3
    assert "If-None-Match" not in feed_server.requests[-1][1]
