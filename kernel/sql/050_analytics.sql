-- Customer-analytics tables (schema analytics), created empty so dashboards and dbt docs can reference them
-- before the first refresh. The Dagster assets (orchestration/defs/analytics) replace each table atomically on
-- every refresh (new table + drop/rename in one transaction), with these same columns. Idempotent.

CREATE TABLE IF NOT EXISTS analytics.rfm_customers (
    "customer_id" text,
    "first_order" timestamp without time zone,
    "last_order" timestamp without time zone,
    "recency_days" double precision,
    "frequency" bigint,
    "monetary" double precision,
    "r_score" bigint,
    "f_score" bigint,
    "m_score" bigint,
    "fm_score" bigint,
    "rfm_code" text,
    "segment" text
);

CREATE TABLE IF NOT EXISTS analytics.rfm_segments (
    "segment" text,
    "customers" bigint,
    "revenue" double precision,
    "avg_recency_days" double precision,
    "avg_frequency" double precision,
    "avg_monetary" double precision,
    "customer_share" double precision,
    "revenue_share" double precision,
    "rule" text,
    "action" text
);

CREATE TABLE IF NOT EXISTS analytics.cohort_retention (
    "cohort_month" text,
    "months_since_first" bigint,
    "cohort_size" bigint,
    "active_customers" bigint,
    "customer_retention" double precision,
    "revenue" double precision,
    "revenue_retention" double precision,
    "cumulative_revenue_per_customer" double precision
);

CREATE TABLE IF NOT EXISTS analytics.customer_ltv (
    "customer_id" text,
    "repeat_purchases" double precision,
    "recency_days" double precision,
    "age_days" double precision,
    "monetary_value" double precision,
    "p_alive" double precision,
    "expected_avg_spend" double precision,
    "expected_purchases_90d" double precision,
    "predicted_value_90d" double precision,
    "expected_purchases_365d" double precision,
    "predicted_value_365d" double precision,
    "segment" text
);

CREATE TABLE IF NOT EXISTS analytics.recs_item_item (
    "product_id" text,
    "similar_product_id" text,
    "similarity" double precision,
    "rank" bigint
);

CREATE TABLE IF NOT EXISTS analytics.recs_content (
    "product_id" text,
    "similar_product_id" text,
    "similarity" double precision,
    "rank" bigint
);

CREATE TABLE IF NOT EXISTS analytics.recs_fbt (
    "product_id" text,
    "fbt_product_id" text,
    "support" double precision,
    "confidence" double precision,
    "lift" double precision,
    "order_count" bigint,
    "rank" bigint
);

CREATE TABLE IF NOT EXISTS analytics.recs_personalized (
    "customer_id" text,
    "rank" bigint,
    "product_id" text,
    "score" double precision,
    "source" text
);

CREATE TABLE IF NOT EXISTS analytics.recs_evaluation (
    "method" text,
    "k" bigint,
    "customers" bigint,
    "hit_rate" double precision,
    "precision" double precision,
    "recall" double precision,
    "catalog_coverage" double precision,
    "catalog_size" bigint
);

CREATE TABLE IF NOT EXISTS analytics.clv_params (
    "model" text,
    "time_unit" text,
    "r" double precision,
    "alpha" double precision,
    "a" double precision,
    "b" double precision,
    "spend_model" text,
    "p" double precision,
    "q" double precision,
    "v" double precision,
    "fitted_through" text,
    "observation_end" text,
    "customers" bigint,
    "holdout_calibration_end" text,
    "holdout_holdout_days" double precision,
    "holdout_customers" double precision,
    "holdout_purchases_mae" double precision,
    "holdout_purchases_rmse" double precision,
    "holdout_purchases_total_predicted" double precision,
    "holdout_purchases_total_actual" double precision,
    "holdout_purchases_total_pct_error" double precision,
    "holdout_value_mae" double precision,
    "holdout_value_total_pct_error" double precision,
    "holdout_purchases_corr" double precision,
    "mlflow_run_id" text
);
