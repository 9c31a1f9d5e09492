"""`ecom analytics`: RFM segments, cohorts, lifetime value and recommendations for any purchase history CSV."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from kernel.errors import EcomError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this room's sub-commands to the `ecom` parser."""
    p = subparsers.add_parser(
        "analytics",
        help="customer analytics (RFM, cohorts, lifetime value, recommendations) from a CSV history",
        description="Compute RFM segments, cohort retention, BG/NBD + Gamma-Gamma lifetime value and, when the "
        "CSV has product ids, recommendations; write them as files in --out. The same computation runs as "
        "Dagster assets (group 'analytics') on the warehouse.",
    )
    p.add_argument(
        "--from-csv", required=True, metavar="FILE", help="purchase history: one row per order or line"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the output CSV/JSON files")
    p.add_argument(
        "--calibration-end",
        metavar="DATE",
        help="fit lifetime value on orders up to this date and validate on the rest (hold-out errors in "
        "clv_validation.json and MLflow)",
    )
    p.add_argument("--customer-col", default="customer_id", help="customer id column (default: customer_id)")
    p.add_argument("--date-col", default="order_date", help="order date/time column (default: order_date)")
    p.add_argument("--amount-col", default="amount", help="revenue column, >= 0 (default: amount)")
    p.add_argument("--product-col", default=None, help="product id column (enables recommendations)")
    p.add_argument("--quantity-col", default=None, help="quantity column (optional, with --product-col)")
    p.add_argument("--order-col", default=None, help="order id column (default: customer + timestamp)")
    p.add_argument(
        "--products-csv", default=None, metavar="FILE", help="product attributes (content similarity)"
    )
    p.add_argument(
        "--mlflow", action=argparse.BooleanOptionalAction, default=True, help="log errors/metrics to MLflow"
    )
    p.add_argument("--no-evaluation", action="store_true", help="skip the offline recommender evaluation")
    p.set_defaults(func=run_analytics)


def _parse_date(value: str | None, flag: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except ValueError as exc:
        raise EcomError(f"{flag} '{value}' is not a date; use YYYY-MM-DD") from exc


def run_analytics(args: argparse.Namespace) -> int:
    from analytics import io, pipeline, tracking

    cal = _parse_date(args.calibration_end, "--calibration-end")
    cols = io.ColumnMap(
        customer=args.customer_col,
        date=args.date_col,
        amount=args.amount_col,
        product=args.product_col,
        quantity=args.quantity_col,
        order=args.order_col,
    )
    if args.quantity_col and not args.product_col:
        raise EcomError("--quantity-col needs --product-col (quantities belong to product lines)")
    lines = io.read_transactions_csv(args.from_csv, cols)
    products = io.read_products_csv(args.products_csv) if args.products_csv else None
    if cal is not None:
        first, last = lines["order_time"].min().normalize(), lines["order_time"].max().normalize()
        if not first <= cal < last:
            raise EcomError(
                f"--calibration-end {cal.date()} must be on or after the first order day {first.date()} and "
                f"before the last {last.date()}"
            )
    if args.mlflow:
        from kernel.settings import get_settings

        tracking.check_reachable(get_settings().mlflow.tracking_uri)
    try:
        result = pipeline.run_all(
            lines,
            products,
            calibration_end=cal,
            evaluate_recs=not args.no_evaluation,
            progress=lambda m: print(f"  {m}", file=sys.stderr),
        )
    except ValueError as exc:  # the models cannot be fitted on this history (too few customers / repeats)
        raise EcomError(f"{args.from_csv}: {exc}; give a longer history with more repeat customers") from exc
    written = io.write_outputs(result.tables, result.params, args.out)
    print(f"read {len(lines)} rows, {lines['customer_id'].nunique()} customers from {args.from_csv}")
    seg = result.tables["rfm_segments"]
    print(
        "segments: "
        + ", ".join(f"{s}={n}" for s, n in zip(seg["segment"], seg["customers"], strict=True) if n)
    )
    p = result.params["clv_params"]
    print(
        f"BG/NBD r={p['r']:.4g} alpha={p['alpha']:.4g} a={p['a']:.4g} b={p['b']:.4g}; "
        f"Gamma-Gamma p={p['p']:.4g} q={p['q']:.4g} v={p['v']:.4g} (fitted through {p['fitted_through']})"
    )
    if "clv_validation" in result.params:
        v = result.params["clv_validation"]
        print(
            f"hold-out {v['holdout_days']:.0f} days: purchases MAE {v['purchases_mae']:.3f}, total error "
            f"{100 * v['purchases_total_pct_error']:+.1f}%, value total error {100 * v['value_total_pct_error']:+.1f}%"
        )
    if "recs_evaluation" in result.tables:
        for _, r in result.tables["recs_evaluation"].iterrows():
            print(
                f"recs {r['method']}: hit_rate@{r['k']} {r['hit_rate']:.3f}, precision@{r['k']} {r['precision']:.3f}, "
                f"coverage {r['catalog_coverage']:.3f}"
            )
    if args.mlflow:
        run_id = tracking.log_refresh(
            result.params,
            result.tables.get("recs_evaluation"),
            source=f"csv:{args.from_csv}",
            timings=result.timings,
        )
        print(f"logged to MLflow experiment '{tracking.EXPERIMENT}', run {run_id}")
    print(f"wrote {len(written)} files to {args.out}")
    return 0
