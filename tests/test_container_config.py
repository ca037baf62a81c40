"""Containers configure by environment: the mail server from MONITOR_SMTP_* variables with no
[smtp] table, the password from a secret file (MONITOR_SMTP_PASSWORD_FILE) checked at start,
and the secret never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import Response, _Inbox, free_port, write_config
from test_store_concurrency import kosovo_feed

SECRET = "s3cret-pass"
DIGEST = '[[digests]]\nname = "daily"\nto = ["analyst@example.org"]\n'


class _Authenticating(_Inbox):
    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, str]] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = (auth_data.login.decode(), auth_data.password.decode())
            self.logins.append(login)
            return AuthResult(success=login == ("analyst", SECRET))
        return AuthResult(success=False, handled=False)


@pytest.fixture
def auth_smtp():
    inbox = _Authenticating()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=inbox.authenticate, auth_require_tls=False)  # fmt: skip
    controller.start()
    yield port, inbox
    controller.stop()


def run(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "--log-level", "debug", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MONITOR_CONFIG": str(config), **env})  # fmt: skip


def test_smtp_from_the_environment_and_the_password_from_a_secret_file(
    tmp_path, feed_server, auth_smtp
):
    port, inbox = auth_smtp
    feed_server.routes["/k.xml"] = Response(200, kosovo_feed("k", 2))
    config = write_config(tmp_path, [{"name": "K", "url": feed_server.url("k.xml")}],
                          digest=DIGEST)  # fmt: skip
    assert "[smtp]" not in config.read_text()
    secret = tmp_path / "smtp_password"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    env = {
        "MONITOR_SMTP_HOST": "127.0.0.1",
        "MONITOR_SMTP_PORT": str(port),
        "MONITOR_SMTP_SECURITY": "none",
        "MONITOR_SMTP_USER": "analyst",
        "MONITOR_SMTP_SENDER": "Balkans desk <desk@example.org>",
        "MONITOR_SMTP_PASSWORD_FILE": str(secret),
    }
    assert run(config, env, "once").returncode == 0
    sent = run(config, env, "digest")
    assert sent.returncode == 0, sent.stderr
    assert inbox.logins == [("analyst", SECRET)]
    [message] = inbox.messages()
    assert message["From"] == "Balkans desk <desk@example.org>"
    assert message["To"] == "analyst@example.org"
    assert SECRET not in sent.stdout + sent.stderr  # not even at debug level
    assert not list((tmp_path / "outbox").glob("*.eml"))  # sent by SMTP, not to files


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MONITOR_SMTP_PASSWORD_FILE": "/nonexistent/secret"}, "MONITOR_SMTP_PASSWORD_FILE"),
        ({"MONITOR_SMTP_PORT": "smtp"}, "MONITOR_SMTP_PORT"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(tmp_path, env, named):
    config = write_config(tmp_path, [], digest=DIGEST)
    done = run(config, {"MONITOR_SMTP_HOST": "127.0.0.1", **env}, "digest", "--dry-run")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and named in done.stderr
    assert "Traceback" not in done.stderr


def test_the_scale_compose_file_runs_commands_and_settings_that_exist(tmp_path, monkeypatch):
    """docker-compose.scale.yml: its scheduler and workers run real commands, and the
    environment it gives them puts the store on PostgreSQL and the work on Redis, with the
    password left to libpq (never in a URL)."""
    import yaml
    from click.testing import CliRunner

    from monitor.cli import main
    from monitor.config import load_settings

    compose = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.scale.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "scheduler", "worker"} <= set(services)
    for name in ("scheduler", "worker"):
        command = services[name]["command"]
        assert command[0] == "monitor"
        shown = CliRunner().invoke(main, [*command[1:], "--help"])
        assert shown.exit_code == 0, (name, shown.output)
    env = services["worker"]["environment"]
    assert "PGPASSWORD" in env and "@" in env["MONITOR_DATABASE"]
    assert ":" not in env["MONITOR_DATABASE"].split("//", 1)[1].split("@", 1)[0]  # no password
    for key in ("MONITOR_DATABASE", "MONITOR_BROKER"):
        monkeypatch.setenv(key, env[key])
    settings = load_settings(write_config(tmp_path, []))
    assert settings.database == env["MONITOR_DATABASE"]
    assert settings.queue.broker == env["MONITOR_BROKER"] and settings.queue.enabled
