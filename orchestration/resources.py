"""The services Dagster's assets reach, as `ConfigurableResource`s built from kernel.settings in one place.

`resources_from_settings(settings)` builds them (Postgres, MLflow, Kafka, Metabase); `definitions.py` binds
them once for every domain. Asset, check and observation bodies take them as parameters and never read the
settings themselves, so a test hands them other ones (a scratch schema, an unreachable MLflow) and the
Dagster UI shows what each asset reaches. Secrets (the Postgres password, Metabase's password and API key)
are `dg.EnvVar`s: the UI and the run config show the variable's name, its value is read in the run's process.

Room code (ml, expectations, dashboards) takes a whole `Settings`: `settings_for(postgres, mlflow, ...)` is
the process settings with these resources' values in place (use it on the resources a run hands over: a
resource built but not initialized holds a secret's variable name, not its value). Postgres is opened in
one place: `PostgresResource.connect` delegates to kernel.db.connect.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Protocol

import dagster as dg
import psycopg

from kernel import db as kernel_db
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings

# the variables that hold the secrets (the names kernel.settings and service_env use for them)
PG_PASSWORD_ENV = "ECOM_PG_PASSWORD"
METABASE_PASSWORD_ENV = "METABASE_PASSWORD"
METABASE_API_KEY_ENV = "METABASE_API_KEY"


class SettingsOverlay(Protocol):
    def apply(self, settings: Settings) -> Settings: ...


def settings_for(*resources: SettingsOverlay) -> Settings:
    """The process settings (paths, tuning) with the given resources' connection values in place."""
    s = get_settings()
    for resource in resources:
        s = resource.apply(s)
    return s


class PostgresResource(dg.ConfigurableResource):
    """The platform database (`ecom`): master dataset, speed layer, marts, analytics, quality."""

    host: str
    port: int
    user: str
    password: str  # a dg.EnvVar (ECOM_PG_PASSWORD)
    db: str

    def apply(self, settings: Settings) -> Settings:
        pg = dataclasses.replace(
            settings.postgres,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            db=self.db,
        )
        return dataclasses.replace(settings, postgres=pg)

    def connect(self, autocommit: bool = False, db: str | None = None) -> psycopg.Connection:
        """A connection to this database (or `db` on the same server), through kernel.db.connect."""
        return kernel_db.connect(settings_for(self), db=db, autocommit=autocommit)

    def fetch_one(self, sql: str, params: Any = None) -> tuple | None:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchone()


class MlflowResource(dg.ConfigurableResource):
    """The MLflow tracking server and model registry (champion alias of the fraud detector)."""

    tracking_uri: str
    model_name: str
    champion_alias: str
    experiment: str

    def apply(self, settings: Settings) -> Settings:
        m = dataclasses.replace(
            settings.mlflow,
            tracking_uri=self.tracking_uri,
            model_name=self.model_name,
            champion_alias=self.champion_alias,
            experiment=self.experiment,
        )
        return dataclasses.replace(settings, mlflow=m)


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster and the platform's topics."""

    bootstrap_servers: str
    topic_transactions: str
    topic_labels: str
    topic_dead_letter: str

    def end_offsets(self, topics: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Per topic: (sum of its partitions' end offsets = messages ever produced, partitions)."""
        from kernel.kafka import end_offsets  # imported when an observation runs

        ends = end_offsets(self.bootstrap_servers, list(topics), timeout=15)
        return {topic: (sum(ends[topic].values()), len(ends[topic])) for topic in topics}


class MetabaseResource(dg.ConfigurableResource):
    """Where Metabase is and how to sign in (an API key, or a user and password)."""

    url: str
    user: str = ""
    password: str = ""  # a dg.EnvVar (METABASE_PASSWORD) when set
    api_key: str = ""  # a dg.EnvVar (METABASE_API_KEY) when set

    def apply(self, settings: Settings) -> Settings:
        mb = dataclasses.replace(
            settings.metabase, url=self.url, user=self.user, password=self.password, api_key=self.api_key
        )
        return dataclasses.replace(settings, metabase=mb)


def secret(env_name: str, value: str) -> str:
    """Config for a secret, given as `dg.EnvVar(env_name)` so that no UI or run config shows the value.

    Settings may have read the value from `.env` or the local secret file (the Postgres password): it is
    put in this process's environment, where Dagster resolves it when a run starts (run workers inherit
    it; `service_env` hands it to the services). An empty secret stays empty: there is nothing to hide.
    """
    if not value:
        return ""
    if os.environ.setdefault(env_name, value) != value:
        raise EcomError(
            f"{env_name} in the environment differs from the value the settings were loaded with; "
            "unset it or reload the settings (get_settings.cache_clear())"
        )
    return dg.EnvVar(env_name)


def resources_from_settings(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every settings-derived resource the domains require, by resource key."""
    pg, m, k, mb = settings.postgres, settings.mlflow, settings.kafka, settings.metabase
    return {
        "postgres": PostgresResource(
            host=pg.host, port=pg.port, user=pg.user, password=secret(PG_PASSWORD_ENV, pg.password), db=pg.db
        ),
        "mlflow": MlflowResource(
            tracking_uri=m.tracking_uri,
            model_name=m.model_name,
            champion_alias=m.champion_alias,
            experiment=m.experiment,
        ),
        "kafka": KafkaResource(
            bootstrap_servers=k.bootstrap_servers,
            topic_transactions=k.topic_transactions,
            topic_labels=k.topic_labels,
            topic_dead_letter=k.topic_dead_letter,
        ),
        "metabase": MetabaseResource(
            url=mb.url,
            user=mb.user,
            password=secret(METABASE_PASSWORD_ENV, mb.password),
            api_key=secret(METABASE_API_KEY_ENV, mb.api_key),
        ),
    }
