"""The Dagster path: the analytics assets on a warehouse relation give the same tables as the CSV path on the
same data, the asset checks pass, and the assets sit downstream of the marts."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from analytics import io
from kernel.db import connect
from orchestration.defs.analytics.assets import ASSETS, AnalyticsSource
from orchestration.defs.analytics.checks import CHECKS
from orchestration.resources import MlflowResource, resources_from_settings

KEYS = {
    "rfm_customers": ["customer_id"],
    "rfm_segments": ["segment"],
    "cohort_retention": ["cohort_month", "months_since_first"],
    "customer_ltv": ["customer_id"],
    "recs_item_item": ["product_id", "rank"],
    "recs_content": ["product_id", "rank"],
    "recs_fbt": ["product_id", "rank"],
    "recs_personalized": ["customer_id", "rank"],
    "recs_evaluation": ["method"],
}


def test_assets_are_downstream_of_the_marts_and_checked():
    from orchestration.definitions import build_definitions

    graph = build_definitions(["analytics"]).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for table in KEYS:
        assert f"analytics/{table}" in keys
    parents = {p.to_user_string() for p in graph.get(dg.AssetKey(["analytics", "rfm_customers"])).parent_keys}
    assert {"marts/fct_transactions", "marts/fct_order_lines"} <= parents
    parents = {
        p.to_user_string() for p in graph.get(dg.AssetKey(["analytics", "recs_personalized"])).parent_keys
    }
    assert {"marts/fct_order_lines", "marts/dim_product", "analytics/rfm_customers"} <= parents
    checked = {c.asset_key.to_user_string() for c in graph.asset_check_keys}
    assert {
        "analytics/rfm_customers",
        "analytics/cohort_retention",
        "analytics/customer_ltv",
        "analytics/recs_item_item",
        "analytics/recs_fbt",
    } <= checked


def _load(conn, schema: str, shop) -> None:
    conn.execute(f'CREATE SCHEMA "{schema}"')
    conn.execute(
        f'CREATE TABLE "{schema}".lines (customer_id text, order_id text, order_time timestamptz, amount float8, '
        "product_id text, quantity float8)"
    )
    with conn.cursor().copy(
        f'COPY "{schema}".lines (customer_id, order_id, order_time, amount, product_id, quantity) FROM STDIN'
    ) as copy:
        for r in shop.lines.itertuples(index=False):
            copy.write_row(
                (
                    r.customer_id,
                    r.order_id,
                    r.order_time.isoformat() + "+00:00",
                    r.amount,
                    r.product_id,
                    r.quantity,
                )
            )
    p = shop.products
    conn.execute(
        f'CREATE TABLE "{schema}".products (product_id text, category text, brand text, name text, price float8, '
        "attributes jsonb, currency text, popularity float8)"
    )
    with conn.cursor().copy(f'COPY "{schema}".products FROM STDIN') as copy:
        for r in p.itertuples(index=False):
            copy.write_row(
                (
                    r.product_id,
                    r.category,
                    r.brand,
                    r.name,
                    r.price,
                    json.dumps(r.attributes),
                    r.currency,
                    r.popularity,
                )
            )
    conn.commit()


def _assert_same(name: str, db: pd.DataFrame, csv: pd.DataFrame) -> None:
    key = KEYS[name]
    assert sorted(db.columns) == sorted(csv.columns), name
    assert len(db) == len(csv), name
    db = db.sort_values(key).reset_index(drop=True)
    csv = csv.sort_values(key).reset_index(drop=True)[db.columns]
    for col in db.columns:
        a, b = db[col], csv[col]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            assert np.allclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9, equal_nan=True), (
                name,
                col,
            )
        elif col in ("first_order", "last_order"):
            assert (pd.to_datetime(a) == pd.to_datetime(b)).all(), (name, col)
        else:
            assert (a.astype(str) == b.astype(str)).all(), (name, col)


@pytest.mark.stack
@pytest.mark.slow
def test_dagster_path_equals_csv_path_and_checks_pass(shop, settings, tmp_path, capsys):
    from ecom.cli import main

    schema = f"analytics_test_{uuid.uuid4().hex[:8]}"
    resources = resources_from_settings(settings)
    with connect(settings) as conn:
        _load(conn, schema, shop)
    try:
        source = AnalyticsSource(
            lines_table=f"{schema}.lines",
            products_table=f"{schema}.products",
            target_schema=schema,
            holdout_days=60,
        )
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            resources={
                "postgres": resources["postgres"],
                "mlflow": resources["mlflow"],
                "analytics_source": source,
            },
        )
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert len(checks) == len(CHECKS)
        assert all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks if not c.passed]

        # the CSV path on the same rows, with the calibration end the assets derived from holdout_days=60
        csv = tmp_path / "history.csv"
        shop.lines.assign(order_time=shop.lines["order_time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")).to_csv(
            csv, index=False
        )
        products_csv = tmp_path / "products.csv"
        shop.products.to_csv(products_csv, index=False)
        with connect(settings) as conn:
            params = io.read_table(conn, schema, "clv_params").iloc[0]
        out = tmp_path / "out"
        code = main(
            [
                "analytics",
                "--from-csv",
                str(csv),
                "--out",
                str(out),
                "--date-col",
                "order_time",
                "--product-col",
                "product_id",
                "--quantity-col",
                "quantity",
                "--order-col",
                "order_id",
                "--products-csv",
                str(products_csv),
                "--calibration-end",
                params["fitted_through"],
                "--no-mlflow",
            ]
        )
        assert code == 0, capsys.readouterr().err
        with connect(settings) as conn:
            for name in KEYS:
                db = io.read_table(conn, schema, name)
                file = pd.read_csv(out / f"{name}.csv", dtype={"rfm_code": str, "cohort_month": str})
                _assert_same(name, db, file)
        file_params = json.loads((out / "clv_params.json").read_text())
        for k in ("r", "alpha", "a", "b", "p", "q", "v"):
            assert float(params[k]) == pytest.approx(file_params[k], rel=1e-9), k
        assert params["mlflow_run_id"]

        # MLflow down: the lifetime-value refresh still writes its tables (a warning, no run id)
        m = settings.mlflow
        down = MlflowResource(
            tracking_uri="http://127.0.0.1:9",  # discard port: nothing answers
            model_name=m.model_name,
            champion_alias=m.champion_alias,
            experiment=m.experiment,
        )
        again = dg.materialize(
            ASSETS,
            selection=[dg.AssetKey(["analytics", "customer_ltv"]), dg.AssetKey(["analytics", "clv_params"])],
            resources={"postgres": resources["postgres"], "mlflow": down, "analytics_source": source},
        )
        assert again.success
        with connect(settings) as conn:
            assert io.read_table(conn, schema, "clv_params").iloc[0]["mlflow_run_id"] in ("", None)
    finally:
        with connect(settings, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_migration_declares_the_columns_the_refresh_writes(shop_result):
    """kernel/sql/050_analytics.sql creates the tables empty before the first refresh: same columns, same order."""
    import re
    from pathlib import Path

    import kernel.db

    sql = (Path(kernel.db.SQL_DIR) / "050_analytics.sql").read_text()
    declared = {
        m.group(1): re.findall(r'^\s+"(\w+)"', m.group(2), flags=re.M)
        for m in re.finditer(r"CREATE TABLE IF NOT EXISTS analytics\.(\w+) \((.*?)\n\);", sql, flags=re.S)
    }
    for name, table in shop_result.tables.items():
        assert declared.get(name) == list(table.columns), name
    assert "clv_params" in declared
