"""The dbt project as Dagster sees it: paths from settings, manifest prepared ahead of load."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property, lru_cache
from importlib.metadata import version as installed_version

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

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
def build_lock(postgres: PostgresResource) -> Iterator:
    """Serialize dbt builds on the database dbt targets (ECOM_PG_DB as exported for dbt, see profiles.yml).

    Yields the (autocommit) connection holding the lock, to that database."""
    with postgres.connect(autocommit=True, db=dbt_target_db(postgres)) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK_KEY,))


@lru_cache(maxsize=1)
def ecom_dbt_project() -> DbtProject:
    s = get_settings()
    return DbtProject(project_dir=s.dbt.project_dir, profiles_dir=s.dbt.profiles_dir, target=s.dbt.target)


def dbt_executable() -> str:
    """The venv's dbt, so nothing depends on the caller's PATH (the daemon's, a test's)."""
    return str(get_settings().venv_bin / "dbt")


class EcomDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two costs it pays before every dbt command, whatever the command.

    Stock, `cli()` first runs `dbt --version` in a subprocess (a full dbt import: ~3 s here) to tell dbt
    Core from the Fusion engine, then opens an in-process dbt adapter, loading every macro (~3 s), whose
    only use is `fetch_row_counts()` / `fetch_column_metadata()` on the event stream. Our executable is
    the venv's dbt (`dbt_executable()`), i.e. the dbt-core installed beside dagster-dbt, so its version is
    that package's; and no asset here fetches row counts or column metadata through dagster-dbt (the
    ingest room observes the tables itself), so there is no adapter to open: dagster-dbt treats a missing
    adapter as "no such metadata" (`dbt_event_iterator`). Measured: ~6 s of a ~19 s `batch_refresh`
    increment (bench/batch.py; docs/batch.md). tests/orchestration/test_resources.py checks the version
    against `dbt --version` and that the overridden members still exist in the pinned dagster-dbt.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 (dagster-dbt's signature)
        return None


@lru_cache(maxsize=1)
def dbt_resource() -> DbtCliResource:
    export_dbt_env()
    return EcomDbtCliResource(project_dir=ecom_dbt_project(), dbt_executable=dbt_executable())
