"""The ledger's database: the engine for the configured URL, and its migrations.

SQLite file in the run directory by default (WAL, so the console reads while the sink
writes); PostgreSQL in production through DATABASE_URL.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError

from streams.settings import Settings

log = logging.getLogger(__name__)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin at every start

SQLITE_FILE = "ledger.sqlite3"


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.run_dir / SQLITE_FILE}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(settings: Settings, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.ledger_migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


_MIGRATING = threading.Lock()


def migrate(settings: Settings, url: str | None = None, attempts: int = 5) -> Engine:
    """`alembic upgrade head` on the ledger; returns an engine on it.

    The sink, the console and the workers all migrate at start: when two start together on
    a new database, one loses the race to create the tables and tries again (then at head).
    """
    url = url or database_url(settings)
    engine = make_engine(url)
    config = alembic_config(settings, url)
    for attempt in range(1, attempts + 1):
        try:
            # Alembic keeps its context in module globals: one migration at a time per process.
            with _MIGRATING, engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            break
        except DBAPIError as exc:
            if attempt == attempts:
                raise
            log.warning("ledger migration raced another process (%s); again", type(exc.orig).__name__)
            time.sleep(attempt)
    log.info("ledger schema at head on %s", engine.url.render_as_string(hide_password=True))
    return engine


def has_schema(engine: Engine) -> bool:
    return inspect(engine).has_table("alert_status")


def utc(moment: datetime | None) -> datetime | None:
    """Naive UTC, the form every ledger time is stored in."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def aware(moment: datetime | None) -> datetime | None:
    """A stored (naive UTC) time as an aware one."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
