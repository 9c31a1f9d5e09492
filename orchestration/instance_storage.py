"""Dagster's instance storage in Postgres, with a connection pool in every process (issue 21).

`dagster-postgres` opens a new connection for every storage call (SQLAlchemy `NullPool`, so that processes
never accumulate idle connections) except in the webserver, which calls `optimize_for_webserver` to keep one
pooled connection per storage. A batch run stores ~420 events for 26 assets and 111 checks, and with the
reads around them that was ~1,100 connections at ~7.7 ms each (scram authentication and a backend start) in
every run, whatever it built (docs/batch.md). `PooledPostgresStorage` is `dagster_postgres`'s own storage
with that same call made when it is built, in every process that loads the instance (`ecom batch`, the
daemon, the run workers it launches): one connection per storage kept open (`pool_size` 1, more while
threads need them, closed again when returned), recycled after `POOL_RECYCLE_S`. No statement timeout: a run
may wait on a long query the webserver would give up on. dagster.yaml selects it (stack/services.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# a pooled connection older than this is closed and opened anew at its next checkout
POOL_RECYCLE_S = 3600
# connections beyond the one kept, while several threads use a storage at once (closed when returned)
MAX_OVERFLOW = 10


class PooledPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` keeping one pooled connection per storage (run, event log, schedule)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver(
                statement_timeout=0, pool_recycle=POOL_RECYCLE_S, max_overflow=MAX_OVERFLOW
            )

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
