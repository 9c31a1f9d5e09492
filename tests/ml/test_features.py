"""The feature code: no row sees a later row or a label not yet reported; batch == incremental."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import (
    CONTEXT_COLUMNS,
    FEATURE_COLUMNS,
    HistoryState,
    chargeback_context,
    customer_context,
    derive_features,
    history_context,
    terminal_context,
)


def _ctx(tx: pd.DataFrame, cb: pd.DataFrame | None) -> pd.DataFrame:
    enriched, _ = history_context(tx, cb)
    return enriched.set_index("transaction_id")[CONTEXT_COLUMNS]


def test_context_ignores_everything_after_the_transaction(small_history):
    tx, cb = small_history
    full = _ctx(tx, cb)
    cut = tx["event_time"].quantile(0.6)
    before = tx[tx["event_time"] < cut]
    # 1) the future deleted (rows and labels reported after the cut)
    only_past = _ctx(before, cb[cb["reported_at"] < cut])
    pd.testing.assert_frame_equal(only_past, full.loc[only_past.index])
    # 2) the future rewritten: later rows get other amounts, devices, places, terminals; later labels change
    rng = np.random.default_rng(0)
    future = tx[tx["event_time"] >= cut].copy()
    future["amount"] = rng.permutation(future["amount"].to_numpy()) * 7
    future["device_id"] = rng.permutation(future["device_id"].to_numpy())
    future["ip_lat"] = -future["ip_lat"]
    future["terminal_id"] = rng.permutation(future["terminal_id"].to_numpy())
    fake_cb = pd.DataFrame(
        {
            "transaction_id": before["transaction_id"].head(50).to_numpy(),
            "customer_id": before["customer_id"].head(50).to_numpy(),
            "terminal_id": before["terminal_id"].head(50).to_numpy(),
            "reported_at": cut + pd.Timedelta(minutes=1),  # reported after the cut: unknown before it
            "fraud_scenario": "planted",
        }
    )
    rewritten = _ctx(pd.concat([before, future]), pd.concat([cb[cb["reported_at"] < cut], fake_cb]))
    pd.testing.assert_frame_equal(rewritten.loc[only_past.index], only_past)
    assert len(only_past) > 1000


def test_chargeback_counts_only_once_reported(small_history):
    tx, _ = small_history
    row = tx.iloc[len(tx) // 2]
    t = row["event_time"]
    same_terminal = tx[(tx["terminal_id"] == row["terminal_id"]) & (tx["event_time"] < t)].head(3)
    assert len(same_terminal) >= 1
    cb = pd.DataFrame(
        {
            "transaction_id": same_terminal["transaction_id"],
            "customer_id": same_terminal["customer_id"],
            "terminal_id": same_terminal["terminal_id"],
            # fraud happened before t, but the first label is only reported after t
            "reported_at": [t + pd.Timedelta(seconds=1)]
            + [t - pd.Timedelta(days=1)] * (len(same_terminal) - 1),
            "fraud_scenario": "planted",
        }
    )
    ctx = _ctx(tx, cb)
    assert ctx.loc[row["transaction_id"], "term_chargebacks_7d"] == len(same_terminal) - 1


def test_batch_and_incremental_context_are_identical(small_history):
    tx, cb = small_history
    batch = _ctx(tx, cb)
    # micro-batches of uneven sizes, the state serialised between them (as a stream checkpoint would)
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(np.arange(1, len(tx)), size=12, replace=False))
    state, parts = HistoryState(), []
    for chunk in np.split(np.arange(len(tx)), cuts):
        part = tx.iloc[chunk].sample(frac=1.0, random_state=1)  # arrival order inside a batch is irrelevant
        enriched, state = history_context(part, cb, HistoryState.from_json(state.to_json()))
        parts.append(enriched.set_index("transaction_id")[CONTEXT_COLUMNS])
    incremental = pd.concat(parts).loc[batch.index]
    pd.testing.assert_frame_equal(incremental, batch)
    np.testing.assert_array_equal(
        derive_features(
            pd.concat([tx.set_index("transaction_id"), incremental], axis=1).reset_index()
        ).to_numpy(),
        derive_features(pd.concat([tx.set_index("transaction_id"), batch], axis=1).reset_index()).to_numpy(),
    )


def test_context_does_not_depend_on_input_order(small_history):
    tx, cb = small_history
    shuffled = tx.sample(frac=1.0, random_state=5)
    pd.testing.assert_frame_equal(_ctx(shuffled, cb).loc[_ctx(tx, cb).index], _ctx(tx, cb))


def test_derive_features_is_complete_and_finite(small_history):
    tx, cb = small_history
    enriched, _ = history_context(tx, cb)
    feats = derive_features(enriched)
    assert list(feats.columns) == FEATURE_COLUMNS
    assert np.isfinite(feats.to_numpy()).all()
    # history matters: a customer's later purchases know their earlier ones
    assert (enriched["cust_n_prior"] > 0).mean() > 0.3
    assert feats["currency_mismatch"].between(0, 1).all()


def test_missing_context_is_one_clear_error(small_history):
    tx, _ = small_history
    with pytest.raises(ValueError, match="history_context"):
        derive_features(tx)


def test_stream_style_chain_matches_history_context(small_history):
    """The speed layer keys customers and terminals in two stateful steps (customer first, then terminal on the
    customer-enriched rows), each with its own state: the numbers must be the training numbers."""
    tx, cb = small_history
    batch = _ctx(tx, cb)
    cust_state, term_state, parts = {}, {}, []
    for chunk in np.array_split(np.arange(len(tx)), 5):
        part = tx.iloc[chunk]
        cust, cust_state = customer_context(part, cust_state)
        with_cust = pd.concat([part, cust], axis=1)
        term, term_state = terminal_context(with_cust, term_state)
        cbx = chargeback_context(part, cb)
        parts.append(
            pd.concat([part[["transaction_id"]], cust, term, cbx], axis=1).set_index("transaction_id")
        )
    pd.testing.assert_frame_equal(pd.concat(parts)[CONTEXT_COLUMNS], batch)
