"""`ecom bench train`: how long training takes for N simulated transactions (figures, never asserts).

Stages timed separately: simulating the data (not training, reported for context), the history context
(features over the whole history), hyperparameter selection, the final fits + hold-out evaluation, and the
whole `train()` including MLflow logging and registration (registered under a bench model name, never
promoted, so the real champion is untouched).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from bench.harness import machine_info

# simulated transactions per customer per day (measured: 950,694 for 416,666 customers x 60 days)
TX_PER_CUSTOMER_DAY = 0.038


def bench_train(args: argparse.Namespace) -> int:
    from ml.data import simulated_history
    from ml.train import TrainConfig, train

    customers = max(1000, int(args.rows / (TX_PER_CUSTOMER_DAY * args.days)))
    t0 = time.perf_counter()
    tx, cb = simulated_history(seed=args.seed, n_customers=customers, days=args.days)
    simulate_s = time.perf_counter() - t0
    cfg = TrainConfig(
        quick=args.grid == "quick", source=f"bench simulator {customers} customers {args.days} days"
    )
    result = train(tx, cb, cfg, model_name=args.model_name, promote=False)
    out = {
        "rows": len(tx),
        "chargebacks": len(cb),
        "simulate_s": round(simulate_s, 2),
        "train_s": {k: round(v, 2) for k, v in result.timings.items()},
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "holdout_metrics": result.metrics,
        "variant": result.params["variant"],
        "model_version": result.version,
        "settings": {
            "grid": args.grid,
            "days": args.days,
            "customers": customers,
            "seed": args.seed,
            "model_name": args.model_name,
            "window_rows": result.n_rows,
        },
        "machine": machine_info(),
    }
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print(
            f"{out['rows']:,} transactions ({out['chargebacks']} chargebacks), simulated in {simulate_s:.1f} s"
        )
        for k, v in out["train_s"].items():
            print(f"  {k:<16} {v:8.1f} s")
        print("  hold-out: " + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("train", help="training time of the fraud model for N transactions")
    p.add_argument(
        "--rows", type=int, default=1_000_000, help="approximate transactions to simulate (default 1M)"
    )
    p.add_argument("--days", type=float, default=60, help="simulated days (default 60)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--grid", choices=["quick", "full"], default="full", help="hyperparameter grid (default full)"
    )
    p.add_argument("--model-name", default="fraud_detector_bench", help="registered model for the bench runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=bench_train)
