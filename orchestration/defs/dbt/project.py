"""The dbt project as Dagster sees it: paths from settings, manifest prepared ahead of load."""

from __future__ import annotations

import os
from functools import lru_cache

from dagster_dbt import DbtCliResource, DbtProject

from ecom.settings import get_settings, service_env


def export_dbt_env() -> None:
    """dbt reads its connection from ECOM_PG_* (profiles.yml); give child processes the settings' values.

    Values already in the environment win, so a caller (the benchmark, a test) can point dbt elsewhere.
    """
    for key, value in service_env().items():
        os.environ.setdefault(key, value)


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
