"""Rule and actor files: load `rules/**/*.yaml`, parse queries, report every problem with its
`file:line`.

A file holds `actors:` and/or `rules:`. Actor ids are global; a rule's id is prefixed with the
folder it lives in below the rules root, so `rules/balkans/x.yaml` rule `escalation` is
`balkans/escalation`. The query language (README, "Rule language"):

    "exact phrase"   word   prefix*   @actor   title:word   a AND b   a OR b   NOT a
    (grouping)   a NEAR/5 b   ATLEAST 2 (@a, @b, @c)        adjacent terms are ANDed
    @russia SUPPLY_ARMS @serbia   (a relation in one sentence, relations.py; `*` = any actor)

`actions:` entries give each action class its verbs per language (relations.py).
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import RuleError
from monitor.models import FIELDS, PRIORITIES, Priority
from monitor.normalise import fold
from monitor.safeyaml import BoundedLoader, load_bounded

ACTOR_KINDS = ("person", "organisation", "country", "place", "group", "program")
MIN_PREFIX = 3  # `ab*` would match half the dictionary
DEFAULT_WINDOW = 12
# Limits that keep a hostile or broken rule file from stalling or blowing up the loader (and
# the daemon, which reloads rule files while it runs): far above what real rules need.
MAX_QUERY_DEPTH = 40  # nested parentheses, NOTs, ATLEASTs and field prefixes in one query
MAX_QUERY_CHARS = 20_000
MAX_FILE_BYTES = 1024 * 1024  # one rule file
# (and safeyaml.py: YAML nested at most 40 deep, at most 200,000 values with aliases expanded)
MAX_PROBLEMS = 200  # reported per load; the rest are counted
MAX_PROBLEM_CHARS = 500


# --- the query tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A word, phrase or prefix, already folded; `raw` is what the user wrote."""

    pattern: str
    prefix: bool
    raw: str
    fields: tuple[str, ...] = FIELDS


@dataclass(frozen=True)
class ActorRef:
    actor: str
    fields: tuple[str, ...] = FIELDS


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Near:
    left: Node
    right: Node
    distance: int


@dataclass(frozen=True)
class AtLeast:
    count: int
    children: tuple[Node, ...]


@dataclass(frozen=True)
class RelationRef:
    """`@a ACTION @b`: actor `subject` does `action` to actor `object` within one sentence
    (None: any actor). `verbs` are the action's verb forms, so the engine can index it."""

    subject: str | None
    action: str
    object: str | None
    verbs: tuple[Term, ...] = ()
    raw: str = ""


Node = Term | ActorRef | And | Or | Not | Near | AtLeast | RelationRef

# Reserved `actions:` names: words that cancel a relation in their sentence (negation) and
# words that make what follows someone's claim rather than an event (reported speech).
NEGATION, REPORTED = "negation", "reported"


@dataclass(frozen=True)
class ActionLexicon:
    """One action class: the verb forms that say it, in every language the files give.
    `active`: the actor before the verb does it to the actor after; `passive`: the reverse
    ("Serbia was sanctioned by the US"). `symmetric`: "A and B met" is A meet B."""

    id: str
    active: tuple[Term, ...] = ()
    passive: tuple[Term, ...] = ()
    symmetric: bool = False
    origin: str = ""

    @property
    def query_name(self) -> str:
        return self.id.upper().replace("-", "_")


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


# --- query parsing ------------------------------------------------------------------------


class QueryError(ValueError):
    """A query that does not parse; the message says where (column) and why."""


_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<lpar>\() | (?P<rpar>\)) | (?P<comma>,)
    | (?P<phrase>"[^"]*"\*?)
    | (?P<near>NEAR(?:/(?P<dist>\d+))?(?![\w/]))
    | (?P<field>(?:title|summary|content|text):)
    | (?P<actor>@[\w.\-]+)
    | (?P<listref>\$[\w.\-]+)
    | (?P<word>[^\s(),"]+)
    | (?P<bad>")
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "ATLEAST"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    col: int


def _tokenize(query: str) -> list[_Token]:
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(query):,} characters long, over the limit of "
                         f"{MAX_QUERY_CHARS:,}")  # fmt: skip
    tokens: list[_Token] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(query, pos)
        if m is None or m.lastgroup is None:
            raise QueryError(f"cannot read column {pos + 1}: {query[pos : pos + 10]!r}")
        kind, text, col = m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup) + 1
        if kind == "bad":
            raise QueryError(f"unclosed quote at column {col}")
        if kind == "dist":
            kind = "near"
        if kind == "near":
            text = m.group("near")
        if kind == "word" and text in _KEYWORDS:
            kind = text
        tokens.append(_Token(kind, text, col))
        pos = m.end()
    return tokens


def parse_term(raw: str, fields: tuple[str, ...] = FIELDS) -> Term:
    """A word, phrase or prefix as users write them in queries and alias lists."""
    if raw.strip().startswith("@"):
        raise QueryError(f"{raw!r}: an actor reference cannot stand here")
    text = raw.strip()
    if text.startswith('"'):
        text = text[1:].replace('"', "")
    prefix = text.endswith("*")
    body = text[:-1] if prefix else text
    if "*" in body:
        raise QueryError(f"wildcard only at the end of a word: {raw!r}")
    pattern = " ".join(fold(body).split())
    if not pattern:
        raise QueryError(f"empty term {raw!r}")
    if prefix and len(pattern.replace(" ", "")) < MIN_PREFIX:
        raise QueryError(f"prefix {raw!r} is too short: give at least {MIN_PREFIX} letters")
    return Term(pattern=pattern, prefix=prefix, raw=raw.strip(), fields=fields)


class _Parser:
    def __init__(
        self,
        query: str,
        lists: dict[str, Node] | None = None,
        actions: dict[str, ActionLexicon] | None = None,
    ) -> None:
        self.tokens = _tokenize(query)
        self.pos = 0
        self.lists = lists or {}
        self.actions = actions or {}
        self.depth = 0

    def deeper(self, tok: _Token) -> None:
        """One more level of nesting; refused past MAX_QUERY_DEPTH (the parser recurses)."""
        self.depth += 1
        if self.depth > MAX_QUERY_DEPTH:
            raise QueryError(
                f"query nested more than {MAX_QUERY_DEPTH} levels deep at column {tok.col}"
            )

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None) -> _Token:
        tok = self.peek()
        if tok is None:
            raise QueryError("query ends too early" + (f": expected {kind}" if kind else ""))
        if kind and tok.kind != kind:
            raise QueryError(f"expected {kind} at column {tok.col}, found {tok.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if not self.tokens:
            raise QueryError("query is empty")
        node = self.parse_or()
        tok = self.peek()
        if tok is not None:
            what = "unbalanced ')'" if tok.kind == "rpar" else f"unexpected {tok.text!r}"
            raise QueryError(f"{what} at column {tok.col}")
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children = [self.parse_unary()]
        while (tok := self.peek()) is not None and tok.kind not in {"OR", "rpar", "comma"}:
            if tok.kind == "AND":
                self.take()
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "NOT":
            self.take()
            self.deeper(tok)
            node = Not(self.parse_unary())
            self.depth -= 1
            return node
        return self.parse_near()

    def parse_relation(self) -> RelationRef | None:
        """`@a ACTION @b` (either side may be `*`, any actor), when the next three tokens
        say so: an upper-case word naming an action class between two actors."""
        ahead = self.tokens[self.pos : self.pos + 3]
        if len(ahead) < 3 or not all(_is_party(t) for t in (ahead[0], ahead[2])):
            return None
        verb = ahead[1]
        if verb.kind != "word" or not re.fullmatch(r"[A-Z][A-Z_]*", verb.text):
            return None
        action = verb.text.lower().replace("_", "-")
        if action not in self.actions or action in {NEGATION, REPORTED}:
            if ahead[0].kind == "actor" and ahead[2].kind == "actor" and "_" in verb.text:
                known = ", ".join(sorted(a.query_name for a in self.actions.values()))
                raise QueryError(
                    f"unknown action {verb.text} at column {verb.col} (known: "
                    f"{known or 'none: no actions: lists loaded'})"
                )
            return None
        self.pos += 3
        lexicon = self.actions[action]
        return RelationRef(
            subject=_party(ahead[0]),
            action=action,
            object=_party(ahead[2]),
            verbs=(*lexicon.active, *lexicon.passive),
            raw=f"{ahead[0].text} {verb.text} {ahead[2].text}",
        )

    def parse_near(self) -> Node:
        relation = self.parse_relation()
        if relation is not None:
            return relation
        left = self.parse_primary()
        while (tok := self.peek()) is not None and tok.kind == "near":
            self.take()
            dist = tok.text.partition("/")[2]
            if not dist:
                raise QueryError(f"NEAR needs a distance in words, e.g. NEAR/5 (column {tok.col})")
            right = self.parse_primary()
            for side in (left, right):
                if not _is_positional(side):
                    raise QueryError(
                        f"NEAR at column {tok.col} joins terms, phrases, actors or OR-groups "
                        "of them, not AND/NOT expressions"
                    )
            left = Near(left, right, int(dist))
        return left

    def parse_primary(self, fields: tuple[str, ...] = FIELDS) -> Node:
        tok = self.peek()
        if tok is None:
            raise QueryError("query ends where a term was expected")
        if tok.kind in {"lpar", "ATLEAST", "field"}:
            self.deeper(tok)
            node = self.parse_nested(tok, fields)
            self.depth -= 1
            return node
        self.take()
        if tok.kind == "actor":
            return ActorRef(tok.text[1:].lower(), fields)
        if tok.kind in {"word", "phrase"}:
            return parse_term(tok.text, fields)
        if tok.kind == "listref":
            name = tok.text[1:].lower()
            if name not in self.lists:
                raise QueryError(f"unknown list ${name} at column {tok.col}")
            return _restrict(self.lists[name], fields)
        if tok.kind == "rpar":
            raise QueryError(f"unbalanced ')' at column {tok.col}")
        raise QueryError(f"expected a term at column {tok.col}, found {tok.text!r}")

    def parse_nested(self, tok: _Token, fields: tuple[str, ...]) -> Node:
        """A parenthesised group, an ATLEAST, or a term under a field prefix."""
        if tok.kind == "ATLEAST":
            return self.parse_atleast(fields)
        self.take()
        if tok.kind == "field":
            name = tok.text[:-1]
            return self.parse_primary(FIELDS if name == "text" else (name,))
        node = self.parse_or()
        self.take_closing(tok)
        return _restrict(node, fields)

    def take_closing(self, opening: _Token) -> None:
        tok = self.peek()
        if tok is None or tok.kind != "rpar":
            raise QueryError(f"unbalanced '(' at column {opening.col}: no closing ')'")
        self.take()

    def parse_atleast(self, fields: tuple[str, ...]) -> Node:
        head = self.take("ATLEAST")
        count_tok = self.take("word")
        if not count_tok.text.isdigit() or int(count_tok.text) < 1:
            raise QueryError(f"ATLEAST needs a count, e.g. ATLEAST 2 (...) (column {head.col})")
        opening = self.take("lpar")
        children = [self.parse_or()]
        while (tok := self.peek()) is not None and tok.kind == "comma":
            self.take()
            children.append(self.parse_or())
        self.take_closing(opening)
        count = int(count_tok.text)
        if count > len(children):
            raise QueryError(
                f"ATLEAST {count} at column {head.col} lists only {len(children)} alternatives"
            )
        return _restrict(AtLeast(count, tuple(children)), fields)


def _is_party(tok: _Token) -> bool:
    return tok.kind == "actor" or (tok.kind == "word" and tok.text == "*")


def _party(tok: _Token) -> str | None:
    return tok.text[1:].lower() if tok.kind == "actor" else None


def _is_positional(node: Node) -> bool:
    if isinstance(node, Term | ActorRef):
        return True
    return isinstance(node, Or) and all(_is_positional(c) for c in node.children)


def _restrict(node: Node, fields: tuple[str, ...]) -> Node:
    """Apply a `title:(...)` restriction to every leaf below it."""
    if fields == FIELDS:
        return node
    match node:
        case Term():
            return Term(node.pattern, node.prefix, node.raw, fields)
        case ActorRef():
            return ActorRef(node.actor, fields)
        case RelationRef():
            return node  # a sentence is found in any field
        case And() | Or() | AtLeast():
            kids = tuple(_restrict(c, fields) for c in node.children)
            if isinstance(node, AtLeast):
                return AtLeast(node.count, kids)
            return type(node)(kids)
        case Not():
            return Not(_restrict(node.child, fields))
        case Near():
            return Near(_restrict(node.left, fields), _restrict(node.right, fields), node.distance)
    raise TypeError(node)


def parse_query(
    query: str,
    lists: dict[str, Node] | None = None,
    actions: dict[str, ActionLexicon] | None = None,
) -> Node:
    """Parse a query (with `$name` standing for a named list and `@a ACTION @b` for a
    relation of one of `actions`); QueryError says where."""
    node = _Parser(query, lists, actions).parse()
    if not needs_presence(node):
        raise QueryError(
            "query could match an item that contains none of its terms (a bare NOT, or an OR "
            "with a NOT branch): add a term that must appear"
        )
    return node


def needs_presence(node: Node) -> bool:
    """True when the query can only be satisfied by some term occurring in the item.

    The engine only evaluates rules whose terms occurred, so a query true on absence alone
    would silently never fire."""
    match node:
        case Term() | ActorRef() | Near() | RelationRef():
            return True
        case Not():
            return False
        case And():
            return any(needs_presence(c) for c in node.children)
        case Or():
            return all(needs_presence(c) for c in node.children)
        case AtLeast():
            free = sum(1 for c in node.children if not needs_presence(c))
            return free < node.count
    raise TypeError(node)


def walk(node: Node, negated: bool = False) -> Iterator[tuple[Node, bool]]:
    """Every node with whether it sits below a NOT."""
    yield node, negated
    match node:
        case And() | Or() | AtLeast():
            for child in node.children:
                yield from walk(child, negated)
        case Not():
            yield from walk(node.child, not negated)
        case Near():
            yield from walk(node.left, negated)
            yield from walk(node.right, negated)


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
