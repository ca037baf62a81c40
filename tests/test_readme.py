"""The README is the front door: every command and every setting must be documented there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from monitor.cli import main
from monitor.settings import (
    DigestSettings,
    FetchSettings,
    NotifySettings,
    QueueSettings,
    SignalSettings,
    SmtpSettings,
    UiSettings,
)

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "monitor") -> list[str]:
    found = []
    for name, command in group.commands.items():
        found.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix} {name}")
    return found


def test_every_command_is_documented() -> None:
    missing = [c for c in commands(main) if f"`{c}" not in README]
    assert missing == []


def test_every_setting_is_documented() -> None:
    keys = {f.name for cls in (FetchSettings, SmtpSettings, DigestSettings, SignalSettings,
                               NotifySettings, UiSettings, QueueSettings)
            for f in dataclasses.fields(cls)}  # fmt: skip
    missing = sorted(k for k in keys if f"{k} =" not in README and f".{k}" not in README)
    assert missing == []


def test_readme_names_the_commands_users_need() -> None:
    for needed in ("make run", "make test", "make demo", "monitor rules check", "--dry-run"):
        assert needed in README
