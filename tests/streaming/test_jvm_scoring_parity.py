"""The JVM engine's scoring step (SpeedJvm.scoreInContext) against the Python one (scoring.score_frame, the
reference) on the same rows, baselines and chargebacks.

A 2019 history, the stream's keyed state fresh at its middle (so thousands of rows belong to customers the
state barely knows and take their habits from the baselines of the first half), every chargeback: the JVM
must give every row the chargeback counts of ml.features.chargeback_context, the customer context of
ml.features.fill_from_baselines, the Python model's score within 1e-9, the same alert flag at the deployed
threshold and, for every alert, ml.explain's reasons (features, values, baselines, sentences, strengths).
Rejected rows pass through. What the JVM's task sink stores of these rows: tests/streaming/test_jvm_sink.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from ml.features import (
    CUSTOMER_CONTEXT_COLUMNS,
    _n_items,
    chargeback_context,
    customer_baselines,
    customer_context,
    fill_from_baselines,
    history_context,
    terminal_context,
)
from streaming.speed import scoring
from tests.streaming.support import ULP_TOLERANCE, ulps

pytestmark = pytest.mark.slow

START = datetime(2019, 2, 4, tzinfo=UTC)


@pytest.fixture(scope="module")
def case():
    from ml.data import simulated_history
    from ml.model import build_pipeline, score
    from ml.registry import Champion

    tx, cb = simulated_history(seed=5, n_customers=1200, days=50, start=START, fraud_rate=3.0)
    tx = tx.assign(n_items=_n_items(tx["line_items"]).astype(float)).drop(columns=["line_items"])
    cut = tx["event_time"].quantile(0.5)
    earlier, later = tx[tx["event_time"] < cut], tx[tx["event_time"] >= cut].reset_index(drop=True)
    _, state = history_context(earlier)
    baselines = customer_baselines(state.customers)
    # the stream's keyed state from a fresh checkpoint at the cut
    cust, _ = customer_context(later)
    with_cust = pd.concat([later, cust], axis=1)
    term, _ = terminal_context(with_cust)
    stream_rows = pd.concat([with_cust, term], axis=1)
    # a real champion, fitted on the offline context of the whole history
    offline, _ = history_context(tx, cb)
    labels = offline["transaction_id"].isin(cb["transaction_id"]).to_numpy(dtype=int)
    model = build_pipeline({"variant": "iforest", "n_estimators": 60}).fit(offline, labels)
    threshold = float(np.quantile(score(model, offline), 0.97))
    champion = Champion(model=model, version="3", threshold=threshold, feature_columns=[])
    return stream_rows, baselines, cb, champion


def _as_spark_hands_it_over(rows: pd.DataFrame) -> pd.DataFrame:
    """What the scoring step receives from the keyed state: event_ts naive UTC, Kafka coordinates, plus
    three rejected rows (no columns but the envelope)."""
    good = rows.assign(
        event_ts=rows["event_time"].dt.tz_convert("UTC").dt.tz_localize(None),
        kafka_topic="transactions",
        kafka_partition=0,
        kafka_offset=np.arange(len(rows)),
        kafka_timestamp=rows["event_time"].dt.tz_convert("UTC").dt.tz_localize(None),
        raw_payload=None,
        reject_reason=None,
    ).drop(columns=["event_time"])
    bad = pd.DataFrame(
        {
            "kafka_topic": "transactions",
            "kafka_partition": 1,
            "kafka_offset": [7, 8, 9],
            "kafka_timestamp": good["kafka_timestamp"].iloc[:3].to_numpy(),
            "raw_payload": [b"{not json", b"\xff", b"{}"],
            "reject_reason": ["not JSON", "invalid UTF-8", "missing field: amount"],
        }
    )
    return pd.concat([good, bad], ignore_index=True)


def test_jvm_scoring_equals_the_python_scoring_step(spark, case):
    from types import SimpleNamespace

    stream_rows, baselines, cb, champion = case
    frame = _as_spark_hands_it_over(stream_rows)
    expected = scoring.score_frame(frame, champion, baselines, cb).set_index("transaction_id", drop=False)

    # the driver's JVM broadcasts, built by the ChampionCache from what it holds
    sc = spark.sparkContext
    cache = scoring.ChampionCache(spark, settings=SimpleNamespace(mlflow=SimpleNamespace(model_name="m")))
    cache._version, cache._champion_bc = champion.version, sc.broadcast(champion)
    cache._baselines_bc, cache._chargebacks_bc = sc.broadcast(baselines), sc.broadcast(cb)
    scorer_bc, context_bc = cache.jvm()
    assert cache.jvm() == (scorer_bc, context_bc)  # nothing changed: the same broadcasts
    jvm_in = spark.createDataFrame(frame.drop(columns=["line_items"], errors="ignore"))
    scored = scoring.score_in_jvm(jvm_in, scorer_bc, context_bc).toArrow()

    # the context the JVM computed: chargebacks and the cold-start fill, exactly the Python functions'
    ctx = scored.to_pandas().dropna(subset=["transaction_id"]).set_index("transaction_id")
    tx = stream_rows.set_index("transaction_id", drop=False)
    ref = fill_from_baselines(pd.concat([tx, chargeback_context(tx, cb)], axis=1), baselines)
    ref, got = ref.loc[ctx.index], ctx
    for c in [*CUSTOMER_CONTEXT_COLUMNS, "term_chargebacks_7d", "cust_chargebacks_30d"]:
        a, b = got[c].to_numpy(dtype=float), ref[c].to_numpy(dtype=float)
        if c == "cust_home_distance_km":  # libm against the JVM's correctly rounded sin/cos/asin
            diff = ulps(a, b)
            assert diff.max() <= ULP_TOLERANCE and (diff > 0).mean() < 0.01, c
        else:
            np.testing.assert_array_equal(a, b, err_msg=c)
    assert (ref["term_chargebacks_7d"] > 0).sum() > 20
    filled = (stream_rows["cust_n_prior"] < 5) & (
        ref["cust_n_prior"].to_numpy() > stream_rows["cust_n_prior"]
    )
    assert filled.sum() > 100

    # the scored rows: score within 1e-9, the alert flag and ml.explain's reasons as score_frame gives them
    got = scored.to_pandas().dropna(subset=["transaction_id"]).set_index("transaction_id", drop=False)
    exp = expected[expected["reject_reason"].isna()].loc[got.index]
    assert len(got) == len(stream_rows)
    np.testing.assert_allclose(got["fraud_score"], exp["fraud_score"], rtol=0, atol=1e-9)
    assert (got["is_alert"].to_numpy() == exp["is_alert"].to_numpy()).all()
    assert 0 < got["is_alert"].sum() < len(got)
    assert_same_reasons(got["reasons"], exp["reasons"])
    assert got["reasons"].notna().sum() == got["is_alert"].sum()
    texts = {r["text"].split(" ")[0] for v in got["reasons"].dropna() for r in json.loads(v)}
    assert len(texts) >= 5  # several rules spoke, not one
    rejected = scored.to_pandas()
    rejected = rejected[rejected["reject_reason"].notna()]
    assert sorted(rejected["kafka_offset"]) == [7, 8, 9]
    assert rejected["raw_payload"].tolist() == [b"{not json", b"\xff", b"{}"]
    assert rejected["fraud_score"].isna().all()


def assert_same_reasons(got: pd.Series, expected: pd.Series) -> None:
    """The same reasons per row: the same rules in the same order with the same sentences, values and
    baselines equal to 1e-9 (both round to 4 decimals), strengths to 1e-3 (rounded to 3)."""
    for tx, a, b in zip(got.index, got, expected, strict=True):
        if b is None or (isinstance(b, float) and np.isnan(b)):
            assert a is None or (isinstance(a, float) and np.isnan(a)), tx
            continue
        ra, rb = json.loads(a), json.loads(b)
        assert [r["feature"] for r in ra] == [r["feature"] for r in rb], tx
        assert [r["text"] for r in ra] == [r["text"] for r in rb], tx
        for x, y in zip(ra, rb, strict=True):
            for k in ("value", "baseline"):
                assert (x[k] is None) == (y[k] is None), (tx, k)
                if x[k] is not None:
                    assert abs(x[k] - y[k]) <= 1e-9, (tx, k, x[k], y[k])
            assert abs(x["strength"] - y["strength"]) <= 1e-3 + 1e-12, (tx, x, y)


def test_without_baselines_or_chargebacks_the_jvm_scores_as_python_does(spark, case):
    """A first start: no marts.customer_baselines yet, no chargeback landed (load_baselines -> None)."""
    from types import SimpleNamespace

    stream_rows, _, _, champion = case
    frame = _as_spark_hands_it_over(stream_rows.head(300))
    empty_cb = pd.DataFrame(columns=["transaction_id", "customer_id", "terminal_id", "reported_at"])
    expected = scoring.score_frame(frame, champion, None, empty_cb)
    cb_table, base_table = scoring.jvm_context_tables(empty_cb, None)
    assert cb_table.num_rows == base_table.num_rows == 0
    sc = spark.sparkContext
    cache = scoring.ChampionCache(spark, settings=SimpleNamespace(mlflow=SimpleNamespace(model_name="m")))
    cache._version, cache._champion_bc = champion.version, sc.broadcast(champion)
    cache._baselines_bc, cache._chargebacks_bc = sc.broadcast(None), sc.broadcast(empty_cb)
    scored = scoring.score_in_jvm(spark.createDataFrame(frame), *cache.jvm()).toPandas()
    got = scored.dropna(subset=["transaction_id"]).set_index("transaction_id")
    exp = expected.dropna(subset=["transaction_id"]).set_index("transaction_id").loc[got.index]
    np.testing.assert_allclose(got["fraud_score"], exp["fraud_score"], rtol=0, atol=1e-9)
    assert (got["is_alert"].to_numpy() == exp["is_alert"].to_numpy()).all()
    assert_same_reasons(got["reasons"], exp["reasons"])


def test_every_reason_rule_has_its_jvm_twin(spark):
    """A rule added to ml.explain without its twin in streaming/jvm Explain.java fails here."""
    from ml.explain import RULES

    jvm = spark._jvm.dev.ecomlambda.speed.Explain
    assert list(jvm.ruleFeatures()) == [r.feature for r in RULES]
    assert [(r.group, r.high_is_suspicious, r.scale, r.neutral, r.weight) for r in RULES] == [
        tuple(x) for x in json.loads(jvm.ruleParameters())
    ]
