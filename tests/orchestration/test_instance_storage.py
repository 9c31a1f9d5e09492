"""The platform's Dagster instance keeps a pooled Postgres connection per storage (issue 21): a run's ~420
events no longer open ~1,100 connections (dagster-postgres' NullPool outside the webserver).

Loads the instance the way every Dagster process here does (DAGSTER_HOME's dagster.yaml, written by
`ecom up`) and counts the connections Postgres is asked for while the instance reads and writes: the run
and event-log storages must reuse what they opened. With the stock storage every call opens one.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy

pytestmark = [pytest.mark.stack]

CALLS = 25


def test_the_instance_reuses_its_connections(stack):
    import dagster as dg

    from orchestration.batch import dagster_env

    for key, value in dagster_env(stack).items():
        os.environ.setdefault(key, value)
    with dg.DagsterInstance.get() as instance:
        assert instance.get_ref().storage_data.class_name == "PooledPostgresStorage"
        opened: list[str] = []
        for name, storage in (("runs", instance.run_storage), ("events", instance.event_log_storage)):
            sqlalchemy.event.listen(storage._engine, "connect", lambda *_, name=name: opened.append(name))
        for _ in range(CALLS):
            instance.get_runs(limit=1)
            instance.event_log_storage.get_event_records(
                dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1
            )
        # one connection each, opened by the first call (or none: already open from loading the instance)
        assert opened.count("runs") <= 1 and opened.count("events") <= 1, opened
