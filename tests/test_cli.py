"""The commands people use to edit rules: check, test, and match on a corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_RULES

pytestmark = pytest.mark.usefixtures("both_stores")


def monitor(*args: str, stdin: str | None = None, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, input=stdin, timeout=60, cwd=cwd)  # fmt: skip


def test_rules_check_ok() -> None:
    result = monitor("rules", "check", str(TEST_RULES))
    assert result.returncode == 0
    assert "3 rules, 3 actors in 2 files: OK" in result.stdout


def test_rules_check_reports_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - id: a\n    query: '(kosovo'\n  - id: b\n    query: '@ghost'\n",
        encoding="utf-8",
    )
    result = monitor("rules", "check", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert f"{tmp_path / 'bad.yaml'}:3: rule 'a': query: unbalanced '(' at column 1" in lines[0]
    assert f"{tmp_path / 'bad.yaml'}:5: rule 'b': unknown actor @ghost" in lines[1]
    assert lines[-1] == "2 problem(s) in rule files"


def test_rules_test_explains() -> None:
    hit = monitor("rules", "test", "watch/kfor", "--rules", str(TEST_RULES),
                  "--text", "K-FOR troops reinforce the north")  # fmt: skip
    assert hit.returncode == 0
    assert hit.stdout.startswith("MATCH: watch/kfor (urgent)")
    assert "matched 'K-FOR'" in hit.stdout
    miss = monitor("rules", "test", "watch/kfor", "--rules", str(TEST_RULES), "--text", "KFOR")
    assert miss.returncode == 1 and miss.stdout.startswith("no match")
    unknown = monitor("rules", "test", "kfor", "--rules", str(TEST_RULES), "--text", "x")
    assert unknown.returncode == 1 and "did you mean watch/kfor" in unknown.stderr


def test_match_jsonl() -> None:
    lines = [
        {"id": "a", "title": "KFOR patrols Mitrovica", "summary": "Troops"},
        {"id": "b", "title": "Tennis"},
        {"title": "Вучић и Приштина"},
    ]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines)
    result = monitor("match", "--rules", str(TEST_RULES), "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", "b", 3]
    assert {h["rule"] for h in out[0]["hits"]} == {"watch/kosovo", "watch/kfor"}
    assert out[1]["hits"] == []
    both = next(h for h in out[2]["hits"] if h["rule"] == "watch/serbia-kosovo")
    assert both["actors"] == ["kosovo", "serbia"]
    assert set(both["terms"]) == {"Вучић", "Приштина"}


def test_match_reports_bad_json_line() -> None:
    result = monitor("match", "--rules", str(TEST_RULES), "-", stdin='{"id": 1}\n{oops\n')
    assert result.returncode == 1 and "<stdin>:2: not valid JSON" in result.stderr


@pytest.mark.sqlite_only("help opens no store")
def test_every_command_has_help() -> None:
    for command in (["run"], ["once"], ["digest"], ["demo"], ["search"], ["sources"],
                    ["rules", "check"], ["rules", "test"], ["match"]):  # fmt: skip
        result = monitor(*command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout


def test_rules_check_reports_a_broken_config_instead_of_guessing(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n  - id: a\n    query: kosovo\n")
    (tmp_path / "monitor.toml").write_text('[monitor]\nrules = "rules"\ndatabse = "x"\n')
    result = monitor("rules", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "config error: monitor.toml: monitor.databse: unknown setting" in result.stderr
    (tmp_path / "monitor.toml").unlink()  # no config at all: ./rules is checked
    assert "1 rules, 0 actors in 1 files: OK" in monitor("rules", "check", cwd=tmp_path).stdout
