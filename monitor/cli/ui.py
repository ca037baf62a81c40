"""`monitor ui`: the web view (Datasette with the project's metadata and plugin)."""

from __future__ import annotations

import click

from monitor.cli.common import clean_errors, settings_of


@click.command("ui")
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default: ui.port, 8001).")  # fmt: skip
@click.option("--host", default=None,
              help="Address to listen on (default: ui.host, 127.0.0.1); any other address "
                   "needs the password of ui.password_env.")  # fmt: skip
@click.pass_context
@clean_errors
def ui(ctx: click.Context, port: int | None, host: str | None) -> None:
    """Browse stories and hits in a browser, and mark hits relevant or not."""
    from monitor.ui.server import serve

    settings = settings_of(ctx)
    host = host or settings.ui.host
    port = port or settings.ui.port
    click.echo(f"news-monitor web view: http://{host}:{port}/  (Ctrl-C stops it)", err=True)
    serve(settings, host, port)
