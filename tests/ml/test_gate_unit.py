"""The promotion gate's rule and the time windows, as pure functions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kernel.errors import EcomError
from ml.evaluate import DEPLOYED_KEYS, METRIC_KEYS, compute_metrics, threshold_for_budget
from ml.train import TrainConfig, decide, labels_known_at, plan_windows, window_labels


def _m(ap: float, recall: float = 0.9) -> dict[str, float]:
    return {
        "roc_auc": 0.95,
        "average_precision": ap,
        "precision_at_k": 0.5,
        "recall_at_fpr_2pct": recall,
        "alert_rate": 0.02,
    }


def test_no_champion_promotes():
    d = decide(_m(0.5), None)
    assert d.promote and d.reason == "no champion yet"


def test_worse_or_equal_challenger_is_refused_with_figures():
    for ap in (0.70, 0.80):
        d = decide(_m(ap), _m(0.80), "3")
        assert not d.promote
        assert "not better" in d.reason and "champion v3 0.8000" in d.reason


def test_better_challenger_is_promoted():
    d = decide(_m(0.85), _m(0.80), "3")
    assert d.promote and d.reason.startswith("better")


def test_better_ap_but_lost_recall_is_refused():
    d = decide(_m(0.85, recall=0.80), _m(0.80, recall=0.90), "3")
    assert not d.promote and "recall dropped" in d.reason


def test_unscorable_champion_does_not_block_and_no_labels_never_promote():
    assert decide(_m(0.5), None, "2", champion_error="ValueError: old features").promote
    assert not decide(_m(float("nan")), _m(0.5), "2").promote


def test_windows_are_ordered_and_leave_the_label_delay():
    t = pd.Series(pd.date_range("2026-01-01", periods=60 * 24, freq="h", tz="UTC"))
    w = plan_windows(t, TrainConfig(label_delay_days=14, holdout_days=7, valid_days=14))
    assert t.min() == w.train_start < w.valid_start < w.holdout_start < w.holdout_end < w.as_of
    assert w.as_of - w.holdout_end == pd.Timedelta(days=14)
    assert w.holdout_end - w.holdout_start == pd.Timedelta(days=7)
    # a model learns only the labels reported before the window it is scored on starts
    assert w.selection_cutoff == w.valid_start and w.deploy_cutoff == w.holdout_start
    assert w.evaluation_cutoff == w.holdout_end + pd.Timedelta(days=14)
    with pytest.raises(EcomError, match="days of transactions"):
        plan_windows(t.head(24 * 10), TrainConfig(label_delay_days=14))


def test_a_validation_window_shorter_than_the_label_delay_is_refused_in_one_line():
    """With 7 days of validation and 14 days of delay, the training labels used to be cut at validation
    start + 14 days: a week into the hold-out. Now such a window is refused with what to change."""
    t = pd.Series(pd.date_range("2026-01-01", periods=60 * 24, freq="h", tz="UTC"))
    with pytest.raises(EcomError, match=r"shorter than the label delay .*--valid-days >= 14") as err:
        plan_windows(t, TrainConfig(label_delay_days=14, holdout_days=7, valid_days=7))
    assert "\n" not in str(err.value)


def test_default_validation_window_is_widened_to_the_label_delay():
    t = pd.Series(pd.date_range("2026-01-01", periods=60 * 24, freq="h", tz="UTC"))
    w = plan_windows(t, TrainConfig(label_delay_days=14))  # 20 % of 46 usable days would be ~9 days
    assert w.holdout_start - w.valid_start >= pd.Timedelta(days=14)
    assert w.valid_start - w.train_start > pd.Timedelta(days=14)


def _history_with_labels(days: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four transactions an hour; every 10th is fraud, reported 1 to 20 days later."""
    rng = np.random.default_rng(3)
    t = pd.date_range("2026-01-01", periods=days * 96, freq="15min", tz="UTC")
    tx = pd.DataFrame({"transaction_id": [f"t{i}" for i in range(len(t))], "event_time": t})
    fraud = tx.iloc[::10]
    delay = pd.to_timedelta(rng.uniform(1, 20, len(fraud)), unit="D")
    cb = pd.DataFrame(
        {"transaction_id": fraud["transaction_id"].to_numpy(), "reported_at": fraud["event_time"] + delay}
    )
    return tx, cb


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(label_delay_days=14),
        TrainConfig(label_delay_days=14, valid_days=14, holdout_days=3),
        TrainConfig(label_delay_days=5, valid_days=30, holdout_days=10),
        TrainConfig(label_delay_days=2, valid_days=2, holdout_days=20, train_days=8),
    ],
)
def test_no_label_reported_once_the_scored_window_started_feeds_training(cfg):
    """Whatever the window sizes: selection's candidates never learn a chargeback reported on or after the
    validation start; the final model and the selection's judge never one reported on or after the hold-out
    start. The hold-out keeps every label reported within the delay after it (evaluation)."""
    tx, cb = _history_with_labels()
    w = plan_windows(tx["event_time"], cfg)
    lab = window_labels(tx, cb, w)
    reported = tx["transaction_id"].map(cb.set_index("transaction_id")["reported_at"])

    def learned(mask: np.ndarray, y: np.ndarray) -> pd.Series:
        return reported[mask][y == 1]

    assert (learned(lab.train, lab.y_select_train) < w.valid_start).all()
    assert (learned(lab.train, lab.y_train) < w.holdout_start).all()
    assert (learned(lab.valid, lab.y_valid) < w.holdout_start).all()
    # what is known is used: every label reported in time is there
    assert lab.y_train.sum() == (reported[lab.train] < w.holdout_start).sum() > 0
    assert lab.y_select_train.sum() == (reported[lab.train] < w.valid_start).sum() > 0
    assert lab.y_holdout.sum() == (reported[lab.holdout] < w.holdout_end + w.label_delay).sum() > 0


def test_labels_are_only_those_reported_before_the_cutoff():
    tx = pd.DataFrame({"transaction_id": ["a", "b", "c"]})
    cb = pd.DataFrame(
        {"transaction_id": ["a", "b"], "reported_at": pd.to_datetime(["2026-01-02", "2026-01-09"], utc=True)}
    )
    assert labels_known_at(tx, cb, pd.Timestamp("2026-01-05", tz="UTC")).tolist() == [1, 0, 0]


def test_metrics_have_every_key_and_budget_threshold_gives_the_budget():
    rng = np.random.default_rng(0)
    n = 10_000
    t = pd.Series(pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"))
    y = (rng.random(n) < 0.01).astype(int)
    s = np.clip(rng.normal(0.3, 0.1, n) + 0.4 * y, 0, 1)
    days = t.dt.floor("D").nunique()
    thr = threshold_for_budget(s, t, alerts_per_day=20)
    assert (s >= thr).sum() == pytest.approx(20 * days, abs=2)
    m = compute_metrics(y, s, t, thr, k_per_day=20)
    assert list(m) == METRIC_KEYS + DEPLOYED_KEYS and all(not math.isnan(v) for v in m.values())
    assert 0.9 < m["roc_auc"] <= 1 and 0 < m["recall_at_fpr_2pct"] <= 1


def test_chance_level_model_is_never_promoted():
    d = decide({**_m(0.05), "roc_auc": 0.5}, None)
    assert not d.promote and "no better than chance" in d.reason


def test_default_windows_follow_the_rows_not_a_stray_old_row():
    recent = pd.date_range("2026-01-01", periods=60 * 24, freq="h", tz="UTC")
    t = pd.Series(recent.insert(0, pd.Timestamp("2024-03-01", tz="UTC")))
    w = plan_windows(t, TrainConfig(label_delay_days=5))  # 20 % of the rows span more than the delay
    usable = t[t < w.holdout_end]
    share = lambda a, b: ((usable >= a) & (usable < b)).mean()  # noqa: E731
    assert share(w.train_start, w.valid_start) == pytest.approx(0.6, abs=0.01)
    assert share(w.valid_start, w.holdout_start) == pytest.approx(0.2, abs=0.01)
    assert share(w.holdout_start, w.holdout_end) == pytest.approx(0.2, abs=0.01)
