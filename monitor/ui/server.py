"""Datasette on the project's database: the metadata (titles, facets, canned queries that
define the views) and the server `monitor ui` starts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.settings import Settings
from monitor.store import open_store

log = logging.getLogger(__name__)
HERE = Path(__file__).parent

# Latest stories with their provenance: the first report (outlet, time, link), every outlet
# that carried an item of the story, the languages, and how many hits its items drew. The 200
# stories are picked first, so the provenance is worked out for them only (10x faster at
# 20,000 items: bench/bench_ui.py).
LATEST_STORIES = """
SELECT s.id AS story, s.title, s.last_seen, s.items,
  first.source AS first_report, s.first_seen AS first_reported, first.url AS first_url,
  (SELECT count(DISTINCT c.source) FROM item_sources c JOIN items i ON i.id = c.item_id
   WHERE i.story = s.id) AS outlet_count,
  (SELECT group_concat(source, ', ') FROM (SELECT DISTINCT c.source FROM item_sources c
   JOIN items i ON i.id = c.item_id WHERE i.story = s.id ORDER BY c.seen_at)) AS outlets,
  (SELECT group_concat(lang, ', ') FROM (SELECT DISTINCT i.lang FROM items i
   WHERE i.story = s.id AND coalesce(i.lang, '') != '' ORDER BY i.lang)) AS languages,
  (SELECT count(*) FROM hits h JOIN items i ON i.id = h.item_id WHERE i.story = s.id) AS hits
FROM (SELECT * FROM stories ORDER BY last_seen DESC, first_seen DESC LIMIT 200) s
LEFT JOIN items first ON first.id = s.first_item
ORDER BY s.last_seen DESC, s.first_seen DESC
"""
RECENT_HITS = """
SELECT h.id AS hit, coalesce(i.story, i.id) AS story, h.rule, h.priority,
  h.actors, i.title, i.source, i.lang, h.created_at,
  (SELECT verdict FROM feedback f WHERE f.item_id = h.item_id AND f.rule = h.rule
   ORDER BY f.id DESC LIMIT 1) AS verdict
FROM hits h JOIN items i ON i.id = h.item_id
WHERE h.rule LIKE coalesce(nullif(:rule, ''), '%')
ORDER BY h.id DESC LIMIT 500
"""
HITS_BY_RULE_DAY = """
SELECT substr(h.created_at, 1, 10) AS day, h.rule, count(*) AS hits,
  sum(h.priority = 'urgent') AS urgent
FROM hits h GROUP BY day, h.rule ORDER BY day DESC, hits DESC
"""
HITS_BY_ACTOR_DAY = """
SELECT coalesce(nullif(substr(i.published, 1, 10), ''), substr(i.first_seen, 1, 10)) AS day,
  a.value AS actor, count(DISTINCT i.id) AS items
FROM hits h JOIN items i ON i.id = h.item_id, json_each(h.actors) AS a
GROUP BY day, actor ORDER BY day DESC, items DESC
"""
FAILING_SOURCES = """
SELECT name, url, kind, last_error, error_count, failing_since, flagged_at, last_checked,
  last_success, next_check
FROM sources WHERE coalesce(last_error, '') != ''
ORDER BY flagged_at IS NULL, failing_since
"""
OUTBOX = """
SELECT d.id, d.name, d.subject, d.status, d.attempts, d.created_at, d.sent_at, d.next_attempt,
  d.last_error, d.recipients,
  (SELECT count(*) FROM digest_hits dh WHERE dh.digest_id = d.id) AS hits
FROM digests d ORDER BY d.id DESC LIMIT 500
"""
HIDDEN = (
    "items_fts", "items_fts_config", "items_fts_data", "items_fts_docsize", "items_fts_idx",
    "items_search", "items_search_config", "items_search_content", "items_search_data",
    "items_search_docsize", "items_search_idx", "item_keys", "pruned_items", "service_state",
    "digest_runs", "deliveries", "digest_hits",
)  # fmt: skip


def metadata(settings: Settings) -> dict[str, Any]:
    """Titles, facets and canned queries for the database, and the plugin's own settings
    (the password by the name of its variable only: Datasette shows metadata to readers)."""
    name = settings.database.stem
    queries = {
        "latest_stories": ("Latest stories, with provenance", LATEST_STORIES),
        "recent_hits": ("Recent hits (open one to judge it)", RECENT_HITS),
        "hits_by_rule_day": ("Hits by rule and day", HITS_BY_RULE_DAY),
        "hits_by_actor_day": ("Mentions by actor and day", HITS_BY_ACTOR_DAY),
        "failing_sources": ("Failing sources", FAILING_SOURCES),
        "outbox": ("The outbox: digests and alerts", OUTBOX),
    }
    return {
        "title": "news-monitor",
        "description_html": (
            '<a href="/-/search">Search</a> · '
            f'<a href="/{name}/latest_stories">Latest stories</a> · '
            f'<a href="/{name}/hits">Hits</a> · <a href="/-/mentions">Mentions chart</a> · '
            f'<a href="/{name}/failing_sources">Failing sources</a> · '
            f'<a href="/{name}/outbox">Outbox</a>'
        ),
        "databases": {
            name: {
                "tables": {
                    "hits": {
                        "facets": ["rule", "priority", {"array": "actors"}, {"date": "created_at"}],
                        "sort_desc": "id",
                    },
                    "items": {
                        "label_column": "title",
                        "facets": ["source", "lang"],
                        "sort_desc": "first_seen",
                    },
                    "stories": {"label_column": "title", "sort_desc": "last_seen"},
                    "feedback": {"facets": ["verdict", "rule"], "sort_desc": "id"},
                    "sources": {"facets": ["kind"]},
                    "digests": {"hidden": True},
                    **{table: {"hidden": True} for table in HIDDEN},
                },
                "queries": {
                    key: {"title": title, "sql": sql.strip(), "hide_sql": True}
                    for key, (title, sql) in queries.items()
                },
            }
        },
        "plugins": {
            "news-monitor": {
                "database": str(settings.database),
                "name": name,
                "busy_timeout": settings.busy_timeout,
                "password_env": settings.ui.password_env,
            }
        },
    }


def build(settings: Settings, host: str) -> Any:
    """The Datasette instance for this config, the database migrated first (so `feedback`
    exists even before the service ran once)."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    from monitor.ui import plugin

    if not isinstance(settings.database, Path):
        raise ConfigError(
            f"{settings.path}: monitor ui reads a SQLite database (it is a Datasette view); "
            "this config's database is on PostgreSQL, where `monitor search`, `status` and the "
            "digests read it"
        )
    if host not in {"127.0.0.1", "localhost", "::1"} and not settings.ui.password:
        raise ConfigError(
            f"monitor ui on {host} is reachable from other machines: set a password in "
            f"${settings.ui.password_env} first (or listen on 127.0.0.1)"
        )
    open_store(settings).close()
    if not pm.is_registered(plugin):
        pm.register(plugin, name="monitor.ui.plugin")
    return Datasette(
        [str(settings.database)],
        metadata=metadata(settings),
        template_dir=str(HERE / "templates"),
        settings={"sql_time_limit_ms": 3000, "max_returned_rows": 1000},
    )


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the web view until interrupted."""
    import asyncio

    import uvicorn

    datasette = build(settings, host)
    asyncio.run(datasette.invoke_startup())
    log.info("web view on http://%s:%d/ (database %s)", host, port, settings.database)
    uvicorn.run(datasette.app(), host=host, port=port, log_level="warning", lifespan="on")
