"""Operating the service as an operator would, with real processes and signals: a tick under a
second is refused, `status` notices a stopped or killed service within two ticks, a deleted
rule file is named in a warning, and a feed cut off in transfer is a failed fetch that stores
nothing until the whole document comes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_RULES, FeedServer, Response, write_config
from services import database_of, stored_rows
from test_store_concurrency import kosovo_feed

pytestmark = pytest.mark.usefixtures("both_stores")


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
    return stored_rows(database_of(config_folder), "SELECT count(*) FROM items")[0][0]


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


def children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (zombies count as gone)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_parse_workers_exit_when_the_service_is_killed(tmp_path, feed_server):
    sources = []
    for n in range(20):  # enough changed feeds for the cycle to use worker processes
        feed_server.routes[f"/f{n}.xml"] = Response(200, kosovo_feed(f"f{n}", 3))
        sources.append({"name": f"F{n}", "url": feed_server.url(f"f{n}.xml"), "interval": "1h"})
    config = write_config(tmp_path, sources, fetch={"parse_workers": 2})
    service = start(config, tmp_path / "daemon.log")
    try:
        assert wait_until(lambda: len(children(service.pid)) >= 2)  # workers (and tracker)
        assert wait_until(lambda: count_items(tmp_path) == 60)
        workers = children(service.pid)
        service.kill()
        service.wait(timeout=10)
        assert wait_until(lambda: not any(alive(pid) for pid in workers), 20), workers
    finally:
        stop(service)


def test_sigterm_abandons_full_text_fetches_and_stores_nothing_of_the_cycle(tmp_path, feed_server):
    feed = kosovo_feed("k", 4).replace(b"https://news.example/k/", feed_server.url("a/").encode())
    feed_server.routes["/k.xml"] = Response(200, feed)
    for n in range(4):  # article pages that take far longer than a stop may
        feed_server.routes[f"/a/{n}"] = Response(
            200, b"<html><body><p>text</p></body></html>", {"Content-Type": "text/html"}, delay=30
        )
    source = {"name": "K", "url": feed_server.url("k.xml"), "fulltext": True, "interval": "1h"}
    config = write_config(tmp_path, [source], fetch={"timeout": 60, "robots": False})
    service = start(config, tmp_path / "daemon.log")
    try:
        assert wait_until(lambda: feed_server.hits("/a/0") == 1)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=8) == 0  # well before Docker's SIGKILL at 10 s
    finally:
        stop(service)
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert "cycle abandoned for shutdown" in log and "Traceback" not in log
    assert count_items(tmp_path) == 0  # nothing half-written: fetched again next start
    sql = "SELECT count(*) FROM sources WHERE coalesce(content_hash, '') != ''"
    assert stored_rows(database_of(tmp_path), sql) == [(0,)]


def as_service_user() -> list[str]:
    """A command prefix under which file modes bind the child as they bind a service user:
    root keeps its uid but loses the capability to override them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's file-mode override"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.sqlite_only("a read-only file and a lock file beside it")
@pytest.mark.parametrize("what", ["read-only database", "unwritable lock file"])
def test_unwritable_storage_stops_the_service_with_one_line_and_exit_2(tmp_path, what):
    config = write_config(tmp_path, [])
    assert monitor(config, "status").returncode == 0  # the database exists
    target = tmp_path / ("monitor.db" if what == "read-only database" else "monitor.db.lock")
    target.touch()
    target.chmod(0o444)
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    command = [*as_service_user(), sys.executable, "-m", "monitor", "run", "--tick", "1"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert str(target) in run.stderr


@pytest.mark.sqlite_only("the database file's own disk")
def test_a_full_disk_is_one_line_and_exit_1(tmp_path, feed_server):
    import resource

    feed_server.routes["/k.xml"] = Response(200, kosovo_feed("k", 40))
    config = write_config(tmp_path, [{"name": "K", "url": feed_server.url("k.xml")}])
    assert monitor(config, "status").returncode == 0
    room = (tmp_path / "monitor.db").stat().st_size // 2  # no file may grow past this

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    once = subprocess.run([sys.executable, "-m", "monitor", "once"], env=env, text=True,
                          capture_output=True, timeout=60, preexec_fn=small_disk)  # fmt: skip
    assert once.returncode == 1 and "Traceback" not in once.stderr
    # one error line; warnings of what else a full disk cost (language detection) may precede
    [error] = [line for line in once.stderr.splitlines() if " WARNING " not in line]
    assert "disk" in error and str(tmp_path / "monitor.db") in error
