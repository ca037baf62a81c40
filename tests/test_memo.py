"""A changed feed is read whole again: the language and the identity sketch of the items it
had come from a bounded memo, the same as worked out, without the work."""

from __future__ import annotations

import monitor.dedupe as dedupe
import monitor.lang as lang
from monitor.dedupe import Identity
from monitor.memo import Recent, digest
from monitor.models import Item

ITEM = Item(
    "x", "s", "https://e.example/1", "g",
    "Kosovo police patrol the northern border crossing at Jarinje",
    "Police officers in Zvečan and Leposavić said the patrols would continue through the week "
    "as talks resume in Brussels between the two delegations and the EU envoy.",
    "", "2024-01-01T00:00:00Z", "fp",
)  # fmt: skip


def test_the_memo_keeps_the_newest_answers_up_to_its_size() -> None:
    recent: Recent[int] = Recent(3)
    for n in range(5):
        recent.put(digest(str(n)), n)
    assert len(recent) == 3
    assert recent.get(digest("0")) is None and recent.get(digest("1")) is None
    assert [recent.get(digest(str(n))) for n in (2, 3, 4)] == [2, 3, 4]
    assert digest("a", "bc") != digest("ab", "c")  # parts are joined unambiguously


def test_an_item_read_again_gets_the_same_language_without_the_model(monkeypatch) -> None:
    monkeypatch.setattr(lang, "_recent", Recent(10))
    calls = []
    real = lang._available_identifier

    def counted():  # type: ignore[no-untyped-def]
        calls.append(1)
        return real()

    monkeypatch.setattr(lang, "_available_identifier", counted)
    first = lang.detect(ITEM.title, ITEM.summary)
    again = lang.detect(ITEM.title, ITEM.summary)
    assert first == again == "en" and len(calls) == 1


def test_an_item_read_again_gets_the_same_band_keys_without_a_sketch(monkeypatch) -> None:
    monkeypatch.setattr(dedupe, "_recent_bands", Recent(10))
    sketches = []
    real = dedupe._bands
    monkeypatch.setattr(dedupe, "_bands", lambda tokens: sketches.append(1) or real(tokens))
    first = Identity.of(ITEM).near
    again = Identity.of(ITEM).near
    assert first == again and len(first) == 2 * dedupe.BANDS and len(sketches) == 2  # title, body
