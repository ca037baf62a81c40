"""Property tests at the boundaries where outside text comes in: folding and canonical URLs
are idempotent (a second pass changes nothing, so stored keys stay stable), and the feed
parser, given real feeds with bytes mutated, fails only with ParseError."""

from __future__ import annotations

from conftest import FEEDS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.normalise import canonical_url, fold
from monitor.parse import parse_feed, parse_json_feed

SCRIPTS = st.characters(codec="utf-8") | st.sampled_from(list("ĐđŠšČčĆćŽžßЉљЊњЏџЂђЋћЙйЁё–—‐’«»ǅǈﬁ"))


@settings(max_examples=500, deadline=None)
@given(st.text(SCRIPTS, max_size=60))
@example("Вучић ĐORĐE Ǆ ﬁnance")
def test_fold_is_idempotent(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


URL_PARTS = st.tuples(
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    st.sampled_from(["news.example", "WWW.News.Example", "xn--80ak6aa92e.example",
                     "127.0.0.1", "[::1]", "[2001:db8::1]", "Пример.рф", "a.example."]),
    st.sampled_from(["", ":80", ":443", ":8080", ":0", ":99999", ":x"]),
    st.text(st.sampled_from(list("/abc%20é?&=#;+")), max_size=20),
    st.lists(st.tuples(st.sampled_from(["utm_source", "id", "a b", "p", "fbclid", "é"]),
                       st.text(st.sampled_from(list("xyz é&=+%")), max_size=5)), max_size=4),
    st.text(max_size=6),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(URL_PARTS)
def test_canonical_url_is_idempotent(parts: tuple) -> None:
    scheme, host, port, path, query, fragment = parts
    url = f"{scheme}://{host}{port}/{path.lstrip('/')}"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    url += "#" + fragment
    once = canonical_url(url)
    assert canonical_url(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
@example("0 #")
def test_canonical_url_of_any_text_is_idempotent(text: str) -> None:
    once = canonical_url(text)
    assert canonical_url(once) == once


REAL_FEEDS = sorted(p for p in FEEDS.iterdir() if p.suffix in {".xml", ".rdf", ".json"})


@st.composite
def mutated_feed(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(REAL_FEEDS)).read_bytes())
    for _ in range(draw(st.integers(1, 12))):
        at = draw(st.integers(0, max(0, len(body) - 1)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip" and body:
            body[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del body[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            body[at:at] = draw(st.sampled_from([b"<", b"]]>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
                                                b"&#0;", b"\xff\xfe", b"{", b'"', b"<item>",
                                                b"&a;", b"\x00", b"<![CDATA["]))  # fmt: skip
        else:
            del body[at:]
    return bytes(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_feed())
def test_the_feed_parser_on_mutated_real_feeds_raises_only_parse_error(body: bytes) -> None:
    for parse in (parse_feed, parse_json_feed):
        try:
            entries = parse(body, "https://news.example/feed")
        except ParseError:
            continue
        assert isinstance(entries, list)
