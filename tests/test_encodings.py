"""Page encodings: the HTTP header first, then a byte order mark or the page's own <meta>
declaration, then detection (charset-normalizer) when nothing is declared and the bytes are
not UTF-8; a Serbian windows-1250 page that declares nothing reads č/ć/š/ž/đ."""

from __future__ import annotations

import codecs

import pytest
from conftest import FeedServer, Response, farm_limits
from test_pages import PAGES

from monitor.fetch import Request, fetch_all
from monitor.fulltext import extract_article
from monitor.models import FetchResult, PageSelectors
from monitor.normalise import fold
from monitor.pages import decode_html, page_encoding, parse_page

SERBIAN = "Vučić, Dačić, Brnabić: Šabac, Čačak, Užice, Niš, Đurđevdan, žuto"
UNDECLARED = PAGES / "news_sr_1250_undeclared.html"  # no charset anywhere, windows-1250 bytes


def html(body: str, head: str = "") -> str:
    return f"<html><head>{head}<title>t</title></head><body><p>{body}</p></body></html>"


@pytest.mark.parametrize(
    ("body", "content_type", "codec", "how"),
    [
        # the header wins over the page's own declaration, as browsers have it
        (html(SERBIAN, '<meta charset="utf-8">').encode("cp1250"),
         "text/html; charset=windows-1250", "cp1250", "HTTP header"),
        # a server's default Latin-1 label on UTF-8 bytes is overruled
        (html(SERBIAN).encode(), "text/html; charset=ISO-8859-1", "utf-8",
         "valid UTF-8 despite the header's Latin-1"),
        # Latin-1 labels mean windows-1252 (curly quotes live in 0x80-0x9F)
        (html("“quoted” – naïve").encode("cp1252"), "text/html; charset=iso-8859-1",
         "cp1252", "HTTP header"),
        (codecs.BOM_UTF8 + html(SERBIAN, '<meta charset="windows-1250">').encode(),
         "text/html", "utf-8-sig", "byte order mark"),
        (html(SERBIAN).encode("utf-16"), "", "utf-16", "byte order mark"),
        (html(SERBIAN, '<meta http-equiv="Content-Type" content="text/html; charset=windows-1250">'
              ).encode("cp1250"), "text/html", "cp1250", "<meta> declaration"),
        (('<?xml version="1.0" encoding="ISO-8859-2"?>' + html(SERBIAN)).encode("iso-8859-2"),
         "", "iso8859-2", "<meta> declaration"),
        # a label no codec answers to is no declaration at all
        (html(SERBIAN, '<meta charset="windows-1250">').encode("cp1250"),
         "text/html; charset=x-unknown-thing", "cp1250", "<meta> declaration"),
        (html(SERBIAN).encode(), "text/html", "utf-8", "valid UTF-8"),
        # "utf-8" declared on bytes that are not UTF-8: the bytes are read for what they are
        (html(SERBIAN + " " + SERBIAN, '<meta charset="utf-8">').encode("cp1250"),
         "text/html", "cp1250", "detected (charset-normalizer)"),
    ],
)  # fmt: skip
def test_where_the_encoding_comes_from(body: bytes, content_type: str, codec: str, how: str):
    assert page_encoding(body, content_type) == (codec, how)
    assert "\ufffd" not in decode_html(body, content_type)


def test_undeclared_windows_1250_bytes_are_detected() -> None:
    body = UNDECLARED.read_bytes()
    assert b"charset" not in body.lower()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert page_encoding(body, "text/html") == ("cp1250", "detected (charset-normalizer)")


def served(server: FeedServer, path: str) -> FetchResult:
    server.routes[path] = Response(200, UNDECLARED.read_bytes(), {"Content-Type": "text/html"})
    result = fetch_all([Request("p", server.url(path))], farm_limits(server))["p"]
    assert isinstance(result, FetchResult), result
    return result


def test_an_undeclared_windows_1250_list_page_reads_its_names(feed_server: FeedServer) -> None:
    result = served(feed_server, "/vesti/")
    selectors = PageSelectors(item="div.vest", title="h2", date=".datum", summary="p")
    entries = parse_page(result.body, result.url, selectors, content_type=result.content_type)
    titles = [e.title for e in entries]
    assert titles[0].startswith("Vučić razgovarao sa specijalnim predstavnikom EU")
    assert titles[2] == "Zvečan, Leposavić i Zubin Potok: napetost posle ostavki u policiji"
    assert "Brnabić" in titles[1] and "ključno" in titles[1] and "Dačić" in titles[3]
    assert "vucic" in fold(titles[0])  # so a rule for Vučić (or Vucic, Вучић) can match
    assert not any("\ufffd" in e.title + e.summary for e in entries)


def test_an_undeclared_windows_1250_page_gives_its_full_text(feed_server: FeedServer) -> None:
    result = served(feed_server, "/vest/1")
    text = extract_article(result.body, result.content_type, result.url).text
    assert "Predsednik Srbije Aleksandar Vučić razgovarao je danas u Beogradu" in text
    assert "\ufffd" not in text
