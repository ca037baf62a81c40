"""The rule language: parsing, validation, and errors that name file and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.query import ActorRef, And, AtLeast, Near, Not, Or, QueryError, Term, parse_query
from monitor.rules import load_rules


def test_query_tree() -> None:
    node = parse_query('(@kfor OR "Kosovo Force") AND patrol* NOT title:football')
    assert isinstance(node, And)
    first, second, third = node.children
    assert isinstance(first, Or) and isinstance(first.children[0], ActorRef)
    assert first.children[1] == Term("kosovo force", False, '"Kosovo Force"')
    assert second == Term("patrol", True, "patrol*")
    assert isinstance(third, Not) and third.child.fields == ("title",)


def test_near_and_atleast() -> None:
    near = parse_query("(troops OR police) NEAR/5 border")
    assert isinstance(near, Near) and near.distance == 5
    atleast = parse_query("ATLEAST 2 (@russia, @china, turk*)")
    assert isinstance(atleast, AtLeast) and atleast.count == 2 and len(atleast.children) == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty"),
        ("(kosovo AND serbia", "unbalanced '('"),
        ("kosovo)", "unbalanced ')'"),
        ('"north kosovo', "unclosed quote"),
        ("*bia", "wildcard only at the end"),
        ("se*rb", "wildcard only at the end"),
        ("ko*", "too short"),
        ("NOT football", "contains none of its terms"),
        ("kosovo OR NOT football", "contains none of its terms"),
        ("kosovo NEAR border", "NEAR needs a distance"),
        ("(a AND b) NEAR/3 c", "NEAR at column"),
        ("ATLEAST 3 (@a, @b)", "lists only 2"),
        ("kosovo AND", "ends"),
    ],
)
def test_bad_queries(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)):
        parse_query(query)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_rule_ids_take_the_folder_as_prefix(tmp_path: Path) -> None:
    write(tmp_path, "actors.yaml", "actors:\n  - id: kfor\n    aliases: [KFOR]\n")
    write(tmp_path, "balkans/k.yaml", "rules:\n  - id: kfor\n    query: '@kfor'\n")
    ruleset = load_rules(tmp_path)
    assert [r.id for r in ruleset.rules] == ["balkans/kfor"]
    assert ruleset.rules[0].origin.endswith("k.yaml:2")


def test_every_problem_is_reported_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", """\
        actors:
          - id: kfor
            kind: army
            aliases: [KFOR]
        rules:
          - id: one
            query: '@kfor AND (troops'
          - id: two
            query: '@nobody'
          - id: one
            query: kosovo
          - id: three
            querry: kosovo
            priority: urgent
        """)  # fmt: skip
    write(tmp_path, "b.yaml", "rules: [\n  - id: x\n")
    write(tmp_path, "c.yaml", "actors:\n  - id: kfor\n    aliases: [K-FOR]\n")
    with pytest.raises(RuleError) as caught:
        load_rules(tmp_path)
    problems = "\n".join(caught.value.problems)
    a, b, c = (str(tmp_path / n) for n in ("a.yaml", "b.yaml", "c.yaml"))
    assert f"{a}:3: actor 'kfor': kind 'army' is not one of" in problems
    assert f"{a}:7: rule 'one': query: unbalanced '('" in problems
    assert f"{a}:9: rule 'two': unknown actor @nobody" in problems
    assert f"{a}:10: duplicate rule id 'one' (first at {a}:6)" in problems
    assert f"{a}:13: rule 'three': unknown key 'querry'" in problems
    assert f"{b}:2: YAML error" in problems
    assert f"{c}:2: duplicate actor id 'kfor'" in problems


def test_actor_needs_aliases_and_valid_window(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "actors:\n  - id: x\n    window: -1\n")
    with pytest.raises(RuleError) as caught:
        load_rules(tmp_path)
    text = "\n".join(caught.value.problems)
    assert "needs at least one alias" in text and "'window' must be a positive" in text


def test_missing_rules_folder(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="does not exist"):
        load_rules(tmp_path / "nope")


def test_named_lists_expand_in_queries(tmp_path: Path) -> None:
    write(tmp_path, "lists.yaml", """\
        actors:
          - id: kosovo
            aliases: [Kosovo]
        lists:
          - id: sport
            terms: [football, "water polo", "Olymp*"]
          - id: places
            terms: ["@kosovo", Mitrovica]
        rules:
          - id: politics
            query: '$places NOT title:$sport'
        """)  # fmt: skip
    ruleset = load_rules(tmp_path)
    query = ruleset.rule("politics").query
    assert isinstance(query, And) and isinstance(query.children[0], Or)
    assert isinstance(query.children[0].children[0], ActorRef)
    excluded = query.children[1].child
    assert all(t.fields == ("title",) for t in excluded.children)


def test_list_problems_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", """\
        lists:
          - id: sport
            terms: []
          - id: ok
            terms: [x]
          - id: ok
            terms: [y]
        rules:
          - id: r
            query: 'kosovo NOT $nope'
          - id: s
            query: '$ok AND @ghost'
        """)  # fmt: skip
    with pytest.raises(RuleError) as caught:
        load_rules(tmp_path)
    text = "\n".join(caught.value.problems)
    assert "a.yaml:2: list 'sport': needs at least one entry" in text
    assert "a.yaml:6: duplicate list id 'ok'" in text
    assert "a.yaml:10: rule 'r': query: unknown list $nope at column 12" in text
    assert "a.yaml:12: rule 's': unknown actor @ghost" in text
