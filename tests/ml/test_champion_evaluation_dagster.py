"""The Dagster asset `ml/fraud_champion_evaluation` for real: after `ml/fraud_champion` moved the alias, the new
champion's `ecom evaluate` report (offline over master.*, and the stream's stored scores) becomes asset
metadata and `evaluation.*` metrics on the version's MLflow run (MLflow server, Postgres, Dagster)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.assess import evaluate_period
from ml.evaluate import evaluation_report
from orchestration.defs.ml.assets import CHALLENGER, fraud_champion, fraud_champion_evaluation
from orchestration.resources import resources_from_settings
from tests.ml.test_evaluate_stack import _expected, _store, landed  # noqa: F401  (landed: a fixture)

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_each_new_champion_gets_its_evaluation_report_in_dagster_and_mlflow(stack, landed):  # noqa: F811
    name, result, tx, cb, period = landed
    champ, rows, scored = _expected(stack, name, tx, cb, period)
    # the stream stored other scores than the model's for the period (a skewed speed layer): the stored
    # side must be judged on what was stored, not recomputed
    stored = np.random.default_rng(3).permutation(scored["score"].to_numpy())
    _store(stack, rows, stored, result.version, champ.threshold)

    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(CHALLENGER, metadata={"model_version": result.version, "model_name": name})
    )
    run = dg.materialize(
        [fraud_champion, fraud_champion_evaluation],
        resources=resources_from_settings(stack),
        instance=instance,
        run_config={
            "ops": {
                "ml__fraud_champion": {"config": {"model_name": name}},
                "ml__fraud_champion_evaluation": {
                    "config": {
                        "model_name": name,
                        "start": period.start.isoformat(),
                        "end": period.end.isoformat(),
                    }
                },
            }
        },
    )
    assert run.success
    assert registry.champion_version(stack, name) == result.version
    md = {
        k: v.value
        for k, v in run.asset_materializations_for_node("ml__fraud_champion_evaluation")[0].metadata.items()
    }
    assert md["model_version"] == result.version and md["stored_rows"] == len(rows)

    k = max(1, int(round(result.alerts_per_day)))
    offline = evaluation_report(scored, champ.threshold, k)
    as_stored = evaluation_report(scored.assign(score=stored), champ.threshold, k)
    assert offline["frauds"] > 5 and as_stored["roc_auc"] < offline["roc_auc"] - 0.1
    metrics = registry.client(stack).get_run(result.run_id).data.metrics
    for side, expected in (("offline", offline), ("stored", as_stored)):
        for key in ("roc_auc", "average_precision", "card_precision_at_k", "deployed_recall", "deployed_fpr"):
            name_ = f"evaluation.{side}.{key}"
            assert md[name_] == pytest.approx(expected[key], rel=1e-12), name_
            assert metrics[name_] == pytest.approx(expected[key], rel=1e-12), name_
    assert md["report"]["offline"]["rows"] == len(rows)

    # the same report as `ecom evaluate --stored` prints for the period
    report = evaluate_period(
        "master", period, model=result.version, stored=True, settings=stack, model_name=name, progress=False
    )
    assert report["offline"]["roc_auc"] == pytest.approx(md["evaluation.offline.roc_auc"], rel=1e-12)
    assert report["stored"]["roc_auc"] == pytest.approx(md["evaluation.stored.roc_auc"], rel=1e-12)


def test_the_default_period_ends_one_label_delay_before_the_latest_transaction():
    from ml.assess import labelled_period

    first, latest = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-03-01 12:00", tz="UTC")
    p = labelled_period(first, latest, days=7, label_delay_days=14)
    assert (p.start, p.end) == (latest - pd.Timedelta(days=21), latest - pd.Timedelta(days=14))
    # a history shorter than the delay: its last days, never before its first event
    short = labelled_period(latest - pd.Timedelta(days=10), latest, days=7, label_delay_days=14)
    assert short.end > latest and short.start == short.end - pd.Timedelta(days=7)
    tiny = labelled_period(latest - pd.Timedelta(days=2), latest, days=7, label_delay_days=14)
    assert tiny.start == latest - pd.Timedelta(days=2)
