"""The matching engine, table-driven: what hits, what does not, and the evidence it keeps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.match import Engine, RuleWatcher, explain
from monitor.models import Item
from monitor.rules import load_rules

RULES = """\
actors:
  - id: kfor
    name: KFOR
    aliases: [KFOR, K-FOR, "Kosovo Force", КФОР]
  - id: nis
    name: NIS
    aliases: [NIS, "Naftna Industrija Srbije"]
    context: [oil, gas, "Gazprom*", fuel, "refiner*", sanction*]
    window: 8
  - id: wagner
    name: Wagner Group
    aliases: [Wagner, "Wagner Group"]
    exclude: [opera, composer, Bayreuth, Ring, Tannhäuser]
  - id: serbia
    name: Serbia
    aliases: [Serbia, "Serbian*", Serbs, Србија, Vučić]
  - id: kosovo
    name: Kosovo
    aliases: ["Kosov*", Pristina]
rules:
  - id: kfor
    priority: urgent
    query: '@kfor AND (patrol* OR troops)'
  - id: nis
    query: '@nis'
  - id: wagner
    query: '@wagner AND (@serbia OR @kosovo)'
  - id: plates
    query: '"licence plates" OR "license plates" OR (plates NEAR/3 (car OR vehicle))'
  - id: both
    query: 'ATLEAST 2 (@serbia, @kosovo, @kfor) NOT title:(football OR match)'
  - id: title-only
    query: 'title:kosovo'
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "r.yaml").write_text(RULES, encoding="utf-8")
    return Engine(load_rules(folder))


def item(title: str, summary: str = "") -> Item:
    return Item("i", "s", "", "", title, summary, "", "", "")


@pytest.mark.parametrize(
    ("title", "summary", "rules"),
    [
        ("K-FOR troops deployed", "", {"kfor"}),
        ("КФОР појачава патроле", "", {"kfor"}),  # патроле folds to 'patrole'
        ("КФОР troops in the north", "", {"kfor"}),
        ("NIS announces results", "The oil company is majority-owned by Gazprom Neft.", set()),
        ("US sanctions hit NIS oil company", "", {"nis"}),
        ("Niš hosts jazz festival", "", set()),
        ("Wagner recruits in Serbia", "", {"wagner"}),
        ("Wagner opera premieres in Serbia", "", set()),
        ("Recipe: serving plates", "Warm the plates before serving.", set()),
        ("Kosovo car plates dispute", "", {"plates", "title-only"}),
        ("Vucic meets envoys on Kosovo", "", {"both", "title-only"}),
        ("Serbia v Kosovo football match ends 2-1", "", {"title-only"}),
        ("Talks in Brussels", "Kosovo was discussed", set()),
        ("Serbians", "", set()),
    ],
)
def test_table(engine: Engine, title: str, summary: str, rules: set[str]) -> None:
    assert {h.rule for h in engine.match(item(title, summary))} == rules


def test_hits_carry_evidence_with_offsets_in_the_original_text(engine: Engine) -> None:
    text = "Predsednik Vučić said Priština must act, as K-FOR troops watched."
    hits = {h.rule: h for h in engine.match(item("", text))}
    both = hits["both"]
    assert set(both.actors) == {"kfor", "kosovo", "serbia"}
    spans = {(e.text, text[e.start : e.end]) for e in both.evidence}
    assert ("Vučić", "Vučić") in spans and ("K-FOR", "K-FOR") in spans
    assert hits["kfor"].priority == "urgent"


def test_matching_is_deterministic(engine: Engine) -> None:
    sample = item("KFOR troops and Serbian police near Kosovo border", "Vučić spoke.")
    assert engine.match(sample) == engine.match(sample)


def test_explain_says_why_not(engine: Engine) -> None:
    ruleset = engine.ruleset
    lines, matched = explain(engine, ruleset.rule("nis"), item("Niš jazz festival", "NIS"))
    assert not matched
    assert any("context/exclude words rule it out" in line for line in lines)


def test_watcher_keeps_last_good_rules(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - id: a\n    query: kosovo\n", encoding="utf-8")
    watcher = RuleWatcher(tmp_path)
    rules.write_text(textwrap.dedent("""\
        rules:
          - id: a
            query: '(kosovo'
        """), encoding="utf-8")  # fmt: skip
    assert watcher.refresh() is False
    assert watcher.error is not None and "r.yaml:3" in watcher.error.problems[0]
    assert [h.rule for h in watcher.engine.match(item("Kosovo"))] == ["a"]
    rules.write_text("rules:\n  - id: b\n    query: serbia\n", encoding="utf-8")
    assert watcher.refresh() is True
    assert [h.rule for h in watcher.engine.match(item("Serbia"))] == ["b"]


def test_decomposed_accents_fold_like_composed(engine: Engine) -> None:
    assert {h.rule for h in engine.match(item("Vuc\u030cic\u0301 meets envoys on Kosovo"))} == {
        "both",
        "title-only",
    }


def test_near_measures_the_gap_between_phrases_either_way(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: pm\n    query: '\"prime minister\" NEAR/2 vucic'\n", encoding="utf-8"
    )
    near = Engine(load_rules(tmp_path))
    assert near.match(item("Vucic said prime minister"))
    assert near.match(item("prime minister said Vucic"))
    assert not near.match(item("prime minister said that Vucic"))


def test_rules_are_indexed_on_their_rarest_part(engine: Engine) -> None:
    # 'kfor' needs @kfor AND (patrol* OR troops): an item with troops alone starts nothing
    kfor = next(i for i, r in enumerate(engine.rules) if r.id == "kfor")
    troops = engine._ids[("troops", False)]
    assert kfor not in engine._triggers.get(troops, set())
    assert engine.match(item("Troops and patrols", "KFOR said")) != []


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("Kurti and sanctions", True),
        ("Vucic and sanctions", True),
        ("Vucic and Kurti", True),
        ("sanctions alone", False),
        ("Kurti alone", False),
    ],
)
def test_atleast_is_indexed_on_its_cheapest_alternatives(tmp_path: Path, text: str, hit: bool):
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: two\n    query: 'ATLEAST 2 (Vucic, Kurti, sanctions)'\n", encoding="utf-8"
    )
    assert bool(Engine(load_rules(tmp_path)).match(item(text))) is hit


def test_skipping_unfound_or_terms_and_aliases_changes_no_hit(monkeypatch) -> None:
    """The engine looks only at the OR children and actor aliases the scan found; on the
    shipped pack and every labelled item, that gives exactly the hits and evidence of
    evaluating every child and every alias."""
    import json

    from monitor.match import _Context, item_from_json

    root = Path(__file__).resolve().parent.parent
    engine = Engine(load_rules(root / "rules"))
    items = [
        item_from_json(json.loads(line), n)
        for name in ("balkans_dev", "multilingual_eval", "multilingual_blind")
        for n, line in enumerate((root / "tests/data" / f"{name}.jsonl").read_text().splitlines())
    ]
    fast = [engine.match(item) for item in items]
    monkeypatch.setattr(_Context, "_or_children", lambda self, node: list(node.children))
    monkeypatch.setattr(
        engine, "_actor_alias_sets", {a: frozenset() for a in engine._actor_alias_sets}
    )  # an empty set is never the shorter side: every alias is walked
    slow = [engine.match(item) for item in items]
    assert fast == slow
    assert sum(1 for hits in fast if hits) > 250  # the sets are about half relevant
