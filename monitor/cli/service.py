"""Running the service and what it sends: run, status, prune, once, digest, alerts, outbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from monitor.cli.common import clean_errors, print_reports, settings_of
from monitor.errors import ConfigError


@click.command()
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

    Daemon(settings_of(ctx), tick_seconds=tick, health_port=health_port).run_forever()


@click.command()
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo"]),
    default="prefork",
    show_default=True,
    help="prefork: CONCURRENCY processes; solo: one task at a time in this process.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Tasks run at once (processes of the prefork pool).",
)
@click.pass_context
@clean_errors
def worker(ctx: click.Context, pool: str, concurrency: int) -> None:
    """Poll the sources the service queues on the [queue] broker (run several, anywhere)."""
    from monitor.tasks import run_worker

    sys.exit(run_worker(settings_of(ctx), pool, 1 if pool == "solo" else concurrency))


@click.command()
@click.option("--check", is_flag=True, help="Only check the service's heartbeat; exit 1 if stale.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.pass_context
@clean_errors
def status(ctx: click.Context, check: bool, as_json: bool) -> None:
    """How the service is doing: each source (failing first), the outbox, the heartbeat."""
    from monitor.status import collect_status

    report = collect_status(settings_of(ctx), heartbeat_only=check)
    if check:
        click.echo(("ok: " if report.healthy else "unhealthy: ") + report.heartbeat)
        sys.exit(0 if report.healthy else 1)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    for line in report.lines():
        click.echo(line)


@click.command()
@click.option("--older-than", default=None, help="Age like '90d' (default: [retention] max_age).")
@click.pass_context
@clean_errors
def prune(ctx: click.Context, older_than: str | None) -> None:
    """Delete items first seen longer ago than the retention age (items in digests stay)."""
    from monitor.status import prune_items

    count, age = prune_items(settings_of(ctx), older_than)
    click.echo(f"{count} items older than {age} pruned")


@click.command()
@click.option("--source", "-s", "names", multiple=True, help="Only this source (repeatable).")
@click.pass_context
@clean_errors
def once(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Poll every source now, whatever its schedule, and store new items and hits."""
    from monitor.match import RuleWatcher
    from monitor.pipeline import poll
    from monitor.signals import run_signals
    from monitor.store import open_store

    settings = settings_of(ctx)
    sources = [settings.source(n) for n in names] if names else list(settings.sources)
    watcher = RuleWatcher(settings.rules)
    with open_store(settings) as store:
        reports = poll(settings, store, watcher.engine, sources)
        run_signals(store, settings.signals)
    print_reports(reports)
    if reports and all(r.error for r in reports):
        sys.exit(1)


@click.command()
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

    settings = settings_of(ctx)
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


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the alert that is due; send nothing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the batch window to close.")
@click.pass_context
@clean_errors
def alerts(ctx: click.Context, dry_run: bool, no_wait: bool) -> None:
    """Send the urgent alert now if one is due (the service does this every tick)."""
    from monitor.alerts import check_alert, send_alerts
    from monitor.match import RuleWatcher
    from monitor.store import open_store

    settings = settings_of(ctx)
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


@click.group(invoke_without_command=True)
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
    with open_store(settings_of(ctx)) as store:
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
    with open_store(settings_of(ctx)) as store:
        offered = store.requeue(ids, failed=all_failed, now=utcnow())
    missing = sorted(set(ids) - set(offered))
    for number in missing:
        click.echo(f"#{number}: no failed message with this id", err=True)
    click.echo(f"{len(offered)} message(s) offered again: {', '.join(map(str, offered)) or '-'}")
    if missing:
        sys.exit(1)
