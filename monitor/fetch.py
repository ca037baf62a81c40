"""HTTP only: conditional GETs with hard limits, many sources at once, politely, and only to
addresses the service may reach.

Everything aiohttp can raise is turned into FetchError here, so the rest of the service deals
with one kind of failure. Limits come from FetchSettings: total and connect timeouts, a body
cap counted after decompression (a gzip bomb stops at the cap), a redirect cap, http(s) only.

Address policy (netpolicy.py): every request (feeds, pages, articles, robots.txt, discovery)
connects only to public addresses, or to networks named in `allow_private`. Redirects are
followed here, one hop at a time, so each hop is checked; host names are checked in the
resolver, on the very addresses the connection then uses (a name that resolves to a public
address when asked once and to 127.0.0.1 the next time gains nothing); and the peer of each
response is checked again before its body is read.

Politeness: requests to different hosts run concurrently, but each host gets `per_host`
requests at a time (one by default) with `host_delay` seconds between them (or the host's
robots.txt Crawl-delay, if longer). A 429/503 or any error with `Retry-After` carries the
wait the server asked for. With a shared gate (`Politeness.shared`, the database's
`host_gates` for `monitor worker`s), one request at a time per host and the pause between
two hold across every process: a host is claimed before each request and released after
it, resting for the pause or for the Retry-After it sent. Page sources (scraped, not
published as feeds) are fetched only when the host's robots.txt allows it, read as RFC 9309
says (protego: the longest matching rule wins, `*` and `$` in paths); robots.txt is fetched
once per host (per process) and kept a day.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from protego import Protego
from yarl import URL

from monitor.errors import ConfigError, FetchError
from monitor.models import FetchResult, FetchState
from monitor.netpolicy import AddressPolicy, AddressRefused, is_ip_literal
from monitor.settings import FetchSettings

log = logging.getLogger(__name__)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)


RETRY_AFTER_CAP = 86400.0  # a server cannot push a source back by more than a day
ROBOTS_TTL = 86400.0  # seconds a host's robots.txt is trusted before it is fetched again
ROBOTS_MAX_BYTES = 512 * 1024
CRAWL_DELAY_CAP = 60.0
REDIRECTS = {301, 302, 303, 307, 308}
SHARED_CLAIM_SLACK = 5.0  # seconds a shared claim outlives the requests' own timeouts
SHARED_POLL = 0.02  # seconds between two tries for a host another process is fetching


@dataclass(frozen=True)
class Request:
    key: str  # the caller's name for it, usually the source name
    url: str
    state: FetchState = field(default_factory=FetchState)
    robots: bool = False  # check the host's robots.txt first (page sources)


class SharedGates(Protocol):
    """Per-host turns kept where every worker sees them (the store's `host_gates`); times
    are seconds since the epoch."""

    def claim_host(self, host: str, now: float, until: float) -> tuple[float, float] | None: ...

    def release_host(self, host: str, until: float, next_allowed: float) -> None: ...


class Politeness:
    """What politeness remembers between cycles: when each host was last asked, and each
    host's robots.txt. The daemon keeps one for its lifetime; a one-off poll makes its own.
    With `shared`, hosts are also taken in turn with every other process using it."""

    def __init__(self, shared: SharedGates | None = None) -> None:
        self.last_request: dict[str, float] = {}  # host -> time.monotonic() of the last end
        self.crawl_delay: dict[str, float] = {}
        self.robots: dict[str, tuple[Protego, float]] = {}
        self.shared = shared


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


class _GuardedResolver(AbstractResolver):
    """Name resolution that hands aiohttp only the addresses the policy allows, so the check
    is made on the addresses actually connected to (aiohttp connects to what this returns)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        allowed = [r for r in found if self.policy.permits(r["host"], r["port"])]
        if not allowed and found:
            self.policy.check(found[0]["host"], found[0]["port"], name=host)  # raises, saying why
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def _check_target(url: str, policy: AddressPolicy) -> None:
    """Before connecting: http(s) only, and an address in the URL itself must be allowed (no
    resolver runs for it)."""
    parts = URL(url)
    if parts.scheme not in {"http", "https"}:
        raise FetchError(f"refused: only http(s) URLs are fetched, not {url!r}")
    if not parts.host:
        raise FetchError(f"refused: {url!r} names no host")
    if is_ip_literal(parts.host):
        try:
            policy.check(parts.host, parts.port or 0)
        except AddressRefused as exc:
            raise FetchError(str(exc)) from None


def _check_peer(resp: aiohttp.ClientResponse, policy: AddressPolicy) -> None:
    """The address the response came from, checked once more before its body is read."""
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        try:
            policy.check(str(peer[0]), int(peer[1]))
        except AddressRefused as exc:
            raise FetchError(str(exc)) from None


@asynccontextmanager
async def _open(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    limits: FetchSettings,
    policy: AddressPolicy,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET `url`, following up to `max_redirects` redirects one hop at a time so that every
    hop passes the address policy; yields the final response with its body unread."""
    current = url
    for _ in range(limits.max_redirects + 1):
        _check_target(current, policy)
        async with session.get(current, headers=headers, allow_redirects=False) as resp:
            _check_peer(resp, policy)
            location = resp.headers.get("Location") if resp.status in REDIRECTS else None
            if not location:
                yield resp
                return
            current = urljoin(str(resp.url), location)
    raise FetchError(f"more than {limits.max_redirects} redirects")


async def fetch_one(
    session: aiohttp.ClientSession,
    request: Request,
    limits: FetchSettings,
    policy: AddressPolicy | None = None,
) -> FetchResult:
    """GET one URL; raise FetchError for anything but a usable 2xx or a 304."""
    policy = policy or AddressPolicy(limits.allow_private)
    headers = {"Accept": ACCEPT}
    if request.state.etag:
        headers["If-None-Match"] = request.state.etag
    if request.state.last_modified:
        headers["If-Modified-Since"] = request.state.last_modified
    async with _mapped_errors(limits), _open(session, request.url, headers, limits, policy) as resp:
        return await _result(resp, request, limits)


async def _result(
    resp: aiohttp.ClientResponse, request: Request, limits: FetchSettings
) -> FetchResult:
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


@asynccontextmanager
async def _mapped_errors(limits: FetchSettings) -> AsyncIterator[None]:
    """Whatever aiohttp raises, as one FetchError with a message an operator can act on."""
    try:
        yield
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError(f"timed out after {limits.timeout:g}s") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressRefused):
            raise FetchError(str(exc.os_error)) from None
        raise FetchError(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}") from exc
    except aiohttp.ClientResponseError as exc:
        raise FetchError(f"bad response: {exc.message}", exc.status) from exc
    except AddressRefused as exc:
        raise FetchError(str(exc)) from None
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
    """At most `per_host` requests in flight per host, spaced `delay` seconds apart; with a
    shared gate, one at a time per host across every process that shares it."""

    def __init__(self, limits: FetchSettings, memory: Politeness) -> None:
        self.limits = limits
        self.memory = memory
        self.slots: dict[str, asyncio.Semaphore] = {}
        # The shared gate is a database: its calls leave the event loop, one at a time
        # (one connection), so a wait for the database's write lock stalls no other fetch.
        self.database = concurrent.futures.ThreadPoolExecutor(1, "host-gates")

    def close(self) -> None:
        self.database.shutdown(wait=True)

    def delay(self, host: str) -> float:
        return max(self.limits.host_delay, self.memory.crawl_delay.get(host, 0.0))

    @asynccontextmanager
    async def turn(self, host: str) -> AsyncIterator[None]:
        per_host = 1 if self.memory.shared is not None else self.limits.per_host
        slot = self.slots.setdefault(host, asyncio.Semaphore(per_host))
        async with slot:
            claim = await self.claim(host)
            rest = 0.0
            await self.pause(host)
            try:
                yield
            except FetchError as exc:
                rest = exc.retry_after or 0.0  # every worker leaves the host alone that long
                raise
            finally:
                self.memory.last_request[host] = time.monotonic()
                if claim is not None:
                    await self.release(host, claim, rest)

    async def pause(self, host: str) -> None:
        last = self.memory.last_request.get(host)
        if last is not None and (wait := last + self.delay(host) - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    async def claim(self, host: str) -> float | None:
        """Take the shared turn for `host` (its end, or None without a shared gate), waiting
        while another process holds it (at most until that claim runs out); a host resting
        longer than a request may take (a Retry-After) is a FetchError carrying the wait."""
        shared = self.memory.shared
        if shared is None:
            return None
        loop = asyncio.get_running_loop()
        budget = max(self.limits.timeout, 2 * self.delay(host))
        while True:
            # the claim runs out by itself if this process dies holding it (a robots.txt
            # and a page may be fetched in one turn)
            until = time.time() + 2 * self.limits.timeout + SHARED_CLAIM_SLACK
            wait = await loop.run_in_executor(self.database, shared.claim_host, host,
                                              time.time(), until)  # fmt: skip
            if wait is None:
                return until
            busy, rest = wait
            if rest > budget:
                raise FetchError(f"{host} asked to be left alone for {rest:.0f}s more",
                                 retry_after=rest)  # fmt: skip
            # a busy host is mostly released long before its claim would run out
            await asyncio.sleep(max(rest, min(busy, SHARED_POLL)))

    async def release(self, host: str, until: float, rest: float) -> None:
        shared = self.memory.shared
        assert shared is not None
        allowed = time.time() + max(self.delay(host), rest)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.database, shared.release_host, host, until, allowed)


async def _robots_allow(
    session: aiohttp.ClientSession,
    gate: _HostGate,
    request: Request,
    limits: FetchSettings,
    policy: AddressPolicy,
) -> None:
    """Raise FetchError unless the host's robots.txt lets us fetch this page (RFC 9309:
    a missing robots.txt allows everything; an unreachable one allows nothing for now)."""
    parts = urlsplit(request.url)
    host = parts.netloc.lower()
    memory = gate.memory
    cached = memory.robots.get(host)
    if cached is None or cached[1] < time.monotonic():
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        try:
            rules = await _read_robots(session, robots_url, limits, policy)
        finally:
            memory.last_request[host] = time.monotonic()
        memory.robots[host] = cached = (rules, time.monotonic() + ROBOTS_TTL)
        delay = rules.crawl_delay(limits.user_agent)
        if delay:
            memory.crawl_delay[host] = min(float(delay), CRAWL_DELAY_CAP)
    if not cached[0].can_fetch(request.url, limits.user_agent):
        raise FetchError("disallowed by the site's robots.txt")


async def _read_robots(
    session: aiohttp.ClientSession, url: str, limits: FetchSettings, policy: AddressPolicy
) -> Protego:
    try:
        async with _mapped_errors(limits), _open(session, url, {}, limits, policy) as resp:
            if resp.status >= 500:
                raise FetchError(f"HTTP {resp.status}; not fetching pages now")
            if resp.status >= 400:
                return Protego.parse("")  # no robots.txt: everything is allowed
            body = await _read_capped(resp, ROBOTS_MAX_BYTES)
    except FetchError as exc:
        raise FetchError(f"robots.txt: {exc}") from None
    return Protego.parse(body.decode("utf-8", errors="replace"))


def _policy(limits: FetchSettings) -> AddressPolicy:
    try:
        return AddressPolicy(limits.allow_private)
    except ValueError as exc:
        raise ConfigError(f"fetch.allow_private: {exc}") from None


async def _fetch_all(
    requests: Sequence[Request],
    limits: FetchSettings,
    memory: Politeness,
    stop: threading.Event | None = None,
) -> dict[str, FetchResult | FetchError]:
    timeout = aiohttp.ClientTimeout(total=limits.timeout, connect=limits.connect_timeout)
    policy = _policy(limits)
    connector = aiohttp.TCPConnector(
        limit=limits.concurrency,
        limit_per_host=limits.per_host,
        resolver=_GuardedResolver(policy),
    )
    results: dict[str, FetchResult | FetchError] = {}
    gate = _HostGate(limits, memory)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers={"User-Agent": limits.user_agent}
    ) as session:

        async def run(request: Request) -> None:
            host = urlsplit(request.url).netloc.lower()
            started = time.monotonic()
            try:
                _check_target(request.url, policy)  # refused before even asking robots.txt
                async with gate.turn(host):
                    if request.robots and limits.robots:
                        await _robots_allow(session, gate, request, limits, policy)
                        await gate.pause(host)
                    started = time.monotonic()
                    result = await fetch_one(session, request, limits, policy)
                results[request.key] = replace(result, elapsed=time.monotonic() - started)
            except FetchError as exc:
                exc.elapsed = time.monotonic() - started
                results[request.key] = exc

        everything = asyncio.gather(*(run(r) for r in requests))
        try:
            if stop is None:
                await everything
            else:
                await _until_stopped(everything, stop)
        finally:
            gate.close()
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
