"""Alembic environment of the oversight ledger.

Run by oversight.db.migrate (which hands over its connection) or by the `alembic`
command with alembic.ini (the URL then comes from the settings: DATABASE_URL, else the
SQLite file in the run directory).
"""

from alembic import context
from sqlalchemy import create_engine

from oversight.schema import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from oversight.db import database_url
    from streams.settings import get_settings

    return database_url(get_settings())


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url())
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
