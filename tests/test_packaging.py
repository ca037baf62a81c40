"""The operator's files stay in line with the service (docker cannot build on every machine
that runs the tests, so these are read, not run)."""

from __future__ import annotations

import configparser
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_runs_unprivileged_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert text.startswith("# news-monitor") and "FROM python:3.11-slim" in text
    install = "RUN pip install -c constraints.txt .\n"  # the README's install step
    assert install in text
    # dependencies in a layer of their own, before the code is copied
    assert text.index("COPY pyproject.toml constraints.txt") < text.index("COPY monitor ")
    assert text.index("-r /tmp/requirements.txt") < text.index("COPY monitor ")
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


def test_installs_use_the_pinned_constraints():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -c constraints.txt -e '.[test]'" in makefile
    assert "\nconstraints:\n" in makefile  # the one refresh command
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")]  # fmt: skip
    assert all("==" in line for line in pins)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    names = {re.split(r"[<>=!\[ ;]", dep, maxsplit=1)[0].lower().replace("_", "-")
             for dep in wanted}  # fmt: skip
    assert names <= pinned, names - pinned


def readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = section[section.index("```sh\n") + 6 : section.index("\n```", section.index("```sh"))]
    return [line.split("  #")[0].strip() for line in block.splitlines()]


def test_systemd_unit_verifies():
    import shutil
    import subprocess

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = (ROOT / "deploy" / "news-monitor.service").read_text(encoding="utf-8")
    monitor = Path(sys.executable).with_name("monitor")  # an executable in place of /opt's
    folder = Path(tempfile.mkdtemp())
    try:
        copy = folder / "news-monitor.service"
        copy.write_text(unit.replace("/opt/news-monitor/bin/monitor", str(monitor)))
        done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    finally:
        shutil.rmtree(folder)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_documented_config_folder_is_readable_by_the_service_user_only():
    """Run the README's steps for /etc/news-monitor in a scratch folder, with `nogroup` for
    the service's group, then read every file as a user of that group and as an outsider."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to change groups) and setpriv (to act as another user)")
    steps = [line.removeprefix("sudo ") for line in readme_block("### With systemd")
             if "/etc/news-monitor" in line and "systemd" not in line]  # fmt: skip
    assert [step.split()[0] for step in steps] == ["install", "/opt/news-monitor/bin/monitor",
                                                   "chgrp", "chmod"]  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="etc-"))
    scratch.chmod(0o755)
    etc = scratch / "news-monitor"
    monitor = f"{sys.executable} -m monitor"
    try:
        for step in steps:
            command = (step.replace("/etc/news-monitor", str(etc))
                       .replace("-g news-monitor", "-g nogroup")
                       .replace("chgrp -R news-monitor", "chgrp -R nogroup")
                       .replace("/opt/news-monitor/bin/monitor", monitor))  # fmt: skip
            subprocess.run(command, shell=True, check=True, cwd=ROOT, capture_output=True)
        files = [p for p in etc.rglob("*") if p.is_file()]
        assert etc / "monitor.toml" in files and len(files) > 5

        def read_as(uid: int, gid: int, path: Path) -> bool:
            who = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
            return subprocess.run([*who, "cat", str(path)], capture_output=True).returncode == 0

        assert all(read_as(65534, 65534, path) for path in files)  # the service's group
        assert not read_as(65533, 65533, etc / "monitor.toml")  # anyone else
        writable = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   "touch", str(etc / "new")], capture_output=True)  # fmt: skip
        assert writable.returncode != 0  # the service cannot change its own config
    finally:
        shutil.rmtree(scratch)
