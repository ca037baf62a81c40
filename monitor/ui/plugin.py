"""The Datasette plugin behind `monitor ui`: a story's page, a search folded like the rules,
the mentions chart, recent hits, the feedback buttons' POST, and the password check.

Every read and write goes through the project's store (monitor/store/); Datasette's own
table and query pages show the rest. The plugin is registered by `monitor ui` itself, not by
an entry point, so a plain `datasette` elsewhere on the machine is not changed by it."""

from __future__ import annotations

import asyncio
import base64
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from datasette import hookimpl
from datasette.utils.asgi import Response

from monitor.errors import MonitorError
from monitor.models import VERDICTS
from monitor.settings import secret
from monitor.store import Store
from monitor.ui.chart import mentions_svg

PLUGIN = "news-monitor"
SEARCH_LIMIT = 50
CHART_DAYS = 30
CSRF_COOKIE = "ds_csrftoken"

ASGIApp = Callable[..., Awaitable[None]]


def _config(datasette: Any) -> dict[str, Any]:
    return datasette.plugin_config(PLUGIN) or {}


def _store(datasette: Any) -> Store:
    config = _config(datasette)
    return Store(config["database"], busy_timeout=float(config.get("busy_timeout", 30)))


async def _read(datasette: Any, method: str, *args: Any) -> Any:
    """Call one store method in a worker thread: SQLite is blocking, the server is not."""

    def call() -> Any:
        with _store(datasette) as store:
            return getattr(store, method)(*args)

    return await asyncio.to_thread(call)


def story_path(story_id: str) -> str:
    return f"/-/story/{quote(story_id, safe='')}"


async def story_view(datasette: Any, request: Any) -> Response:
    story_id = unquote(request.url_vars["story_id"])
    page = await _read(datasette, "story_page", story_id)
    if page is None:
        return Response.html(f"No story {story_id!r}", status=404)
    html = await datasette.render_template(
        "monitor_story.html", {"story": page, "verdicts": VERDICTS}, request=request
    )
    return Response.html(html)


async def hit_view(datasette: Any, request: Any) -> Response:
    """A hit's place on its story's page, where its feedback buttons are."""
    hit_id = int(request.url_vars["hit_id"])
    story = await _read(datasette, "story_of_hit", hit_id)
    if story is None:
        return Response.html(f"No hit {hit_id}", status=404)
    return Response.redirect(f"{story_path(story)}#hit-{hit_id}")


async def search_view(datasette: Any, request: Any) -> Response:
    query = request.args.get("q", "").strip()
    results = await _read(datasette, "search", query, SEARCH_LIMIT) if query else []
    stories = await _read(datasette, "stories_of", [r.id for r in results]) if results else {}
    rows = [(r, story_path(stories.get(r.id, r.id))) for r in results]
    html = await datasette.render_template(
        "monitor_search.html", {"q": query, "rows": rows}, request=request
    )
    return Response.html(html)


async def mentions_view(datasette: Any, request: Any) -> Response:
    days = _positive_int(request.args.get("days"), CHART_DAYS)
    since = datetime.now(UTC) - timedelta(days=days)
    mentions = await _read(datasette, "mentions", since)
    html = await datasette.render_template(
        "monitor_mentions.html",
        {"svg": mentions_svg(mentions), "mentions": mentions, "days": days},
        request=request,
    )
    return Response.html(html)


async def feedback_view(datasette: Any, request: Any) -> Response:
    """POST hit_id and verdict (Datasette has checked the CSRF token by then); back to the
    page the button was on."""
    if request.method != "POST":
        return Response.text("POST a hit_id and a verdict", status=405)
    if CSRF_COOKIE not in request.cookies:
        # Datasette checks the form's token against this cookie, but lets a POST with no
        # cookie at all through; a browser holding the Basic password sends one cross-site.
        return Response.text("feedback needs the form of a page of this view", status=403)
    form = await request.post_vars()
    try:
        hit_id = int(form.get("hit_id", ""))
        await _read(datasette, "record_feedback", hit_id, form.get("verdict", ""), _now())
    except (ValueError, MonitorError) as exc:
        return Response.text(f"feedback not recorded: {exc}", status=400)
    return Response.redirect(_same_site(form.get("next", "")) or "/")


def _now() -> datetime:
    return datetime.now(UTC)


def _same_site(target: str) -> str:
    """Only a path on this site: a `next` naming another host is an open redirect."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return ""
    return target


def _positive_int(value: str | None, default: int) -> int:
    try:
        number = int(value or default)
    except ValueError:
        return default
    return min(max(number, 1), 3660)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [
        (r"^/-/story/(?P<story_id>[^/]+)$", story_view),
        (r"^/-/hit/(?P<hit_id>[0-9]{1,18})$", hit_view),
        (r"^/-/search$", search_view),
        (r"^/-/mentions$", mentions_view),
        (r"^/-/feedback$", feedback_view),
    ]


@hookimpl
def menu_links(datasette: Any) -> list[dict[str, str]]:
    database = _config(datasette).get("name", "monitor")
    return [
        {"href": f"/{database}/latest_stories", "label": "Latest stories"},
        {"href": "/-/search", "label": "Search"},
        {"href": f"/{database}/hits", "label": "Hits"},
        {"href": "/-/mentions", "label": "Mentions per actor"},
        {"href": f"/{database}/failing_sources", "label": "Failing sources"},
        {"href": f"/{database}/outbox", "label": "Outbox"},
        {"href": f"/{database}/feedback", "label": "Feedback"},
    ]


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None) -> Any:
    """Story ids, and titles in a canned query's row that has a story, link to the story's
    page; a hit id links to its hit there, where its feedback buttons are."""
    from markupsafe import Markup, escape

    if column == "story" and isinstance(value, str) and value:
        return Markup(f'<a href="{escape(story_path(value))}">{escape(value)}</a>')
    story = _story_of_row(row) if table is None and column == "title" else ""
    if story and isinstance(value, str):
        return Markup(f'<a href="{escape(story_path(story))}">{escape(value)}</a>')
    hit_column = (table == "hits" and column == "id") or (table is None and column == "hit")
    if hit_column and isinstance(value, int):
        return Markup(f'<a href="/-/hit/{value}" title="judge it on its story\'s page">{value}</a>')
    return None


def _story_of_row(row: Any) -> str:
    try:
        story = row["story"]
    except (KeyError, IndexError, TypeError):
        return ""
    return story if isinstance(story, str) else ""


@hookimpl
def asgi_wrapper(datasette: Any) -> Callable[[ASGIApp], ASGIApp]:
    """With a password set, every request must carry it (HTTP Basic, any user name)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: dict, receive: Any, send: Any) -> None:
            variable = _config(datasette).get("password_env", "")
            password = secret(variable) if variable else ""
            if scope["type"] != "http" or not password or _authorised(scope, password):
                await app(scope, receive, send)
                return
            await _refuse(send)

        return guarded

    return wrap


def _authorised(scope: dict, password: str) -> bool:
    header = dict(scope.get("headers") or []).get(b"authorization", b"")
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        _, _, given = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given.encode(), password.encode())


async def _refuse(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"www-authenticate", b'Basic realm="news-monitor", charset="UTF-8"'),
                (b"content-type", b"text/plain; charset=utf-8"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"password required\n"})
