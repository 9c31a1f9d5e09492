"""`ecom train`: retrain the fraud model from the batch layer (or the simulator), register it, run the gate."""

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
