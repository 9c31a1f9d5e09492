"""Asset checks on the analytics tables, run in SQL against what was just written.

Blocking where a bad table must not feed the next step: the segments feed the recommendations and the
lifetime-value table, so a broken segmentation stops them.
"""

from __future__ import annotations

import dagster as dg

from analytics.rfm import SEGMENTS
from orchestration.defs.analytics.assets import AnalyticsSource, key
from orchestration.resources import PostgresResource


def _one(pg: PostgresResource, sql: str, params: tuple = ()) -> tuple:
    with pg.connect() as conn:
        return conn.execute(sql, params).fetchone()


@dg.asset_check(
    asset=key("rfm_customers"), blocking=True, description="Every customer is in exactly one segment."
)
def every_customer_in_one_segment(
    postgres: PostgresResource, analytics_source: AnalyticsSource
) -> dg.AssetCheckResult:
    s = analytics_source.target_schema
    rows, customers, unnamed = _one(
        postgres,
        f"SELECT count(*), count(DISTINCT customer_id), count(*) FILTER (WHERE segment IS NULL OR NOT "
        f"(segment = ANY(%s))) FROM {s}.rfm_customers",
        (list(SEGMENTS),),
    )
    (in_summary,) = _one(postgres, f"SELECT coalesce(sum(customers), 0) FROM {s}.rfm_segments")
    ok = rows == customers and unnamed == 0 and int(in_summary) == customers
    return dg.AssetCheckResult(
        passed=bool(ok),
        metadata={
            "rows": rows,
            "distinct_customers": customers,
            "rows_without_a_known_segment": unnamed,
            "customers_in_segment_summary": int(in_summary),
        },
    )


@dg.asset_check(
    asset=key("cohort_retention"), description="Customer retention is within 0..100 %, 100 % in month 0."
)
def retention_at_most_100_percent(
    postgres: PostgresResource, analytics_source: AnalyticsSource
) -> dg.AssetCheckResult:
    s = analytics_source.target_schema
    above, below, month0_off, max_ret = _one(
        postgres,
        f"SELECT count(*) FILTER (WHERE customer_retention > 1), count(*) FILTER (WHERE customer_retention < 0), "
        f"count(*) FILTER (WHERE months_since_first = 0 AND customer_retention <> 1), max(customer_retention) "
        f"FROM {s}.cohort_retention",
    )
    return dg.AssetCheckResult(
        passed=above == 0 and below == 0 and month0_off == 0,
        metadata={
            "cells_above_100_percent": above,
            "cells_below_0": below,
            "month0_cells_not_100_percent": month0_off,
            "max_retention": float(max_ret or 0),
        },
    )


@dg.asset_check(
    asset=key("customer_ltv"), description="Lifetime values and purchases >= 0, P(alive) in [0, 1]."
)
def lifetime_value_non_negative(
    postgres: PostgresResource, analytics_source: AnalyticsSource
) -> dg.AssetCheckResult:
    s = analytics_source.target_schema
    negative, bad_p, nulls, min_v = _one(
        postgres,
        "SELECT count(*) FILTER (WHERE predicted_value_90d < 0 OR predicted_value_365d < 0 "
        "OR expected_purchases_90d < 0 OR expected_purchases_365d < 0), "
        "count(*) FILTER (WHERE p_alive < 0 OR p_alive > 1), "
        "count(*) FILTER (WHERE predicted_value_365d IS NULL OR p_alive IS NULL OR 'NaN'::float8 IN "
        "(predicted_value_365d, p_alive)), "
        f"min(predicted_value_365d) FROM {s}.customer_ltv",
    )
    return dg.AssetCheckResult(
        passed=negative == 0 and bad_p == 0 and nulls == 0,
        metadata={
            "negative_rows": negative,
            "p_alive_out_of_range": bad_p,
            "null_or_nan_rows": nulls,
            "min_value_365d": float(min_v or 0),
        },
    )


def _self_recommendation_check(table: str, other_col: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key(table),
        name=f"{table}_never_recommends_the_item_itself",
        description=f"No row of {table} recommends a product for itself.",
    )
    def _check(postgres: PostgresResource, analytics_source: AnalyticsSource) -> dg.AssetCheckResult:
        s = analytics_source.target_schema
        (selfrecs,) = _one(postgres, f"SELECT count(*) FROM {s}.{table} WHERE product_id = {other_col}")
        return dg.AssetCheckResult(passed=selfrecs == 0, metadata={"self_recommendations": selfrecs})

    return _check


@dg.asset_check(
    asset=key("recs_personalized"),
    description="Each customer gets distinct products, ranked 1..N without gaps.",
)
def personalized_recommendations_distinct(
    postgres: PostgresResource, analytics_source: AnalyticsSource
) -> dg.AssetCheckResult:
    s = analytics_source.target_schema
    dupes, bad_rank = _one(
        postgres,
        f"SELECT (SELECT count(*) FROM (SELECT 1 FROM {s}.recs_personalized GROUP BY customer_id, product_id "
        f"HAVING count(*) > 1) d), (SELECT count(*) FROM (SELECT customer_id FROM {s}.recs_personalized "
        f"GROUP BY customer_id HAVING max(rank) <> count(*)) r)",
    )
    return dg.AssetCheckResult(
        passed=dupes == 0 and bad_rank == 0,
        metadata={"duplicate_pairs": dupes, "customers_with_rank_gaps": bad_rank},
    )


CHECKS = [
    every_customer_in_one_segment,
    retention_at_most_100_percent,
    lifetime_value_non_negative,
    _self_recommendation_check("recs_item_item", "similar_product_id"),
    _self_recommendation_check("recs_content", "similar_product_id"),
    _self_recommendation_check("recs_fbt", "fbt_product_id"),
    personalized_recommendations_distinct,
]
