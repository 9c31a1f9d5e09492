"""Reasons for an alert, in words, computed from the model's own features (same code in batch and stream).

Each feature that can make a transaction suspicious has a direction (high or low is suspicious) and a
sentence. Its strength is how rare the value is among the model's training rows: the scorer keeps a sample
of its training features (`FraudScorer.reference_`), and strength = -log10(share of training rows at least
as extreme). Related features (device novelty, velocity windows, amount ratios) are one reason each: the
strongest of the group speaks. Without a model a fixed scale per feature stands in for the training sample.

    reasons(enriched_row, model=champion.model) ->
      [{"feature": "amount_to_median", "value": 14.2, "baseline": 48.5,
        "text": "amount 14x this customer's median (689.00 vs 48.50)"}, ...]   strongest first
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.features import FEATURE_COLUMNS, derive_features

MIN_STRENGTH = 0.5  # at most ~30 % of training rows as extreme: not worth saying (unless nothing else is)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _f(row: pd.Series, col: str, default: float = float("nan")) -> float:
    v = row.get(col, default)
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class ReasonRule:
    feature: str
    group: str
    high_is_suspicious: bool
    scale: float  # strength without a reference sample: (value - neutral) / scale
    neutral: float
    text: Callable[[pd.Series, float], str]
    baseline: Callable[[pd.Series], float | None]
    applies: Callable[[pd.Series, float], bool] = lambda row, v: True
    # population-level rarity ("a large amount") is weaker evidence than the customer's own history
    # ("14x this customer's median"): those rules count for less, so the personal reason speaks first
    weight: float = 1.0


def _amount_text(row: pd.Series, v: float) -> str:
    amount, median = _f(row, "amount"), _f(row, "cust_amount_median")
    return f"amount {v:.0f}x this customer's median ({amount:.2f} vs {median:.2f})"


def _velocity(window: str, label: str) -> Callable[[pd.Series, float], str]:
    return lambda row, v: (
        f"{int(v) + 1} transactions from this customer in the last {label} (this one included)"
    )


def _device_text(row: pd.Series, v: float) -> str:
    n = int(_f(row, "cust_new_devices_1h", 1))
    return f"{_ordinal(n)} new device this hour" if n >= 2 else "a device this customer never used before"


RULES: list[ReasonRule] = [
    ReasonRule(
        "currency_mismatch",
        "country",
        True,
        1.0,
        0.0,
        lambda r, v: f"card charged in {r.get('currency')} from an IP in {r.get('ip_country') or '?'}",
        lambda r: 0.0,
        lambda r, v: v >= 1,
    ),
    ReasonRule(
        "term_far_24h",
        "terminal_far",
        True,
        2.0,
        0.0,
        lambda r, v: f"terminal took {int(v)} payments from customers far from home in the last 24 hours",
        lambda r: 0.0,
        lambda r, v: v >= 1,
    ),
    ReasonRule(
        "amount_to_median",
        "amount",
        True,
        2.0,
        1.0,
        _amount_text,
        lambda r: _f(r, "cust_amount_median"),
        lambda r, v: _f(r, "cust_n_prior", 0) > 0,
    ),
    ReasonRule(
        "amount_1h_to_median",
        "amount",
        True,
        3.0,
        1.0,
        lambda r, v: (
            f"{_f(r, 'cust_amount_1h') + _f(r, 'amount'):.2f} spent in the last hour, "
            f"{v:.0f}x this customer's median purchase"
        ),
        lambda r: _f(r, "cust_amount_median"),
        lambda r, v: _f(r, "cust_n_prior", 0) > 0,
    ),
    ReasonRule(
        "log_amount",
        "amount",
        True,
        1.5,
        4.5,
        lambda r, v: f"large amount {_f(r, 'amount'):.2f}",
        lambda r: None,
        weight=0.6,
    ),
    ReasonRule("cust_count_10m", "velocity", True, 1.0, 0.0, _velocity("10m", "10 minutes"), lambda r: 0.0),
    ReasonRule("cust_count_1h", "velocity", True, 1.5, 0.0, _velocity("1h", "hour"), lambda r: 0.0),
    ReasonRule("cust_count_24h", "velocity", True, 3.0, 1.0, _velocity("24h", "24 hours"), lambda r: None),
    ReasonRule(
        "log_secs_since_last",
        "velocity",
        False,
        2.0,
        12.0,
        lambda r, v: f"{_f(r, 'cust_secs_since_last'):.0f} s after this customer's previous transaction",
        lambda r: None,
        lambda r, v: not math.isnan(_f(r, "cust_secs_since_last")),
    ),
    ReasonRule("new_devices_1h", "device", True, 1.0, 0.5, _device_text, lambda r: 0.0, lambda r, v: v >= 1),
    ReasonRule(
        "is_new_device",
        "device",
        True,
        2.0,
        0.0,
        _device_text,
        lambda r: 0.0,
        lambda r, v: v >= 1 and _f(r, "cust_n_prior", 0) > 0,
    ),
    ReasonRule(
        "log_home_distance_km",
        "location",
        True,
        2.0,
        4.0,
        lambda r, v: f"{_f(r, 'cust_home_distance_km'):,.0f} km from this customer's usual location",
        lambda r: 0.0,
    ),
    ReasonRule(
        "is_new_country",
        "country",
        True,
        1.0,
        0.0,
        lambda r, v: f"first transaction from {r.get('ip_country') or 'this country'} for this customer",
        lambda r: 0.0,
        lambda r, v: v >= 1 and _f(r, "cust_n_prior", 0) > 0,
    ),
    ReasonRule(
        "hour_share",
        "hour",
        False,
        0.1,
        0.25,
        lambda r, v: (
            f"unusual hour ({pd.Timestamp(r['event_time']).tz_convert('UTC').hour:02d}h UTC: "
            f"{v:.0%} of this customer's purchases are around this time)"
        ),
        lambda r: 0.125,
        lambda r, v: not math.isnan(_f(r, "cust_hour_share")),
    ),
    ReasonRule(
        "term_chargebacks_7d",
        "terminal_risk",
        True,
        1.0,
        0.0,
        lambda r, v: f"terminal with {int(v)} chargebacks in the last 7 days",
        lambda r: 0.0,
        lambda r, v: v >= 1,
    ),
    ReasonRule(
        "cust_chargebacks_30d",
        "customer_risk",
        True,
        1.0,
        0.0,
        lambda r, v: f"customer with {int(v)} chargebacks in the last 30 days",
        lambda r: 0.0,
        lambda r, v: v >= 1,
    ),
    ReasonRule(
        "term_burst",
        "terminal_volume",
        True,
        2.0,
        1.5,
        lambda r, v: (
            f"terminal burst: {int(_f(r, 'term_count_1h', 0)) + 1} transactions in the last hour "
            f"vs {_f(r, 'term_count_24h', 0) / 24:.1f}/h over the day"
        ),
        lambda r: _f(r, "term_count_24h", 0) / 24,
    ),
    ReasonRule(
        "is_first_tx",
        "history",
        True,
        2.0,
        0.0,
        lambda r, v: "first transaction of this customer",
        lambda r: 0.0,
        lambda r, v: v >= 1,
        weight=0.6,
    ),
    ReasonRule(
        "n_items",
        "basket",
        True,
        5.0,
        2.0,
        lambda r, v: f"{int(v)} items in the basket",
        lambda r: None,
        weight=0.6,
    ),
]


def _reference(model: Any) -> np.ndarray | None:
    if model is None:
        return None
    scorer = model.named_steps["scorer"] if hasattr(model, "named_steps") else model
    return getattr(scorer, "reference_", None)


def _strength(rule: ReasonRule, value: float, ref_col: np.ndarray | None) -> float:
    if math.isnan(value):
        return 0.0
    if ref_col is None:
        d = (value - rule.neutral) / rule.scale
        return max(0.0, d if rule.high_is_suspicious else -d)
    n = len(ref_col)
    if rule.high_is_suspicious:
        at_least = n - np.searchsorted(ref_col, value, side="left")
    else:
        at_least = np.searchsorted(ref_col, value, side="right")
    return float(-math.log10(max(at_least, 0.5) / (n + 1)))


def reasons_from_features(
    enriched_row: pd.Series, feature_row: pd.Series, reference: np.ndarray | None = None, top: int = 3
) -> list[dict[str, Any]]:
    """Reasons for one row given its enriched columns and its FEATURE_COLUMNS values."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for rule in RULES:
        value = float(feature_row[rule.feature])
        if not rule.applies(enriched_row, value):
            continue
        ref_col = None if reference is None else reference[:, FEATURE_COLUMNS.index(rule.feature)]
        strength = _strength(rule, value, ref_col) * rule.weight
        if strength <= 0:
            continue
        base = rule.baseline(enriched_row)
        item = {
            "feature": rule.feature,
            "value": round(value, 4),
            "baseline": None if base is None or math.isnan(base) else round(float(base), 4),
            "text": rule.text(enriched_row, value),
            "strength": round(strength, 3),
        }
        if rule.group not in best or strength > best[rule.group][0]:
            best[rule.group] = (strength, item)
    ranked = [item for _, item in sorted(best.values(), key=lambda p: -p[0])]
    strong = [r for r in ranked if r["strength"] >= MIN_STRENGTH]
    return (strong or ranked[:1])[:top]


def reasons_for_rows(enriched: pd.DataFrame, model: Any = None, top: int = 3) -> list[list[dict[str, Any]]]:
    """Reasons for every row of an enriched frame (contract + context columns)."""
    if len(enriched) == 0:
        return []
    feats = derive_features(enriched)
    ref = _reference(model)
    return [reasons_from_features(enriched.loc[idx], feats.loc[idx], ref, top) for idx in enriched.index]


def reasons(
    enriched_row_or_df: pd.Series | pd.DataFrame, model: Any = None, top: int = 3
) -> list[dict[str, Any]]:
    """Top reasons (strongest first) for one transaction: a row (Series) or a one-row frame."""
    df = enriched_row_or_df.to_frame().T if isinstance(enriched_row_or_df, pd.Series) else enriched_row_or_df
    if len(df) != 1:
        raise ValueError(f"reasons() explains one transaction; got {len(df)} rows (use reasons_for_rows)")
    df = df.infer_objects()
    return reasons_for_rows(df, model=model, top=top)[0]
