"""The configured sources: their state, discovering feeds, testing one source."""

from __future__ import annotations

import click

from monitor.cli.common import clean_errors, optional_settings, settings_of
from monitor.errors import MonitorError
from monitor.settings import FetchSettings


@click.group(invoke_without_command=True)
@click.pass_context
@clean_errors
def sources(ctx: click.Context) -> None:
    """Table of sources and their last fetch state (failing sources first).

    A page source whose selectors no longer match shows "0 items parsed: ..." as its error.
    Subcommands: `discover URL` finds a site's feeds or proposes a page source; `test NAME`
    shows what a source would give now."""
    if ctx.invoked_subcommand is not None:
        return
    from monitor.clock import iso
    from monitor.store import open_store

    settings = settings_of(ctx)
    with open_store(settings) as store:
        store.sync_sources(settings.sources)
        statuses = store.source_statuses()
    configured = {s.name for s in settings.sources}
    click.echo(
        f"{'SOURCE':32} {'KIND':5} {'LAST CHECK':20} {'HTTP':>4} {'PARSED':>6} "
        f"{'NEW':>4} {'TOTAL':>6}  ERROR"
    )
    for s in statuses:
        if s.name not in configured:
            continue
        checked = iso(s.last_checked) if s.last_checked else "never"
        click.echo(
            f"{s.name[:32]:32} {s.kind:5} {checked:20} {s.last_status or '-':>4} "
            f"{_num(s.last_parsed):>6} {_num(s.last_new):>4} {s.items_total:>6}  "
            f"{s.last_error or ''}"
        )


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _fetch_limits(ctx: click.Context) -> FetchSettings:
    """The configured fetch limits, or the defaults when there is no config file."""
    settings = optional_settings(ctx)
    return settings.fetch if settings else FetchSettings()


@sources.command("discover")
@click.argument("url")
@click.option("--page", "want_page", is_flag=True, help="Propose a page source even with feeds.")
@click.option("--name", default="", help="Name for the proposed source (default: the site's).")
@click.option("--verbose", "-v", is_flag=True, help="List every address tried for a feed.")
@click.pass_context
@clean_errors
def sources_discover(
    ctx: click.Context, url: str, want_page: bool, name: str, verbose: bool
) -> None:
    """Find the feeds of the site at URL, else propose a page source with CSS selectors;
    print the [[sources]] block to paste into monitor.toml."""
    from monitor.discover import discover, source_block

    if not url.startswith(("http://", "https://")):
        url = "https://" + url
    found = discover(url, _fetch_limits(ctx), want_page=want_page)
    click.echo(f"Page:  {found.url}" + (f"  ({found.title})" if found.title else ""))
    for feed in found.feeds:
        click.echo(f"Feed:  {feed.url}  [{feed.kind}, {feed.entries} entries, from {feed.how}]")
    for candidate, why in found.unreachable:  # the site names it: worth knowing, and retrying
        if why == "not a feed":
            click.echo(f"Feed:  declared, not a feed now: {candidate}")
        else:
            click.echo(f"Feed:  declared, unreachable now: {candidate} ({why})")
    if verbose:
        for candidate, why in found.tried:
            click.echo(f"       no feed at {candidate}: {why}")
    elif found.tried:
        click.echo(
            f"       {len(found.tried)} other addresses tried, none a feed (--verbose lists them)"
        )
    if found.page is not None:
        entries = found.page.entries
        dated = sum(1 for e in entries if e.published)
        how = " (article links found without selectors)" if found.page.selectors.auto else ""
        click.echo(
            f"List:  {len(entries)} items recognised, {dated} with a date, "
            f"{sum(1 for e in entries if e.summary)} with a summary{how}"
        )
        for entry in entries[:5]:
            click.echo(f"       {(entry.published or '')[:10]:10}  {entry.title[:70]}")
    block = source_block(found, name)
    if not block:
        raise MonitorError(
            f"{found.url}: no feed found and no list of articles recognised; write the "
            'selectors by hand (kind = "page", selectors = { item = "CSS", ... })'
        )
    click.echo("\nPaste into monitor.toml (and set the tags):\n")
    click.echo(block)


@sources.command("test")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="Items to show.")
@click.option(
    "--articles",
    default=3,
    show_default=True,
    help="For a fulltext source: fetch the article text of this many items.",
)
@click.pass_context
@clean_errors
def sources_test(ctx: click.Context, name: str, limit: int, articles: int) -> None:
    """Fetch source NAME once and show the items it gives; nothing is stored."""
    from monitor.pipeline import preview

    settings = settings_of(ctx.find_root())
    result = preview(settings, settings.source(name), articles)
    click.echo(
        f"{name} ({result.source.kind}): HTTP {result.status}, {len(result.items)} items "
        f"from {result.url}"
    )
    for item in result.items[:limit]:
        click.echo(f"  {(item.published or 'no date')[:10]:10}  {item.title}")
        click.echo(f"              {item.url}")
        if why := result.why.get(item.url):
            click.echo(f"              kept: {why}")
        if item.summary:
            click.echo(f"              {_clip(item.summary, 110)}")
        if item.content:
            click.echo(f"              text: {len(item.content):,} characters: "
                       f"{_clip(item.content, 80)}")  # fmt: skip
    if len(result.items) > limit:
        click.echo(f"  … and {len(result.items) - limit} more")
    if result.source.fulltext:
        click.echo(f"article text fetched for {result.with_text} item(s)")


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + " …"
