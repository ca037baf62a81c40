"""Rule files (check, generate names, test one rule) and offline runs over JSON lines:
matching and clustering items from a file as the daemon would."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from monitor.cli.common import clean_errors, optional_settings, rules_folder
from monitor.errors import MonitorError
from monitor.models import Item
from monitor.settings import FetchSettings


@click.group()
def rules() -> None:
    """Check rule files and try rules on text."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path())
@click.pass_context
@clean_errors
def rules_check(ctx: click.Context, path: str | None) -> None:
    """Validate every rule file; report every problem as file:line: message."""
    from monitor.rules import load_rules

    target = rules_folder(ctx, path)
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
    ruleset = load_rules(rules_folder(ctx, rules_path))
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


@click.command("match")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--rules", "rules_path", type=click.Path(), default=None)
@click.pass_context
@clean_errors
def match_cmd(ctx: click.Context, file: Any, rules_path: str | None) -> None:
    """Match items from a JSON-lines FILE ('-' for stdin); print one JSON line of hits each."""
    from monitor.jsonl import json_records
    from monitor.match import Engine, item_from_json
    from monitor.rules import load_rules

    settings = optional_settings(ctx)
    max_text = settings.fetch.max_text if settings else FetchSettings().max_text
    engine = Engine(load_rules(rules_folder(ctx, rules_path)), max_chars=max_text)
    for number, record in json_records(file, file.name):
        hits, relations = engine.match_with_relations(item_from_json(record, number))
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
            "relations": [
                {
                    "subject": r.subject,
                    "action": r.action,
                    "object": r.object,
                    "sentence": r.sentence,
                }
                for r in relations
            ],
        }
        click.echo(json.dumps(out, ensure_ascii=False))


@click.command("cluster")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--rules", "rules_path", type=click.Path(), default=None)
@click.option(
    "--truth",
    default="",
    metavar="FIELD",
    help="Score the stories against each record's FIELD (true labels); scores on stderr.",
)
@click.pass_context
@clean_errors
def cluster_cmd(ctx: click.Context, file: Any, rules_path: str | None, truth: str) -> None:
    """Group items from a JSON-lines FILE ('-' for stdin) into stories with the daemon's
    algorithm and windows; print one JSON line per item: its story and whether it is the
    story's first report."""
    from monitor.cluster import cluster, read_jsonl, score
    from monitor.match import Engine
    from monitor.rules import load_rules

    settings = optional_settings(ctx)
    max_text = settings.fetch.max_text if settings else FetchSettings().max_text
    engine = Engine(load_rules(rules_folder(ctx, rules_path)), max_chars=max_text)
    labels: dict[str, str] = {}
    placements = cluster(list(read_jsonl(file, file.name, labels, truth)), engine)
    for placement in placements:
        out = {"id": placement.id, "story": placement.story, "first": placement.first}
        click.echo(json.dumps(out, ensure_ascii=False))
    if truth:
        got = score({p.id: p.story for p in placements}, labels)
        click.echo(
            f"{len(labels)} labelled items: pairwise P {got.pair_precision:.3f} "
            f"R {got.pair_recall:.3f} F1 {got.pair_f1:.3f} · B-cubed P "
            f"{got.bcubed_precision:.3f} R {got.bcubed_recall:.3f} F1 {got.bcubed_f1:.3f}",
            err=True,
        )
