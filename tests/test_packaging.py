"""The operator's files stay in line with the service (docker cannot build on every machine
that runs the tests, so these are read, not run)."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_runs_unprivileged_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert text.startswith("# news-monitor") and "FROM python:3.11-slim" in text
    assert "RUN pip install .\n" in text  # the README's install step
    assert "USER monitor" in text and 'VOLUME ["/data"]' in text
    assert 'CMD ["monitor", "status", "--check"]' in text
    assert "MONITOR_DATABASE=/data/monitor.db" in text


def test_compose_mounts_config_and_data_and_binds_health_to_loopback():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["monitor"]
    assert "./:/config:ro" in service["volumes"] and "monitor-data:/data" in service["volumes"]
    assert service["ports"] == ["127.0.0.1:9108:9108"]
    assert service["environment"]["MONITOR_HEALTH_LISTEN"] == "0.0.0.0:9108"


def test_systemd_unit_restarts_on_failure_and_is_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "news-monitor.service", encoding="utf-8")
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].endswith("monitor --log-format json run")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/news-monitor",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert service[key] == value
