"""What every command shares: logging setup, turning MonitorError into one line and an exit
code, and finding the config and rule folder."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pythonjsonlogger.json import JsonFormatter

from monitor.config import config_path, load_settings
from monitor.errors import ConfigError, MonitorError, RuleError
from monitor.settings import Settings

log = logging.getLogger("monitor")


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        # One object per line: time, level, logger, message, and the record's own fields
        # (source, status, new, hits, seconds, error, ...) as typed values to filter on.
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def clean_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a message and exit status: 2 for config/rules, 1 otherwise."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RuleError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            click.echo(f"{len(exc.problems)} problem(s) in rule files", err=True)
            sys.exit(2)
        except ConfigError as exc:
            click.echo(f"config error: {exc}", err=True)
            sys.exit(2)
        except MonitorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def settings_of(ctx: click.Context) -> Settings:
    return load_settings(ctx.obj["config"])


def optional_settings(ctx: click.Context) -> Settings | None:
    """The config when its file exists (a broken one is still an error), else None: commands
    that work without a config fall back to their defaults then."""
    path = config_path(ctx.find_root().obj["config"])
    return load_settings(path) if path.exists() else None


def rules_folder(ctx: click.Context, explicit: str | None = None) -> Path:
    """--rules if given, else the configured rules folder, else ./rules, else the pack that
    ships with the package."""
    from monitor.packaged import pack_path

    if explicit:
        return Path(explicit)
    settings = optional_settings(ctx)
    if settings:
        return settings.rules
    return Path("rules") if Path("rules").is_dir() else pack_path()


def print_reports(reports: list[Any]) -> None:
    for r in reports:
        if r.error:
            click.echo(f"  ✗ {r.name}: {r.error}")
        else:
            click.echo(
                f"  ✓ {r.name}: HTTP {r.status}, {r.parsed} parsed, {r.new} new, "
                f"{r.seen} already seen, {r.hits} hits"
            )
    click.echo(
        f"{sum(r.new for r in reports)} new items, {sum(r.hits for r in reports)} hits, "
        f"{sum(1 for r in reports if r.error)} failed sources"
    )
