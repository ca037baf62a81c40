"""The article a derivation reads: a text file, an HTML file, or a page fetched through the
fetcher (address policy, limits and all) with its main text taken by trafilatura."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.errors import FetchError, MonitorError
from monitor.settings import FetchSettings

MAX_FILE_BYTES = 5 * 1024 * 1024  # an article file larger than this is not an article


@dataclass(frozen=True)
class Article:
    text: str
    title: str
    source: str  # the path or final URL


def read_article(where: str, limits: FetchSettings) -> Article:
    if where.startswith(("http://", "https://")):
        return _fetched(where, limits)
    return _from_file(Path(where))


def _fetched(url: str, limits: FetchSettings) -> Article:
    from monitor.fetch import Request, fetch_all
    from monitor.fulltext import extract_article

    result = fetch_all([Request("article", url)], limits)["article"]
    if isinstance(result, FetchError):
        raise MonitorError(f"{url}: {result}")
    if result.status != 200:
        raise MonitorError(f"{url}: HTTP {result.status}")
    page = extract_article(result.body, result.content_type, result.url)
    if not page.text:
        raise MonitorError(f"{url}: no article text found on the page")
    return Article(page.text, page.title, result.url)


def _from_file(path: Path) -> Article:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise MonitorError(f"{path}: larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")
        body = path.read_bytes()
    except OSError as exc:
        raise MonitorError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if body.lstrip()[:1] == b"<":  # a saved page: its main text, as for a URL
        from monitor.fulltext import extract_article

        page = extract_article(body, "text/html", "")
        return Article(page.text, page.title, str(path))
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MonitorError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return Article(text, "", str(path))
