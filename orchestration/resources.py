"""Shared Dagster resources, built from the one settings object (kernel.settings), for every domain.

Domains import `shared_resources()` (or the single builders) instead of constructing their own: the
instances are cached so `Definitions.merge` sees the *same* object under each key (it rejects two
different objects bound to one key). Credentials never appear in code; they come from settings, which
read the environment / `.env` / the local secret under `.local/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import dagster as dg
import psycopg

from kernel.settings import Settings, get_settings


class PostgresResource(dg.ConfigurableResource):
    """The platform database (`ecom`): master dataset, speed layer, marts, analytics, quality."""

    host: str
    port: int
    user: str
    password: str
    db: str

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PostgresResource:
        pg = (settings or get_settings()).postgres
        return cls(host=pg.host, port=pg.port, user=pg.user, password=pg.password, db=pg.db)

    def dsn(self, db: str | None = None) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password} "
            f"dbname={db or self.db}"
        )

    def url(self, driver: str = "psycopg", db: str | None = None) -> str:
        """SQLAlchemy URL with an explicit driver (SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3)."""
        return f"postgresql+{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db or self.db}"

    def connect(self, autocommit: bool = False, db: str | None = None) -> psycopg.Connection:
        return psycopg.connect(self.dsn(db), autocommit=autocommit, connect_timeout=5)

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor]:
        """A cursor in one transaction: committed on success, rolled back on error."""
        with self.connect() as conn, conn.cursor() as cur:
            yield cur

    def fetch_one(self, sql: str, params: Any = None) -> tuple | None:
        with self.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()


class MlflowResource(dg.ConfigurableResource):
    """The MLflow tracking server and model registry (champion alias for the fraud detector)."""

    tracking_uri: str
    model_name: str
    champion_alias: str
    experiment: str

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> MlflowResource:
        m = (settings or get_settings()).mlflow
        return cls(
            tracking_uri=m.tracking_uri,
            model_name=m.model_name,
            champion_alias=m.champion_alias,
            experiment=m.experiment,
        )

    def client(self) -> Any:  # -> mlflow.MlflowClient (imported lazily: mlflow is slow to import)
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}@{self.champion_alias}"


@lru_cache(maxsize=1)
def postgres_resource() -> PostgresResource:
    return PostgresResource.from_settings()


@lru_cache(maxsize=1)
def mlflow_resource() -> MlflowResource:
    return MlflowResource.from_settings()


def shared_resources() -> dict[str, Any]:
    """Resource keys every domain may require: `postgres`, `mlflow` (same instances on every call)."""
    return {"postgres": postgres_resource(), "mlflow": mlflow_resource()}
