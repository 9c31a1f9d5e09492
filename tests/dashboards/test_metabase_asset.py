"""The Dagster asset ["metabase","dashboards"]: lineage from the specs; materializing it on the double."""

from __future__ import annotations

import dagster as dg
from metabase_double import ADMIN, ADMIN_PASSWORD

from kernel.settings import get_settings
from orchestration.defs.metabase import (
    METABASE_DASHBOARDS,
    MetabaseResource,
    metabase_dashboards,
    upstream_keys,
)
from orchestration.resources import resources_from_settings


def _resources(metabase: MetabaseResource) -> dict:
    """The asset also needs the platform database (Metabase is told how to read it)."""
    return {"metabase": metabase, "postgres": resources_from_settings(get_settings())["postgres"]}


def test_upstream_keys_come_from_the_spec_sql(specs):
    keys = {k.to_user_string() for k in upstream_keys(specs)}
    sql = "\n".join(c.sql for s in specs for c in s.cards)
    for key in keys:
        assert key.replace("/", ".") in sql
    # the serving layer and the analytics outputs feed the dashboards
    assert {"serving/transactions", "serving/fraud_alerts", "analytics/rfm_segments"} <= keys


def test_asset_is_in_the_code_location_downstream_of_serving():
    from orchestration.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    parents = graph.get(METABASE_DASHBOARDS).parent_keys
    assert dg.AssetKey(["serving", "transactions"]) in parents
    assert dg.AssetKey(["marts", "fct_order_lines"]) in parents
    # every table a dashboard reads is a real asset of some domain (materialized or observed), not a stub
    stubs = [
        k.to_user_string()
        for k in parents
        if not (graph.get(k).is_materializable or graph.get(k).is_observable)
    ]
    assert stubs == []


def test_materialize_provisions_and_is_idempotent(double):
    resource = MetabaseResource(url=double.url, user=ADMIN, password=ADMIN_PASSWORD)
    first = dg.materialize([metabase_dashboards], resources=_resources(resource))
    assert first.success
    meta = first.asset_materializations_for_node(metabase_dashboards.op.name)[0].metadata
    assert meta["changed_objects"].value > 0
    assert len(double.state.dashboards) == 5
    mark = len(double.state.log)
    second = dg.materialize([metabase_dashboards], resources=_resources(resource))
    meta = second.asset_materializations_for_node(metabase_dashboards.op.name)[0].metadata
    assert meta["changed_objects"].value == 1  # only the requested schema sync (config sync=True)
    assert [(w.method, w.path.split("/")[-1]) for w in double.state.writes(mark)] == [("POST", "sync_schema")]


def test_materialize_fails_with_the_one_line_reason(double):
    resource = MetabaseResource(url=double.url, user="", password="")
    result = dg.materialize([metabase_dashboards], resources=_resources(resource), raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node(metabase_dashboards.op.name)
    assert "not set up yet" in failure.error.message or "not set up yet" in str(failure.user_failure_data)
