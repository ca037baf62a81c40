"""Real parts for every test: an HTTP server on 127.0.0.1 serving feed files and scripted
responses, an aiosmtpd server on 127.0.0.1 that keeps what it receives, a config file in a
temp folder, and a real SQLite database there."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import pytest
from aiosmtpd.controller import Controller
from hypothesis import settings as hypothesis_settings

from monitor.clock import from_iso
from monitor.settings import FetchSettings

# Property tests draw the same examples on every run, so a suite that passed once passes
# again on a clean machine; wider random searches are run by hand (HYPOTHESIS_PROFILE=explore).
hypothesis_settings.register_profile("suite", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, max_examples=5000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

DATA = Path(__file__).parent / "data"
FEEDS = DATA / "feeds"
TEST_RULES = DATA / "rules"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut_at: int | None = None  # send this many bytes, no Content-Length, then close


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (a cut connection, an abandoned fetch) is not a failure of
        the test server; anything else still prints."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FeedServer:
    """Serves files from tests/data/feeds, plus scripted routes; honours If-None-Match."""

    def __init__(self) -> None:
        self.routes: dict[str, Response] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.timeline: list[tuple[str, float, float]] = []  # (path, start, end), monotonic
        self.posts: list[tuple[str, bytes]] = []  # (path, body) of each POST accepted
        self.refuse_posts = 0  # answer this many POSTs with HTTP 500 first (a webhook down)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                started = time.monotonic()
                try:
                    self.respond()
                finally:
                    server.timeline.append((self.path, started, time.monotonic()))

            def respond(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                response = server.response_for(self.path)
                if response.delay:
                    time.sleep(response.delay)
                etag = response.headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if response.cut_at is not None:  # the server closes early, as if it crashed
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(response.body[: response.cut_at])
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            def do_POST(self) -> None:
                """A webhook receiver: keeps what it accepts, refuses as scripted."""
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                refused = server.refuse_posts > 0
                if refused:
                    server.refuse_posts -= 1
                else:
                    server.posts.append((self.path, body))
                self.send_response(500 if refused else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def response_for(self, path: str) -> Response:
        if path in self.routes:
            return self.routes[path]
        file = FEEDS / path.lstrip("/").split("?")[0]
        if file.is_file():
            kind = "application/feed+json" if file.suffix == ".json" else "application/xml"
            return Response(200, file.read_bytes(), {"Content-Type": kind})
        return Response(404, b"not found", {"Content-Type": "text/plain"})

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    @property
    def address(self) -> str:
        """This farm's address as an `allow_private` entry: loopback, this port only."""
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


def settled(server: FeedServer, count: int) -> list[tuple[str, float, float]]:
    """The server's timeline once `count` requests are logged (a handler logs its request
    just after sending the response, so the client can be a moment ahead)."""
    deadline = time.monotonic() + 10
    while len(server.timeline) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.timeline


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.fail_with: str | None = None  # e.g. "451 try later" or "554 rejected"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.fail_with:
            return self.fail_with
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for _, _, raw in self.envelopes]


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: _Inbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer("127.0.0.1", port, inbox)
    controller.stop()


def farm_limits(*servers: FeedServer, **overrides: object) -> FetchSettings:
    """Fetch settings for tests: short timeouts, no pacing, and the loopback farms given (and
    only their ports) allowed past the address policy."""
    allowed = tuple(server.address for server in servers)
    values = {"timeout": 5.0, "host_delay": 0.0, "allow_private": allowed} | overrides
    return FetchSettings(**values)  # type: ignore[arg-type]


def loopback_addresses(sources: list[dict]) -> list[str]:
    """`allow_private` entries for the loopback servers these sources live on, port by port."""
    found = []
    for source in sources:
        parts = urlsplit(str(source.get("url", "")))
        if parts.hostname == "127.0.0.1" and parts.port:
            found.append(f"127.0.0.1:{parts.port}")
    return sorted(set(found))


def write_config(folder: Path, sources: list[dict], smtp: SmtpServer | None = None,
                 digest: str = "", rules: Path = TEST_RULES,
                 fetch: dict | None = None, extra: str = "") -> Path:  # fmt: skip
    """A monitor.toml in `folder` for these sources, optionally sending to `smtp`. `fetch`
    overrides [fetch] settings; `extra` is appended as it is (more tables). The loopback
    servers the sources name are allowed past the address policy, each on its own port."""
    # One loopback server plays every host: no pacing between its requests unless asked.
    fetch_settings = {"timeout": 5, "host_delay": 0} | (fetch or {})
    fetch_settings.setdefault("allow_private", loopback_addresses(sources))
    lines = [
        "[monitor]",
        f'database = "{(folder / "monitor.db").as_posix()}"',
        f'rules = "{rules.as_posix()}"',
        f'outbox = "{(folder / "outbox").as_posix()}"',
        "[fetch]",
        *(f"{key} = {_toml(value)}" for key, value in fetch_settings.items()),
        "",
    ]
    for source in sources:
        lines.append("[[sources]]")
        for key, value in source.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    if smtp is not None:
        lines += [
            "[smtp]",
            f'host = "{smtp.host}"',
            f"port = {smtp.port}",
            'security = "none"',
            'sender = "News Monitor <monitor@example.org>"',
            "timeout = 5",
            "",
        ]
    lines.append(
        textwrap.dedent(digest)
        or textwrap.dedent("""
        [[digests]]
        name = "daily"
        title = "Balkans watch"
        timezone = "Europe/Rome"
        to = ["analyst@example.org"]
        """)
    )
    lines.append(textwrap.dedent(extra))
    path = folder / "monitor.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value).lower() if isinstance(value, bool) else str(value)


def make_rss(name: str, numbers: range | list[int], base: str = "https://news.example") -> bytes:
    """An RSS 2.0 feed whose items are numbered: item n of `name` has guid `name-n` and a
    title and link of its own, so tests can tell exactly which items were stored."""
    items = "".join(
        f"<item><title>{name} story {n}</title><link>{base}/{name}/{n}</link>"
        f"<guid>{name}-{n}</guid><description>Report number {n} from {name}.</description>"
        f"<pubDate>Mon, 21 Nov 2022 10:{n % 60:02d}:00 +0100</pubDate></item>"
        for n in numbers
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{name}</title><link>{base}/</link><description>test</description>"
        f"{items}</channel></rss>"
    ).encode()


def report_feed(name: str, entries: list[dict]) -> bytes:
    """An RSS 2.0 feed of labelled reports (records with title, url, summary, published)."""
    items = "".join(
        f"<item><title>{escape(e['title'])}</title><link>{escape(e['url'])}</link>"
        f"<description>{escape(e.get('summary', ''))}</description>"
        + (f"<pubDate>{format_datetime(from_iso(e['published']))}</pubDate>"
           if e.get("published") else "")
        + "</item>"
        for e in entries
    )  # fmt: skip
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(name)}</title><link>https://example.org/</link>"
        f"<description>t</description>{items}</channel></rss>"
    ).encode()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own (a fresh schema on the test server)."""
    from services import postgres_schema

    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """Where a store test's database lives: once a SQLite file, once a PostgreSQL schema."""
    if request.param == "sqlite":
        yield tmp_path / "monitor.db"
        return
    from services import postgres_schema

    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def both_stores(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Runs a test twice: on the SQLite file its config names, then with MONITOR_DATABASE
    pointing every store it (or a command it starts) opens at a PostgreSQL schema of its own.
    A module opts in with `pytestmark = pytest.mark.usefixtures("both_stores")`."""
    if request.param == "sqlite":
        yield
        return
    from services import postgres_schema

    with postgres_schema() as url:
        monkeypatch.setenv("MONITOR_DATABASE", url)
        yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(why): a `both_stores` test of the SQLite file itself"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked sqlite_only runs once, on SQLite, in a module that runs on both."""
    dropped = [
        item
        for item in items
        if item.get_closest_marker("sqlite_only")
        and getattr(item, "callspec", None)
        and item.callspec.params.get("both_stores") == "postgresql"
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def require_service(host: str, port: int, what: str) -> None:
    """Skip the test, saying why, when a service it needs does not answer on host:port; with
    NM_REQUIRE_SERVICES=1 (CI that starts them), fail it instead."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        reason = f"{what} is not reachable on {host}:{port} ({exc})"
        if os.environ.get("NM_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and NM_REQUIRE_SERVICES=1 requires it")
        pytest.skip(f"{reason}; set NM_REQUIRE_SERVICES=1 to fail instead of skipping")


REDIS = ("127.0.0.1", 6379)
RABBITMQ = ("127.0.0.1", 5672)


@pytest.fixture
def redis_broker(worker_id: str) -> Iterator[str]:
    """A Redis broker address on a database of this test process's own (10 for the first
    xdist worker, 11 for the second, ...), emptied before and after the test: tests running
    side by side never share a queue, and no other database of the server is touched."""
    require_service(*REDIS, "Redis")
    import redis

    number = 10 + (int(worker_id.removeprefix("gw")) if worker_id.startswith("gw") else 0) % 6
    client = redis.Redis(*REDIS, db=number)
    client.flushdb()
    yield f"redis://{REDIS[0]}:{REDIS[1]}/{number}"
    client.flushdb()
    client.close()
