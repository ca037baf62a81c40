"""The rule language's queries: the tree a query parses into, and the parser.

    "exact phrase"   word   prefix*   @actor   title:word   a AND b   a OR b   NOT a
    (grouping)   a NEAR/5 b   ATLEAST 2 (@a, @b, @c)        adjacent terms are ANDed
    @russia SUPPLY_ARMS @serbia   (a relation in one sentence, relations.py; `*` = any actor)

Terms are folded as items are (normalise.py), so a query matches what the engine scans
(match.py); `rules.py` reads the files that hold the queries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from monitor.models import FIELDS
from monitor.normalise import fold

MIN_PREFIX = 3  # `ab*` would match half the dictionary
DEFAULT_WINDOW = 12
# Limits that keep a hostile or broken rule file from stalling or blowing up the loader (and
# the daemon, which reloads rule files while it runs): far above what real rules need.
MAX_QUERY_DEPTH = 40  # nested parentheses, NOTs, ATLEASTs and field prefixes in one query
MAX_QUERY_CHARS = 20_000


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
