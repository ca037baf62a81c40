"""HTTP only: conditional GETs with hard limits, many sources at once, politely.

Everything aiohttp can raise is turned into FetchError here, so the rest of the service deals
with one kind of failure. Limits come from FetchSettings: total and connect timeouts, a body
cap counted after decompression (a gzip bomb stops at the cap), a redirect cap, http(s) only.

Politeness: requests to different hosts run concurrently, but each host gets `per_host`
requests at a time (one by default) with `host_delay` seconds between them (or the host's
robots.txt Crawl-delay, if longer). A 429/503 or any error with `Retry-After` carries the
wait the server asked for. Page sources (scraped, not published as feeds) are fetched only
when the host's robots.txt allows it; robots.txt is fetched once per host and kept a day.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.robotparser
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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


RETRY_AFTER_CAP = 86400.0  # a server cannot push a source back by more than a day
ROBOTS_TTL = 86400.0  # seconds a host's robots.txt is trusted before it is fetched again
ROBOTS_MAX_BYTES = 512 * 1024
CRAWL_DELAY_CAP = 60.0


@dataclass(frozen=True)
class Request:
    key: str  # the caller's name for it, usually the source name
    url: str
    state: FetchState = field(default_factory=FetchState)
    robots: bool = False  # check the host's robots.txt first (page sources)


class Politeness:
    """What politeness remembers between cycles: when each host was last asked, and each
    host's robots.txt. The daemon keeps one for its lifetime; a one-off poll makes its own."""

    def __init__(self) -> None:
        self.last_request: dict[str, float] = {}  # host -> time.monotonic() of the last end
        self.crawl_delay: dict[str, float] = {}
        self.robots: dict[str, tuple[urllib.robotparser.RobotFileParser, float]] = {}


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: a number of seconds or an HTTP date; capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


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
        # aiohttp counts the responses it has seen; we count the redirects it follows.
        async with session.get(
            request.url, headers=headers, max_redirects=limits.max_redirects + 1
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
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                message = f"HTTP {resp.status} {resp.reason or ''}".strip()
                if wait is not None:
                    message += f" (Retry-After {wait:.0f}s)"
                raise FetchError(message, resp.status, wait)
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


class _HostGate:
    """At most `per_host` requests in flight per host, spaced `delay` seconds apart."""

    def __init__(self, limits: FetchSettings, memory: Politeness) -> None:
        self.limits = limits
        self.memory = memory
        self.slots: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def turn(self, host: str) -> AsyncIterator[None]:
        slot = self.slots.setdefault(host, asyncio.Semaphore(self.limits.per_host))
        async with slot:
            await self.pause(host)
            try:
                yield
            finally:
                self.memory.last_request[host] = time.monotonic()

    async def pause(self, host: str) -> None:
        delay = max(self.limits.host_delay, self.memory.crawl_delay.get(host, 0.0))
        last = self.memory.last_request.get(host)
        if last is not None and (wait := last + delay - time.monotonic()) > 0:
            await asyncio.sleep(wait)


async def _robots_allow(
    session: aiohttp.ClientSession, gate: _HostGate, request: Request, limits: FetchSettings
) -> None:
    """Raise FetchError unless the host's robots.txt lets us fetch this page (RFC 9309:
    a missing robots.txt allows everything; an unreachable one allows nothing for now)."""
    parts = urlsplit(request.url)
    host = parts.netloc.lower()
    memory = gate.memory
    cached = memory.robots.get(host)
    if cached is None or cached[1] < time.monotonic():
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        parser = urllib.robotparser.RobotFileParser(robots_url)
        try:
            async with session.get(robots_url, max_redirects=limits.max_redirects + 1) as resp:
                if resp.status >= 500:
                    raise FetchError(f"robots.txt: HTTP {resp.status}; not fetching pages now")
                if resp.status >= 400:
                    parser.allow_all = True
                else:
                    body = await _read_capped(resp, ROBOTS_MAX_BYTES)
                    parser.parse(body.decode("utf-8", errors="replace").splitlines())
        except FetchError:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = type(exc).__name__
            raise FetchError(f"robots.txt unreachable ({reason}); not fetching pages") from exc
        finally:
            memory.last_request[host] = time.monotonic()
        parser.modified()
        memory.robots[host] = (parser, time.monotonic() + ROBOTS_TTL)
        delay = parser.crawl_delay(limits.user_agent)
        if delay:
            memory.crawl_delay[host] = min(float(delay), CRAWL_DELAY_CAP)
        cached = memory.robots[host]
    if not cached[0].can_fetch(limits.user_agent, request.url):
        raise FetchError("disallowed by the site's robots.txt")


async def _fetch_all(
    requests: Sequence[Request],
    limits: FetchSettings,
    memory: Politeness,
    stop: threading.Event | None = None,
) -> dict[str, FetchResult | FetchError]:
    timeout = aiohttp.ClientTimeout(total=limits.timeout, connect=limits.connect_timeout)
    connector = aiohttp.TCPConnector(limit=limits.concurrency, limit_per_host=limits.per_host)
    results: dict[str, FetchResult | FetchError] = {}
    gate = _HostGate(limits, memory)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers={"User-Agent": limits.user_agent}
    ) as session:

        async def run(request: Request) -> None:
            host = urlsplit(request.url).netloc.lower()
            started = time.monotonic()
            try:
                async with gate.turn(host):
                    if request.robots and limits.robots:
                        await _robots_allow(session, gate, request, limits)
                        await gate.pause(host)
                    started = time.monotonic()
                    result = await fetch_one(session, request, limits)
                results[request.key] = replace(result, elapsed=time.monotonic() - started)
            except FetchError as exc:
                exc.elapsed = time.monotonic() - started
                results[request.key] = exc

        everything = asyncio.gather(*(run(r) for r in requests))
        if stop is None:
            await everything
        else:
            await _until_stopped(everything, stop)
    return results


async def _until_stopped(work: asyncio.Future, stop: threading.Event) -> None:
    """Wait for `work`, but cancel it as soon as `stop` is set (the service is shutting
    down: whatever is in flight is abandoned and fetched again next time)."""
    while not work.done():
        if stop.is_set():
            work.cancel()
            with suppress(asyncio.CancelledError):
                await work
            return
        await asyncio.wait({work}, timeout=0.1)
    await work


def fetch_all(
    requests: Sequence[Request],
    limits: FetchSettings,
    memory: Politeness | None = None,
    stop: threading.Event | None = None,
) -> dict[str, FetchResult | FetchError]:
    """Fetch every request, concurrently across hosts and politely per host; each key maps to
    its result or its FetchError. When `stop` is set, requests in flight are abandoned and
    left out of the result."""
    if not requests:
        return {}
    return asyncio.run(_fetch_all(requests, limits, memory or Politeness(), stop))
