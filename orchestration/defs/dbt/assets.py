"""The dbt project as Dagster assets: every model, snapshot and source, with dbt tests as asset checks."""

import logging

import dagster as dg

# imported by name: Dagster validates the `context` annotation when the asset is defined
from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.defs.dbt.changes import covered_sources, project_mark, read_marks, record_marks
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
    deps = dbt_asset_deps()
    with build_lock(postgres) as conn:
        # the sources' marks before dbt reads them: recorded only if the build succeeds (changes.py)
        marks = read_marks(conn, deps, project_mark(manifest_path(), ecom_dbt_project().project_dir))
        yield from dbt.cli(args, context=context).stream()
        covered = covered_sources(set(context.selected_asset_keys), deps)
        record_marks(conn, marks, covered)
        context.log.info(
            f"recorded the marks of {len(covered)} sources this build covered: {sorted(covered)}"
        )


def dbt_asset_deps() -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """Every dbt asset's upstream keys (dbt assets and sources), whatever subset a run executes."""
    return {key: set(ups) for key, ups in ecom_dbt_assets.asset_deps.items()}
