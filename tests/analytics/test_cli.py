"""`ecom analytics --from-csv`: any history in, the same outputs as files; bad input gets one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ECOM = [sys.executable, "-m", "ecom.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a child process (what a user types)."""
    return subprocess.run([*ECOM, "analytics", *args], capture_output=True, text=True, timeout=300)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """The same CLI in-process (argparse, handler, one-line error printing): no interpreter start per case."""
    from ecom.cli import main

    code = main(["analytics", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_shop_csv(shop, path: Path) -> None:
    """The simulated history under foreign column names (as a shop's export might have them)."""
    df = shop.lines.rename(
        columns={
            "customer_id": "Customer ID",
            "order_id": "Invoice",
            "order_time": "InvoiceDate",
            "amount": "Revenue",
            "product_id": "StockCode",
            "quantity": "Quantity",
        }
    )
    df["InvoiceDate"] = df["InvoiceDate"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    df.to_csv(path, index=False)


MAPPING = [
    "--customer-col",
    "Customer ID",
    "--date-col",
    "InvoiceDate",
    "--amount-col",
    "Revenue",
    "--product-col",
    "StockCode",
    "--quantity-col",
    "Quantity",
    "--order-col",
    "Invoice",
]


def test_csv_path_writes_every_output_and_matches_the_library(shop, shop_result, tmp_path):
    csv = tmp_path / "history.csv"
    write_shop_csv(shop, csv)
    products = tmp_path / "products.csv"
    shop.products.to_csv(products, index=False)
    cal = shop_result.params["clv_validation"]["calibration_end"]
    out = tmp_path / "out"
    r = run_cli(
        "--from-csv",
        str(csv),
        "--out",
        str(out),
        "--calibration-end",
        cal,
        "--products-csv",
        str(products),
        "--no-mlflow",
        *MAPPING,
    )
    assert r.returncode == 0, r.stderr
    assert "Champions=" in r.stdout and "BG/NBD" in r.stdout
    for name in (
        "rfm_customers",
        "rfm_segments",
        "cohort_retention",
        "customer_ltv",
        "recs_item_item",
        "recs_content",
        "recs_fbt",
        "recs_personalized",
        "recs_evaluation",
    ):
        assert (out / f"{name}.csv").is_file(), name
    params = json.loads((out / "clv_params.json").read_text())
    assert params["model"] == "bg_nbd" and params["time_unit"] == "D"
    for k in ("r", "alpha", "a", "b", "p", "q", "v"):
        assert params[k] == pytest.approx(shop_result.params["clv_params"][k], rel=1e-9), k
    assert params["fitted_through"] == cal
    validation = json.loads((out / "clv_validation.json").read_text())
    assert validation["purchases_mae"] == pytest.approx(shop_result.params["clv_validation"]["purchases_mae"])
    rfm = pd.read_csv(out / "rfm_customers.csv", dtype={"rfm_code": str})
    expected = shop_result.tables["rfm_customers"]
    assert rfm.set_index("customer_id")["segment"].equals(expected.set_index("customer_id")["segment"])


def test_order_level_csv_without_products(tmp_path, capsys):
    """The minimal input: customer, date, amount. No recommendations then, everything else."""
    rows = []
    for c in range(60):
        for k in range(1 + c % 5):
            rows.append(
                {"cust": f"c{c}", "day": f"2024-{1 + (c + 2 * k) % 12:02d}-{1 + k:02d}", "amt": 10 + c}
            )
    csv = tmp_path / "orders.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "out"
    code, _, err = run_main(
        capsys,
        "--from-csv",
        str(csv),
        "--out",
        str(out),
        "--customer-col",
        "cust",
        "--date-col",
        "day",
        "--amount-col",
        "amt",
        "--no-mlflow",
    )
    assert code == 0, err
    assert (out / "customer_ltv.csv").is_file() and (out / "clv_params.json").is_file()
    assert not (out / "recs_personalized.csv").exists()
    assert len(pd.read_csv(out / "rfm_customers.csv")) == 60


@pytest.mark.parametrize(
    ("content", "flags", "expected"),
    [
        ("cust,order_date,amount\nc1,2024-01-01,5\n", [], "missing column 'customer_id' (--customer-col)"),
        (
            "customer_id,order_date,amount\nc1,2024-01-01,5\nc2,2024-02-30,5\nc3,soon,1\n",
            [],
            "unparseable date in column 'order_date' at rows 3, 4",
        ),
        (
            "customer_id,order_date,amount\nc1,2024-01-01,5\nc2,2024-01-02,-3\n",
            [],
            "negative amount in column 'amount' at row 3",
        ),
        (
            "customer_id,order_date,amount\nc1,2024-01-01,five\n",
            [],
            "non-numeric amount in column 'amount' at row 2",
        ),
        (
            "customer_id,order_date,amount,sku\nc1,2024-01-01,5,\n",
            ["--product-col", "sku"],
            "empty product id in column 'sku' at row 2",
        ),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(tmp_path, capsys, content, flags, expected):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    code, _, err = run_main(
        capsys, "--from-csv", str(csv), "--out", str(tmp_path / "out"), "--no-mlflow", *flags
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected in lines[0]
    assert not (tmp_path / "out").exists()


def test_calibration_end_outside_the_history_is_rejected(tmp_path, capsys):
    csv = tmp_path / "h.csv"
    csv.write_text("customer_id,order_date,amount\nc1,2024-01-01,5\nc1,2024-02-01,5\n")
    code, _, err = run_main(
        capsys,
        "--from-csv",
        str(csv),
        "--out",
        str(tmp_path / "o"),
        "--calibration-end",
        "2025-01-01",
        "--no-mlflow",
    )
    assert code == 2
    assert "--calibration-end 2025-01-01 must be" in err


@pytest.mark.stack
def test_csv_run_logs_holdout_errors_and_recommender_metrics_to_mlflow(shop, settings, tmp_path, capsys):
    import mlflow

    csv = tmp_path / "history.csv"
    write_shop_csv(shop, csv)
    code, out, err = run_main(
        capsys,
        "--from-csv",
        str(csv),
        "--out",
        str(tmp_path / "out"),
        "--calibration-end",
        "2026-05-01",
        *MAPPING,
    )
    assert code == 0, err
    run_id = next(line for line in out.splitlines() if line.startswith("logged to MLflow")).rsplit(" ", 1)[-1]
    run = mlflow.MlflowClient(tracking_uri=settings.mlflow.tracking_uri).get_run(run_id)
    m = run.data.metrics
    assert "clv_holdout.purchases_mae" in m and m["clv_holdout.purchases_mae"] >= 0
    assert 0 <= m["recs.blend.hit_rate_at_10"] <= 1
    assert "recs.popularity_baseline.precision_at_10" in m
    assert run.data.params["clv.model"] == "bg_nbd"
    assert run.data.params["clv.fitted_through"] == "2026-05-01"
