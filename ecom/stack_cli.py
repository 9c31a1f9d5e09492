"""`ecom up`, `ecom down`, `ecom status`: the local stack and its UIs (see stack/services.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from kernel.settings import get_settings
from stack import services as stack


def _up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    statuses = stack.up(progress=lambda msg: print(f"  {msg}", flush=True), uis=args.uis)
    print(f"stack healthy in {time.monotonic() - t0:.1f} s")
    _print_table(statuses)
    if args.bootstrap_model:
        from ml.bootstrap import ensure_bootstrap_champion

        print("  champion: training a bootstrap model on simulated data when the registry has none ...")
        version = ensure_bootstrap_champion()
        print(f"  champion: {get_settings().mlflow.model_name} v{version}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stack.down(progress=lambda msg: print(f"  {msg}", flush=True))
    print("stack stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    statuses = stack.status(uis=True)
    if args.json:
        print(json.dumps({"services": statuses}))
    else:
        _print_table(statuses)
    return 0 if stack.status_ok(statuses) else 1


def _print_table(statuses: list[dict]) -> None:
    width = max((len(st["name"]) for st in statuses), default=0) + 1
    for st in statuses:
        if st["healthy"]:
            mark = "healthy"
        elif st["started"]:
            mark = "DOWN"
        else:
            mark = "off"  # a UI not started: `ecom up --uis` starts it
        print(f"  {st['name']:<{width}} {mark:<8} pid={st['pid'] or '-':<8} {st['url']}")
    if any(not st["started"] for st in statuses):
        print("  (off: not started; `ecom up --uis` starts the UIs)")
    sys.stdout.flush()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "up", help="start the local stack (Postgres, Kafka, MLflow, Dagster) and wait until healthy"
    )
    p.add_argument(
        "--uis",
        action="store_true",
        help="also serve the dbt docs site, the GX Data Docs and the dashboards (as `ecom demo` does)",
    )
    p.add_argument(
        "--bootstrap-model",
        action="store_true",
        help="when the registry has no champion, train one on simulated data (the stream only scores)",
    )
    p.set_defaults(func=_up)
    p = subparsers.add_parser("down", help="stop everything `ecom up` started")
    p.set_defaults(func=_down)
    p = subparsers.add_parser(
        "status",
        help="health of every local service and UI (exit 0 when every service, and every UI started, is healthy)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"services": [{"name","url","pid","healthy","group","started"}]}',
    )
    p.set_defaults(func=_status)
