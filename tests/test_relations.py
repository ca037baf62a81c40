"""Who did what to whom: actor – action – actor in one sentence, with direction, from the
verb lexicons in rule files; measured on a labelled set with near misses; asked for by
rules, explained by `rules test`, printed by `monitor match`, stored by the cycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FeedServer, Response, write_config

from monitor.cli import main
from monitor.config import load_settings
from monitor.errors import RuleError
from monitor.match import Engine
from monitor.models import Item
from monitor.pipeline import poll
from monitor.relations import MAX_RELATIONS
from monitor.rules import load_rules
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

PACK = Path(__file__).resolve().parent.parent / "rules"
LABELLED = Path(__file__).parent / "data" / "relations_labelled.jsonl"
ENGINE = Engine(load_rules(PACK))
PRECISION_FLOOR, RECALL_FLOOR = 0.90, 0.85  # measured: 0.96 and 0.91 (README)


def said(text: str, engine: Engine = ENGINE) -> set[tuple[str, str, str]]:
    item = Item("t", "test", "", "", "", text, "", "", "")
    return {(r.subject, r.action, r.object) for r in engine.relations(item)}


def test_labelled_sentences_meet_the_precision_and_recall_floors():
    found = right = wanted = 0
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        got, gold = said(case["text"]), {tuple(g) for g in case["relations"]}
        found, right, wanted = found + len(got), right + len(got & gold), wanted + len(gold)
    assert wanted >= 50 and found > 0
    assert right / found >= PRECISION_FLOOR
    assert right / wanted >= RECALL_FLOOR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Russia supplied weapons to Serbia.", {("russia", "supply-arms", "serbia")}),
        ("Serbia supplied weapons to Russia.", {("serbia", "supply-arms", "russia")}),
        ("Serbia was sanctioned by the United States.", {("usa", "sanction", "serbia")}),
        ("La Serbia è stata sanzionata dagli Stati Uniti.", {("usa", "sanction", "serbia")}),
        ("Kosova u sulmua nga Serbia.", {("serbia", "attack", "kosovo")}),
        ("Вучић се састао са Путином у Москви.", {("vucic", "meet", "putin")}),
        ("Vučić and Kurti met in Brussels.", {("vucic", "meet", "kurti")}),
        # near misses: negation, reported speech, two actors with no action between them
        ("Serbia will not recognise Kosovo.", set()),
        ("Srbija neće priznati Kosovo.", set()),
        ("Vučić said Russia supplied weapons to Serbia.", set()),
        ("Secondo Kurti, la Serbia avrebbe attaccato il Kosovo.", set()),
        ("Vučić and Kurti both attended the summit.", set()),
        ("In Belgrade they met President Vučić.", set()),  # where, not who
        ("The EU condemned armed attacks against EULEX.", {("eu", "accuse", "eulex")}),
        # one sentence each: the actors of the next sentence are not the object
        ("Russia supplied weapons. Serbia denies it.", set()),
    ],
)
def test_direction_and_near_misses(text, expected):
    assert said(text) == expected


def test_each_relation_keeps_its_sentence_and_offsets():
    text = "Talks stalled. The U.S. Treasury sanctioned NIS on Friday. Markets fell."
    [relation] = ENGINE.relations(Item("t", "test", "", "", "", text, "", "", ""))
    assert relation.sentence == "The U.S. Treasury sanctioned NIS on Friday."
    assert text[relation.start : relation.end] == relation.sentence
    _, verb, obj = relation.spans
    assert text[verb[0] : verb[1]] == "sanctioned" == relation.verb
    assert text[obj[0] : obj[1]] == "NIS" and relation.field == "summary"


def write_rules(folder: Path, extra: str = "", query: str = "@russia SUPPLY_ARMS @serbia") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "actors.yaml").write_text(
        "actors:\n"
        "  - {id: russia, name: Russia, kind: country, aliases: [Russia, Rusija, Russian]}\n"
        "  - {id: serbia, name: Serbia, kind: country, aliases: [Serbia, Srbija, Srbiji]}\n"
        "actions:\n"
        "  - action: supply-arms\n"
        "    lang: en\n"
        '    verbs: ["supplied weapons to", "delivered arms to"]\n'
        "  - action: negation\n"
        "    verbs: [not, never]\n",
        encoding="utf-8",
    )
    (folder / "rules.yaml").write_text(
        f"rules:\n  - id: arms\n    priority: urgent\n    query: '{query}'\n{extra}",
        encoding="utf-8",
    )
    return folder


def test_a_rule_asks_for_a_relation_and_its_direction(tmp_path):
    engine = Engine(load_rules(write_rules(tmp_path / "rules")))

    def hits(text: str) -> list[str]:
        return [h.rule for h in engine.match(Item("t", "s", "", "", "", text, "", "", ""))]

    assert hits("Russia supplied weapons to Serbia in May.") == ["arms"]
    assert hits("Serbia supplied weapons to Russia in May.") == []
    assert hits("Russia never supplied weapons to Serbia.") == []
    assert hits("Russia and Serbia held talks.") == []


def test_users_extend_an_action_in_a_file_of_their_own(tmp_path):
    folder = write_rules(tmp_path / "rules")
    (folder / "mine.yaml").write_text(
        "actions:\n  - action: supply-arms\n    lang: sh\n    verbs: ['isporučila oružje']\n",
        encoding="utf-8",
    )
    engine = Engine(load_rules(folder))
    item = Item("t", "s", "", "", "", "Rusija je isporučila oružje Srbiji.", "", "", "")
    assert [h.rule for h in engine.match(item)] == ["arms"]


def test_rules_test_explains_a_relation_found_and_one_read_otherwise(tmp_path):
    folder = write_rules(tmp_path / "rules")
    runner = CliRunner()
    found = runner.invoke(main, ["rules", "test", "arms", "--rules", str(folder), "--text",
                                 "Russia supplied weapons to Serbia."])  # fmt: skip
    assert found.exit_code == 0, found.output
    assert (
        "✓ found   @russia SUPPLY_ARMS @serbia — 'supplied weapons to' in summary" in found.output
    )
    assert "matched 'Russia' for 'Russia' (@russia) in summary [0:6]" in found.output
    assert "'Russia supplied weapons to Serbia.'" in found.output
    reversed_ = runner.invoke(main, ["rules", "test", "arms", "--rules", str(folder), "--text",
                                     "Serbia supplied weapons to Russia."])  # fmt: skip
    assert reversed_.exit_code == 1
    assert "✗ absent  @russia SUPPLY_ARMS @serbia" in reversed_.output
    assert "the item says: @serbia SUPPLY_ARMS @russia" in reversed_.output


def test_bad_action_entries_and_unknown_actions_are_file_line_errors(tmp_path):
    folder = write_rules(tmp_path / "rules", query="@russia SEND_ARMS @serbia")
    (folder / "bad.yaml").write_text(
        "actions:\n  - action: meet\n    verbz: [met]\n", encoding="utf-8"
    )
    with pytest.raises(RuleError) as caught:
        load_rules(folder)
    problems = "\n".join(caught.value.problems)
    assert f"{folder / 'bad.yaml'}:3: action 'meet': unknown key 'verbz'" in problems
    assert f"{folder / 'bad.yaml'}:2: action 'meet': needs words under 'verbs'" in problems
    assert "rules.yaml:4: rule 'arms': query: unknown action SEND_ARMS at column 9" in problems


def test_match_prints_relations(tmp_path):
    lines = "\n".join(
        json.dumps({"id": n, "title": t})
        for n, t in [(1, "Russia supplied weapons to Serbia"), (2, "Russia and Serbia")]
    )
    result = CliRunner().invoke(main, ["match", "-", "--rules", str(PACK)], input=lines)
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["relations"] == [{"subject": "russia", "action": "supply-arms",
                                   "object": "serbia",
                                   "sentence": "Russia supplied weapons to Serbia"}]  # fmt: skip
    assert second["relations"] == []


def test_work_per_item_is_bounded():
    sentence = "Russia supplied weapons to Serbia and Kurti accused Serbia. "
    item = Item("t", "s", "", "", "", sentence * 2000, "", "", "")
    _, steps = ENGINE.match_counting(item)
    relations = ENGINE.relations(item)
    assert len(relations) == MAX_RELATIONS
    assert steps < 200_000  # linear in what the scan found, not quadratic


def test_the_cycle_stores_relations_with_their_sentence(tmp_path, feed_server: FeedServer):
    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title><link>https://w.example/'
        b"</link><description>d</description><item><title>Arms for Belgrade</title>"
        b"<link>https://w.example/1</link><guid>w-1</guid><description>Russia supplied weapons to"
        b" Serbia, the ministry confirmed. Talks follow.</description></item></channel></rss>"
    )
    feed_server.routes["/arms.xml"] = Response(200, feed, {"Content-Type": "application/xml"})
    config = write_config(tmp_path, [{"name": "Wire", "url": feed_server.url("arms.xml")}],
                          rules=PACK)  # fmt: skip
    settings = load_settings(config)
    with Store(settings.database) as store:
        [report] = poll(settings, store, Engine(load_rules(PACK)))
        assert report.new == 1
        [item_id] = [r[0] for r in store.conn.execute("SELECT id FROM items")]
        [relation] = store.relations_of(item_id)
    assert (relation.subject, relation.action, relation.object) == ("russia", "supply-arms",
                                                                    "serbia")  # fmt: skip
    assert relation.sentence == "Russia supplied weapons to Serbia, the ministry confirmed."
    summary = "Russia supplied weapons to Serbia, the ministry confirmed. Talks follow."
    assert [summary[a:b] for a, b in relation.spans] == ["Russia", "supplied weapons to", "Serbia"]
