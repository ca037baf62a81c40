"""The `monitor` command. Each command calls one library function; a MonitorError becomes a
clean message on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pythonjsonlogger.json import JsonFormatter

from monitor import __version__
from monitor.config import FetchSettings, Settings, config_path, load_settings
from monitor.errors import ConfigError, MonitorError, RuleError
from monitor.models import Item

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


def _settings(ctx: click.Context) -> Settings:
    return load_settings(ctx.obj["config"])


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


@main.command()
@click.option(
    "--tick",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Seconds between checks for due sources (at least 1).",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve /healthz and /metrics on 127.0.0.1:PORT (overrides [health] listen).",
)
@click.pass_context
@clean_errors
def run(ctx: click.Context, tick: int, health_port: int | None) -> None:
    """Run the service: poll each source at its interval, send digests on their schedules."""
    from monitor.scheduler import Daemon

    Daemon(_settings(ctx), tick_seconds=tick, health_port=health_port).run_forever()


@main.command()
@click.option("--check", is_flag=True, help="Only check the service's heartbeat; exit 1 if stale.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.pass_context
@clean_errors
def status(ctx: click.Context, check: bool, as_json: bool) -> None:
    """How the service is doing: each source (failing first), the outbox, the heartbeat."""
    from monitor.status import collect_status

    report = collect_status(_settings(ctx), heartbeat_only=check)
    if check:
        click.echo(("ok: " if report.healthy else "unhealthy: ") + report.heartbeat)
        sys.exit(0 if report.healthy else 1)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    for line in report.lines():
        click.echo(line)


@main.command()
@click.option("--older-than", default=None, help="Age like '90d' (default: [retention] max_age).")
@click.pass_context
@clean_errors
def prune(ctx: click.Context, older_than: str | None) -> None:
    """Delete items first seen longer ago than the retention age (items in digests stay)."""
    from monitor.status import prune_items

    count, age = prune_items(_settings(ctx), older_than)
    click.echo(f"{count} items older than {age} pruned")


@main.command()
@click.option("--source", "-s", "names", multiple=True, help="Only this source (repeatable).")
@click.pass_context
@clean_errors
def once(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Poll every source now, whatever its schedule, and store new items and hits."""
    from monitor.match import RuleWatcher
    from monitor.pipeline import poll
    from monitor.store import open_store

    settings = _settings(ctx)
    sources = [settings.source(n) for n in names] if names else list(settings.sources)
    watcher = RuleWatcher(settings.rules)
    with open_store(settings) as store:
        reports = poll(settings, store, watcher.engine, sources)
    _print_reports(reports)
    if reports and all(r.error for r in reports):
        sys.exit(1)


def _print_reports(reports: list[Any]) -> None:
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


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the digests; send and record nothing.")
@click.option(
    "--preview",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the first digest's HTML to this file.",
)
@click.option("--name", "names", multiple=True, help="Only this digest (repeatable).")
@click.pass_context
@clean_errors
def digest(ctx: click.Context, dry_run: bool, preview: str | None, names: tuple[str, ...]) -> None:
    """Send the digests now: every hit not yet delivered to that digest."""
    from monitor.deliver import send_digests
    from monitor.digest import prepare
    from monitor.match import RuleWatcher
    from monitor.store import open_store

    settings = _settings(ctx)
    if not settings.digests:
        raise ConfigError(f"{settings.path}: digests: none configured (add a [[digests]] table)")
    ruleset = RuleWatcher(settings.rules).ruleset
    with open_store(settings) as store:
        if dry_run:
            built = prepare(settings, store, ruleset, list(names) or None, dry_run=True)
            for message in built:
                click.echo(f"To: {', '.join(message.digest.settings.to)}")
                click.echo(f"Subject: {message.digest.subject}\n")
                click.echo(message.text)
        else:
            built = send_digests(settings, store, ruleset, list(names) or None)
            for message in built:
                click.echo(f"{message.digest.settings.name}: {message.digest.subject}")
            undelivered = _undelivered(store, built)
    if preview and built:
        Path(preview).write_text(built[0].html, encoding="utf-8")
        click.echo(f"HTML preview written to {preview}")
    if not built:
        click.echo("nothing new to send")
    if not dry_run and undelivered:
        sys.exit(1)


def _undelivered(store: Any, built: list[Any]) -> list[str]:
    """Say which of the messages just built did not go out (they stay in the outbox)."""
    states = store.message_states([b.message_id for b in built]) if built else {}
    failed = [b for b in built if states.get(b.message_id, "sent") != "sent"]
    for message in failed:
        state = states[message.message_id]
        click.echo(
            f"not delivered ({state}): {message.digest.subject}; see `monitor outbox`", err=True
        )
    return [b.message_id for b in failed]


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the alert that is due; send nothing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the batch window to close.")
@click.pass_context
@clean_errors
def alerts(ctx: click.Context, dry_run: bool, no_wait: bool) -> None:
    """Send the urgent alert now if one is due (the service does this every tick)."""
    from monitor.alerts import check_alert, send_alerts
    from monitor.match import RuleWatcher
    from monitor.store import open_store

    settings = _settings(ctx)
    if settings.alerts is None:
        raise ConfigError(f"{settings.path}: alerts: not configured (add an [alerts] table)")
    ruleset = RuleWatcher(settings.rules).ruleset
    with open_store(settings) as store:
        run = check_alert if dry_run else send_alerts
        check = run(settings, store, ruleset, wait=not no_wait)
        undelivered = [] if dry_run or check.built is None else _undelivered(store, [check.built])
    if check.built is None:
        later = (
            f" (next chance {check.next_check:%Y-%m-%d %H:%M:%S} UTC)" if check.next_check else ""
        )
        click.echo(f"no alert sent: {check.reason}{later}")
    elif dry_run:
        click.echo(f"To: {', '.join(check.built.digest.settings.to)}")
        click.echo(f"Subject: {check.built.digest.subject}\n")
        click.echo(check.built.text)
    else:
        click.echo(f"alert: {check.built.digest.subject}")
    if undelivered:
        sys.exit(1)


@main.group(invoke_without_command=True)
@click.option(
    "--state",
    type=click.Choice(["pending", "sending", "sent", "failed"]),
    default=None,
    help="Only messages in this state.",
)
@click.option("--limit", default=20, show_default=True)
@click.pass_context
@clean_errors
def outbox(ctx: click.Context, state: str | None, limit: int) -> None:
    """Recorded digests and alerts, newest first: state, attempts, last error.
    `outbox retry ID...` (or `--failed`) offers failed messages for delivery again."""
    if ctx.invoked_subcommand is not None:
        return
    from monitor.clock import iso, utcnow
    from monitor.store import open_store

    now = utcnow()
    with open_store(_settings(ctx)) as store:
        stored = "pending" if state == "sending" else state
        messages = [m for m in store.outbox_messages(stored, limit) if not state
                    or m.state(now) == state]  # fmt: skip
    click.echo(f"{'ID':>5} {'STATE':8} {'CREATED':20} {'HITS':>4} {'TRIES':>5}  NAME: SUBJECT")
    for m in messages:
        click.echo(
            f"{m.id:>5} {m.state(now):8} {iso(m.created_at):20} {m.hits:>4} {m.attempts:>5}  "
            f"{m.name}: {m.subject}"
        )
        if m.last_error and m.status != "sent":
            click.echo(f"{'':>6}last error: {m.last_error}")
    click.echo(f"{len(messages)} message(s)")


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--failed", "all_failed", is_flag=True, help="Every failed message.")
@click.pass_context
@clean_errors
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], all_failed: bool) -> None:
    """Offer failed messages for delivery again; the service (or `monitor digest`) sends
    them on its next run."""
    from monitor.clock import utcnow
    from monitor.store import open_store

    if not ids and not all_failed:
        raise click.UsageError("give message ids (see `monitor outbox`) or --failed")
    with open_store(_settings(ctx)) as store:
        offered = store.requeue(ids, failed=all_failed, now=utcnow())
    missing = sorted(set(ids) - set(offered))
    for number in missing:
        click.echo(f"#{number}: no failed message with this id", err=True)
    click.echo(f"{len(offered)} message(s) offered again: {', '.join(map(str, offered)) or '-'}")
    if missing:
        sys.exit(1)


@main.command()
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

    rules_path = _rules_path(ctx, rules)
    target = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="monitor-demo-"))
    result = run_demo(target, rules_path)
    click.echo(f"Polled {len(result.reports)} sample sources served on 127.0.0.1:")
    _print_reports(result.reports)
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


def _optional_settings(ctx: click.Context) -> Settings | None:
    """The config when its file exists (a broken one is still an error), else None: commands
    that work without a config fall back to their defaults then."""
    path = config_path(ctx.find_root().obj["config"])
    return load_settings(path) if path.exists() else None


def _rules_path(ctx: click.Context, explicit: str | None = None) -> Path:
    """--rules if given, else the configured rules folder, else ./rules, else the pack that
    ships with the package."""
    from monitor.packaged import pack_path

    if explicit:
        return Path(explicit)
    settings = _optional_settings(ctx)
    if settings:
        return settings.rules
    return Path("rules") if Path("rules").is_dir() else pack_path()


@main.command()
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


@main.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
@clean_errors
def search(ctx: click.Context, query: str, limit: int) -> None:
    """Full-text search of stored items (every word must occur)."""
    from monitor.store import open_store

    with open_store(_settings(ctx)) as store:
        results = store.search(query, limit)
    for result in results:
        click.echo(f"{(result.published or '')[:10]:10}  {result.source}: {result.title}")
        click.echo(f"            {result.snippet}")
        if result.url:
            click.echo(f"            {result.url}")
        if result.story_items > 1:
            click.echo(f"            story: {result.story} ({result.story_items} items)")
    click.echo(f"{len(results)} result(s)")


@main.group(invoke_without_command=True)
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

    settings = _settings(ctx)
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
    settings = _optional_settings(ctx)
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

    settings = load_settings(ctx.find_root().obj["config"])
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


@main.group()
def rules() -> None:
    """Check rule files and try rules on text."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path())
@click.pass_context
@clean_errors
def rules_check(ctx: click.Context, path: str | None) -> None:
    """Validate every rule file; report every problem as file:line: message."""
    from monitor.rules import load_rules

    target = _rules_path(ctx, path)
    ruleset = load_rules(target)
    click.echo(
        f"{target}: {len(ruleset.rules)} rules, {len(ruleset.actors)} actors in "
        f"{len(ruleset.files)} files: OK"
    )


@rules.command("names")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@clean_errors
def rules_names(folder: str) -> None:
    """Generate FOLDER/names.yaml (actor names in every language, with their inflected
    forms) from FOLDER/names.toml, CLDR, GeoNames and simplemma's dictionaries."""
    from monitor.namegen import write_names

    out, count = write_names(Path(folder))
    click.echo(f"{out}: {count} aliases written")


@rules.command("test")
@click.argument("rule_id")
@click.option("--text", "-t", default=None, help="The text to try.")
@click.option(
    "--file",
    "-f",
    "file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Read the text from this file ('-' for stdin).",
)
@click.option("--title", default="", help="A title to try alongside the text.")
@click.option("--rules", "rules_path", type=click.Path(), default=None)
@click.pass_context
@clean_errors
def rules_test(
    ctx: click.Context,
    rule_id: str,
    text: str | None,
    file: Any,
    title: str,
    rules_path: str | None,
) -> None:
    """Whether RULE_ID matches a text, and why (or why not)."""
    from monitor.match import Engine, explain
    from monitor.rules import load_rules

    body = text if text is not None else (file.read() if file else None)
    if body is None and not title:
        raise click.UsageError("give --text, --file or --title")
    ruleset = load_rules(_rules_path(ctx, rules_path))
    try:
        rule = ruleset.rule(rule_id)
    except KeyError:
        close = [r.id for r in ruleset.rules if rule_id.split("/")[-1] in r.id][:5]
        raise MonitorError(
            f"no rule {rule_id!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
        ) from None
    item = Item("text", "text", "", "", title, body or "", "", "", "")
    lines, matched = explain(Engine(ruleset), rule, item)
    for line in lines:
        click.echo(line)
    sys.exit(0 if matched else 1)


@main.command("match")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--rules", "rules_path", type=click.Path(), default=None)
@click.pass_context
@clean_errors
def match_cmd(ctx: click.Context, file: Any, rules_path: str | None) -> None:
    """Match items from a JSON-lines FILE ('-' for stdin); print one JSON line of hits each."""
    from monitor.match import Engine, item_from_json
    from monitor.rules import load_rules

    settings = _optional_settings(ctx)
    max_text = settings.fetch.max_text if settings else FetchSettings().max_text
    engine = Engine(load_rules(_rules_path(ctx, rules_path)), max_chars=max_text)
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise MonitorError(f"{file.name}:{number}: not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise MonitorError(f"{file.name}:{number}: expected a JSON object")
        hits = engine.match(item_from_json(record, number))
        out = {
            "id": record.get("id", number),
            "hits": [
                {
                    "rule": h.rule,
                    "priority": h.priority,
                    "actors": list(h.actors),
                    "terms": list(h.terms),
                }
                for h in hits
            ],
        }
        click.echo(json.dumps(out, ensure_ascii=False))
