"""How dbt resources become Dagster assets: keys [<schema>, <relation>], groups by layer, owners, freshness.

Keys follow the platform convention (docs/batch.md): a model is [<schema>, <alias>] e.g.
["marts", "fct_transactions"], ["serving", "transactions"]; a source is [<source schema>, <table>] e.g.
["master", "transactions"], so dbt's lineage joins the ingest domain's assets (Kafka, master, speed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

LAYER_GROUPS = {"staging", "intermediate", "marts", "serving", "snapshots"}
# How stale each layer may get before its freshness policy warns / fails (the schedule refreshes hourly).
LAYER_FRESHNESS = {
    layer: dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6), warn_window=timedelta(hours=2))
    for layer in ("marts", "serving")
}
OWNERS = {
    "staging": ["team:batch-layer"],
    "intermediate": ["team:batch-layer"],
    "marts": ["team:batch-layer"],
    "snapshots": ["team:batch-layer"],
    "serving": ["team:serving"],
}


def asset_key_for(props: Mapping[str, Any]) -> dg.AssetKey:
    """[<schema>, <relation name>] for models/snapshots, [<source schema>, <table>] for sources."""
    if props["resource_type"] == "source":
        return dg.AssetKey([props["schema"], props.get("identifier") or props["name"]])
    return dg.AssetKey([props["schema"], props.get("alias") or props["name"]])


def layer_of(props: Mapping[str, Any]) -> str | None:
    """The layer a dbt node belongs to: its schema for models, 'snapshots' for snapshots."""
    if props["resource_type"] == "snapshot":
        return "snapshots"
    schema = props.get("schema")
    return schema if schema in LAYER_GROUPS else None


class EcomDbtTranslator(DagsterDbtTranslator):
    """Asset keys, groups, descriptions and owners for the ecom dbt project."""

    def __init__(self) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        """The default spec plus the layer's freshness policy (the 1.13 way to declare freshness)."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        policy = LAYER_FRESHNESS.get(layer_of(props) or "") if props["resource_type"] != "source" else None
        return dg.apply_freshness_policy(spec, policy) if policy else spec

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return asset_key_for(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "landing"
        return layer_of(dbt_resource_props) or "dbt"

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        description = (dbt_resource_props.get("description") or "").strip()
        kind = dbt_resource_props["resource_type"]
        materialized = dbt_resource_props.get("config", {}).get("materialized")
        where = f"dbt {kind} `{dbt_resource_props['name']}`" + (f" ({materialized})" if materialized else "")
        return f"{description}\n\n{where}" if description else where

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        return OWNERS.get(layer_of(dbt_resource_props) or "", ["team:batch-layer"])

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        layer = layer_of(dbt_resource_props)
        if layer:
            tags["layer"] = layer
        return tags
