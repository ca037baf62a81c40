"""`monitor rules backtest` and `monitor rules suggest`: what a rule edit would change on the
stored items, and exclusion words from analysts' "not relevant" verdicts."""

from __future__ import annotations

from datetime import timedelta

import click

from monitor.cli.common import clean_errors, rules_folder, settings_of
from monitor.errors import ConfigError, MonitorError


@click.command("backtest")
@click.option("--since", default="30d", show_default=True,
              help="Replay items first seen this long ago or later (30m, 12h, 30d).")  # fmt: skip
@click.option("--rules", "rules_path", type=click.Path(), default=None,
              help="Rule folder to try (default: the configured one).")  # fmt: skip
@click.option("--examples", type=click.IntRange(0, 100), default=3, show_default=True,
              help="Items shown per rule for its gains and for its losses.")  # fmt: skip
@click.pass_context
@clean_errors
def backtest(ctx: click.Context, since: str, rules_path: str | None, examples: int) -> None:
    """Replay stored items through the rule files as they are on disk now: per rule, the hits
    gained and lost against what is stored, and its precision on items with feedback.
    Changes nothing that digests or alerts see."""
    from monitor.clock import utcnow
    from monitor.config import parse_duration
    from monitor.rules import load_rules
    from monitor.store import open_store
    from monitor.triage import backtest as run

    settings = settings_of(ctx)
    try:
        start = utcnow() - timedelta(seconds=parse_duration(since))
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from None
    folder = rules_folder(ctx, rules_path)
    ruleset = load_rules(folder)
    with open_store(settings) as store:
        stored = store.rules_hit_since(start)
        verdicts = store.verdicts()
        report = run(
            ruleset,
            store.items_since(start),
            stored,
            verdicts,
            store.items_by_id(sorted({item for item, _ in verdicts})),
            settings.fetch.max_text,
        )
    click.echo(
        f"{report.items} items first seen since {since} ago replayed through {folder} "
        f"({len(ruleset.rules)} rules); {report.judged_items} older items with feedback too"
    )
    for change in report.changes:
        _print_change(change, examples)
    changed = sum(change.changed for change in report.changes)
    click.echo(f"{changed} of {len(report.changes)} rules change; nothing stored was changed")


def _print_change(change, examples: int) -> None:  # type: ignore[no-untyped-def]
    gone = "" if change.on_disk else "  (no longer in the rule files)"
    click.echo(
        f"{change.rule}: {change.stored} stored, {change.replayed} now, "
        f"+{len(change.gained)} gained, -{len(change.lost)} lost{gone}"
    )
    if change.precision:
        p = change.precision
        click.echo(
            f"  precision on {p.judged} judged items: {_share(p.relevant, p.judged)} as stored, "
            f"{_share(p.relevant_now, p.hit_now)} now ({p.hit_now} still hit, "
            f"{p.relevant - p.relevant_now} relevant lost, "
            f"{(p.judged - p.relevant) - (p.hit_now - p.relevant_now)} not relevant dropped)"
        )
    for sign, items in (("+", change.gained), ("-", change.lost)):
        for example in items[:examples]:
            title = example.title or "(no title)"
            click.echo(f"  {sign} {title}  [{example.source}, {example.item_id}]")
        if len(items) > examples:
            click.echo(f"  {sign} ... and {len(items) - examples} more")


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} = {part / whole:.2f}" if whole else "n/a"


@click.command("suggest")
@click.argument("rule_id")
@click.option("--rules", "rules_path", type=click.Path(), default=None)
@click.option("--max-terms", type=click.IntRange(1, 50), default=8, show_default=True)
@click.pass_context
@clean_errors
def suggest(ctx: click.Context, rule_id: str, rules_path: str | None, max_terms: int) -> None:
    """Exclusion words for RULE_ID from the items marked "not relevant" for it (the words
    that most separate them from its relevant ones), as text to paste into its query."""
    from monitor.match import Engine
    from monitor.rules import load_rules
    from monitor.store import open_store
    from monitor.triage import evidence_words
    from monitor.triage import suggest as propose

    settings = settings_of(ctx)
    ruleset = load_rules(rules_folder(ctx, rules_path))
    with open_store(settings) as store:
        judged = store.judged_items(rule_id)
    if not any(verdict == "not relevant" for _, verdict in judged):
        raise MonitorError(f"no item is marked 'not relevant' for {rule_id}: nothing to learn from")
    own = evidence_words(Engine(ruleset), [item for item, _ in judged], rule_id)
    result = propose(rule_id, judged, own, max_terms)
    try:
        origin = ruleset.rule(rule_id).origin
    except KeyError:
        origin = "no longer in the rule files"
    click.echo(f"# {rule_id} ({origin}): {result.bad} items marked not relevant, "
               f"{result.good} relevant")  # fmt: skip
    click.echo("# word                 in not relevant   in relevant")
    for term in result.ranked:
        bad, good = f"{term.in_bad}/{result.bad}", f"{term.in_good}/{result.good}"
        click.echo(f"#   {term.word:<20} {bad:>8}          {good:>8}")
    if not result.terms:
        click.echo("# no word occurs in not-relevant items without occurring in relevant ones")
        return
    click.echo(f"# append to the rule's query: removes {result.dropped_bad} of {result.bad} "
               f"not relevant, {result.dropped_good} of {result.good} relevant")  # fmt: skip
    click.echo(result.clause)
