"""Rule files that try to stall or blow up the loader: deep nesting in a query or in the YAML,
an alias bomb, a huge file. Each is one `file:line` problem and exit 2 from the real CLI, with
no traceback and little output; a daemon reloading it keeps its last good rules."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import RuleError
from monitor.match import RuleWatcher
from monitor.query import QueryError, parse_query
from monitor.rules import load_rules

GOOD = "rules:\n  - id: ok\n    query: kosovo\n"
LAUGHS = "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * 9)}]\n" for n in range(1, 10)
)  # nine levels of nine aliases: 9^10 values once expanded
BOMB = "rules:\n  - id: bomb\n    query: kosovo\n" + LAUGHS


def rule_file(query: str) -> str:
    escaped = query.replace("'", "''")
    return f"rules:\n  - id: hostile\n    query: '{escaped}'\n"


HOSTILE = {
    "parentheses": (rule_file("(" * 400 + "kosovo" + ")" * 400), 3, "nested more than 40"),
    "nots": (rule_file("kosovo AND " + "NOT " * 2000 + "serbia"), 3, "nested more than 40"),
    "deep": (rule_file("kosovo AND " + "(serbia OR " * 400 + "x" + ")" * 400), 3, "nested"),
    "fields": (rule_file("title:" * 500 + "kosovo"), 3, "nested more than 40"),
    "atleast": (rule_file("ATLEAST 1 (" * 300 + "kosovo" + ")" * 300), 3, "nested"),
    "yaml-nesting": ("rules: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested more than 40"),
    "alias-bomb": (BOMB, 1, "once its aliases are expanded"),
    "huge": (GOOD + "# " + "x" * 2_000_000 + "\n", 1, "over the limit"),
    "long-query": (rule_file("kosovo OR " * 5000 + "serbia"), 3, "characters long"),
}


def run(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config or "/nonexistent/monitor.toml")}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_rules_check_reports_a_hostile_file_in_one_line(tmp_path: Path, case: str) -> None:
    text, line, message = HOSTILE[case]
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "hostile.yaml").write_text(text, encoding="utf-8")
    checked = run("rules", "check", str(folder))
    assert checked.returncode == 2
    assert "Traceback" not in checked.stderr and "RecursionError" not in checked.stderr
    assert len(checked.stderr) + len(checked.stdout) < 2_000  # bounded, whatever the file
    assert f"hostile.yaml:{line}: " in checked.stderr and message in checked.stderr


def test_monitor_once_refuses_to_start_on_a_hostile_rule_file(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(BOMB, encoding="utf-8")
    config = write_config(tmp_path, [], rules=folder)
    once = run("once", config=config)
    assert once.returncode == 2
    assert "Traceback" not in once.stderr and len(once.stderr) < 2_000
    assert "bomb.yaml:1: YAML error: " in once.stderr


def test_a_reload_onto_a_hostile_file_keeps_the_last_good_rules(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    rules = folder / "r.yaml"
    rules.write_text(GOOD, encoding="utf-8")
    watcher = RuleWatcher(folder)
    engine = watcher.engine
    for text, _, message in HOSTILE.values():
        rules.write_text(text, encoding="utf-8")
        assert watcher.refresh(force=True) is False
        assert watcher.engine is engine and [r.id for r in watcher.ruleset.rules] == ["ok"]
        assert watcher.error is not None and message in str(watcher.error)


def test_many_problems_are_counted_not_all_printed(tmp_path: Path) -> None:
    entries = "".join(f"  - id: r{n}\n    query: 'a NEAR b'\n" for n in range(1000))
    (tmp_path / "many.yaml").write_text("rules:\n" + entries, encoding="utf-8")
    with pytest.raises(RuleError) as raised:
        load_rules(tmp_path)
    assert len(raised.value.problems) == 201
    assert raised.value.problems[-1] == "… and 800 more problems"


TOKENS = ["(", ")", '"', ",", " ", "*", "@kfor", "$list", "title:", "content:", "AND", "OR",
          "NOT", "NEAR/2", "NEAR", "ATLEAST 2", "ATLEAST x", "kosovo", "serb*", "ab*",
          "/"]  # fmt: skip
QUERY_TEXT = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join) | st.text(max_size=200)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERY_TEXT)
def test_the_query_parser_raises_only_query_errors(query: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(query)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["(", ")", "NOT", "kosovo", "title:", "OR"]),
                min_size=50, max_size=1500).map(" ".join))  # fmt: skip
def test_nesting_of_any_shape_is_a_query_error_never_a_crash(query: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(query)


@settings(max_examples=200, deadline=None)
@given(QUERY_TEXT)
def test_a_rule_file_with_any_query_loads_or_reports_rule_errors(query: str) -> None:
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"hyp-rules-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    (folder / "r.yaml").write_text(rule_file(query), encoding="utf-8")
    try:
        load_rules(folder)
    except RuleError as exc:
        assert all(":" in problem for problem in exc.problems)
