"""HTTP only: conditional GETs with hard limits, many sources at once.

Everything aiohttp can raise is turned into FetchError here, so the rest of the service deals
with one kind of failure. Limits come from FetchSettings: total and connect timeouts, a body
cap counted after decompression (a gzip bomb stops at the cap), a redirect cap, http(s) only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from monitor.config import FetchSettings
from monitor.errors import FetchError
from monitor.models import FetchResult, FetchState

log = logging.getLogger(__name__)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)


@dataclass(frozen=True)
class Request:
    key: str  # the caller's name for it, usually the source name
    url: str
    state: FetchState = field(default_factory=FetchState)


async def fetch_one(
    session: aiohttp.ClientSession, request: Request, limits: FetchSettings
) -> FetchResult:
    """GET one URL; raise FetchError for anything but a usable 2xx or a 304."""
    if urlsplit(request.url).scheme not in {"http", "https"}:
        raise FetchError(f"only http(s) URLs are fetched, not {request.url!r}")
    headers = {"Accept": ACCEPT}
    if request.state.etag:
        headers["If-None-Match"] = request.state.etag
    if request.state.last_modified:
        headers["If-Modified-Since"] = request.state.last_modified
    try:
        async with session.get(
            request.url, headers=headers, max_redirects=limits.max_redirects
        ) as resp:
            if resp.status == 304:
                return FetchResult(
                    url=str(resp.url),
                    status=304,
                    body=b"",
                    etag=request.state.etag,
                    last_modified=request.state.last_modified,
                )
            if resp.status >= 400:
                raise FetchError(f"HTTP {resp.status} {resp.reason or ''}".strip(), resp.status)
            body = await _read_capped(resp, limits.max_bytes)
            return FetchResult(
                url=str(resp.url),
                status=resp.status,
                body=body,
                content_type=resp.headers.get("Content-Type", ""),
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
            )
    except FetchError:
        raise
    except aiohttp.TooManyRedirects:
        raise FetchError(f"more than {limits.max_redirects} redirects") from None
    except TimeoutError:
        raise FetchError(f"timed out after {limits.timeout:g}s") from None
    except aiohttp.ClientConnectorError as exc:
        raise FetchError(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}") from exc
    except aiohttp.ClientResponseError as exc:
        raise FetchError(f"bad response: {exc.message}", exc.status) from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from exc


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise FetchError(f"body of {declared} bytes is over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"body is over the {max_bytes}-byte limit (after decompression)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch_all(
    requests: Sequence[Request], limits: FetchSettings
) -> dict[str, FetchResult | FetchError]:
    timeout = aiohttp.ClientTimeout(total=limits.timeout, connect=limits.connect_timeout)
    connector = aiohttp.TCPConnector(limit=limits.concurrency, limit_per_host=limits.per_host)
    results: dict[str, FetchResult | FetchError] = {}
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers={"User-Agent": limits.user_agent}
    ) as session:

        async def run(request: Request) -> None:
            try:
                results[request.key] = await fetch_one(session, request, limits)
            except FetchError as exc:
                results[request.key] = exc

        await asyncio.gather(*(run(r) for r in requests))
    return results


def fetch_all(
    requests: Sequence[Request], limits: FetchSettings
) -> dict[str, FetchResult | FetchError]:
    """Fetch every request concurrently; each key maps to its result or its FetchError."""
    if not requests:
        return {}
    return asyncio.run(_fetch_all(requests, limits))
