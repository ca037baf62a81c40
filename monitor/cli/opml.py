"""`monitor sources import FILE.opml` and `monitor sources export`: feed lists from and to
other readers."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.common import clean_errors, optional_settings, settings_of
from monitor.config import config_path, load_settings
from monitor.errors import ConfigError, MonitorError


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--write", is_flag=True, help="Append the new sources to the config file.")
@click.pass_context
@clean_errors
def sources_import(ctx: click.Context, file: str, write: bool) -> None:
    """Read an OPML feed list (as feed readers export it) and print a [[sources]] block for
    each feed the config lacks, its folders and categories as tags; --write appends them."""
    from monitor.opml import read_opml, source_blocks

    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise MonitorError(f"{file}: cannot read: {exc.strerror or exc}") from None
    feeds = read_opml(data, file)
    settings = optional_settings(ctx)
    proposed = source_blocks(feeds, list(settings.sources) if settings else [])
    for feed, why in proposed.skipped:
        click.echo(f"# skipped {feed.name} <{feed.url}>: {why}", err=True)
    text = "\n\n".join(proposed.blocks)
    if not write:
        if text:
            click.echo(text)
        click.echo(f"# {len(proposed.blocks)} of {len(feeds)} feeds proposed", err=True)
        return
    if settings is None:
        raise MonitorError("--write needs a config file (pass --config PATH)")
    path = config_path(ctx.find_root().obj["config"])
    if proposed.blocks:
        _append(path, f"\n# Imported from {Path(file).name}\n{text}\n")
    click.echo(f"{path}: {len(proposed.blocks)} sources added from {len(feeds)} feeds")


def _append(path: Path, text: str) -> None:
    """Append to the config and check it still loads; if it does not, put it back."""
    before = path.read_text(encoding="utf-8")
    path.write_text(before.rstrip("\n") + "\n" + text, encoding="utf-8")
    try:
        load_settings(path)
    except ConfigError:
        path.write_text(before, encoding="utf-8")
        raise


@click.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output.")  # fmt: skip
@click.pass_context
@clean_errors
def sources_export(ctx: click.Context, output: str | None) -> None:
    """Write the configured feed sources as OPML 2.0 (tags as categories), for any reader."""
    from monitor.opml import write_opml

    settings = settings_of(ctx.find_root())
    text = write_opml(list(settings.sources), "news-monitor sources")
    skipped = sum(1 for s in settings.sources if s.kind != "feed")
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{output}: {len(settings.sources) - skipped} feeds", err=True)
    else:
        click.echo(text, nl=False)
    if skipped:
        click.echo(f"# {skipped} page source(s) left out: they are not feeds", err=True)
