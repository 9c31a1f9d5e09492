"""The figures `ecom evaluate` and every training report, as pure functions (no services)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from kernel.errors import EcomError
from ml.assess import _chunk_bounds, context_for_period, labels_from_file, parse_period
from ml.evaluate import (
    DEPLOYED_KEYS,
    at_threshold,
    card_precision_at_k,
    compute_metrics,
    evaluation_report,
    recall_at_fpr,
)
from ml.features import CONTEXT_COLUMNS, INPUT_COLUMNS, history_context


def test_figures_at_the_deployed_threshold_count_alerts_by_hand():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.2, 0.8, 0.1, 0.3])
    # alerts at >= 0.5: one fraud caught of two, one legitimate of three flagged
    assert at_threshold(y, s, 0.5) == {
        "deployed_recall": 0.5,
        "deployed_precision": 0.5,
        "deployed_fpr": pytest.approx(1 / 3),
    }
    no_alert = at_threshold(y, s, 0.95)
    assert no_alert["deployed_recall"] == 0.0 and math.isnan(no_alert["deployed_precision"])


def test_deployed_recall_is_not_the_best_case_over_thresholds():
    """The best threshold in hindsight catches every fraud at 0 % FPR; the deployed one (chosen before the
    labels were known) misses half: the report carries both, under different names."""
    y = np.array([1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.5, 0.4, 0.3, 0.2])
    t = pd.Series(pd.date_range("2026-01-01", periods=6, freq="h", tz="UTC"))
    m = compute_metrics(y, s, t, threshold=0.7, k_per_day=2)
    assert m["recall_at_fpr_2pct"] == recall_at_fpr(y, s) == 1.0
    assert m["deployed_recall"] == 0.5 and m["deployed_fpr"] == 0.0 and m["deployed_precision"] == 1.0
    assert set(DEPLOYED_KEYS) <= set(m)


def _two_days() -> pd.DataFrame:
    rows = [
        # day 1: card A has a high-scored legitimate purchase and a low-scored fraud: a card with fraud
        ("2026-01-01T10:00", "A", 0, 0.9),
        ("2026-01-01T11:00", "A", 1, 0.1),
        ("2026-01-01T12:00", "B", 0, 0.8),
        ("2026-01-01T13:00", "C", 1, 0.7),
        # day 2: the two top cards are both compromised
        ("2026-01-02T10:00", "D", 1, 0.95),
        ("2026-01-02T11:00", "E", 1, 0.9),
        ("2026-01-02T12:00", "F", 0, 0.1),
    ]
    frame = pd.DataFrame(rows, columns=["event_time", "customer_id", "label", "score"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def test_card_precision_at_k_ranks_cards_per_day_not_transactions():
    f = _two_days()
    # day 1 top-2 cards A (max 0.9, has a fraud) and B (legit) -> 0.5; day 2 D, E -> 1.0
    cp = card_precision_at_k(f["label"], f["score"], f["event_time"], f["customer_id"], k=2)
    assert cp == pytest.approx(0.75)
    # per transaction, day 1's top two (0.9 and 0.8) are both legitimate: a different figure
    tx_level = compute_metrics(f["label"], f["score"], f["event_time"], 0.5, 2)["precision_at_k"]
    assert tx_level == pytest.approx(0.5)


def test_evaluation_report_has_every_figure_of_the_command():
    report = evaluation_report(_two_days(), threshold=0.85, k_per_day=2)
    assert report["rows"] == 7 and report["frauds"] == 4 and report["days"] == 2
    assert report["card_precision_at_k"] == pytest.approx(0.75)
    # alerts at >= 0.85: A's legitimate 0.9, D 0.95, E 0.9 -> 2 of 4 frauds, 1 of 3 legitimate
    assert report["deployed_recall"] == 0.5 and report["deployed_fpr"] == pytest.approx(1 / 3)
    assert report["deployed_precision"] == pytest.approx(2 / 3)
    assert {"roc_auc", "average_precision", "best_recall_at_fpr_2pct", "alert_rate"} <= set(report)


def test_period_arguments_give_one_line_errors():
    p = parse_period("2026-01-01", "2026-01-08")
    assert p.start == pd.Timestamp("2026-01-01", tz="UTC") and p.end - p.start == pd.Timedelta(days=7)
    with pytest.raises(EcomError, match="not after --start"):
        parse_period("2026-01-08", "2026-01-01")
    with pytest.raises(EcomError, match="is not a date"):
        parse_period("last week", "2026-01-01")


def test_chunks_never_split_rows_of_the_same_instant():
    t = pd.Series(pd.to_datetime(["2026-01-01"] * 3 + ["2026-01-02"] * 4 + ["2026-01-03"], utc=True))
    bounds = _chunk_bounds(t, rows=2)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(t)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    for lo, _ in bounds[1:]:
        assert t.iloc[lo] != t.iloc[lo - 1]


def test_chunked_walk_of_a_period_equals_one_walk_over_the_history(small_history, monkeypatch):
    """The offline score's context is the training code's, exactly, though walked in small chunks with
    only each chunk's chargebacks handed over."""
    import ml.assess

    tx, cb = small_history
    period = parse_period("2026-02-10", "2026-02-20")
    whole, _ = history_context(tx, cb)
    expected = whole[period.mask(whole["event_time"])].reset_index(drop=True)
    monkeypatch.setattr(ml.assess, "WALK_CHUNK_ROWS", 311)
    got = context_for_period(tx, cb, period, progress=False)
    assert len(got) == len(expected) > 100
    pd.testing.assert_frame_equal(got[CONTEXT_COLUMNS], expected[CONTEXT_COLUMNS], check_exact=True)
    assert got["transaction_id"].tolist() == expected["transaction_id"].tolist()
    assert expected["term_chargebacks_7d"].sum() + expected["cust_chargebacks_30d"].sum() > 0


def test_a_labelled_file_becomes_transactions_and_chargebacks(small_history, tmp_path):
    tx, cb = small_history
    frame = tx.head(300).copy()
    frauds = set(frame["transaction_id"].iloc[[3, 50, 200]])
    frame["is_fraud"] = frame["transaction_id"].isin(frauds).astype(int)
    frame["line_items"] = frame["line_items"].map(lambda v: v if isinstance(v, str) else json.dumps(v))
    path = tmp_path / "labelled.parquet"
    frame.to_parquet(path)
    got_tx, got_cb = labels_from_file(path)
    assert len(got_tx) == 300 and set(got_cb["transaction_id"]) == frauds
    # a file's frauds are reported later (as `ecom replay` sends them), never at the purchase itself
    joined = got_cb.merge(got_tx[["transaction_id", "event_time"]], on="transaction_id")
    assert (joined["reported_at"] > joined["event_time"]).all()
    frame.drop(columns=["is_fraud"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    with pytest.raises(EcomError, match="lacks columns \\['is_fraud'\\]"):
        labels_from_file(tmp_path / "unlabelled.csv")
    assert set(INPUT_COLUMNS) <= set(got_tx.columns)
