"""RFM: recency / frequency / monetary quintile scores, the 11 named segments and what to do about each.

Scores are 1..5 quintiles of each customer's percentile rank (ties share a score, so two customers with the
same history always get the same segment). Recency is inverted: 5 = bought most recently. The segment comes
from the R score and the FM score (the rounded-up mean of F and M) on the standard R x FM grid:

    FM \\ R     1                2                3                4                     5
    5      Can't Lose Them  Can't Lose Them  Loyal Customers  Loyal Customers      Champions
    4      At Risk          At Risk          Loyal Customers  Loyal Customers      Champions
    3      At Risk          At Risk          Need Attention   Potential Loyalists  Potential Loyalists
    2      Hibernating      Hibernating      About To Sleep   Potential Loyalists  Potential Loyalists
    1      Lost             Hibernating      About To Sleep   Promising            New Customers

Every (R, FM) cell maps to exactly one segment, so every customer is in exactly one segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)

# GRID[fm - 1][r - 1] -> segment; rows FM 1..5, columns R 1..5 (the table in the module docstring, upside down)
GRID: tuple[tuple[str, ...], ...] = (
    ("Lost", "Hibernating", "About To Sleep", "Promising", "New Customers"),
    ("Hibernating", "Hibernating", "About To Sleep", "Potential Loyalists", "Potential Loyalists"),
    ("At Risk", "At Risk", "Need Attention", "Potential Loyalists", "Potential Loyalists"),
    ("At Risk", "At Risk", "Loyal Customers", "Loyal Customers", "Champions"),
    ("Can't Lose Them", "Can't Lose Them", "Loyal Customers", "Loyal Customers", "Champions"),
)

# what the business should do with each segment: the actionable-insights table
ACTIONS: dict[str, str] = {
    "Champions": "Reward them: early access, loyalty perks, ask for reviews and referrals; no discounts needed.",
    "Loyal Customers": "Upsell higher-value products and enrol them in the loyalty programme.",
    "Potential Loyalists": "Offer membership or a loyalty programme and personalised recommendations.",
    "New Customers": "Onboard: welcome series, first-weeks support, a reason for a second purchase.",
    "Promising": "Build brand awareness: free trials, sampling, recommendations from their first basket.",
    "Need Attention": "Limited-time offers and recommendations based on past purchases to re-activate them.",
    "About To Sleep": "Share popular products and a time-boxed discount before they lapse.",
    "At Risk": "Personalised win-back emails with relevant products and a renewal offer.",
    "Can't Lose Them": "Win them back now: personal outreach, best offers, ask what went wrong.",
    "Hibernating": "Re-engage with relevant offers and recommendations; otherwise lower contact frequency.",
    "Lost": "One reactivation campaign; if no response, stop spending on them.",
}

# the grid as a long rule table (for docs, the analytics.rfm_segments table and tests)
RULES = pd.DataFrame(
    [
        {"r_score": r, "fm_score": fm, "segment": GRID[fm - 1][r - 1]}
        for fm in range(1, 6)
        for r in range(1, 6)
    ]
)


def _quintile(values: pd.Series) -> pd.Series:
    """1..5 by percentile rank; ties get the same (average-rank) score."""
    pct = values.rank(method="average", pct=True)
    return np.ceil(pct * 5).clip(1, 5).astype(int)


def customer_orders(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per order: customer_id, order_id, order_time, amount (sum of its lines)."""
    return lines.groupby(["customer_id", "order_id"], as_index=False, sort=False, observed=True).agg(
        order_time=("order_time", "min"), amount=("amount", "sum")
    )


def rfm_scores(lines: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per customer: recency_days, frequency (orders), monetary (revenue), R/F/M/FM scores, rfm code and segment.

    as_of: the analysis date (default: the day after the last order in the data).
    """
    orders = customer_orders(lines)
    if as_of is None:
        as_of = orders["order_time"].max().normalize() + pd.Timedelta(days=1)
    per = orders.groupby("customer_id", observed=True).agg(
        first_order=("order_time", "min"),
        last_order=("order_time", "max"),
        frequency=("order_id", "nunique"),
        monetary=("amount", "sum"),
    )
    per["recency_days"] = (as_of - per["last_order"]).dt.total_seconds() / 86400.0
    per["r_score"] = _quintile(-per["recency_days"])
    per["f_score"] = _quintile(per["frequency"])
    per["m_score"] = _quintile(per["monetary"])
    per["fm_score"] = np.ceil((per["f_score"] + per["m_score"]) / 2).astype(int)
    per["rfm_code"] = per["r_score"].astype(str) + per["f_score"].astype(str) + per["m_score"].astype(str)
    grid = np.array(GRID, dtype=object)
    per["segment"] = grid[per["fm_score"].to_numpy() - 1, per["r_score"].to_numpy() - 1]
    per = per.reset_index().sort_values("customer_id", kind="stable").reset_index(drop=True)
    per["monetary"] = per["monetary"].round(2)
    per["recency_days"] = per["recency_days"].round(3)
    return per[
        [
            "customer_id",
            "first_order",
            "last_order",
            "recency_days",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "fm_score",
            "rfm_code",
            "segment",
        ]
    ]


def segment_summary(rfm: pd.DataFrame) -> pd.DataFrame:
    """Size, revenue and share per segment (all 11, zero when empty) with the recommended action."""
    g = rfm.groupby("segment", observed=True).agg(
        customers=("customer_id", "size"),
        revenue=("monetary", "sum"),
        avg_recency_days=("recency_days", "mean"),
        avg_frequency=("frequency", "mean"),
        avg_monetary=("monetary", "mean"),
    )
    g = g.reindex(list(SEGMENTS)).fillna(0.0)
    g["customers"] = g["customers"].astype(int)
    total_c, total_r = g["customers"].sum(), g["revenue"].sum()
    g["customer_share"] = (g["customers"] / total_c if total_c else 0.0).round(4)
    g["revenue_share"] = (g["revenue"] / total_r if total_r else 0.0).round(4)
    g["revenue"] = g["revenue"].round(2)
    g[["avg_recency_days", "avg_frequency", "avg_monetary"]] = g[
        ["avg_recency_days", "avg_frequency", "avg_monetary"]
    ].round(2)
    rules = RULES.groupby("segment", observed=True).apply(
        lambda d: "; ".join(f"R{r}xFM{f}" for r, f in zip(d["r_score"], d["fm_score"], strict=True)),
        include_groups=False,
    )
    g["rule"] = rules.reindex(g.index)
    g["action"] = [ACTIONS[s] for s in g.index]
    return g.rename_axis("segment").reset_index()
