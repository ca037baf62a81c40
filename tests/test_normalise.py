from __future__ import annotations

import pytest

from monitor.models import RawEntry
from monitor.normalise import (
    canonical_url,
    fingerprint,
    fold,
    fold_with_offsets,
    html_to_text,
    normalise,
    to_utc_iso,
)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Vučić", "vucic"),
        ("VUCIC", "vucic"),
        ("Вучић", "vucic"),
        ("Приштина", "pristina"),
        ("Đukanović", "djukanovic"),
        ("K-FOR", "k for"),
        ("CH-92A", "ch 92a"),
        ("Niš", "nis"),
        ("Straße", "strasse"),
        ("Kosovo’s north", "kosovo's north"),
        ("Москва", "moskva"),
        # Macedonian
        ("Ѓорче Петров", "gjorce petrov"),
        ("Скопје", "skopje"),
        # Bulgarian: ъ is a vowel, щ as in Russian
        ("България", "balgarija"),
        ("Пъпеш", "papes"),
        # Ukrainian: є, і, ї, ґ; Україна folds as Украина does
        ("Україна", "ukraina"),
        ("Украина", "ukraina"),
        ("Європа", "evropa"),
        ("Ґрунт", "grunt"),
        # Greek, monotonic and polytonic, with the ου/αυ/ευ digraphs
        ("Μητσοτάκης", "mitsotakis"),
        ("ΜΗΤΣΟΤΑΚΗΣ", "mitsotakis"),
        ("Χριστόδουλος", "christodoulos"),
        ("Ευρώπη", "evropi"),
        ("Θεσσαλονίκη", "thessaloniki"),
        ("Κόσοβο", "kosovo"),
        ("Ψυχή", "psychi"),
        ("ἀρχή", "archi"),
        # Latin scripts of the region and beyond
        ("Kosovës", "kosoves"),
        ("Tiranë", "tirane"),
        ("Bucureşti", "bucuresti"),
        ("București", "bucuresti"),
        ("Magyarország", "magyarorszag"),
        ("İstanbul", "istanbul"),
        ("Łódź", "lodz"),
        ("Dvořák", "dvorak"),
        ("Göteborg", "goteborg"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize(
    "text",
    ["Χριστόδουλος Ευρώπη ΟΥΡΑ", "Вучић и Μητσοτάκης", "Україна, Ґрунт", "Kosovës Ѓ"],
)
def test_fold_with_offsets_agrees_with_fold_in_every_script(text: str) -> None:
    folded, origin = fold_with_offsets(text)
    assert folded == fold(text)
    assert len(origin) == len(folded)
    assert origin == sorted(origin) and origin[-1] < len(text)


def test_fold_with_offsets_maps_back_to_the_original() -> None:
    text = "Đukanović met Вучић"
    folded, origin = fold_with_offsets(text)
    assert folded == fold(text)
    start = folded.index("vucic")
    end = start + len("vucic")
    assert text[origin[start] : origin[end - 1] + 1] == "Вучић"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://Example.ORG/a?utm_source=rss&utm_medium=feed#top", "https://example.org/a"),
        ("https://example.org:443/a?id=3&fbclid=x", "https://example.org/a?id=3"),
        ("http://example.org:8080/a/?b=1", "http://example.org:8080/a/?b=1"),
        ("https://example.org", "https://example.org/"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_html_to_text_strips_markup_and_scripts() -> None:
    html = "<p>KFOR&nbsp;<b>patrols</b></p><script>alert(1)</script><p>Mitrovica &amp; Zvečan</p>"
    assert html_to_text(html) == "KFOR patrols Mitrovica & Zvečan"


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("Tue, 22 Nov 2022 10:00:00 +0100", "2022-11-22T09:00:00Z"),
        ("2022-11-22T10:00:00+01:00", "2022-11-22T09:00:00Z"),
        ("2022-11-22T09:00:00Z", "2022-11-22T09:00:00Z"),
        ("2022-11-22", "2022-11-22"),  # a day without a time stays a day
        ("22. новембра 2022.", "2022-11-22"),  # what feedparser leaves unread: the page forms
        ("22 ноября 2022, 10:30", "2022-11-22T10:30:00Z"),
        ("sometime last week", ""),
        ("", ""),
    ],
)
def test_dates_become_utc(value: str, iso: str) -> None:
    assert to_utc_iso(value) == iso


def test_same_story_same_fingerprint_despite_markup_and_case() -> None:
    assert fingerprint("Serbia and Kosovo agree", "EU says…") == fingerprint(
        "SERBIA AND KOSOVO AGREE", "EU says …"
    )


def test_normalise_drops_non_web_links_and_empty_entries() -> None:
    item = normalise("s", RawEntry(title="<b>Hi</b>", link="javascript:alert(1)", guid="g"))
    assert item is not None and item.url == "" and item.title == "Hi"
    assert normalise("s", RawEntry(title="  ", summary="<p></p>")) is None
