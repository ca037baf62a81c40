"""Each item's language is detected once, stored, shown in digests, and usable in searches
(`lang:it`) and digests (`languages = [...]`). Real processes, a real feed on 127.0.0.1 and a
real SQLite file; the detector is the shipped py3langid model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import write_config

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.lang import LANGUAGES, detect, expand

DATA = Path(__file__).parent / "data"
EVAL = DATA / "multilingual_eval.jsonl"


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


@pytest.fixture
def polled(tmp_path, feed_server) -> Path:
    source = [{"name": "Press", "url": feed_server.url("multilingual.xml")}]
    config = write_config(tmp_path, source, digest='[[digests]]\nname = "all"\n')
    done = monitor(config, "once")
    assert done.returncode == 0, done.stderr
    return config


def test_each_item_is_stored_with_its_language(polled, tmp_path):
    db = sqlite3.connect(tmp_path / "monitor.db")
    langs = dict(db.execute("SELECT guid, lang FROM items"))
    assert langs == {
        "ml-sr-latn": langs["ml-sr-latn"],  # Serbian in Latin script: sr, hr or bs
        "ml-sr-cyrl": "sr",
        "ml-el": "el",
        "ml-en": "en",
        "ml-sq": "sq",
        "ml-uk": "uk",
        "ml-it": "it",
        "ml-bg": "bg",
    }
    assert langs["ml-sr-latn"] in expand(["sh"])


def test_lang_filters_searches(polled):
    found = monitor(polled, "search", "kosov* lang:it")
    assert found.returncode == 0, found.stderr
    assert "Tajani a Belgrado" in found.stdout and "1 result(s)" in found.stdout
    found = monitor(polled, "search", "kosov* lang:sq,it")
    assert "2 result(s)" in found.stdout
    found = monitor(polled, "search", "kosov* lang:sh")
    assert "Vučić: Beograd" in found.stdout and "1 result(s)" in found.stdout


def test_the_digest_shows_each_language_and_can_keep_only_some(tmp_path, feed_server):
    source = [{"name": "Press", "url": feed_server.url("multilingual.xml")}]
    digests = '[[digests]]\nname = "all"\n\n[[digests]]\nname = "italian"\nlanguages = ["it"]\n'
    config = write_config(tmp_path, source, digest=digests)
    assert monitor(config, "once").returncode == 0
    everything = monitor(config, "digest", "--dry-run", "--name", "all")
    assert everything.returncode == 0, everything.stderr
    assert " · it" in everything.stdout and " · sq" in everything.stdout
    italian = monitor(config, "digest", "--dry-run", "--name", "italian")
    assert "Tajani a Belgrado" in italian.stdout
    assert "Kurti: Kosova" not in italian.stdout and "Vučić: Beograd" not in italian.stdout


def test_an_unknown_digest_language_is_a_config_error(tmp_path):
    config = write_config(tmp_path, [], digest='[[digests]]\nname = "x"\nlanguages = ["xx"]\n')
    with pytest.raises(ConfigError, match=r"languages.*unknown language 'xx'"):
        load_settings(config)


def test_too_little_text_is_no_language() -> None:
    assert detect("NATO") == ""
    assert detect("Kosovo", "") == ""
    assert detect("Il governo italiano", "ha deciso di rinviare il voto.") == "it"


def test_detection_on_the_labelled_multilingual_set() -> None:
    """Accuracy per language over the evaluation set's items (each labelled with its
    language); Serbian, Croatian and Bosnian count as one. `pytest -s` prints the table."""
    records = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines()]
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    sh = set(expand(["sh"]))
    for r in records:
        want, got = r["lang"], detect(r["title"], r.get("summary", ""))
        total[want] += 1
        right[want] += got == want or (want in sh and got in sh)
    print("\n" + " ".join(f"{k}:{right[k]}/{total[k]}" for k in sorted(total)))
    assert set(total) <= set(LANGUAGES)
    assert sum(right.values()) / sum(total.values()) >= 0.95
    for code in total:
        assert right[code] / total[code] >= 0.9, f"{code}: {right[code]}/{total[code]}"
