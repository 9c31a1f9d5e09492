"""Customer analytics as Dagster assets downstream of the marts: RFM segments, cohorts, lifetime value and
recommendations, each written to the `analytics` schema by an atomic table swap.

The computations are the pure functions of the `analytics` package (the same code path as
`ecom analytics --from-csv`); these assets only read the warehouse, call them and write the tables.
"""

import dagster as dg
import pandas as pd
from dagster import (
    AssetExecutionContext,
)  # no `from __future__ import annotations` here: Dagster checks the hint

from analytics import cohorts, io, pipeline, recommend, rfm
from orchestration.resources import MlflowResource, PostgresResource

GROUP = "analytics"
OWNERS = ["team:analytics"]
MARTS_LINES = dg.AssetKey(["marts", "fct_order_lines"])
MARTS_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])
MARTS_PRODUCTS = dg.AssetKey(["marts", "dim_product"])


def key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["analytics", table])


class AnalyticsSource(dg.ConfigurableResource):
    """Where the analytics assets read and write. Defaults: the batch layer's marts (fct_order_lines,
    dim_product, dim_customer) and the `analytics` schema; tests point them at their own relations."""

    lines_table: str = ""  # any relation with customer_id, order_id, order_time, amount, product_id, quantity
    products_table: str = ""  # default marts.dim_product, else reference.products
    # customers who get recommendations even without purchases (cold starts); default: marts.dim_customer
    # (else reference.customers) when reading the warehouse, none when lines_table is given
    customers_table: str = ""
    target_schema: str = "analytics"
    holdout_days: int = 90  # lifetime value: fit on all but the last N days, validate on them
    log_to_mlflow: bool = True

    def lines(self, pg: PostgresResource) -> tuple[pd.DataFrame, str]:
        with pg.connect() as conn:
            df, src = io.read_lines_from_db(conn, self.lines_table or None)
        if df.empty:
            raise dg.Failure(
                f"no transactions in {src}; generate and land some (ecom generate, ecom land, ecom batch) first"
            )
        return io.compact_ids(df), src

    def products(self, pg: PostgresResource) -> pd.DataFrame | None:
        with pg.connect() as conn:
            return io.read_products_from_db(conn, self.products_table or None)

    def write(self, pg: PostgresResource, table: str, df: pd.DataFrame, comment: str) -> dg.MaterializeResult:
        with pg.connect() as conn:
            n = io.replace_table(conn, self.target_schema, table, df, comment)
        return dg.MaterializeResult(
            asset_key=key(table),
            metadata={
                "dagster/row_count": n,
                "dagster/relation_identifier": f"{self.target_schema}.{table}",
            },
        )

    def customers(self, pg: PostgresResource) -> pd.Index | None:
        with pg.connect() as conn:
            return io.read_customer_ids_from_db(conn, self.customers_table or None, auto=not self.lines_table)

    def read(self, pg: PostgresResource, table: str) -> pd.DataFrame:
        with pg.connect() as conn:
            return io.read_table(conn, self.target_schema, table)


def _log(context, params: dict, evaluation, source: str, tracking_uri: str, run_name: str) -> str:
    """Log to MLflow; an unreachable server is a warning, not a failed refresh (the tables matter more)."""
    from analytics import tracking
    from kernel.errors import EcomError

    try:
        return tracking.log_refresh(
            params, evaluation, source=source, tracking_uri=tracking_uri, run_name=run_name
        )
    except EcomError as exc:
        context.log.warning(f"not logged to MLflow: {exc}")
        return ""


def _spec(table: str, description: str, deps: list[dg.AssetKey]) -> dg.AssetSpec:
    return dg.AssetSpec(
        key(table),
        deps=deps,
        description=description,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "postgres"},
    )


@dg.multi_asset(
    specs=[
        _spec(
            "rfm_customers",
            "One row per customer: recency, frequency, monetary, their quintile scores and the RFM segment.",
            [MARTS_TRANSACTIONS, MARTS_LINES],
        ),
        _spec(
            "rfm_segments",
            "The actionable-insights table: size, revenue and recommended action of each of the 11 RFM segments.",
            [MARTS_TRANSACTIONS, MARTS_LINES],
        ),
    ],
    name="rfm",
)
def rfm_assets(context: AssetExecutionContext, postgres: PostgresResource, analytics_source: AnalyticsSource):
    lines, src = analytics_source.lines(postgres)
    scores, segments = pipeline.compute_rfm(lines)
    context.log.info(f"RFM on {len(lines)} lines / {len(scores)} customers from {src}")
    yield analytics_source.write(
        postgres, "rfm_customers", scores, f"RFM scores and segment per customer ({src})"
    )
    yield analytics_source.write(postgres, "rfm_segments", segments, "RFM segments: size, revenue, action")


@dg.asset(
    key=key("cohort_retention"),
    deps=[MARTS_TRANSACTIONS, MARTS_LINES],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "postgres"},
    description="Monthly acquisition cohorts x months since first purchase: customer and revenue retention.",
)
def cohort_retention(postgres: PostgresResource, analytics_source: AnalyticsSource) -> dg.MaterializeResult:
    lines, src = analytics_source.lines(postgres)
    table = cohorts.cohort_retention(lines)
    return analytics_source.write(postgres, "cohort_retention", table, f"Cohort retention ({src})")


@dg.multi_asset(
    specs=[
        _spec(
            "customer_ltv",
            "Per customer: BG/NBD probability alive and expected purchases, Gamma-Gamma spend, predicted value "
            "over 90 and 365 days.",
            [MARTS_TRANSACTIONS, MARTS_LINES, key("rfm_customers")],
        ),
        _spec(
            "clv_params",
            "Fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, v) parameters with the hold-out errors.",
            [MARTS_TRANSACTIONS, MARTS_LINES],
        ),
    ],
    name="lifetime_value",
)
def lifetime_value_assets(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    mlflow: MlflowResource,
    analytics_source: AnalyticsSource,
):
    lines, src = analytics_source.lines(postgres)
    last_day = lines["order_time"].max().normalize()
    calibration_end = last_day - pd.Timedelta(days=analytics_source.holdout_days)
    if calibration_end <= lines["order_time"].min().normalize():
        calibration_end = None  # history shorter than the hold-out: fit on everything, no validation
    scores = analytics_source.read(postgres, "rfm_customers")
    ltv, params, validation = pipeline.compute_ltv(lines, calibration_end, scores)
    row = {**params, **({f"holdout_{k}": v for k, v in validation.items()} if validation else {})}
    context.log.info(f"lifetime value: {params}; validation: {validation}")
    if analytics_source.log_to_mlflow:
        row["mlflow_run_id"] = _log(
            context,
            {"clv_params": params, **({"clv_validation": validation} if validation else {})},
            None,
            f"dagster:{src}",
            mlflow.tracking_uri,
            "clv_refresh",
        )
    yield analytics_source.write(postgres, "customer_ltv", ltv, f"Customer lifetime value ({src})")
    yield analytics_source.write(
        postgres, "clv_params", pd.DataFrame([row]), "Fitted lifetime-value parameters"
    )


@dg.multi_asset(
    specs=[
        _spec(
            "recs_item_item",
            "Item-item collaborative filtering: top similar products by cosine.",
            [MARTS_LINES],
        ),
        _spec(
            "recs_content",
            "Content-based similar products (category, brand, price band, attributes).",
            [MARTS_PRODUCTS],
        ),
        _spec(
            "recs_fbt",
            "Frequently bought together: pair rules with support, confidence, lift.",
            [MARTS_LINES],
        ),
        _spec(
            "recs_personalized",
            "Top-10 products per customer blending CF, content and FBT, segment-popularity fallback.",
            [MARTS_LINES, MARTS_PRODUCTS, key("rfm_customers")],
        ),
        _spec(
            "recs_evaluation",
            "Offline evaluation (last basket held out): hit rate, precision, recall @10, catalog coverage vs "
            "a popularity baseline.",
            [MARTS_LINES, MARTS_PRODUCTS],
        ),
    ],
    name="recommendations",
)
def recommendation_assets(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    mlflow: MlflowResource,
    analytics_source: AnalyticsSource,
):
    lines, src = analytics_source.lines(postgres)
    lines = lines[lines["product_id"].notna()] if "product_id" in lines.columns else lines.iloc[0:0]
    products = analytics_source.products(postgres)
    scores = analytics_source.read(postgres, "rfm_customers")
    cfg = recommend.RecConfig()
    tables = recommend.recommendation_tables(
        lines, products, scores, cfg, all_customers=analytics_source.customers(postgres)
    )
    tables["recs_evaluation"] = recommend.evaluate(lines, products, lambda train: rfm.rfm_scores(train), cfg)
    if "recs_content" not in tables:  # no catalogue: keep the table's shape, empty
        tables["recs_content"] = pd.DataFrame(
            columns=["product_id", "similar_product_id", "similarity", "rank"]
        )
    context.log.info("recommendation evaluation:\n" + tables["recs_evaluation"].to_string(index=False))
    if analytics_source.log_to_mlflow:
        _log(context, {}, tables["recs_evaluation"], f"dagster:{src}", mlflow.tracking_uri, "recs_refresh")
    for name in ("recs_item_item", "recs_content", "recs_fbt", "recs_personalized", "recs_evaluation"):
        yield analytics_source.write(postgres, name, tables[name], f"Recommendations: {name} ({src})")


ASSETS = [rfm_assets, cohort_retention, lifetime_value_assets, recommendation_assets]
ANALYTICS_TABLES = [*pipeline.TABLES, "clv_params"]
