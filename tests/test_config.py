"""monitor.toml: the shipped default loads; every mistake is one clear message naming the
file and key, with a non-zero exit and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_settings, parse_duration
from monitor.errors import ConfigError

ROOT = Path(__file__).parent.parent


def test_shipped_default_config_loads() -> None:
    settings = load_settings(ROOT / "monitor.toml")
    assert len(settings.sources) >= 15
    assert {"CEPA", "ECFR", "Balkan Insight", "NATO News"} <= {s.name for s in settings.sources}
    assert settings.smtp is None and settings.outbox == ROOT / "data" / "outbox"
    assert settings.digests[0].trigger() is not None


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


SOURCE = '[[sources]]\nname = "A"\nurl = "https://a.example/feed"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[monitor\n", "not valid TOML"),
        ("[monitor]\ndatabse = 'x'\n", "monitor.databse: unknown setting"),
        (SOURCE + 'interval = "soon"\n', "sources[0] (A).interval: expected a duration"),
        (SOURCE + 'kind = "blog"\n', "sources[0] (A).kind: expected 'feed' or 'page'"),
        ('[[sources]]\nname = "A"\nurl = "ftp://x"\n', "sources[0] (A).url: expected an http(s)"),
        (SOURCE + 'kind = "page"\n', "a page source needs selectors"),
        (SOURCE + SOURCE, "sources[1].name: 'A' is used twice"),
        (SOURCE + "tags = 'x'\n", "sources[0] (A).tags: expected a list"),
        ('[[digests]]\nname = "d"\nschedule = "every day"\n', "digests[0] (d).schedule"),
        ('[[digests]]\nname = "d"\ntimezone = "Mars/Base"\n', "unknown time zone"),
        ('[[digests]]\nname = "d"\nto = ["nobody"]\n', "is not an email address"),
        ('[smtp]\nhost = "h"\nsecurity = "tls"\n', "smtp.security: expected"),
        ("[smtp]\nport = 25\n", "smtp.host"),
        ("[fetch]\ntimeout = -1\n", "fetch.timeout: expected a positive number"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_cli_reports_bad_config_without_traceback(tmp_path: Path) -> None:
    path = config(tmp_path, SOURCE + 'interval = "soon"\n')
    result = subprocess.run([sys.executable, "-m", "monitor", "--config", str(path), "once"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"config error: {path}: sources[0] (A).interval" in result.stderr


def test_missing_config_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_paths_are_relative_to_the_config_file_and_env_overrides(tmp_path, monkeypatch) -> None:
    path = config(tmp_path, '[monitor]\ndatabase = "db/x.db"\n')
    assert load_settings(path).database == tmp_path / "db" / "x.db"
    monkeypatch.setenv("MONITOR_DATABASE", str(tmp_path / "other.db"))
    assert load_settings(path).database == tmp_path / "other.db"


@pytest.mark.parametrize(("value", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200),
                                                 ("1d", 86400), (600, 600)])  # fmt: skip
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds
