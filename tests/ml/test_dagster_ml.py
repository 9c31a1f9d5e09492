"""The Dagster ml domain for real: challenger -> blocking gate check -> champion alias, on the MLflow server."""

from __future__ import annotations

import dagster as dg
import pytest

from ml import registry
from orchestration.defs.ml.assets import (
    CHALLENGER,
    CHAMPION,
    GATE_CHECK,
    METRICS_CHECK,
    fraud_challenger,
    fraud_champion,
)
from orchestration.resources import resources_from_settings
from tests.ml.conftest import SIM_START, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_definitions_hold_the_ml_assets_and_lineage():
    from orchestration.definitions import build_definitions

    graph = build_definitions(["ml"]).resolve_asset_graph()
    assert graph.get(CHALLENGER).parent_keys == {
        dg.AssetKey(["marts", "fct_transactions"]),
        dg.AssetKey(["master", "chargebacks"]),
    }
    assert graph.get(CHAMPION).parent_keys == {CHALLENGER}


def test_retrain_promotes_then_the_blocking_gate_stops_an_equal_challenger(stack):
    name = unique("mltest_dagster")
    run_config = {
        "ops": {
            "ml__fraud_challenger": {
                "config": {
                    "source": "simulator",
                    "sim_customers": 4000,
                    "sim_days": 60,
                    "sim_seed": 5,
                    # a pinned start: both runs see the very same simulated history
                    "sim_start": SIM_START.date().isoformat(),
                    "quick": True,
                    "model_name": name,
                }
            },
            "ml__fraud_champion": {"config": {"model_name": name}},
        }
    }
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize(
        [fraud_challenger, fraud_champion],
        resources=resources_from_settings(stack),
        run_config=run_config,
        instance=instance,
    )
    assert first.success
    checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
    assert checks[GATE_CHECK].passed and checks[METRICS_CHECK].passed
    version = first.asset_materializations_for_node("ml__fraud_challenger")[0].metadata["model_version"].value
    assert registry.champion_version(stack, name) == str(version)

    # same data, same seed: an identical model does not *beat* the champion -> blocked before promotion
    second = dg.materialize(
        [fraud_challenger, fraud_champion],
        resources=resources_from_settings(stack),
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
    )
    gate = {e.check_name: e for e in second.get_asset_check_evaluations()}[GATE_CHECK]
    assert not gate.passed
    assert "not better" in gate.metadata["reason"].value
    promoted = [m for m in second.get_asset_materialization_events() if m.asset_key == CHAMPION]
    assert promoted == []
    assert registry.champion_version(stack, name) == str(version)
