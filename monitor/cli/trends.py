"""`monitor trends`: surges, breaking stories and firsts, from the database or a replay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click

from monitor.cli.common import clean_errors, optional_settings, rules_folder, settings_of
from monitor.config import parse_duration
from monitor.errors import MonitorError
from monitor.settings import SignalSettings


@click.command("trends")
@click.option("--since", default="7d", show_default=True, help="How far back, e.g. 24h, 7d.")
@click.option("--actor", default=None, help="Only signals naming this actor id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--from-jsonl",
    "from_jsonl",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Replay a JSONL of items as the whole history instead of reading the database.",
)
@click.option("--rules", "rules_path", type=click.Path(), default=None)
@click.pass_context
@clean_errors
def trends(
    ctx: click.Context,
    since: str,
    actor: str | None,
    as_json: bool,
    from_jsonl: Any,
    rules_path: str | None,
) -> None:
    """What changed: surges, breaking stories and first (co-)mentions, with their numbers."""
    from monitor.clock import utcnow
    from monitor.match import Engine
    from monitor.rules import load_rules
    from monitor.signals import actor_names, describe
    from monitor.store import open_store
    from monitor.trends import replay_file

    ruleset = load_rules(rules_folder(ctx, rules_path))
    if from_jsonl is not None:
        settings = optional_settings(ctx)
        config = settings.signals if settings else SignalSettings()
        signals = list(replay_file(from_jsonl.name, from_jsonl, Engine(ruleset), config))
        if actor:
            signals = [s for s in signals if actor in s.actors]
    else:
        try:
            window = timedelta(seconds=parse_duration(since))
        except ValueError as exc:
            raise MonitorError(f"--since: {exc}") from None
        with open_store(settings_of(ctx)) as store:
            signals = store.signals(utcnow() - window, actor)
    names = actor_names(ruleset)
    for signal in signals:
        if as_json:
            click.echo(json.dumps(signal.as_json(), ensure_ascii=False))
        else:
            click.echo(f"{signal.at:%Y-%m-%d %H:%M}  {signal.kind:13} {describe(signal, names)}")
    if not signals and not as_json:
        click.echo("no surges, breaking stories or firsts")
