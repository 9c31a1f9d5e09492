"""Postgres access for the platform database: connections and schema migrations (ecom/sql/*.sql, in order)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from ecom.settings import Settings, get_settings

SQL_DIR = Path(__file__).resolve().parent / "sql"


def connect(
    settings: Settings | None = None, db: str | None = None, autocommit: bool = False
) -> psycopg.Connection:
    s = settings or get_settings()
    return psycopg.connect(s.postgres.dsn(db), autocommit=autocommit, connect_timeout=5)


@contextmanager
def cursor(settings: Settings | None = None, db: str | None = None) -> Iterator[psycopg.Cursor]:
    """A cursor in one transaction: committed on success, rolled back on error."""
    with connect(settings, db) as conn, conn.cursor() as cur:
        yield cur


def migration_files() -> list[Path]:
    return sorted(SQL_DIR.glob("*.sql"))


def migrate(settings: Settings | None = None) -> list[str]:
    """Apply every migration file in name order (each is idempotent). Returns the names applied."""
    applied = []
    with connect(settings, autocommit=True) as conn:
        # one session-level advisory lock so parallel callers (tests, services) do not race on DDL
        conn.execute("SELECT pg_advisory_lock(4242)")
        try:
            for path in migration_files():
                conn.execute(path.read_text())
                applied.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")
    return applied
