"""The platform's Dagster code location carries one blocking GX check per suite, on the right assets."""

from __future__ import annotations

import dagster as dg

from expectations.catalog import suite_assets
from orchestration.defs.quality import GATE_INPUTS, quality_checks


def test_code_location_has_a_blocking_check_per_suite(settings):
    from orchestration.definitions import DOMAINS, defs

    assert "quality" in DOMAINS
    graph = defs.resolve_asset_graph()
    expected = {
        dg.AssetCheckKey(dg.AssetKey(list(key)), f"gx_{name}")
        for name, key in suite_assets(settings.dbt.project_dir).items()
    }
    assert expected <= set(graph.asset_check_keys)
    specs = {spec.key: spec for checks_def in quality_checks for spec in checks_def.check_specs}
    assert set(specs) == expected
    assert all(spec.blocking for spec in specs.values())
    for key in (["master", "transactions"], ["marts", "fct_transactions"], ["analytics", "rfm_customers"]):
        assert any(k.asset_key == dg.AssetKey(key) for k in expected)
    assert defs.resolve_job_def("quality_checks") is not None
    gate = GATE_INPUTS.resolve_checks(graph)
    assert {k.asset_key for k in gate} == {
        dg.AssetKey(["master", "transactions"]),
        dg.AssetKey(["speed", "scored_transactions"]),
    }
