"""`monitor rules derive`: propose a rule file from an analysis article."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from monitor.cli.common import clean_errors, optional_settings, rules_folder
from monitor.errors import MonitorError
from monitor.settings import FetchSettings


@click.command("derive")
@click.argument("article")
@click.option(
    "--into",
    type=click.Path(),
    default=None,
    help="Write the proposed file into this folder (e.g. rules/new), or to this .yaml file.",
)
@click.option("--rules", "rules_path", type=click.Path(), default=None,
              help="Rules whose actors are known (default: the configured ones).")  # fmt: skip
@click.pass_context
@clean_errors
def rules_derive(
    ctx: click.Context, article: str, into: str | None, rules_path: str | None
) -> None:
    """Read an analysis article (FILE.txt, a saved page, or URL) and propose a rule file:
    its actors with their aliases (known ones marked with the id they have) and topic rules
    from its key phrases, as YAML that `monitor rules check` accepts."""
    from monitor.derive import derive
    from monitor.derive.render import render
    from monitor.derive.source import read_article
    from monitor.rules import load_rules, rule_files

    settings = optional_settings(ctx)
    limits = settings.fetch if settings else FetchSettings()
    root = rules_folder(ctx, rules_path)
    # no rules yet (a new topic): every actor is new
    ruleset = load_rules(root) if root.exists() and rule_files(root) else None
    found = read_article(article, limits)
    result = derive(found.text, ruleset, root, found.source, found.title, _languages(root))
    text = render(result)
    if into is None:
        click.echo(text, nl=False)
        return
    target = _target(Path(into), found.source)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    _check_beside(target, root, standalone=not result.known)
    click.echo(
        f"{target}: {len(result.new)} new actors, {len(result.known)} known, "
        f"{len(result.topics)} topic rules"
    )


def _check_beside(target: Path, root: Path, standalone: bool) -> None:
    """The written file must load with the rules it was derived against when it went in
    among them, or alone when it names none of their actors; a file that does not is
    removed, and its problems reported."""
    from monitor.errors import RuleError
    from monitor.rules import load_rules, rule_files

    inside = root.is_dir() and target.resolve().is_relative_to(root.resolve())
    inside = inside and bool(rule_files(root))
    if not inside and not standalone:
        return  # its names: entries need the rules beside it, wherever the user puts it
    try:
        load_rules(root if inside else target)
    except RuleError:
        target.unlink()
        raise


def _target(into: Path, source: str) -> Path:
    """The file to write: `into` itself when it names a .yaml file, else a file in it named
    after the article; never one that exists."""
    if into.suffix in (".yaml", ".yml"):
        target = into
    else:
        stem = Path(source.rstrip("/").split("?")[0]).stem or "derived"
        slug = "-".join("".join(c if c.isalnum() else " " for c in stem.lower()).split())
        target = into / f"{slug or 'derived'}.yaml"
    if target.exists():
        raise MonitorError(f"{target} exists: give another --into, or move it away first")
    return target


def _languages(root: Path) -> tuple[str, ...]:
    """The languages of the rules' names.toml (whose CLDR names new places get), or English."""
    specs = sorted(root.rglob("names.toml")) if root.is_dir() else []
    for spec in specs:
        try:
            languages = tomllib.loads(spec.read_text(encoding="utf-8")).get("languages")
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if isinstance(languages, list) and languages:
            return tuple(str(lang) for lang in languages)
    return ("en",)
