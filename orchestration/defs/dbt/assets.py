"""The dbt project as Dagster assets: every model, snapshot and source, with dbt tests as asset checks."""

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import (
    AssetExecutionContext,
)  # imported by name: Dagster checks the context hint at definition time
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.defs.dbt.project import build_lock, ecom_dbt_project
from orchestration.translator import EcomDbtTranslator, layer_of

log = logging.getLogger(__name__)

# How stale each layer may get before the freshness policy warns / fails (the schedule refreshes hourly).
LAYER_FRESHNESS = {
    "marts": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=6), warn_window=dt.timedelta(hours=2)
    ),
    "serving": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=6), warn_window=dt.timedelta(hours=2)
    ),
}


class FreshEcomDbtTranslator(EcomDbtTranslator):
    """EcomDbtTranslator plus a freshness policy per layer (the 1.13 way to declare freshness)."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        policy = LAYER_FRESHNESS.get(layer_of(props) or "") if props["resource_type"] != "source" else None
        return dg.apply_freshness_policy(spec, policy) if policy else spec


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


translator = FreshEcomDbtTranslator()


class DbtBuildConfig(dg.Config):
    """Run config of the dbt build (`ecom batch --full-refresh` sets it; so does the UI's launchpad)."""

    full_refresh: bool = False


@dbt_assets(
    manifest=_manifest_path(),
    project=ecom_dbt_project(),
    dagster_dbt_translator=translator,
    name="ecom_dbt",
)
def ecom_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
    """`dbt build` of the selected models, snapshots and tests; test results stream back as asset checks."""
    args = ["build", "--full-refresh"] if config.full_refresh else ["build"]
    with build_lock():
        yield from dbt.cli(args, context=context).stream()
