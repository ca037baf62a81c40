"""The `monitor` command. Each command calls one library function; a MonitorError becomes a
clean message on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import click

from monitor import __version__
from monitor.cli import derive, explore, opml, rules, service, sources, store, trends, triage, ui
from monitor.cli.common import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $MONITOR_CONFIG or ./monitor.toml).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="json: one object per line, for log shippers.",
)
@click.version_option(__version__, prog_name="news-monitor")
@click.pass_context
def main(ctx: click.Context, config: str | None, log_level: str, log_format: str) -> None:
    """Watch news feeds and websites, match items against your rules, send email digests."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    setup_logging(log_level, log_format)


rules.rules.add_command(derive.rules_derive)
sources.sources.add_command(opml.sources_import)
sources.sources.add_command(opml.sources_export)

for command in (
    service.run,
    service.worker,
    service.status,
    service.prune,
    service.once,
    service.digest,
    service.alerts,
    service.outbox,
    explore.demo,
    explore.init,
    explore.search,
    sources.sources,
    rules.rules,
    rules.match_cmd,
    rules.cluster_cmd,
    trends.trends,
    ui.ui,
    store.migrate_store,
):
    main.add_command(command)

for command in (triage.backtest, triage.suggest):
    rules.rules.add_command(command)
