"""Monthly acquisition cohorts: customer and revenue retention."""

from __future__ import annotations

import pandas as pd

from analytics.cohorts import cohort_retention, retention_matrix


def test_known_cohorts():
    rows = [
        ("a", "2024-01-05", 100.0),
        ("a", "2024-02-03", 50.0),
        ("b", "2024-01-20", 100.0),
        ("b", "2024-03-01", 300.0),
        ("c", "2024-02-10", 10.0),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "order_time", "amount"])
    df["order_time"] = pd.to_datetime(df["order_time"])
    df["order_id"] = [f"o{i}" for i in range(len(df))]
    c = cohort_retention(df).set_index(["cohort_month", "months_since_first"])
    assert c.loc[("2024-01", 0), "cohort_size"] == 2
    assert c.loc[("2024-01", 1), "customer_retention"] == 0.5
    assert c.loc[("2024-01", 2), "customer_retention"] == 0.5
    assert c.loc[("2024-01", 2), "revenue_retention"] == 1.5  # 300 vs 200 in month 0
    assert c.loc[("2024-02", 1), "active_customers"] == 0  # gaps are zeros, not missing
    assert c.loc[("2024-01", 2), "cumulative_revenue_per_customer"] == 275.0
    assert ("2024-02", 2) not in c.index  # no month after the data ends


def test_retention_bounds_on_the_simulated_shop(shop_result):
    c = shop_result.tables["cohort_retention"]
    assert c["customer_retention"].between(0, 1).all()
    assert (c.loc[c["months_since_first"] == 0, "customer_retention"] == 1).all()
    scores = shop_result.tables["rfm_customers"]
    assert c.loc[c["months_since_first"] == 0, "cohort_size"].sum() == len(scores)
    wide = retention_matrix(c)
    assert len(wide) == c["cohort_month"].nunique()
