"""Rule and actor files: load `rules/**/*.yaml`, parse queries, report every problem with its
`file:line`.

A file holds `actors:` and/or `rules:`. Actor ids are global; a rule's id is prefixed with the
folder it lives in below the rules root, so `rules/balkans/x.yaml` rule `escalation` is
`balkans/escalation`. Queries are parsed by query.py (README, "Rule language").

`actions:` entries give each action class its verbs per language (relations.py).
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import RuleError
from monitor.models import PRIORITIES, Priority
from monitor.query import (
    DEFAULT_WINDOW,
    ActionLexicon,
    ActorRef,
    And,
    AtLeast,
    Near,
    Node,
    Not,
    Or,
    QueryError,
    RelationRef,
    Term,
    parse_query,
    parse_term,
    walk,
)
from monitor.safeyaml import BoundedLoader, load_bounded

ACTOR_KINDS = ("person", "organisation", "country", "place", "group", "program")
# Limits that keep a hostile or broken rule file from stalling or blowing up the loader (and
# the daemon, which reloads rule files while it runs), with query.py's for one query.
MAX_FILE_BYTES = 1024 * 1024  # one rule file
# (and safeyaml.py: YAML nested at most 40 deep, at most 200,000 values with aliases expanded)
MAX_PROBLEMS = 200  # reported per load; the rest are counted
MAX_PROBLEM_CHARS = 500


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    kind: str
    aliases: tuple[Term, ...]
    context: tuple[Term, ...] = ()  # one of these must stand within `window` words
    exclude: tuple[Term, ...] = ()  # none of these may stand within `window` words
    window: int = DEFAULT_WINDOW
    origin: str = ""  # file:line


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    query: Node
    query_text: str
    priority: Priority = "normal"
    tags: tuple[str, ...] = ()
    description: str = ""
    origin: str = ""
    section: str = ""  # the digest section its stories go under; "" = the rule's title
    order: int | None = None  # the section's place in digests; None = after, in file order

    @property
    def heading(self) -> str:
        return self.section or self.title


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    actors: dict[str, Actor] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    lists: dict[str, Node] = field(default_factory=dict)  # `$name` in queries
    forms: dict[str, tuple[Term, ...]] = field(default_factory=dict)  # word -> its forms
    list_origins: dict[str, str] = field(default_factory=dict)
    actions: dict[str, ActionLexicon] = field(default_factory=dict)  # relations.py
    _ranks: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False, compare=False)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def rank(self, rule_id: str) -> tuple[float, int]:
        """A rule's place in digests: by its `order`, then the order the files give."""
        if len(self._ranks) != len(self.rules):  # built once per rule set, on first use
            self._ranks = {
                rule.id: (rule.order if rule.order is not None else float("inf"), index)
                for index, rule in enumerate(self.rules)
            }
        return self._ranks.get(rule_id, (float("inf"), len(self.rules)))


# --- YAML with line numbers ---------------------------------------------------------------


class _LineLoader(BoundedLoader):
    """Safe, bounded loader that records the line of every mapping and of each of its keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    mapping["__lines__"] = {
        str(key.value): key.start_mark.line + 1 for key, _ in node.value if hasattr(key, "value")
    }
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_SECTIONS = ("actors", "lists", "names", "forms", "actions", "rules")
_ACTION_KEYS = {"action", "lang", "verbs", "passive", "symmetric", "description"}
_ACTOR_KEYS = {"id", "name", "kind", "aliases", "context", "exclude", "window", "description"}
_RULE_KEYS = {"id", "title", "description", "priority", "tags", "query", "section", "order"}


class _Problems:
    """Every problem found, each one line of bounded length, so that a hostile file cannot
    make `rules check` (or the daemon's log) print megabytes."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(_short(f"{where}: {' '.join(message.split())}", MAX_PROBLEM_CHARS))

    def report(self) -> list[str]:
        ordered = sorted(self.items, key=_location)
        if len(ordered) <= MAX_PROBLEMS:
            return ordered
        return [*ordered[:MAX_PROBLEMS], f"… and {len(ordered) - MAX_PROBLEMS:,} more problems"]


def _short(value: object, limit: int = 80) -> str:
    """A value for an error message, cut short: a hostile file must not print megabytes."""
    text = value if isinstance(value, str | Exception) else reprlib.repr(value)
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_of(entry: dict[str, Any], key: str | None = None) -> int:
    if key is not None and key in entry.get("__lines__", {}):
        return int(entry["__lines__"][key])
    return int(entry.get("__line__", 1))


def rule_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.y*ml") if p.suffix in {".yaml", ".yml"})


def load_rules(path: Path | str) -> RuleSet:
    """Load and validate every rule file under `path`; raise RuleError listing every problem."""
    root = Path(path)
    if not root.exists():
        raise RuleError([f"{root}: rules path does not exist"])
    problems = _Problems()
    ruleset = RuleSet(files=rule_files(root))
    raw_rules: list[tuple[str, dict[str, Any], str]] = []
    extra_names: list[tuple[dict[str, Any], Path]] = []
    for file in ruleset.files:
        doc = _read_yaml(file, problems)
        if doc is None:
            continue
        prefix = _namespace(root, file)
        for entry in _section(doc, "actors", file, problems):
            actor = _build_actor(entry, file, problems)
            if actor is None:
                continue
            if actor.id in ruleset.actors:
                problems.add(
                    actor.origin,
                    f"duplicate actor id {actor.id!r} "
                    f"(first defined at {ruleset.actors[actor.id].origin})",
                )
            else:
                ruleset.actors[actor.id] = actor
        for entry in _section(doc, "lists", file, problems):
            _add_list(entry, file, ruleset, problems)
        for entry in _section(doc, "names", file, problems):
            extra_names.append((entry, file))
        for entry in _section(doc, "forms", file, problems):
            _add_forms(entry, file, ruleset, problems)
        for entry in _section(doc, "actions", file, problems):
            _add_actions(entry, file, ruleset, problems)
        for entry in _section(doc, "rules", file, problems):
            raw_rules.append((prefix, entry, str(file)))
    for entry, file in extra_names:
        _add_names(entry, file, ruleset, problems)
    seen: dict[str, str] = {}
    for prefix, entry, file in raw_rules:
        rule_id, origin = prefix + str(entry.get("id") or "").strip(), f"{file}:{_line_of(entry)}"
        if rule_id in seen and rule_id != prefix:
            problems.add(origin, f"duplicate rule id {rule_id!r} (first at {seen[rule_id]})")
            continue
        seen[rule_id] = origin
        rule = _build_rule(prefix, entry, file, ruleset, problems)
        if rule is not None:
            ruleset.rules.append(rule)
    if not ruleset.files:
        problems.add(str(root), "no rule files (*.yaml) found")
    if problems.items:
        raise RuleError(problems.report())
    return ruleset


def _location(problem: str) -> tuple[str, int]:
    """Sort key for `file:line: message`, so problems read top to bottom per file."""
    file, _, rest = problem.partition(":")
    line = rest.partition(":")[0]
    return (file, int(line) if line.isdigit() else 0)


def _namespace(root: Path, file: Path) -> str:
    if root.is_file():
        return ""
    parent = file.parent.relative_to(root)
    return "" if str(parent) == "." else parent.as_posix() + "/"


def _read_yaml(file: Path, problems: _Problems) -> dict[str, Any] | None:
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.add(f"{file}:1", f"file is {size:,} bytes, over the limit of "
                         f"{MAX_FILE_BYTES:,} for one rule file (split it)")  # fmt: skip
            return None
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(f"{file}:1", f"cannot read file: {_short(exc)}")
        return None
    try:
        doc = load_bounded(text, _LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.add(f"{file}:{line}", f"YAML error: {_short(exc.problem or exc)}")
        return None
    except yaml.YAMLError as exc:
        problems.add(f"{file}:1", f"YAML error: {_short(exc)}")
        return None
    except RecursionError:  # a structure the limits above did not foresee: still one line
        problems.add(f"{file}:1", "YAML error: nested too deeply")
        return None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        problems.add(f"{file}:1", "expected a mapping with 'actors:' and/or 'rules:'")
        return None
    for key in doc:
        if key not in {*_SECTIONS, "__line__", "__lines__"}:
            problems.add(
                f"{file}:{_line_of(doc, key)}",
                f"unknown section {key!r} (expected 'actors', 'lists', 'names', 'forms', "
                "'actions' or 'rules')",
            )
    return doc


def _section(doc: dict[str, Any], key: str, file: Path, problems: _Problems) -> list[dict]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        problems.add(f"{file}:{_line_of(doc, key)}", f"'{key}' must be a list")
        return []
    good = []
    for entry in entries:
        if isinstance(entry, dict):
            good.append(entry)
        else:
            problems.add(
                f"{file}:{_line_of(doc, key)}",
                f"each entry of '{key}' must be a mapping, got {_short(entry)}",
            )
    return good


def _check_keys(
    entry: dict, allowed: set[str], where: str, file: Path | str, problems: _Problems
) -> None:
    for key in entry:
        if key not in allowed and not key.startswith("__"):
            hint = ", ".join(sorted(allowed))
            problems.add(
                f"{file}:{_line_of(entry, key)}", f"{where}: unknown key {key!r} (allowed: {hint})"
            )


def _string_list(
    entry: dict, key: str, where: str, file: Path | str, problems: _Problems
) -> list[str]:
    value = entry.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        problems.add(f"{file}:{_line_of(entry, key)}", f"{where}: '{key}' must be a list of text")
        return []
    return [str(v) for v in value]


def _terms(entry: dict, key: str, where: str, file: Path, problems: _Problems) -> list[Term]:
    terms = []
    for raw in _string_list(entry, key, where, file, problems):
        try:
            terms.append(parse_term(raw))
        except QueryError as exc:
            problems.add(f"{file}:{_line_of(entry, key)}", f"{where}: {key}: {exc}")
    return terms


def _build_actor(entry: dict, file: Path, problems: _Problems) -> Actor | None:
    origin = f"{file}:{_line_of(entry)}"
    actor_id = str(entry.get("id") or "").strip().lower()
    if not actor_id:
        problems.add(origin, "actor without an 'id'")
        return None
    where = f"actor {actor_id!r}"
    _check_keys(entry, _ACTOR_KEYS, where, file, problems)
    kind = str(entry.get("kind", "organisation"))
    if kind not in ACTOR_KINDS:
        problems.add(
            f"{file}:{_line_of(entry, 'kind')}",
            f"{where}: kind {kind!r} is not one of {', '.join(ACTOR_KINDS)}",
        )
    aliases = _terms(entry, "aliases", where, file, problems)
    if not aliases:
        problems.add(origin, f"{where}: needs at least one alias under 'aliases'")
    window = entry.get("window", DEFAULT_WINDOW)
    if not isinstance(window, int) or window < 1:
        problems.add(
            f"{file}:{_line_of(entry, 'window')}",
            f"{where}: 'window' must be a positive number of words",
        )
        window = DEFAULT_WINDOW
    return Actor(
        id=actor_id,
        name=str(entry.get("name") or actor_id),
        kind=kind,
        aliases=tuple(aliases),
        context=tuple(_terms(entry, "context", where, file, problems)),
        exclude=tuple(_terms(entry, "exclude", where, file, problems)),
        window=window,
        origin=origin,
    )


def _add_list(entry: dict, file: Path, ruleset: RuleSet, problems: _Problems) -> None:
    """A named list of terms and actors, used in queries as `$id` (an OR of its members)."""
    origin = f"{file}:{_line_of(entry)}"
    list_id = str(entry.get("id") or "").strip().lower()
    if not list_id:
        problems.add(origin, "list without an 'id'")
        return
    where = f"list {list_id!r}"
    _check_keys(entry, {"id", "terms", "description"}, where, file, problems)
    if list_id in ruleset.lists:
        first = ruleset.list_origins[list_id]
        problems.add(origin, f"duplicate list id {list_id!r} (first defined at {first})")
        return
    members: list[Node] = []
    for raw in _string_list(entry, "terms", where, file, problems):
        try:
            members.append(ActorRef(raw.strip()[1:].lower()) if raw.strip().startswith("@")
                           else parse_term(raw))  # fmt: skip
        except QueryError as exc:
            problems.add(f"{file}:{_line_of(entry, 'terms')}", f"{where}: {exc}")
    if not members:
        problems.add(origin, f"{where}: needs at least one entry under 'terms'")
        return
    ruleset.lists[list_id] = members[0] if len(members) == 1 else Or(tuple(members))
    ruleset.list_origins[list_id] = origin


def _add_names(entry: dict, file: Path, ruleset: RuleSet, problems: _Problems) -> None:
    """More aliases for an actor defined elsewhere (`names:`, as `monitor rules names`
    generates them): an alias the actor already has is not added twice."""
    origin = f"{file}:{_line_of(entry)}"
    actor_id = str(entry.get("actor") or "").strip().lower()
    where = f"names for {actor_id!r}"
    _check_keys(entry, {"actor", "lang", "aliases"}, where, file, problems)
    actor = ruleset.actors.get(actor_id)
    if actor is None:
        problems.add(origin, f"{where}: no actor with this id is defined")
        return
    have = {(t.pattern, t.prefix) for t in actor.aliases}
    added = []
    for term in _terms(entry, "aliases", where, file, problems):
        if (term.pattern, term.prefix) not in have:
            have.add((term.pattern, term.prefix))
            added.append(term)
    if added:
        ruleset.actors[actor_id] = replace(actor, aliases=(*actor.aliases, *added))


def _add_forms(entry: dict, file: Path, ruleset: RuleSet, problems: _Problems) -> None:
    """A word and its inflected forms (`forms:`): wherever a rule names the word exactly
    (not as a prefix), it matches any of them. Expanded when the rule is compiled, so the
    scan stays the only work per item."""
    word = str(entry.get("word") or "").strip()
    where = f"forms of {word!r}"
    _check_keys(entry, {"word", "lang", "forms"}, where, file, problems)
    try:
        key = parse_term(word).pattern
    except QueryError as exc:
        problems.add(f"{file}:{_line_of(entry)}", f"{where}: {exc}")
        return
    terms = _terms(entry, "forms", where, file, problems)
    known = ruleset.forms.get(key, ())
    have = {t.pattern for t in known}
    ruleset.forms[key] = (*known, *[t for t in terms if t.pattern not in have and not t.prefix])


def _add_actions(entry: dict, file: Path, ruleset: RuleSet, problems: _Problems) -> None:
    """Verb forms of an action class in one language (`actions:`). Entries of one action
    from several files or languages add up, so users extend the shipped lexicon with a
    file of their own rather than by editing it."""
    origin = f"{file}:{_line_of(entry)}"
    action = str(entry.get("action") or "").strip().lower().replace("_", "-")
    if not re.fullmatch(r"[a-z][a-z-]*", action):
        problems.add(origin, f"action {action!r}: an action needs a name of letters and '-'")
        return
    where = f"action {action!r}"
    _check_keys(entry, _ACTION_KEYS, where, file, problems)
    symmetric = entry.get("symmetric", False)
    if not isinstance(symmetric, bool):
        problems.add(f"{file}:{_line_of(entry, 'symmetric')}", f"{where}: 'symmetric' is "
                     "true or false")  # fmt: skip
        symmetric = False
    active = _terms(entry, "verbs", where, file, problems)
    passive = _terms(entry, "passive", where, file, problems)
    if not active and not passive:
        problems.add(origin, f"{where}: needs words under 'verbs' (or 'passive')")
        return
    known = ruleset.actions.get(action, ActionLexicon(action, origin=origin))
    ruleset.actions[action] = replace(
        known,
        active=(*known.active, *active),
        passive=(*known.passive, *passive),
        symmetric=known.symmetric or symmetric,
    )


def expand_forms(node: Node, forms: dict[str, tuple[Term, ...]]) -> Node:
    """The query with every exact term that has listed forms replaced by an OR of it and
    its forms (each keeping the term's fields and what the user wrote, for evidence)."""
    if not forms:
        return node
    match node:
        case Term():
            extra = forms.get(node.pattern) if not node.prefix else None
            if not extra:
                return node
            variants = [Term(f.pattern, False, f.raw, node.fields) for f in extra]
            return Or((node, *variants))
        case ActorRef() | RelationRef():
            return node
        case And() | Or() | AtLeast():
            kids = tuple(expand_forms(c, forms) for c in node.children)
            return AtLeast(node.count, kids) if isinstance(node, AtLeast) else type(node)(kids)
        case Not():
            return Not(expand_forms(node.child, forms))
        case Near():
            return Near(expand_forms(node.left, forms), expand_forms(node.right, forms),
                        node.distance)  # fmt: skip
    raise TypeError(node)


def _actor_ids(query: Node) -> set[str]:
    ids = set()
    for node, _ in walk(query):
        if isinstance(node, ActorRef):
            ids.add(node.actor)
        elif isinstance(node, RelationRef):
            ids.update(a for a in (node.subject, node.object) if a)
    return ids


def _build_rule(
    prefix: str, entry: dict, file: str, ruleset: RuleSet, problems: _Problems
) -> Rule | None:
    origin = f"{file}:{_line_of(entry)}"
    local_id = str(entry.get("id") or "").strip()
    if not local_id:
        problems.add(origin, "rule without an 'id'")
        return None
    rule_id = prefix + local_id
    where = f"rule {rule_id!r}"
    _check_keys(entry, _RULE_KEYS, where, file, problems)
    priority = str(entry.get("priority", "normal"))
    if priority not in PRIORITIES:
        problems.add(
            f"{file}:{_line_of(entry, 'priority')}",
            f"{where}: priority {priority!r} is not one of low, normal, urgent",
        )
        return None
    query_text = entry.get("query")
    query_where = f"{file}:{_line_of(entry, 'query')}"
    if not isinstance(query_text, str) or not query_text.strip():
        problems.add(query_where, f"{where}: needs a non-empty 'query'")
        return None
    try:
        query = expand_forms(parse_query(query_text, ruleset.lists, ruleset.actions), ruleset.forms)
    except QueryError as exc:
        problems.add(query_where, f"{where}: query: {exc}")
        return None
    unknown = sorted(_actor_ids(query) - set(ruleset.actors))
    for name in unknown:
        problems.add(query_where, f"{where}: unknown actor @{name}")
    if unknown:
        return None
    placing = _placing(entry, where, file, problems)
    if placing is None:
        return None
    return Rule(
        id=rule_id,
        title=str(entry.get("title") or local_id),
        section=placing[0],
        order=placing[1],
        query=query,
        query_text=" ".join(query_text.split()),
        priority=priority,  # type: ignore[arg-type]
        tags=tuple(_string_list(entry, "tags", where, file, problems)),
        description=str(entry.get("description") or ""),
        origin=origin,
    )


def _placing(
    entry: dict, where: str, file: str, problems: _Problems
) -> tuple[str, int | None] | None:
    """`section` (a heading, text) and `order` (a whole number) of a rule, or None when
    either is wrong."""
    section, order = entry.get("section", ""), entry.get("order")
    if not isinstance(section, str) or (section == "" and "section" in entry):
        message = f"{where}: section must be a heading (text), got {_short(section)}"
        problems.add(f"{file}:{_line_of(entry, 'section')}", message)
        return None
    if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
        message = f"{where}: order must be a whole number, got {_short(repr(order))}"
        problems.add(f"{file}:{_line_of(entry, 'order')}", message)
        return None
    return " ".join(section.split()), order
