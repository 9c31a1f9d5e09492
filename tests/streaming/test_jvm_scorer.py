"""The JVM scorer (streaming/jvm ForestScorer + Features) reading ml.export's artifact, against ml.model.

On simulated, enriched transactions (ml.features.history_context with chargebacks), for each variant of
ml.model: the JVM's features equal ml.features.derive_features (to a few ulps of log1p) and its scores equal
the Python Pipeline's within 1e-9. One known gap: numpy computes the forest's 2^(-E[h]/c) with a vectorised
pow (SVML on AVX-512 machines) that is 1 ulp off libm on ~5 % of inputs, while the JVM's 2^x is correctly
rounded; where such an ulp lands on a step (a quantile repeated in the blend's percentile table, or a
stacked classifier split placed exactly on a training score) the score jumps. The plain forest has no
steps: every row within 1e-9.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from events.contract import UNKNOWN_COUNTRY
from ml.export import FORMAT, export_scorer, scorer_json
from ml.features import FEATURE_COLUMNS, _n_items, derive_features, history_context
from ml.model import FraudScorer, build_pipeline, score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def enriched() -> tuple[pd.DataFrame, np.ndarray]:
    from ml.data import simulated_history

    tx, cb = simulated_history(
        seed=23, n_customers=3000, days=40, start=datetime(2026, 1, 5, tzinfo=UTC), fraud_rate=3.0
    )
    enr, _ = history_context(tx, cb)
    # every 7th row as replay writes a file without IP data: the contract's unknown country (no mismatch)
    enr.loc[enr.index[::7], "ip_country"] = UNKNOWN_COUNTRY
    labels = enr["transaction_id"].isin(cb["transaction_id"]).to_numpy(dtype=int)
    # the stream counts n_items in the JVM (streaming.transforms.n_items, the same rule as ml.features)
    return enr.assign(n_items=_n_items(enr["line_items"])).drop(columns=["line_items"]), labels


@pytest.fixture(scope="module")
def spark_rows(spark, enriched):
    enr, _ = enriched
    return spark.createDataFrame(enr.drop(columns=["event_time"]).assign(reject_reason=None))


def _jvm(spark):
    return spark._jvm.dev.ecomlambda.speed.SpeedJvm


def _jvm_scores(spark, frame, model, ids) -> np.ndarray:
    from pyspark.sql import DataFrame

    out = DataFrame(_jvm(spark).score(frame._jdf, scorer_json(model)), spark).toPandas()
    return out.set_index("transaction_id").loc[ids, "fraud_score"].to_numpy(dtype=float)


def test_jvm_features_equal_derive_features(spark, enriched, spark_rows):
    from pyspark.sql import DataFrame

    enr, _ = enriched
    out = DataFrame(_jvm(spark).withFeatures(spark_rows._jdf), spark).toPandas()
    got = out.set_index("transaction_id").loc[
        enr["transaction_id"], [f"feature_{c}" for c in FEATURE_COLUMNS]
    ]
    ref = derive_features(enr)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-15, atol=0)
    exact = [c for c in FEATURE_COLUMNS if not c.startswith("log_")]
    np.testing.assert_array_equal(got[[f"feature_{c}" for c in exact]].to_numpy(), ref[exact].to_numpy())


@pytest.mark.parametrize(
    ("variant", "min_share"),
    [("iforest", 1.0), ("blend", 0.999), ("stacked", 0.999)],
)
def test_jvm_scores_equal_the_python_model(spark, enriched, spark_rows, variant, min_share):
    enr, labels = enriched
    model = build_pipeline({"variant": variant, "n_estimators": 60, "gb_max_iter": 40}).fit(enr, labels)
    ref = score(model, enr)
    got = _jvm_scores(spark, spark_rows, model, enr["transaction_id"])
    close = np.abs(got - ref) <= 1e-9
    assert close.mean() >= min_share, (variant, int((~close).sum()))
    assert ref.std() > 0.01  # real scores, not a constant


def test_artifact_holds_the_fitted_forest_and_refuses_an_unfitted_one(enriched):
    enr, labels = enriched
    model = build_pipeline({"variant": "blend", "n_estimators": 5, "gb_max_iter": 3}).fit(enr, labels)
    art = json.loads(scorer_json(model))
    assert art["format"] == FORMAT and art["variant"] == "blend"
    assert art["feature_names"] == FEATURE_COLUMNS
    assert len(art["forest"]["trees"]) == 5 and len(art["classifier"]["trees"]) == 3
    assert len(art["forest"]["quantiles"]) == len(art["forest"]["percentiles"]) == 1001
    with pytest.raises(ValueError, match="not fitted"):
        export_scorer(FraudScorer())


def test_a_model_feature_without_its_jvm_twin_is_refused_at_load(spark, enriched, spark_rows):
    enr, labels = enriched
    model = build_pipeline({"n_estimators": 5}).fit(enr, labels)
    art = export_scorer(model)
    art["feature_names"] = [*art["feature_names"][:-1], "brand_new_feature"]
    with pytest.raises(Exception, match="brand_new_feature"):
        _jvm(spark).score(spark_rows._jdf, json.dumps(art))
