"""`ecom train`: retrain the fraud model from the batch layer (or the simulator), register it, run the gate.
`ecom evaluate`: a registered model's figures on a period, scored offline and as the stream stored them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kernel.errors import EcomError
from kernel.settings import get_settings


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    return parse


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("data")
    src.add_argument(
        "--simulate", action="store_true", help="train on the shop simulator instead of master.*"
    )
    src.add_argument(
        "--customers", type=_positive(int), default=20000, help="simulated customers (default 20000)"
    )
    src.add_argument("--days", type=_positive(float), default=60, help="simulated days (default 60)")
    src.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    win = p.add_argument_group("windows (days, counted back from the latest transaction)")
    win.add_argument(
        "--train-days", type=_positive(float), help="training window (default: all before validation)"
    )
    win.add_argument(
        "--valid-days", type=_positive(float), help="validation window (default 20%% of the span)"
    )
    win.add_argument(
        "--holdout-days", type=_positive(float), help="hold-out window (default 20%% of the span)"
    )
    win.add_argument(
        "--label-delay-days",
        type=_positive(float),
        default=14.0,
        help="wait this long for chargebacks to arrive (default 14)",
    )
    p.add_argument(
        "--alerts-per-day",
        type=_positive(float),
        help="investigators' daily review capacity (default: 2%% of the daily volume)",
    )
    p.add_argument("--quick", action="store_true", help="tiny hyperparameter grid (smoke runs)")
    p.add_argument(
        "--no-walk-cache",
        action="store_true",
        help="walk the whole history (default: reuse the last run's walk and walk only the rows added since)",
    )
    p.add_argument("--model-name", help="registered model (default: settings.mlflow.model_name)")
    p.add_argument("--no-promote", action="store_true", help="register only; never move the champion alias")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def config_from_args(args: argparse.Namespace, source: str):
    from ml.train import TrainConfig

    return TrainConfig(
        train_days=args.train_days,
        valid_days=args.valid_days,
        holdout_days=args.holdout_days,
        label_delay_days=args.label_delay_days,
        alerts_per_day=args.alerts_per_day,
        quick=args.quick,
        source=source,
        walk_cache=not args.no_walk_cache,
    )


def load_data(args: argparse.Namespace):
    from ml.data import load_master, simulated_history

    if args.simulate:
        params = {"seed": args.seed, "n_customers": args.customers, "days": args.days}
        tx, cb = simulated_history(**params)
        return tx, cb, f"simulator {params}"
    try:
        tx, cb = load_master()
    except Exception as exc:  # psycopg.OperationalError and friends: say what to do
        if type(exc).__module__.startswith("psycopg"):
            raise EcomError(
                f"cannot read master.transactions ({exc.__class__.__name__}); start the stack: ecom up"
            ) from exc
        raise
    if tx.empty:
        raise EcomError(
            "master.transactions is empty; land events first (ecom produce + the landing) or use --simulate"
        )
    return tx, cb, "master.transactions + master.chargebacks"


def train_command(args: argparse.Namespace) -> int:
    from ml.train import train

    tx, cb, source = load_data(args)
    print(f"training on {len(tx):,} transactions, {len(cb):,} chargebacks ({source})", file=sys.stderr)
    result = train(
        tx, cb, config_from_args(args, source), model_name=args.model_name, promote=not args.no_promote
    )
    if args.json:
        print(json.dumps(result.summary(), indent=2, default=str))
        return 0
    m = result.metrics
    name = args.model_name or get_settings().mlflow.model_name
    print(f"registered {name} v{result.version} (variant {result.params['variant']}, run {result.run_id})")
    print("hold-out: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items()))
    print(f"threshold {result.threshold:.6f} for {result.alerts_per_day:g} alerts/day")
    verdict = "promoted to champion" if result.promoted else "not promoted"
    print(f"gate: {verdict}: {result.decision.reason}")
    print("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in result.timings.items()))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from ml.assess import evaluate_period, parse_period

    report = evaluate_period(
        args.source,
        parse_period(args.start, args.end),
        model=args.model,
        stored=args.stored,
        model_name=args.model_name,
        alerts_per_day=args.alerts_per_day,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    m = report["model"]
    print(
        f"{m['name']} v{m['version']} on {report['source']} {report['period']['start']} .. "
        f"{report['period']['end']} (threshold {m['threshold']:.6f}, k = {report['k_per_day']} a day)"
    )
    keys = [k for k in report["offline"] if k != "model_versions"]
    sides = [s for s in ("offline", "stored") if s in report]
    print(f"  {'':<26}" + "".join(f"{s:>12}" for s in sides))
    for k in keys:
        cells = []
        for side in sides:
            v = report[side].get(k)
            cells.append(f"{v:>12,}" if isinstance(v, int) else f"{float(v):>12.4f}")
        print(f"  {k:<26}" + "".join(cells))
    if "stored" in report:
        print(f"  stored rows scored by versions {report['stored']['model_versions']}")
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="source",
        default="master",
        help="'master' (the master dataset, default) or a CSV/Parquet with the contract's columns + is_fraud",
    )
    p.add_argument("--start", required=True, help="first day of the period (YYYY-MM-DD, UTC)")
    p.add_argument("--end", required=True, help="end of the period, exclusive (YYYY-MM-DD, UTC)")
    p.add_argument("--model", default="champion", help="a version number or 'champion' (default)")
    p.add_argument("--model-name", help="registered model (default: settings.mlflow.model_name)")
    p.add_argument(
        "--stored",
        action="store_true",
        help="also judge the scores the stream wrote (speed.scored_transactions) for the period",
    )
    p.add_argument(
        "--alerts-per-day",
        type=_positive(float),
        help="k of precision@k (default: the version's alert budget, tag alerts_per_day)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (no progress bars)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this room's sub-commands to the `ecom` parser."""
    p = subparsers.add_parser(
        "train",
        help="retrain the fraud model (time-split, MLflow registry, promotion gate)",
        description="Train the Isolation-Forest-based fraud model on master.* (or --simulate), log hold-out "
        "metrics to MLflow, register a version of the model and promote it to champion only if it beats "
        "the current champion on the same hold-out.",
    )
    add_train_arguments(p)
    p.set_defaults(func=train_command)
    e = subparsers.add_parser(
        "evaluate",
        help="a model's fraud metrics on a period: offline over master.* or a file, and as the stream stored",
        description="Score a period offline with a registered model (features from ml.features over the "
        "whole history before it) and print ROC AUC, average precision, card precision@k per day and "
        "recall / precision / FPR at the model's deployed threshold; --stored judges the scores the speed "
        "layer wrote for the same period.",
    )
    add_evaluate_arguments(e)
    e.set_defaults(func=evaluate_command)
