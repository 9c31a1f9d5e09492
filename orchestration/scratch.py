"""Throwaway platform databases for the benchmark and for tests that must not touch the shared one.

A scratch database gets the same migrations as `ecom` (kernel/sql/*.sql) and dbt is pointed at it through
ECOM_PG_DB (dbt_project/profiles.yml reads the connection from the environment).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager

from kernel import db
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def with_database(settings: Settings, name: str) -> Settings:
    """The same settings, pointing at database `name`."""
    return dataclasses.replace(settings, postgres=dataclasses.replace(settings.postgres, db=name))


def create_database(
    name: str, settings: Settings | None = None, fresh: bool = False, migrate: bool = True
) -> Settings:
    """Create (or with fresh=True recreate) database `name`, apply the migrations unless migrate=False (a
    database for another system's storage, e.g. the benchmark's Dagster instance); return its settings."""
    s = settings or get_settings()
    if not _NAME.match(name) or name in (s.postgres.db, s.postgres.dagster_db, s.postgres.mlflow_db):
        raise EcomError(f"'{name}' is not a usable scratch database name; use lower-case letters, digits, _")
    with db.connect(s, db="postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    scratch = with_database(s, name)
    if migrate:
        db.migrate(scratch)
    return scratch


def drop_database(name: str, settings: Settings | None = None) -> None:
    s = settings or get_settings()
    if name in (s.postgres.db, s.postgres.dagster_db, s.postgres.mlflow_db):
        raise EcomError(f"refusing to drop the platform database '{name}'")
    with db.connect(s, db="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(name: str, settings: Settings | None = None) -> Iterator[Settings]:
    """A fresh database for the duration of the block, dropped afterwards."""
    scratch = create_database(name, settings, fresh=True)
    try:
        yield scratch
    finally:
        drop_database(name, settings)
