"""`monitor.toml` read into the frozen, validated settings of `settings.py`.

Every error names the file, the key and what was expected. Relative paths are taken from the
config file's folder, so the service runs the same from any working directory. The environment
can override the paths: MONITOR_CONFIG, MONITOR_DATABASE, MONITOR_RULES, MONITOR_OUTBOX;
MONITOR_HEALTH_LISTEN the health endpoint's address; MONITOR_BROKER the task queue's broker;
MONITOR_SMTP_HOST, _PORT, _SECURITY,
_USER and _SENDER the mail server (for containers). Secrets come only from the environment,
each also from a file named by `<VARIABLE>_FILE`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import soupsieve
from apscheduler.triggers.cron import CronTrigger

from monitor.errors import ConfigError
from monitor.lang import known
from monitor.models import AUTO, PRIORITIES, PageSelectors, Source
from monitor.netpolicy import parse_allowed
from monitor.settings import (
    AlertSettings,
    DigestSettings,
    FetchSettings,
    HealthSettings,
    NotifySettings,
    QueueSettings,
    RetentionSettings,
    Settings,
    SignalSettings,
    SmtpSettings,
    UiSettings,
    masked_url,
    secret,
)
from monitor.store.postgres import is_postgres

DEFAULT_CONFIG = "monitor.toml"
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# [fetch] keys that are not plain positive numbers or text: read by `_Reader.fetch_extras`.
_FETCH_EXTRAS = {
    "host_delay",
    "jitter",
    "article_delay",
    "backoff_max",
    "flag_after",
    "robots",
    "parse_workers",
    "allow_private",
}
_BROKER_SCHEMES = ("redis://", "rediss://", "amqp://", "amqps://")
# [smtp] keys that containers may set from the environment instead (MONITOR_SMTP_HOST, ...);
# the environment wins over the file.
SMTP_ENVIRONMENT = {
    "host": "MONITOR_SMTP_HOST",
    "port": "MONITOR_SMTP_PORT",
    "security": "MONITOR_SMTP_SECURITY",
    "username": "MONITOR_SMTP_USER",
    "sender": "MONITOR_SMTP_SENDER",
}
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# `scheme://user:password@host`: a password written into the file
_USERINFO_RE = re.compile(r"^[^:]+://[^/@]*:([^/@]+)@")


def notify_url_problem(url: str) -> str:
    """Why an Apprise URL may not stand in the config file, or "" when it may: it needs a
    scheme, and a password in it must come from the environment (`${VAR}`)."""
    if not _SCHEME_RE.match(url):
        return "expected an Apprise URL such as 'ntfy://topic' or 'json://host/path'"
    password = _USERINFO_RE.match(url)
    if password and not _VARIABLE_RE.fullmatch(password.group(1)):
        return "a password in a URL must come from the environment, e.g. user:${CHAT_PASSWORD}@"
    return ""


def expand_secrets(url: str) -> str:
    """An Apprise URL with each `${VAR}` replaced by that secret from the environment
    (`secret`: the variable, or the file `VAR_FILE` names). Raises ConfigError naming the
    variable, never its value, when one is unset."""

    def value(match: re.Match[str]) -> str:
        found = secret(match.group(1))
        if not found:
            raise ConfigError(f"{match.group(1)}: not set in the environment (used in a URL)")
        return found

    return _VARIABLE_RE.sub(value, url)


def parse_duration(value: Any) -> int:
    """'90s', '30m', '2h', '1d' or a number of seconds, as seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _DURATION_RE.match(str(value))
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"expected a duration like '30m', '2h' or '1d', got {value!r}")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def config_path(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: str | Path | None = None) -> Settings:
    cfg = config_path(path)
    try:
        data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{cfg}: config file not found (pass --config PATH or set MONITOR_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg}: not valid TOML: {exc}") from exc
    return _Reader(cfg).settings(data)


_AT_LINE_RE = re.compile(r"at line (\d+)")
_KEY_RE = re.compile(r"^(\w+)(?:\[(\d+)\])?(?: \([^)]*\))?(?:\.(\w+))?")


def error_line(path: Path, message: str) -> int | None:
    """The line of the config file a ConfigError points at, when it can be told: the line
    TOML names, else the line of the setting named in the message (`sources[2] (X).url`)."""
    if m := _AT_LINE_RE.search(message):
        return int(m.group(1))
    m = _KEY_RE.match(message.removeprefix(f"{path}: "))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not m:
        return None
    table, index, leaf = m.group(1), m.group(2), m.group(3)
    header = f"[[{table}]]" if index is not None else f"[{table}]"
    starts = [n for n, line in enumerate(lines) if line.strip().startswith(header)]
    start = starts[int(index or 0)] if len(starts) > int(index or 0) else None
    if start is None:
        plain = [n for n, line in enumerate(lines) if re.match(rf"\s*{table}\s*=", line)]
        return plain[0] + 1 if plain else None
    if leaf:
        for n in range(start + 1, len(lines)):
            if lines[n].lstrip().startswith("["):
                break
            if re.match(rf"\s*{leaf}\s*=", lines[n]):
                return n + 1
    return start + 1


def describe_error(path: Path, exc: ConfigError) -> str:
    """A ConfigError as `file:line: message` (just `file: message` when no line is known)."""
    message = str(exc)
    line = error_line(path, message)
    if line is None:
        return message
    return f"{path}:{line}: {message.removeprefix(f'{path}: ')}"


class _Reader:
    """Builds Settings from parsed TOML, naming the key of anything wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    def table(self, data: dict, key: str) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "expected a table, e.g. [" + key + "]")
        return value

    def get(self, data: dict, key: str, where: str, kind: type | tuple, default: Any) -> Any:
        value = data.get(key, default)
        if value is not default and not isinstance(value, kind):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            names = {
                "str": "text",
                "int": "a whole number",
                "float": "a number",
                "list": "a list",
                "bool": "true or false",
            }.get(names, names)
            raise self.fail(f"{where}.{key}" if where else key, f"expected {names}, got {value!r}")
        return value

    def strings(self, data: dict, key: str, where: str) -> tuple[str, ...]:
        value = self.get(data, key, where, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "expected a list of text")
        return tuple(value)

    def check_keys(self, data: dict, allowed: set[str], where: str) -> None:
        for key in data:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(
                    f"{where}.{key}" if where else key, f"unknown setting (allowed here: {hint})"
                )

    def path_setting(self, data: dict, key: str, env: str, default: str) -> Path:
        raw = os.environ.get(env) or self.get(data, key, "monitor", str, default)
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.base / path

    def database_setting(self, main: dict) -> Path | str:
        """A SQLite file (relative to the config's folder), or a PostgreSQL server's URL
        (`postgresql://user@host/db`). A password never goes in the file: libpq reads it
        from PGPASSWORD or ~/.pgpass, or the whole URL may come from MONITOR_DATABASE."""
        from_env = os.environ.get("MONITOR_DATABASE")
        raw = from_env or self.get(main, "database", "monitor", str, "data/monitor.db")
        if not is_postgres(raw):
            return self.path_setting(main, "database", "MONITOR_DATABASE", "data/monitor.db")
        if not from_env and urlsplit(raw).password is not None:
            raise self.fail(
                "monitor.database",
                "a password does not belong in the config file; set PGPASSWORD (or use "
                "~/.pgpass) and leave it out of the URL",
            )
        return raw

    def settings(self, data: dict) -> Settings:
        self.check_keys(
            data,
            {"monitor", "sources", "smtp", "digests", "fetch", "alerts", "retention", "health"}
            | {"signals", "ui", "notify", "queue"},
            "",
        )
        main = self.table(data, "monitor")
        self.check_keys(
            main, {"database", "rules", "outbox", "busy_timeout", "operator"}, "monitor"
        )
        sources = self.get(data, "sources", "", list, [])
        digests = self.get(data, "digests", "", list, [])
        smtp = self.table(data, "smtp") if "smtp" in data else None
        smtp = self.smtp_environment(smtp)
        settings = Settings(
            path=self.path,
            database=self.database_setting(main),
            rules=self.path_setting(main, "rules", "MONITOR_RULES", "rules"),
            outbox=self.path_setting(main, "outbox", "MONITOR_OUTBOX", "data/outbox"),
            busy_timeout=self.duration(main, "busy_timeout", "monitor", 30),
            sources=tuple(self.source(s, i) for i, s in enumerate(sources)),
            digests=tuple(self.digest(d, i) for i, d in enumerate(digests)),
            smtp=self.smtp(smtp) if smtp is not None else None,
            fetch=self.fetch(self.table(data, "fetch")),
            alerts=self.alerts(self.table(data, "alerts")) if "alerts" in data else None,
            retention=self.retention(self.table(data, "retention")),
            health=self.health(self.table(data, "health")),
            signals=self.signals(self.table(data, "signals")),
            ui=self.ui(self.table(data, "ui")),
            queue=self.queue(self.table(data, "queue")),
            notify=tuple(
                self.notify(n, i) for i, n in enumerate(self.get(data, "notify", "", list, []))
            ),
            operator=self.get(main, "operator", "monitor", str, "").strip(),
        )
        if settings.operator:
            self.addresses((settings.operator,), "monitor.operator")
        self.unique([s.name for s in settings.sources], "sources")
        self.unique([d.name for d in settings.digests], "digests")
        self.unique([n.name for n in settings.notify], "notify")
        digests = {d.name for d in settings.digests}
        for index, channel in enumerate(settings.notify):
            for name in channel.digests:
                if name not in digests:
                    raise self.fail(f"notify[{index}] ({channel.name}).digests",
                                    f"no digest named {name!r}")  # fmt: skip
        return settings

    def notify(self, data: Any, index: int) -> NotifySettings:
        where = f"notify[{index}]"
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table ([[notify]])")
        self.check_keys(data, set(NotifySettings.__dataclass_fields__), where)
        name = self.get(data, "name", where, str, "").strip()
        if not name:
            raise self.fail(f"{where}.name", "every notify channel needs a name")
        where = f"{where} ({name})"
        urls = self.strings(data, "urls", where)
        if not urls:
            raise self.fail(f"{where}.urls", 'expected Apprise URLs, e.g. ["ntfy://${TOPIC}"]')
        for url in urls:
            problem = notify_url_problem(url)
            if problem:
                raise self.fail(f"{where}.urls", problem)
        rules, tags = self.strings(data, "rules", where), self.strings(data, "tags", where)
        channel = NotifySettings(
            name=name,
            urls=urls,
            rules=rules or (() if tags else ("*",)),
            tags=tags,
            priority=self.get(data, "priority", where, str, "urgent"),
            max_age=self.duration(data, "max_age", where, 86400),
            digests=self.strings(data, "digests", where),
            max_per_hour=self.get(data, "max_per_hour", where, int, 20),
        )
        if channel.priority not in PRIORITIES:
            raise self.fail(f"{where}.priority", f"expected one of {', '.join(PRIORITIES)}")
        if isinstance(channel.max_per_hour, bool) or channel.max_per_hour < 1:
            raise self.fail(f"{where}.max_per_hour", "expected a whole number of at least 1")
        return channel

    def unique(self, names: list[str], key: str) -> None:
        seen = set()
        for i, name in enumerate(names):
            if name in seen:
                raise self.fail(f"{key}[{i}].name", f"{name!r} is used twice; names must differ")
            seen.add(name)

    def source(self, data: Any, index: int) -> Source:
        where = f"sources[{index}]"
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table ([[sources]])")
        allowed = {"name", "url", "kind", "interval", "tags", "selectors"}
        allowed |= {"timezone", "fulltext", "fulltext_max"}
        self.check_keys(data, allowed, where)
        name = self.get(data, "name", where, str, "")
        url = self.get(data, "url", where, str, "")
        if not name.strip():
            raise self.fail(f"{where}.name", "every source needs a name")
        where = f"sources[{index}] ({name})"
        if not url.startswith(("http://", "https://")):
            raise self.fail(f"{where}.url", f"expected an http(s) URL, got {url!r}")
        kind = self.get(data, "kind", where, str, "feed")
        if kind not in {"feed", "page"}:
            raise self.fail(f"{where}.kind", f"expected 'feed' or 'page', got {kind!r}")
        try:
            interval = parse_duration(data.get("interval", "30m"))
        except ValueError as exc:
            raise self.fail(f"{where}.interval", str(exc)) from None
        selectors = self.selectors(data.get("selectors"), where, kind)
        tags = self.strings(data, "tags", where)
        return Source(
            name=name.strip(),
            url=url,
            kind=kind,
            interval=interval,  # type: ignore[arg-type]
            tags=tags,
            selectors=selectors,
            **self.page_options(data, where),
        )

    def page_options(self, data: dict, where: str) -> dict[str, Any]:
        """timezone (for page dates without one), fulltext and fulltext_max."""
        tz = self.get(data, "timezone", where, str, "")
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise self.fail(
                    f"{where}.timezone", f"unknown time zone {tz!r}, e.g. 'Europe/Belgrade'"
                ) from None
        most = self.get(data, "fulltext_max", where, int, 10)
        if isinstance(most, bool) or most < 1:
            raise self.fail(f"{where}.fulltext_max", f"expected a whole number ≥ 1, got {most!r}")
        return {
            "timezone": tz,
            "fulltext": self.get(data, "fulltext", where, bool, False),
            "fulltext_max": most,
        }

    def selectors(self, data: Any, where: str, kind: str) -> PageSelectors | None:
        if data is None:
            if kind == "page":
                raise self.fail(
                    f"{where}.selectors", 'a page source needs selectors = { item = "CSS", ... }'
                )
            return None
        if data == AUTO and kind == "page":  # article links found by their shape, no selectors
            return PageSelectors(item=AUTO)
        if not isinstance(data, dict):
            raise self.fail(
                f"{where}.selectors", 'expected a table of CSS selectors, or "auto" for a page'
            )
        self.check_keys(data, {"item", "link", "title", "date", "summary"}, f"{where}.selectors")
        if not isinstance(data.get("item"), str) or not data["item"].strip():
            raise self.fail(f"{where}.selectors.item", "expected the CSS selector of one item")
        values = {k: self.get(data, k, f"{where}.selectors", str, "") for k in data}
        for key, value in values.items():
            if value.strip():
                try:
                    soupsieve.compile(value)
                except soupsieve.SelectorSyntaxError as exc:
                    raise self.fail(
                        f"{where}.selectors.{key}", f"not a valid CSS selector: {exc.args[0]}"
                    ) from None
        return PageSelectors(**values)

    def digest(self, data: Any, index: int) -> DigestSettings:
        where = f"digests[{index}]"
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table ([[digests]])")
        allowed = {
            "name",
            "schedule",
            "timezone",
            "to",
            "rules",
            "tags",
            "title",
            "send_empty",
            "group_by",
            "max_stories",
            "catch_up",
            "backfill",
            "languages",
            "chart",
        }
        self.check_keys(data, allowed, where)
        name = self.get(data, "name", where, str, "")
        if not name.strip():
            raise self.fail(f"{where}.name", "every digest needs a name")
        where = f"digests[{index}] ({name})"
        rules = self.strings(data, "rules", where)
        tags = self.strings(data, "tags", where)
        digest = DigestSettings(
            name=name.strip(),
            schedule=self.get(data, "schedule", where, str, "0 7 * * *"),
            timezone=self.get(data, "timezone", where, str, "UTC"),
            to=self.strings(data, "to", where),
            rules=rules or (() if tags else ("*",)),
            tags=tags,
            title=self.get(data, "title", where, str, ""),
            send_empty=self.get(data, "send_empty", where, bool, False),
            group_by=self.get(data, "group_by", where, str, "rule"),
            max_stories=self.get(data, "max_stories", where, int, 80),
            catch_up=self.duration(data, "catch_up", where, 43200, zero=True),
            backfill=self.duration(data, "backfill", where, 0, zero=True),
            languages=self.strings(data, "languages", where),
            chart=self.get(data, "chart", where, bool, False),
        )
        unknown = [code for code in digest.languages if not known(code)]
        if unknown:
            raise self.fail(
                f"{where}.languages",
                f"unknown language {unknown[0]!r} (expected codes such as 'it', 'sr' or 'sh')",
            )
        if digest.max_stories < 1:
            raise self.fail(f"{where}.max_stories", "expected a whole number of at least 1")
        if digest.group_by not in {"rule", "actor"}:
            raise self.fail(
                f"{where}.group_by", f"expected 'rule' or 'actor', got {digest.group_by!r}"
            )
        self.addresses(digest.to, f"{where}.to")
        self.timezone(digest.timezone, f"{where}.timezone")
        try:
            digest.trigger()
        except ValueError as exc:
            raise self.fail(
                f"{where}.schedule", f"expected a cron line like '0 7 * * *' ({exc})"
            ) from None
        return digest

    def addresses(self, addresses: tuple[str, ...], key: str) -> None:
        for address in addresses:
            if "@" not in address:
                raise self.fail(key, f"{address!r} is not an email address")

    def timezone(self, name: str, key: str) -> None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(key, f"unknown time zone {name!r}, e.g. 'Europe/Rome'") from None

    def duration(self, data: dict, key: str, where: str, default: int, zero: bool = False) -> int:
        value = data.get(key, default)
        if zero and value in (0, "0", "0s", "0m"):
            return 0
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(f"{where}.{key}", str(exc)) from None

    def alerts(self, data: dict) -> AlertSettings:
        where = "alerts"
        allowed = set(AlertSettings.__dataclass_fields__)
        self.check_keys(data, allowed, where)
        rules = self.strings(data, "rules", where)
        tags = self.strings(data, "tags", where)
        alerts = AlertSettings(
            name=self.get(data, "name", where, str, "urgent").strip() or "urgent",
            to=self.strings(data, "to", where),
            rules=rules or (() if tags else ("*",)),
            tags=tags,
            priority=self.get(data, "priority", where, str, "urgent"),
            batch=self.duration(data, "batch", where, 300, zero=True),
            max_per_hour=self.get(data, "max_per_hour", where, int, 4),
            max_age=self.duration(data, "max_age", where, 86400, zero=False),
            timezone=self.get(data, "timezone", where, str, "UTC"),
            title=self.get(data, "title", where, str, "Urgent"),
            max_stories=self.get(data, "max_stories", where, int, 50),
        )
        if not alerts.to:
            raise self.fail("alerts.to", 'alerts need recipients, e.g. to = ["desk@example.org"]')
        self.addresses(alerts.to, "alerts.to")
        self.timezone(alerts.timezone, "alerts.timezone")
        if alerts.priority not in PRIORITIES:
            raise self.fail(
                "alerts.priority",
                f"expected one of {', '.join(PRIORITIES)}, got {alerts.priority!r}",
            )
        for key in ("max_per_hour", "max_stories"):
            if getattr(alerts, key) < 1:
                raise self.fail(f"alerts.{key}", "expected a whole number of at least 1")
        return alerts

    def signals(self, data: dict) -> SignalSettings:
        where, defaults = "signals", SignalSettings()
        self.check_keys(data, set(SignalSettings.__dataclass_fields__), where)
        threshold = self.get(data, "threshold", where, (int, float), defaults.threshold)
        if not 0 < threshold < 1:
            raise self.fail("signals.threshold", f"expected a probability between 0 and 1, "
                            f"e.g. 0.001, got {threshold!r}")  # fmt: skip
        counts = {
            key: self.get(data, key, where, int, getattr(defaults, key))
            for key in ("baseline_days", "min_stories", "min_outlets", "first_days")
        }
        for key, value in counts.items():
            if isinstance(value, bool) or value < 1:
                raise self.fail(f"signals.{key}", "expected a whole number of at least 1")
        return SignalSettings(
            threshold=float(threshold),
            min_history=self.duration(data, "min_history", where, defaults.min_history, zero=True),
            breaking_window=self.duration(data, "breaking_window", where, 6 * 3600),
            alerts=self.get(data, "alerts", where, bool, True),
            **counts,
        )

    def smtp_environment(self, table: dict | None) -> dict | None:
        """The [smtp] table with MONITOR_SMTP_* variables laid over it (a host from the
        environment is enough to send by SMTP without any [smtp] table)."""
        given = {key: os.environ[var] for key, var in SMTP_ENVIRONMENT.items()
                 if os.environ.get(var)}  # fmt: skip
        if not given:
            return table
        if "port" in given:
            try:
                given["port"] = int(given["port"])
            except ValueError:
                raise ConfigError(
                    f"MONITOR_SMTP_PORT: expected a port number, got {given['port']!r}"
                ) from None
        return {**(table or {}), **given}

    def smtp(self, data: dict) -> SmtpSettings:
        allowed = {"host", "port", "security", "username", "password_env", "sender", "timeout"}
        self.check_keys(data, allowed, "smtp")
        host = self.get(data, "host", "smtp", str, "")
        if not host:
            raise self.fail("smtp.host", "expected the SMTP server's host name")
        security = self.get(data, "security", "smtp", str, "starttls")
        if security not in {"starttls", "ssl", "none"}:
            raise self.fail(
                "smtp.security", f"expected 'starttls', 'ssl' or 'none', got {security!r}"
            )
        port = self.get(data, "port", "smtp", int, 465 if security == "ssl" else 587)
        if not 1 <= port <= 65535:
            raise self.fail("smtp.port", f"expected a port number (1-65535), got {port}")
        password_env = self.get(data, "password_env", "smtp", str, "MONITOR_SMTP_PASSWORD")
        secret(password_env)  # an unreadable secret file is an error now, not at 7 a.m.
        return SmtpSettings(
            host=host,
            port=port,
            security=security,
            username=self.get(data, "username", "smtp", str, ""),
            password_env=password_env,
            sender=self.get(data, "sender", "smtp", str, "News Monitor <monitor@localhost>"),
            timeout=float(self.get(data, "timeout", "smtp", (int, float), 30.0)),
        )

    def fetch(self, data: dict) -> FetchSettings:
        defaults = FetchSettings()
        allowed = set(FetchSettings.__dataclass_fields__)
        self.check_keys(data, allowed, "fetch")
        values: dict[str, Any] = {}
        for key in allowed - _FETCH_EXTRAS:
            default = getattr(defaults, key)
            kind: type | tuple = str if isinstance(default, str) else (int, float)
            value = self.get(data, key, "fetch", kind, default)
            if not isinstance(value, str) and value <= 0:
                raise self.fail(f"fetch.{key}", "expected a positive number")
            values[key] = type(default)(value)
        return FetchSettings(**values, **self.fetch_extras(data, defaults))

    def fetch_extras(self, data: dict, defaults: FetchSettings) -> dict[str, Any]:
        """The [fetch] politeness keys: zero allowed, durations, a switch."""
        values: dict[str, Any] = {}
        for key in ("host_delay", "jitter", "article_delay"):
            value = self.get(data, key, "fetch", (int, float), getattr(defaults, key))
            if isinstance(value, bool) or value < 0:
                raise self.fail(f"fetch.{key}", f"expected a number ≥ 0, got {value!r}")
            values[key] = float(value)
        if values["jitter"] >= 1:
            raise self.fail("fetch.jitter", "expected a fraction below 1, e.g. 0.1 for ±10%")
        for key in ("backoff_max", "flag_after"):
            values[key] = self.duration(data, key, "fetch", getattr(defaults, key))
        values["robots"] = self.get(data, "robots", "fetch", bool, defaults.robots)
        workers = self.get(data, "parse_workers", "fetch", int, defaults.parse_workers)
        if isinstance(workers, bool) or workers < 0:
            raise self.fail("fetch.parse_workers", "expected 0 (one per CPU), 1 (none) or more")
        values["parse_workers"] = workers
        values["allow_private"] = self.allow_private(data)
        return values

    def allow_private(self, data: dict) -> tuple[str, ...]:
        entries = self.strings(data, "allow_private", "fetch")
        for index, entry in enumerate(entries):
            try:
                parse_allowed(entry)
            except ValueError as exc:
                raise self.fail(f"fetch.allow_private[{index}]", str(exc)) from None
        return entries

    def retention(self, data: dict) -> RetentionSettings:
        self.check_keys(data, {"max_age", "schedule"}, "retention")
        defaults = RetentionSettings()
        schedule = self.get(data, "schedule", "retention", str, defaults.schedule)
        try:
            CronTrigger.from_crontab(schedule, timezone=ZoneInfo("UTC"))
        except ValueError as exc:
            raise self.fail(
                "retention.schedule", f"expected a cron line like '17 3 * * *' ({exc})"
            ) from None
        return RetentionSettings(
            max_age=self.duration(data, "max_age", "retention", defaults.max_age),
            schedule=schedule,
        )

    def health(self, data: dict) -> HealthSettings:
        self.check_keys(data, {"listen"}, "health")
        listen = os.environ.get("MONITOR_HEALTH_LISTEN") or self.get(
            data, "listen", "health", str, ""
        )
        listen = listen.strip()
        if listen:
            host, _, port = listen.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise self.fail(
                    "health.listen", f"expected HOST:PORT like '127.0.0.1:9108', got {listen!r}"
                )
        return HealthSettings(listen=listen)

    def queue(self, data: dict) -> QueueSettings:
        self.check_keys(data, set(QueueSettings.__dataclass_fields__), "queue")
        defaults = QueueSettings()
        broker = os.environ.get("MONITOR_BROKER") or self.get(data, "broker", "queue", str, "")
        broker = broker.strip()
        if broker and not broker.startswith(_BROKER_SCHEMES):
            raise self.fail("queue.broker", "expected a redis:// or amqp:// address, got "
                            f"{masked_url(broker)!r}")  # fmt: skip
        name = self.get(data, "name", "queue", str, defaults.name).strip()
        if not re.fullmatch(r"[\w.:-]+", name):
            raise self.fail("queue.name", f"expected a name of letters, digits, ._:-, got {name!r}")
        batch = self.get(data, "batch", "queue", int, defaults.batch)
        if isinstance(batch, bool) or not 1 <= batch <= 1000:
            raise self.fail("queue.batch", f"expected 1 to 1000 sources per task, got {batch!r}")
        lease = self.duration(data, "lease", "queue", defaults.lease)
        return QueueSettings(broker=broker, name=name, batch=batch, lease=lease)

    def ui(self, data: dict) -> UiSettings:
        self.check_keys(data, {"base_url", "host", "port", "password_env"}, "ui")
        defaults = UiSettings()
        base_url = self.get(data, "base_url", "ui", str, defaults.base_url).strip().rstrip("/")
        if base_url and not re.match(r"^https?://[^/\s]+", base_url):
            raise self.fail("ui.base_url", f"expected an http(s) address, got {base_url!r}")
        port = self.get(data, "port", "ui", int, defaults.port)
        if isinstance(port, bool) or not 0 < port < 65536:
            raise self.fail("ui.port", f"expected a port number from 1 to 65535, got {port!r}")
        host = self.get(data, "host", "ui", str, defaults.host).strip()
        if not host:
            raise self.fail("ui.host", "expected an address to listen on, e.g. '127.0.0.1'")
        password_env = self.get(data, "password_env", "ui", str, defaults.password_env)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
            raise self.fail(
                "ui.password_env", f"expected an environment variable name, got {password_env!r}"
            )
        return UiSettings(base_url=base_url, host=host, port=port, password_env=password_env)
