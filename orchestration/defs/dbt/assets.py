"""The dbt project as Dagster assets: every model, snapshot and source, with dbt tests as asset checks."""

import logging

import dagster as dg

# imported by name: Dagster validates the `context` annotation when the asset is defined
from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.defs.dbt.project import build_lock, ecom_dbt_project, set_check_scope
from orchestration.resources import PostgresResource
from orchestration.translator import EcomDbtTranslator

log = logging.getLogger(__name__)


def manifest_path():
    """The prepared manifest; parse once if a developer skipped the build step (never on a deployed load)."""
    project = ecom_dbt_project()
    if not project.manifest_path.exists():
        from orchestration.prepare import prepare

        log.warning(
            "dbt manifest missing at %s: running `dbt parse` (run `python -m orchestration.prepare`)",
            project.manifest_path,
        )
        prepare()
    return project.manifest_path


translator = EcomDbtTranslator()


CHECK_SCOPES = ("new", "all")


class DbtBuildConfig(dg.Config):
    """Run config of the dbt build (`ecom batch --full-refresh` sets it; so does the UI's launchpad).

    `checks`: "new" tests the growing models (master staging, the facts) on the slice this build adds,
    "all" on every row (the scheduled run); dbt_project/macros/new_slice.sql reads it as ECOM_DBT_CHECKS.
    """

    full_refresh: bool = False
    checks: str = "new"


@dbt_assets(
    manifest=manifest_path(),
    project=ecom_dbt_project(),
    dagster_dbt_translator=translator,
    name="ecom_dbt",
)
def ecom_dbt_assets(
    context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig, postgres: PostgresResource
):
    """`dbt build` of the selected models, snapshots and tests; test results stream back as asset checks."""
    if config.checks not in CHECK_SCOPES:
        raise dg.Failure(f"checks must be one of {', '.join(CHECK_SCOPES)}, not {config.checks!r}")
    args = ["build", "--full-refresh"] if config.full_refresh else ["build"]
    set_check_scope(config.checks)
    with build_lock(postgres):
        yield from dbt.cli(args, context=context).stream()
