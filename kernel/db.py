"""Postgres access for the platform database, from one place: connections, schema migrations
(kernel/sql/*.sql, in order) and the exactly-once bulk insert every sink uses (`copy_insert`)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from kernel.settings import Settings, get_settings

SQL_DIR = Path(__file__).resolve().parent / "sql"


def connect(
    settings: Settings | None = None,
    db: str | None = None,
    autocommit: bool = False,
    role: str | None = None,
) -> psycopg.Connection:
    """A connection to the platform database (or `db`) as the owner, or as `role`: a component of
    kernel.settings.COMPONENT_ROLES ("stream", "landing", "dbt", "dashboards") with only its privileges."""
    s = settings or get_settings()
    return psycopg.connect(s.postgres.as_role(role).dsn(db), autocommit=autocommit, connect_timeout=5)


@contextmanager
def cursor(
    settings: Settings | None = None, db: str | None = None, role: str | None = None
) -> Iterator[psycopg.Cursor]:
    """A cursor in one transaction: committed on success, rolled back on error."""
    with connect(settings, db, role=role) as conn, conn.cursor() as cur:
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
            set_role_passwords(conn, settings or get_settings())
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")
    return applied


def set_role_passwords(conn: psycopg.Connection, settings: Settings) -> None:
    """Give each component's role (created NOLOGIN by the migrations) LOGIN with its password from settings;
    idempotent. Done by the owner's connection that ran the migrations: only it holds the credentials."""
    from psycopg import sql

    for cred in settings.postgres.roles.values():
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(cred.user), sql.Literal(cred.password)
            )
        )


def copy_insert(
    cur: psycopg.Cursor,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]] | pa.Table,
    conflict: str = "(transaction_id)",
    where: str | None = None,
) -> int:
    """COPY rows into a temporary copy of `table`'s columns, then insert the new ones; returns rows inserted.

    `rows`: tuples in `columns` order, or an Arrow table holding (at least) those columns (no binary ones).

    `where` (a fixed SQL condition over the copied rows, alias `t`; never user input) keeps only some of them.

    Runs inside the caller's transaction (the temp table is dropped at commit), so it composes with the
    batch marker of the speed-layer sink.
    """
    tmp = "tmp_" + table.replace(".", "_")
    cols = ", ".join(columns)
    cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    cur.execute(f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA")
    if isinstance(rows, pa.Table):
        # an Arrow table (the speed layer's batch as Spark handed it over): one CSV block written by
        # Arrow's C++ writer instead of a Python tuple per row (NULL = empty unquoted, strings quoted)
        buf = io.BytesIO()
        pa_csv.write_csv(rows.select(list(columns)), buf, pa_csv.WriteOptions(include_header=False))
        with cur.copy(f"COPY {tmp} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
    else:
        with cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    cur.execute(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {tmp} t"
        + (f" WHERE {where}" if where else "")
        + f" ON CONFLICT {conflict} DO NOTHING"
    )
    return cur.rowcount
