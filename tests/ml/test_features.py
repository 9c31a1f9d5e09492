"""The feature code: no row sees a later row or a label not yet reported; batch == incremental; the
cold-start fill from batch baselines gives a fresh walk the full walk's numbers and never changes a walk
over the whole history (what training does)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from events.contract import UNKNOWN_COUNTRY
from ml.features import (
    BASELINE_COLUMNS,
    CONTEXT_COLUMNS,
    COUNTRY_MEMORY,
    CUSTOMER_CONTEXT_COLUMNS,
    FEATURE_COLUMNS,
    HistoryState,
    chargeback_context,
    customer_baselines,
    customer_context,
    derive_features,
    fill_from_baselines,
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


def test_an_unknown_or_missing_country_is_no_currency_mismatch(small_history):
    """Replay writes UNKNOWN_COUNTRY for files without IP data: no row of such a file may look cross-border."""
    tx, cb = small_history
    enriched, _ = history_context(tx, cb)
    rows = enriched.head(4).assign(currency=["USD", "USD", "USD", "EUR"], ip_country=["US", "GB", "", "ZZ"])
    rows.loc[rows.index[2], "ip_country"] = None
    assert UNKNOWN_COUNTRY == "ZZ"
    assert derive_features(rows)["currency_mismatch"].tolist() == [0.0, 1.0, 0.0, 0.0]


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


# ------------------------------------------------------------------------------------------ cold start
def _baselines_before(tx: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """What a batch layer caught up to `cut` holds: the baselines of every row before it."""
    _, state = history_context(tx[tx["event_time"] < cut])
    return customer_baselines(state.customers)


def test_fill_over_a_walk_from_the_first_event_changes_nothing(small_history):
    """Training walks the whole history: with the baselines a batch layer built before each row (daily
    builds, lagging by up to a day), the fill is the identity, so training needs none and equals the stream."""
    tx, cb = small_history
    full, _ = history_context(tx, cb)
    days = pd.date_range(tx["event_time"].min().floor("D"), tx["event_time"].max().ceil("D"), freq="D")
    checked = 0
    for lo, hi in zip(days[5:-1:7], days[6::7], strict=False):
        rows = full[(full["event_time"] >= lo) & (full["event_time"] < hi)]
        baselines = _baselines_before(tx, lo)
        pd.testing.assert_frame_equal(fill_from_baselines(rows, baselines), rows)
        checked += len(rows)
    assert checked > 300


def test_fill_gives_a_fresh_walk_the_full_walks_context(small_history):
    """The stream after a fresh checkpoint, or a customer forgotten after STATE_TTL: a walk starting at the
    cut + baselines built before it == the walk over everything, for each customer's first event after the
    cut (customers idle for a day at the cut: the short windows are empty in both walks)."""
    tx, cb = small_history
    full, _ = history_context(tx, cb)
    cut = tx["event_time"].quantile(0.6)
    later = tx[tx["event_time"] >= cut]
    baselines = _baselines_before(tx, cut)
    filled, _ = history_context(later, cb, baselines=baselines)
    unfilled, _ = history_context(later, cb)
    last_before = tx[tx["event_time"] < cut].groupby("customer_id")["event_time"].max()
    idle = last_before[last_before < cut - pd.Timedelta(days=1)].index
    first = later[later["customer_id"].isin(idle)].drop_duplicates("customer_id").index
    assert len(first) > 200
    # (the terminals' own windows are another state, not the customer's: not compared)
    same = CUSTOMER_CONTEXT_COLUMNS + ["term_chargebacks_7d", "cust_chargebacks_30d"]
    pd.testing.assert_frame_equal(filled.loc[first, same], full.loc[first, same])
    # the fill did the work: without it these customers look brand new
    assert (unfilled.loc[first, "cust_n_prior"] == 0).all()
    assert (full.loc[first, "cust_hour_share"].notna()).any()
    # customers the state already knows well keep the state's numbers
    known = filled["cust_n_prior"].to_numpy() >= 5
    known &= unfilled["cust_n_prior"].to_numpy() >= 5
    pd.testing.assert_frame_equal(filled[known], unfilled[known])


def test_a_baseline_never_fills_an_event_it_knows_the_future_of():
    """A baseline built over events after the row (a replay re-scored after the batch layer caught up)
    is not used for it: the fill is bounded by event time."""
    rows = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2"],
            "customer_id": ["c", "c"],
            "event_time": pd.to_datetime(["2019-05-01T10:00:00Z", "2019-05-03T10:00:00Z"], utc=True),
            "amount": [10.0, 10.0],
            "device_id": ["d1", "d1"],
            "ip_country": ["DE", "DE"],
            "ip_lat": [48.1, 48.1],
            "ip_lon": [11.6, 11.6],
        }
    )
    enriched = pd.concat([rows, customer_context(rows.iloc[:1])[0].reindex(rows.index)], axis=1)
    enriched.loc[1, CUSTOMER_CONTEXT_COLUMNS] = enriched.loc[0, CUSTOMER_CONTEXT_COLUMNS].to_numpy()
    baseline = pd.DataFrame(
        [
            [
                "c",
                9,
                20.0,
                40.0,
                ["d1"],
                ["DE"],
                48.0,
                11.5,
                [8] + [0] * 8 + [1] + [0] * 14,
                "2019-05-02T00:00:00Z",
            ]
        ],
        columns=BASELINE_COLUMNS,
    )
    out = fill_from_baselines(enriched, baseline)
    assert out.loc[0, "cust_n_prior"] == 0  # 1 May: the baseline ends on 2 May, it is the future
    assert out.loc[1, "cust_n_prior"] == 9 and out.loc[1, "cust_amount_median"] == 20.0
    assert out.loc[1, "cust_device_seen"] == 1.0 and out.loc[1, "cust_new_devices_1h"] == 0.0
    assert out.loc[1, "cust_secs_since_last"] == 34 * 3600
    assert out.loc[1, "cust_hour_share"] == 1 / 9  # one of nine at 9:00-11:59 UTC
    assert fill_from_baselines(enriched, None) is enriched
    with pytest.raises(ValueError, match="customer_baselines"):
        fill_from_baselines(enriched, baseline.drop(columns=["hour_counts"]))


def test_countries_are_remembered_most_recently_used_like_devices():
    """COUNTRY_MEMORY keeps the most recently used countries (what the batch layer recomputes in SQL):
    a country used again moves to the front and outlives countries seen once since."""
    others = [f"X{i:02d}" for i in range(COUNTRY_MEMORY)]
    countries = ["DE", *others[:-1], "DE", others[-1], "DE"]
    n = len(countries)
    rows = pd.DataFrame(
        {
            "transaction_id": [f"t{i:02d}" for i in range(n)],
            "customer_id": "c",
            "event_time": pd.date_range("2019-01-01", periods=n, freq="h", tz="UTC"),
            "amount": 5.0,
            "device_id": "d",
            "ip_country": countries,
            "ip_lat": np.nan,
            "ip_lon": np.nan,
        }
    )
    ctx, state = customer_context(rows)
    assert ctx["cust_country_seen"].iloc[-1] == 1.0  # a first-seen memory would have evicted DE
    assert state["c"].countries[-1] == "DE" and "X00" not in state["c"].countries
