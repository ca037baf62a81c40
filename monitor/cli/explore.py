"""Trying it out and looking around: demo, init, search."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from monitor.cli.common import clean_errors, print_reports, rules_folder, settings_of


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to put the demo database and outbox (default: a new temp folder).",
)
@click.option(
    "--rules",
    type=click.Path(exists=True),
    default=None,
    help="Rules to use (default: the configured rules, else ./rules, else the shipped pack).",
)
@click.pass_context
@clean_errors
def demo(ctx: click.Context, folder: str | None, rules: str | None) -> None:
    """See the whole flow offline: sample feeds → database → digest in an outbox folder."""
    from monitor.demo import run_demo

    pack = rules_folder(ctx, rules)
    target = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="monitor-demo-"))
    result = run_demo(target, pack)
    click.echo(f"Polled {len(result.reports)} sample sources served on 127.0.0.1:")
    print_reports(result.reports)
    click.echo(f"\nDatabase:  {result.database}")
    for message in result.messages:
        click.echo(f"Digest:    {message.digest.subject}")
    eml = sorted(result.outbox.glob("*.eml"))
    click.echo(f"Outbox:    {result.outbox} ({len(eml)} message(s))")
    if eml:
        click.echo(f"Message:   {eml[-1]}")
    if result.preview:
        click.echo(f"Preview:   {result.preview}  (open it in a browser)")
    click.echo(f"\nExplore:   monitor --config {result.config} search kosovo")
    click.echo(f"           monitor --config {result.config} sources")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False), default=".")
@clean_errors
def init(folder: str) -> None:
    """Write a working monitor.toml and a copy of the rule pack to edit into FOLDER."""
    from monitor.packaged import init_folder

    result = init_folder(Path(folder))
    for path in result.written:
        click.echo(f"wrote     {path}{'/' if path.is_dir() else ''}")
    for path in result.kept:
        click.echo(f"kept      {path} (already there)")
    click.echo(f"\nNext:      monitor --config {result.config} rules check")
    click.echo(f"           monitor --config {result.config} once")
    click.echo(f"           monitor --config {result.config} digest --dry-run")
    click.echo(f"           monitor --config {result.config} run")


@click.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
@clean_errors
def search(ctx: click.Context, query: str, limit: int) -> None:
    """Full-text search of stored items (every word must occur)."""
    from monitor.store import open_store

    with open_store(settings_of(ctx)) as store:
        results = store.search(query, limit)
    for result in results:
        click.echo(f"{(result.published or '')[:10]:10}  {result.source}: {result.title}")
        click.echo(f"            {result.snippet}")
        if result.url:
            click.echo(f"            {result.url}")
        if result.story_items > 1:
            click.echo(f"            story: {result.story} ({result.story_items} items)")
    click.echo(f"{len(results)} result(s)")
