"""Logs and metrics in the shapes their tools read: `--log-format json` gives each source's
fields as JSON values, `/metrics` of a running service has `news_monitor_*` series with a
fetch-duration histogram, delivery counters, process metrics and build info, and no
`_created` series."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import Response, free_port, write_config
from prometheus_client.parser import text_string_to_metric_families
from test_store_concurrency import kosovo_feed

from monitor import __version__

pytestmark = pytest.mark.usefixtures("both_stores")

ALERTS = """
[alerts]
to = ["desk@example.org"]
batch = "0s"
"""


def json_lines(stderr: str) -> list[dict]:
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert records, "no log output"
    return records


def test_json_logs_carry_each_sources_fields(tmp_path, feed_server):
    feed_server.routes["/good.xml"] = Response(200, kosovo_feed("good", 3))
    feed_server.routes["/bad.xml"] = Response(500, b"oops")
    sources = [
        {"name": "Good wire", "url": feed_server.url("good.xml")},
        {"name": "Bad wire", "url": feed_server.url("bad.xml")},
    ]
    config = write_config(tmp_path, sources)
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "monitor", "--log-format", "json", "once"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    records = json_lines(done.stderr)  # every line is one JSON object
    by_source = {r["source"]: r for r in records if r.get("event") == "source"}
    good, bad = by_source["Good wire"], by_source["Bad wire"]
    assert (good["status"], good["new"], good["hits"], good["error"]) == (200, 3, 6, None)
    assert isinstance(good["seconds"], float) and good["level"] == "INFO"
    assert bad["status"] == 500 and "HTTP 500" in bad["error"] and bad["level"] == "ERROR"
    [cycle] = [r for r in records if r.get("event") == "cycle"]
    assert (cycle["sources"], cycle["new"], cycle["errors"]) == (2, 3, 1)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)


def scrape(port: int) -> dict[str, dict]:
    """Every sample of /metrics, by sample name, as {labels as a tuple: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_metrics_of_a_running_service(tmp_path, feed_server, smtp_server):
    feed_server.routes["/k.xml"] = Response(200, kosovo_feed("k", 2))
    feed_server.routes["/down.xml"] = Response(503, b"busy")
    sources = [
        {"name": "K", "url": feed_server.url("k.xml")},
        {"name": "Down", "url": feed_server.url("down.xml")},
    ]
    config = write_config(tmp_path, sources, smtp=smtp_server, digest=ALERTS)
    port = free_port()
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    log = open(tmp_path / "daemon.log", "w", encoding="utf-8")  # noqa: SIM115
    service = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--tick", "1", "--health-port", str(port)],
        stdout=log, stderr=log, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not smtp_server.inbox.messages() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert smtp_server.inbox.messages(), "the urgent alert never came"
        time.sleep(0.5)  # the tick that sent it records its metrics as it ends
        samples = scrape(port)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    names = set(samples)
    assert not [n for n in names if n.endswith("_created")]
    ours = {n for n in names if not n.startswith(("process_", "python_"))}
    assert all(n.startswith("news_monitor_") for n in ours), ours
    assert samples["news_monitor_deliveries_total"][(("outcome", "sent"),)] == 1
    assert samples["news_monitor_fetch_duration_seconds_count"][()] >= 2
    assert samples["news_monitor_fetches_total"][(("outcome", "error"),)] >= 1
    assert samples["news_monitor_new_items_total"][()] == 2
    build = samples["news_monitor_build_info"]
    [(labels, value)] = build.items()
    assert value == 1 and ("version", __version__) in labels
    assert samples["process_resident_memory_bytes"][()] > 0
    assert "Traceback" not in Path(tmp_path / "daemon.log").read_text(encoding="utf-8")
