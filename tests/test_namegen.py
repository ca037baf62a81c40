"""`monitor rules names` generates actor names in many languages from CLDR, GeoNames and
simplemma's dictionaries; the file it writes loads through `monitor rules check`, and the
matcher then finds the inflected forms with no per-item work beyond its one scan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.match import Engine, item_from_json
from monitor.normalise import fold
from monitor.rules import load_rules

ACTORS = """
actors:
  - id: serbia
    name: Serbia
    kind: country
    aliases: [Serbia]
  - id: china
    name: China
    kind: country
    aliases: [China]
  - id: pristina
    name: Pristina
    kind: place
    aliases: [Pristina]
rules:
  - id: serbia-china
    title: Serbia and China
    query: "@serbia AND @china"
  - id: pristina
    title: Pristina
    query: "@pristina"
  - id: clashes
    title: Clashes or troops pulling back
    query: '(clash NEAR/3 police) OR (troops NEAR/2 "pull back")'
"""
SPEC = """
languages = ["sr", "hu", "el", "tr"]
[actors.serbia]
territory = "RS"
lemmas.hu = ["szerb"]
[actors.china]
territory = "CN"
[actors.pristina]
geonames = ["Pristina"]
skip = ["Pristine"]
[forms]
en = ["clash", "pull back"]
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pack")
    (folder / "actors.yaml").write_text(ACTORS, encoding="utf-8")
    (folder / "names.toml").write_text(SPEC, encoding="utf-8")
    done = run("rules", "names", str(folder))
    assert done.returncode == 0, done.stderr
    assert "aliases written" in done.stdout
    return folder


def aliases(folder: Path) -> dict[tuple[str, str], list[str]]:
    doc = yaml.safe_load((folder / "names.yaml").read_text(encoding="utf-8"))
    return {(e["actor"], e["lang"]): e["aliases"] for e in doc["names"]}


def test_names_and_their_forms_come_from_the_data(generated):
    names = aliases(generated)
    assert {"Србија", "Srbije", "Srbiji", "Srbijom"} <= set(names[("serbia", "sr")])
    assert {"szerbia", "szerbiaban", "szerbek"} <= {fold(n) for n in names[("serbia", "hu")]}
    assert {"Σερβία", "Σερβίας"} <= set(names[("serbia", "el")])
    assert "Sırbistan" in names[("serbia", "tr")]
    # each folded form once, under the first language that has it: Kina, Kína and Κίνα
    china = [fold(n) for (actor, _), forms in names.items() if actor == "china" for n in forms]
    assert china.count("kina") == 1 and "kinaban" in china and "kinas" in china
    # Turkish Çin folds to "cin", Serbian for an act: dropped; its longer forms stay
    assert "Çin" not in names.get(("china", "tr"), [])
    assert "Prishtina" in names[("pristina", "geonames")]
    assert "Pristine" not in names[("pristina", "geonames")]  # skipped: English pristine
    assert "Trnava" not in names[("pristina", "geonames")]


def test_the_generated_file_round_trips_through_rules_check(generated):
    checked = run("rules", "check", str(generated))
    assert checked.returncode == 0, checked.stderr
    assert "3 rules, 3 actors in 2 files: OK" in checked.stdout


def test_generated_forms_match_in_one_scan(generated):
    engine = Engine(load_rules(generated))

    def rules_hit(title: str) -> list[str]:
        return [h.rule for h in engine.match(item_from_json({"title": title}, 0))]

    assert rules_hit("Kína új hitelt ad Szerbiának") == ["serbia-china"]
    assert rules_hit("Η Κίνα και η Σερβία υπέγραψαν συμφωνία") == ["serbia-china"]
    assert rules_hit("Kina i Srbija potpisale sporazum o slobodnoj trgovini") == ["serbia-china"]
    assert rules_hit("Kinh tế Trung Quốc") == []
    assert rules_hit("a pristine beach in Greece") == []
    # English words named exactly also match their generated forms, phrasal verbs too
    assert rules_hit("Protesters clashed with police in the north") == ["clashes"]
    assert rules_hit("Troops pulled back from the line") == ["clashes"]
    assert rules_hit("Troops pull back") == ["clashes"]
    assert rules_hit("Clashing colours at the fashion show") == []


def test_generation_is_reproducible(generated, tmp_path):
    (tmp_path / "actors.yaml").write_text(ACTORS, encoding="utf-8")
    (tmp_path / "names.toml").write_text(SPEC, encoding="utf-8")
    assert run("rules", "names", str(tmp_path)).returncode == 0
    assert (tmp_path / "names.yaml").read_text(encoding="utf-8").split("\n", 1)[1] == (
        (generated / "names.yaml").read_text(encoding="utf-8").split("\n", 1)[1]
    )


def test_names_for_an_unknown_actor_are_a_problem_with_its_line(tmp_path):
    (tmp_path / "a.yaml").write_text(ACTORS, encoding="utf-8")
    (tmp_path / "names.yaml").write_text(
        "names:\n  - actor: serbia\n    aliases: [Szerbia]\n  - actor: atlantis\n"
        "    aliases: [Atlantida]\n",
        encoding="utf-8",
    )
    checked = run("rules", "check", str(tmp_path))
    assert checked.returncode == 2
    assert f"{tmp_path / 'names.yaml'}:4: names for 'atlantis': no actor" in checked.stderr


def test_forms_are_generated_from_the_dictionary(generated):
    doc = yaml.safe_load((generated / "names.yaml").read_text(encoding="utf-8"))
    forms = {e["word"]: e["forms"] for e in doc["forms"]}
    assert forms["clash"] == ["clashed", "clashes", "clashing"]
    assert set(forms["pull back"]) == {"pulled back", "pulling back", "pulls back"}


def test_the_shipped_pack_carries_generated_names() -> None:
    pack = Path(__file__).resolve().parent.parent / "rules" / "balkans"
    text = (pack / "names.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Generated by `monitor rules names")
    serbia = load_rules(pack.parent).actors["serbia"]
    patterns = {t.pattern for t in serbia.aliases}
    assert {"szerbia", "servia", "sirbistan", "serbien", "srbsko"} <= patterns
