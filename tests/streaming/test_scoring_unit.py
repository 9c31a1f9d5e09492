"""The speed layer's scoring step against ml.features on a history that starts years in the past (pure;
Spark's broadcast and the Postgres loaders stubbed).

`ChampionCache._refresh_context` hands scoring the chargebacks, and `score_frame` (the mapInPandas body) adds
chargeback context and the cold-start fill: for a replayed 2019 history every row must get the context
training computes with `ml.features.history_context` over the same rows, labels and baselines. A look-back
bounded by the wall clock (the old `now() - lookback - 400 days`) gives those rows no chargebacks at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml.features import (
    customer_baselines,
    customer_context,
    derive_features,
    history_context,
    terminal_context,
)
from streaming.speed import scoring

START = datetime(2019, 2, 4, tzinfo=UTC)


@pytest.fixture(scope="module")
def old_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    from ml.data import simulated_history

    return simulated_history(seed=3, n_customers=1500, days=60, start=START, fraud_rate=3.0)


class _Spark:
    def __init__(self) -> None:
        self.sparkContext = self

    def broadcast(self, value):
        return SimpleNamespace(value=value, unpersist=lambda: None)


def _refreshed_context(monkeypatch, chargebacks: pd.DataFrame, baselines: pd.DataFrame):
    """What the driver broadcasts after a context refresh, with Postgres replaced by frames that answer
    `load_chargebacks(reported_since=...)` the way its SQL does."""
    import ml.data

    def load_chargebacks(settings=None, reported_since=None):
        if reported_since is None:
            return chargebacks
        return chargebacks[chargebacks["reported_at"] >= pd.Timestamp(reported_since)]

    monkeypatch.setattr(ml.data, "load_chargebacks", load_chargebacks)
    monkeypatch.setattr(ml.data, "load_baselines", lambda settings=None: baselines)
    cache = scoring.ChampionCache(_Spark(), settings=SimpleNamespace(mlflow=SimpleNamespace(model_name="m")))
    cache._refresh_context()
    return cache._baselines_bc.value, cache._chargebacks_bc.value


class _ContextScorer:
    """A 'model' whose score spells out the features the cold-start fill and the chargebacks feed."""

    def score_samples(self, feats: pd.DataFrame) -> np.ndarray:
        return (
            feats["term_chargebacks_7d"] * 1e6
            + feats["cust_chargebacks_30d"] * 1e4
            + feats["log_prior_tx"] * 1e2
            + feats["amount_to_median"]
            + feats["hour_share"]
            + feats["log_home_distance_km"]
        ).to_numpy()


def _champion():
    return SimpleNamespace(
        model=SimpleNamespace(
            named_steps={"features": SimpleNamespace(transform=derive_features), "scorer": _ContextScorer()}
        ),
        threshold=float("inf"),
        version="7",
        reasons=lambda rows, top=3: [[] for _ in range(len(rows))],
    )


def _as_spark_hands_it_over(enriched: pd.DataFrame) -> pd.DataFrame:
    """The columns score_frame receives from the keyed state (event_ts naive UTC, Kafka coordinates)."""
    return enriched.assign(
        event_ts=enriched["event_time"].dt.tz_convert("UTC").dt.tz_localize(None),
        kafka_topic="transactions",
        kafka_partition=0,
        kafka_offset=np.arange(len(enriched)),
        kafka_timestamp=enriched["event_time"].dt.tz_localize(None),
        raw_payload=None,
        reject_reason=None,
    ).drop(columns=["event_time"])


def test_a_replayed_history_from_years_ago_gets_trainings_context_in_the_stream(monkeypatch, old_history):
    tx, cb = old_history
    assert tx["event_time"].max() < pd.Timestamp(datetime.now(UTC)) - pd.Timedelta(days=500)
    cut = tx["event_time"].quantile(0.5)
    earlier, later = tx[tx["event_time"] < cut], tx[tx["event_time"] >= cut].reset_index(drop=True)
    _, state = history_context(earlier)
    baselines, chargebacks = _refreshed_context(monkeypatch, cb, customer_baselines(state.customers))

    # the stream: keyed state from a fresh checkpoint at the cut, then scoring with the broadcasts
    cust, _ = customer_context(later)
    with_cust = pd.concat([later, cust], axis=1)
    term, _ = terminal_context(with_cust)
    stored = scoring.score_frame(
        _as_spark_hands_it_over(pd.concat([with_cust, term], axis=1)), _champion(), baselines, chargebacks
    )

    # training's feature code over the same rows, every label and the same baselines
    offline, _ = history_context(later, cb, baselines=customer_baselines(state.customers))
    expected = _ContextScorer().score_samples(derive_features(offline))
    np.testing.assert_array_equal(stored["fraud_score"].to_numpy(), expected)
    assert (stored["transaction_id"] == later["transaction_id"]).all()
    # the figures carry both parts: rows with chargebacks from 2019, and filled returning customers
    feats = derive_features(offline)
    assert (feats["term_chargebacks_7d"] > 0).sum() > 20
    assert ((cust["cust_n_prior"] == 0) & (offline["cust_n_prior"] > 0)).sum() > 100
