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


def built_wheel(tmp_path: Path) -> Path:
    """The package as `pip install .` would install it, unpacked into a folder of its own."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    for name in ("monitor", "rules"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("monitor.toml", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    [wheel] = wheels.glob("news_monitor-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    return installed


def test_the_installed_package_works_outside_the_checkout(tmp_path):
    import os
    import subprocess
    import sys

    installed = built_wheel(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("MONITOR_CONFIG", None)

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    where = subprocess.run([sys.executable, "-c", "import monitor; print(monitor.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(str(installed))  # not the checkout's copy

    demo = monitor("demo", "--dir", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stderr
    assert "Digest:" in demo.stdout and list((tmp_path / "demo").rglob("*.eml"))

    init = monitor("init", "watch")
    assert init.returncode == 0, init.stderr
    config = elsewhere / "watch" / "monitor.toml"
    assert config.read_text() == (ROOT / "monitor.toml").read_text()
    shipped = sorted(p.name for p in (ROOT / "rules").rglob("*.yaml"))
    assert sorted(p.name for p in (elsewhere / "watch" / "rules").rglob("*.yaml")) == shipped
    check = monitor("--config", str(config), "rules", "check")
    assert check.returncode == 0 and "OK" in check.stdout
    again = monitor("init", "watch")  # nothing is overwritten
    assert again.returncode == 0 and "kept" in again.stdout and "wrote" not in again.stdout


def test_every_package_ships():
    """A new subpackage must be listed in pyproject.toml, or installs lose it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])  # fmt: skip
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "monitor").rglob("__init__.py")
    }
    assert found <= listed, found - listed
