"""`monitor demo`: the whole flow offline. The bundled sample feeds are served on 127.0.0.1,
one poll cycle runs into a throw-away database, and the digest lands in an outbox folder."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.deliver import send_digests
from monitor.digest import BuiltMessage
from monitor.match import RuleWatcher
from monitor.models import PageSelectors, Source
from monitor.pipeline import SourceReport, poll
from monitor.settings import DigestSettings, FetchSettings, Settings
from monitor.store import open_store

SAMPLES = Path(__file__).parent / "samples"
SAMPLE_FEEDS = {
    "Balkan News (RSS 2.0)": "balkan-news.rss",
    "Think Tank (Atom)": "think-tank.atom",
    "EU Press (JSON Feed)": "eu-press.json",
    "Wire (RSS 1.0)": "wire.rdf",
}
SAMPLE_PAGE = PageSelectors(
    item="article.card", link="h3 a", title="h3", date="time", summary="p.teaser"
)


class _QuietHandler(SimpleHTTPRequestHandler):
    disable_nagle_algorithm = True  # keep-alive responses otherwise stall ~40 ms each

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 (a free port); yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class DemoResult:
    folder: Path
    database: Path
    reports: list[SourceReport]
    messages: list[BuiltMessage]
    outbox: Path
    preview: Path | None
    config: Path


def demo_settings(base_url: str, folder: Path, rules: Path) -> Settings:
    sources = [
        Source(name, f"{base_url}/{file}", "feed", 1800, ("demo",))
        for name, file in SAMPLE_FEEDS.items()
    ]
    sources.append(
        Source(
            "Think Tank (list page)",
            f"{base_url}/listing.html",
            "page",
            3600,
            ("demo", "think-tank"),
            SAMPLE_PAGE,
        )
    )
    return Settings(
        path=folder / "demo.toml",
        database=folder / "demo.db",
        rules=rules,
        outbox=folder / "outbox",
        sources=tuple(sources),
        # Our own sample server needs no pacing, and the address policy must let it (its
        # loopback port, nothing else) through.
        fetch=FetchSettings(host_delay=0.0, allow_private=(base_url.removeprefix("http://"),)),
        digests=(
            DigestSettings(
                name="demo",
                title="Balkans watch (demo)",
                timezone="Europe/Rome",
                to=("analyst@example.org",),
            ),
        ),
    )


def run_demo(folder: Path, rules: Path) -> DemoResult:
    folder.mkdir(parents=True, exist_ok=True)
    with serve_folder(SAMPLES) as base_url:
        settings = demo_settings(base_url, folder, rules)
        watcher = RuleWatcher(rules)
        with open_store(settings) as store:
            reports = poll(settings, store, watcher.engine)
            messages = send_digests(settings, store, watcher.ruleset)
    preview = None
    if messages:
        preview = folder / "digest-preview.html"
        preview.write_text(messages[0].html, encoding="utf-8")
    config = folder / "demo.toml"
    config.write_text(_explore_config(settings), encoding="utf-8")
    return DemoResult(
        folder, settings.database, reports, messages, settings.outbox, preview, config
    )


def _explore_config(settings: Settings) -> str:
    """A config to explore the demo database with afterwards (the sample server is gone)."""
    return (
        "# Written by `monitor demo`: explore its database with --config pointing here.\n"
        "[monitor]\n"
        f'database = "{settings.database.as_posix()}"\n'
        f'rules = "{settings.rules.resolve().as_posix()}"\n'
        f'outbox = "{settings.outbox.as_posix()}"\n'
    )
