"""Moving the database: migrate-store."""

from __future__ import annotations

import click

from monitor.cli.common import clean_errors, settings_of


@click.command("migrate-store")
@click.option(
    "--to",
    "destination",
    required=True,
    metavar="URL",
    help="The empty database to copy into, e.g. postgresql://monitor@db.example/monitor "
    "(the password from PGPASSWORD or ~/.pgpass).",
)
@click.pass_context
@clean_errors
def migrate_store(ctx: click.Context, destination: str) -> None:
    """Copy every row of the configured database into another (SQLite to PostgreSQL), then
    point `[monitor] database` at it. Stop the service first: it must not write meanwhile."""
    from monitor.store.postgres import masked
    from monitor.store.transfer import move_store

    settings = settings_of(ctx)
    origin = settings.database
    click.echo(f"copying {masked(str(origin))} into {masked(destination)}")
    copied = move_store(origin, destination, settings.busy_timeout,
                        lambda table, rows: click.echo(f"  {table}: {rows} rows"))  # fmt: skip
    click.echo(
        f"done: {sum(copied.values())} rows, every table's count checked. Now set\n"
        f'  [monitor]\n  database = "{masked(destination)}"\n'
        f"in {settings.path} and start the service again."
    )
