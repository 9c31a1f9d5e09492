"""RFM scores, the 11 segments and the actionable-insights table."""

from __future__ import annotations

import pandas as pd

from analytics import rfm


def _lines(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "order_time", "amount"])
    df["order_time"] = pd.to_datetime(df["order_time"])
    df["order_id"] = [f"o{i}" for i in range(len(df))]
    return df


def test_grid_maps_every_cell_to_exactly_one_of_the_11_segments():
    assert len(rfm.RULES) == 25
    assert set(rfm.RULES["segment"]) == set(rfm.SEGMENTS)
    assert len(rfm.SEGMENTS) == 11
    assert set(rfm.ACTIONS) == set(rfm.SEGMENTS)
    assert not rfm.RULES.duplicated(["r_score", "fm_score"]).any()


def test_extreme_customers_get_the_extreme_segments():
    rows = []
    # ten customers with increasing recency, frequency and spend: c9 is best on everything, c0 worst
    for i in range(10):
        for k in range(i + 1):
            rows.append((f"c{i}", f"2024-0{1 + i // 2}-{10 + k:02d}", 10.0 * (i + 1)))
    scores = rfm.rfm_scores(_lines(rows)).set_index("customer_id")
    assert scores.loc["c9", "segment"] == "Champions"
    assert scores.loc["c9", "rfm_code"] == "555"
    assert scores.loc["c0", "segment"] == "Lost"
    assert scores.loc["c0", "rfm_code"] == "111"
    # a big spender who stopped buying long ago is one we cannot lose
    rows += [("whale", f"2024-01-{d:02d}", 5000.0) for d in range(1, 20)]
    scores = rfm.rfm_scores(_lines(rows)).set_index("customer_id")
    assert scores.loc["whale", "segment"] == "Can't Lose Them"


def test_ties_share_a_score_and_every_customer_is_in_one_segment(shop_result):
    scores = shop_result.tables["rfm_customers"]
    assert scores["customer_id"].is_unique
    assert scores["segment"].isin(rfm.SEGMENTS).all()
    # customers with the same frequency always get the same F score
    assert (scores.groupby("frequency")["f_score"].nunique() == 1).all()
    for col in ("r_score", "f_score", "m_score", "fm_score"):
        assert scores[col].between(1, 5).all()


def test_segment_summary_adds_up_and_has_an_action_per_segment(shop_result):
    scores, summary = shop_result.tables["rfm_customers"], shop_result.tables["rfm_segments"]
    assert list(summary["segment"]) == list(rfm.SEGMENTS)
    assert summary["customers"].sum() == len(scores)
    assert abs(summary["revenue"].sum() - scores["monetary"].sum()) < 0.05
    assert summary["action"].str.len().gt(20).all()
    assert abs(summary["customer_share"].sum() - 1) < 1e-3


def test_simulated_high_value_customers_land_in_high_value_segments(shop, shop_result):
    """The simulator's value tiers (bronze < silver < gold < platinum) drive purchase rate and spend."""
    seg = shop_result.tables["rfm_customers"].merge(
        shop.customers[["customer_id", "value_tier"]], on="customer_id"
    )
    high = seg["segment"].isin(["Champions", "Loyal Customers", "Can't Lose Them"])
    share = high.groupby(seg["value_tier"]).mean()
    assert share["platinum"] > 0.5
    assert share["platinum"] > 3 * share["bronze"]
    assert share["gold"] > share["silver"] > share["bronze"]
    champions_tier = seg.loc[seg["segment"] == "Champions", "value_tier"].value_counts(normalize=True)
    assert champions_tier.get("bronze", 0) < 0.5
