"""Training's history walk, cached between runs (issue 18, item 7): the cached prefix + the walk of the
new rows from the cached state is the full walk, bit for bit; anything that breaks that premise walks it
all, and one log line says why."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
import pytest

from events.simulator.cards import CARD_FILE_MAPPING, CardFileConfig, write_card_file
from ml import walk_cache
from ml.data import replayed_history
from ml.features import history_context
from ml.walk_cache import MANIFEST, cached_history_context, slot_dir

SOURCE = "tests/ml walk cache"


@pytest.fixture(scope="module")
def card_history(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A five-column card file as replay lands it: few customers with many purchases, many terminals."""
    cfg = CardFileConfig(seed=5, n_customers=150, n_terminals=300, days=40, start="2025-03-01")
    path = write_card_file(tmp_path_factory.mktemp("cards") / "cards.csv", cfg)
    return replayed_history(path, CARD_FILE_MAPPING, 7.0)


def _shape(request, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if name == "simulator-minute-ties":
        # times floored to the minute: many rows share an event time, the cut falls inside a tie
        tx, cb = request.getfixturevalue("small_history")
        tx = tx.assign(event_time=tx["event_time"].dt.floor("min"))
        return tx.sort_values(["event_time", "transaction_id"], kind="mergesort").reset_index(drop=True), cb
    return request.getfixturevalue(name)


def _first_rows(tx: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first n rows in walk order: what an earlier run of an append-only master saw."""
    return tx.sort_values(["event_time", "transaction_id"], kind="mergesort").head(n)


def _assert_same_walk(got, full_tx, cb) -> None:
    enriched, state, _ = got
    expected, expected_state = history_context(full_tx, cb)
    pd.testing.assert_frame_equal(enriched, expected, check_exact=True)
    assert state.to_json() == expected_state.to_json()


@pytest.mark.parametrize("shape", ["small_history", "card_history", "simulator-minute-ties"])
def test_cached_prefix_and_incremental_walk_equal_the_full_walk(request, tmp_path, shape):
    tx, cb = _shape(request, shape)
    cuts = [len(tx) // 2, len(tx) * 9 // 10, len(tx) * 99 // 100]
    if shape == "simulator-minute-ties":
        ordered = _first_rows(tx, len(tx))["event_time"].to_numpy()
        cuts = [next(i for i in range(len(tx) // 2, len(tx)) if ordered[i - 1] == ordered[i])]
    first = cached_history_context(_first_rows(tx, cuts[0]), cb, tmp_path, SOURCE)
    assert not first[2].used and first[2].reason.startswith("no cache yet")
    _assert_same_walk(first, _first_rows(tx, cuts[0]), cb)
    # each later run: more rows (the master grew), all labels known now, rows handed over in any order
    for n in [*cuts[1:], len(tx)]:
        rows = _first_rows(tx, n).sample(frac=1.0, random_state=n)
        got = cached_history_context(rows, cb, tmp_path, SOURCE)
        outcome = got[2]
        assert outcome.used, outcome.reason
        assert outcome.rows_walked < n and outcome.rows_from_cache + outcome.rows_walked == n
        _assert_same_walk(got, rows, cb)
    # nothing new: everything from the cache
    again = cached_history_context(tx, cb, tmp_path, SOURCE)
    assert again[2].used and again[2].rows_walked == 0
    _assert_same_walk(again, tx, cb)


def test_labels_reported_after_a_row_was_walked_still_count(small_history, tmp_path):
    """Chargeback counts are recomputed every run: a label that arrives after the cached run is counted."""
    tx, cb = small_history
    cut = tx["event_time"].quantile(0.8)
    cached_history_context(tx, cb[cb["reported_at"] < cut - pd.Timedelta(days=20)], tmp_path, SOURCE)
    got = cached_history_context(tx, cb, tmp_path, SOURCE)
    assert got[2].used and got[2].rows_walked == 0
    _assert_same_walk(got, tx, cb)


def _late_row(tx: pd.DataFrame) -> pd.DataFrame:
    late = tx.iloc[[10]].assign(transaction_id="late-row", event_time=tx["event_time"].iloc[10])
    return pd.concat([tx, late], ignore_index=True)


def _rewritten_row(tx: pd.DataFrame) -> pd.DataFrame:
    out = tx.copy()
    out.loc[out.index[len(out) // 3], "amount"] += 1.0
    return out


def _another_dataset(tx: pd.DataFrame) -> pd.DataFrame:
    return tx.assign(customer_id=tx["customer_id"].astype(str) + "-b")


def _missing_row(tx: pd.DataFrame) -> pd.DataFrame:
    return tx.drop(index=tx.index[5])


@pytest.mark.parametrize(
    "change, why",
    [
        (_late_row, "1 rows were added at or before the cached end"),
        (_missing_row, "1 rows are missing at or before the cached end"),
        (_rewritten_row, "differ from the cached ones"),
        (_another_dataset, "differ from the cached ones"),
    ],
)
def test_data_that_is_not_the_cached_prefix_walks_everything(small_history, tmp_path, caplog, change, why):
    tx, cb = small_history
    cached_history_context(tx.head(len(tx) - 100), cb, tmp_path, SOURCE)
    data = change(tx)
    with caplog.at_level(logging.INFO, logger="ecom.ml.walk_cache"):
        got = cached_history_context(data, cb, tmp_path, SOURCE)
    assert not got[2].used and why in got[2].reason
    assert got[2].rows_walked == len(data)
    lines = [r.getMessage() for r in caplog.records if r.name == "ecom.ml.walk_cache"]
    assert len(lines) == 1 and why in lines[0] and "full walk" in lines[0]
    _assert_same_walk(got, data, cb)
    # the full walk left a cache of the new data: the next run reuses it
    assert cached_history_context(data, cb, tmp_path, SOURCE)[2].used


def test_changed_feature_code_walks_everything(small_history, tmp_path, monkeypatch):
    tx, cb = small_history
    cached_history_context(tx.head(3000), cb, tmp_path, SOURCE)
    monkeypatch.setattr(walk_cache, "features_version", lambda: "another-definition")
    got = cached_history_context(tx, cb, tmp_path, SOURCE)
    assert not got[2].used and "ml/features.py changed" in got[2].reason
    _assert_same_walk(got, tx, cb)


@pytest.mark.parametrize("damage", ["manifest", "context", "state", "state gone"])
def test_a_damaged_or_missing_cache_file_walks_everything(small_history, tmp_path, damage):
    tx, cb = small_history
    cached_history_context(tx.head(3000), cb, tmp_path, SOURCE)
    slot = slot_dir(tmp_path, SOURCE)
    files = {
        "manifest": slot / MANIFEST,
        **{p.name.split("-")[1].split(".")[0]: p for p in slot.glob("*.parquet")},
    }
    if damage == "state gone":
        files["state"].unlink()
    else:
        files[damage].write_bytes(b"\x00not a cache\x00")
    got = cached_history_context(tx, cb, tmp_path, SOURCE)
    assert not got[2].used
    assert ("unreadable cache manifest" if damage == "manifest" else "unreadable cache file") in got[2].reason
    _assert_same_walk(got, tx, cb)


def test_sources_keep_their_own_cache(small_history, card_history, tmp_path):
    (tx, cb), (cards, card_cb) = small_history, card_history
    cached_history_context(tx, cb, tmp_path, "simulator")
    cached_history_context(cards, card_cb, tmp_path, "cards")
    assert cached_history_context(tx, cb, tmp_path, "simulator")[2].used
    assert cached_history_context(cards, card_cb, tmp_path, "cards")[2].used


def test_the_cli_flag_turns_the_cache_off():
    from ml.cli import add_train_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    assert config_from_args(p.parse_args([]), "master").walk_cache is True
    assert config_from_args(p.parse_args(["--no-walk-cache"]), "master").walk_cache is False


def test_walk_order_of_sorted_input_is_the_lexsort(small_history):
    """The sorted-input shortcut of the walk order gives lexsort's order (ties on the time included)."""
    from ml.features import _utc_ns, _walk_order

    tx, _ = small_history
    tied = tx.assign(event_time=tx["event_time"].dt.floor("h"))
    for frame in (tx, tied, tied.sort_values(["event_time", "transaction_id"]), tx.iloc[::-1]):
        t_ns = _utc_ns(frame["event_time"])
        expected = np.lexsort((frame["transaction_id"].astype(str).to_numpy(), t_ns))
        np.testing.assert_array_equal(_walk_order(frame, t_ns), expected)
