"""Cohorts: customers grouped by the calendar month of their first purchase, followed month by month.

Customer retention in month k = customers of the cohort who ordered in month k / cohort size (month 0 is 100 %).
Revenue retention in month k = cohort revenue in month k / cohort revenue in month 0 (can exceed 100 % when
customers spend more later; it is a ratio of money, not of people).
"""

from __future__ import annotations

import pandas as pd

from analytics.rfm import customer_orders


def _month_index(ts: pd.Series) -> pd.Series:
    return ts.dt.year * 12 + ts.dt.month - 1


def cohort_retention(lines: pd.DataFrame) -> pd.DataFrame:
    """Long table: cohort_month, months_since_first, cohort_size, active_customers, customer_retention,
    revenue, revenue_retention, cumulative_revenue_per_customer."""
    orders = customer_orders(lines)
    first = orders.groupby("customer_id", observed=True)["order_time"].min().rename("first_time")
    orders = orders.join(first, on="customer_id")
    cohort_idx = _month_index(orders["first_time"])
    orders["cohort_month"] = orders["first_time"].dt.to_period("M").dt.to_timestamp()
    orders["months_since_first"] = (_month_index(orders["order_time"]) - cohort_idx).astype(int)

    sizes = orders.groupby("cohort_month", observed=True)["customer_id"].nunique().rename("cohort_size")
    cell = orders.groupby(["cohort_month", "months_since_first"], observed=True).agg(
        active_customers=("customer_id", "nunique"), revenue=("amount", "sum")
    )
    # fill the full triangle: a month with nobody active is 0 %, not missing (up to the last month in the data)
    last_idx = int(_month_index(orders["order_time"]).max())
    full = [(c, k) for c in sizes.index for k in range(0, last_idx - (c.year * 12 + c.month - 1) + 1)]
    cell = cell.reindex(pd.MultiIndex.from_tuples(full, names=cell.index.names), fill_value=0).reset_index()
    cell = cell.join(sizes, on="cohort_month")
    month0 = cell[cell["months_since_first"] == 0].set_index("cohort_month")["revenue"]
    cell["customer_retention"] = (cell["active_customers"] / cell["cohort_size"]).round(6)
    cell["revenue_retention"] = (cell["revenue"] / cell["cohort_month"].map(month0)).round(6)
    cell = cell.sort_values(["cohort_month", "months_since_first"]).reset_index(drop=True)
    cell["cumulative_revenue_per_customer"] = (
        cell.groupby("cohort_month", observed=True)["revenue"].cumsum() / cell["cohort_size"]
    ).round(4)
    cell["revenue"] = cell["revenue"].round(2)
    cell["cohort_month"] = cell["cohort_month"].dt.strftime("%Y-%m")
    return cell[
        [
            "cohort_month",
            "months_since_first",
            "cohort_size",
            "active_customers",
            "customer_retention",
            "revenue",
            "revenue_retention",
            "cumulative_revenue_per_customer",
        ]
    ]


def retention_matrix(cohorts: pd.DataFrame, value: str = "customer_retention") -> pd.DataFrame:
    """Wide view (cohort_month x months_since_first) of one column, for files and eyeballing."""
    return (
        cohorts.pivot(index="cohort_month", columns="months_since_first", values=value)
        .rename_axis(columns=None)
        .reset_index()
    )
