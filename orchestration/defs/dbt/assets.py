"""The dbt project as Dagster assets: every model, snapshot and source, with dbt tests as asset checks."""

import logging

import dagster as dg

# imported by name: Dagster validates the `context` annotation when the asset is defined
from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.defs.dbt.project import build_lock, ecom_dbt_project
from orchestration.resources import PostgresResource
from orchestration.translator import EcomDbtTranslator

log = logging.getLogger(__name__)


def _manifest_path():
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


class DbtBuildConfig(dg.Config):
    """Run config of the dbt build (`ecom batch --full-refresh` sets it; so does the UI's launchpad)."""

    full_refresh: bool = False


@dbt_assets(
    manifest=_manifest_path(),
    project=ecom_dbt_project(),
    dagster_dbt_translator=translator,
    name="ecom_dbt",
)
def ecom_dbt_assets(
    context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig, postgres: PostgresResource
):
    """`dbt build` of the selected models, snapshots and tests; test results stream back as asset checks."""
    args = ["build", "--full-refresh"] if config.full_refresh else ["build"]
    with build_lock(postgres):
        yield from dbt.cli(args, context=context).stream()
