"""The dbt project as Dagster sees it: paths from settings, manifest prepared ahead of load."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from dagster_dbt import DbtCliResource, DbtProject

from kernel.settings import get_settings, service_env
from orchestration.resources import PostgresResource

DBT_PGOPTIONS = "-c jit=off -c work_mem=256MB -c maintenance_work_mem=256MB"


def export_dbt_env() -> None:
    """dbt reads its connection from ECOM_PG_* (profiles.yml); give child processes the settings' values.

    Values already in the environment win, so a caller (the benchmark, a test) can point dbt elsewhere.
    """
    for key, value in service_env().items():
        os.environ.setdefault(key, value)
    # Session settings for dbt's connections (libpq reads PGOPTIONS): the batch build sorts and hashes
    # millions of rows (more work_mem keeps that off disk) and Postgres' JIT, triggered by the large cost
    # estimates, spends seconds compiling each query of a build that runs every query once.
    os.environ.setdefault("PGOPTIONS", DBT_PGOPTIONS)


# Which rows the dbt tests of the growing models read: the slice a build adds, or with "all" every row
# (dbt_project/macros/new_slice.sql).
CHECK_SCOPE_ENV = "ECOM_DBT_CHECKS"


def set_check_scope(checks: str) -> None:
    """Scope of the next dbt invocation's tests ("new" or "all"), through the environment dbt inherits.

    Set for every run, so one run's scope never leaks into the next. "new" leaves the variable unset, as
    it is when the manifest is prepared: dbt records the environment variables its macros read, and a
    different value would cost a full re-parse of the project on every run (the scheduled "all" run pays
    it once)."""
    if checks == "all":
        os.environ[CHECK_SCOPE_ENV] = "all"
    else:
        os.environ.pop(CHECK_SCOPE_ENV, None)


# Key of the Postgres advisory lock held for the length of a dbt build: two builds on one database (the
# schedule, the sensor, `ecom batch`, another room's test) would otherwise race on the same relations.
BUILD_LOCK_KEY = 5_050_505


def dbt_target_db(postgres: PostgresResource) -> str:
    """The database dbt builds: the dbt profile reads it from the environment, and a caller (test,
    benchmark) may point it at another one than the resource's."""
    export_dbt_env()
    return os.environ.get("ECOM_PG_DB") or postgres.db


@contextmanager
def build_lock(postgres: PostgresResource) -> Iterator[None]:
    """Serialize dbt builds on the database dbt targets (ECOM_PG_DB as exported for dbt, see profiles.yml)."""
    with postgres.connect(autocommit=True, db=dbt_target_db(postgres)) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK_KEY,))


@lru_cache(maxsize=1)
def ecom_dbt_project() -> DbtProject:
    s = get_settings()
    return DbtProject(project_dir=s.dbt.project_dir, profiles_dir=s.dbt.profiles_dir, target=s.dbt.target)


def dbt_executable() -> str:
    """The venv's dbt, so nothing depends on the caller's PATH (the daemon's, a test's)."""
    return str(get_settings().venv_bin / "dbt")


@lru_cache(maxsize=1)
def dbt_resource() -> DbtCliResource:
    export_dbt_env()
    return DbtCliResource(project_dir=ecom_dbt_project(), dbt_executable=dbt_executable())
