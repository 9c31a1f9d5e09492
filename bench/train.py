"""`ecom bench train`: how long training takes for N transactions (figures, never asserts).

Two dataset shapes (`--shape`):
- `simulator`: the shop simulator's events (devices, IPs, baskets; many customers with few purchases each);
- `cards`: a five-column card file (customer, terminal, amount, time, fraud label: the shape of most public
  fraud files, `events.simulator.cards`), written to a temporary CSV and converted exactly as `ecom replay`
  sends it (`ml.data.replayed_history`, label delay `--label-delay-days`); few customers with hundreds of
  purchases each, thousands of terminals and chargebacks.

Stages timed separately: making the data (not training, reported for context), the history context (the
walk over the whole history, wall and CPU seconds, rows/s), hyperparameter selection, the final fits +
hold-out evaluation, and the whole `train()` including MLflow logging and registration (registered under a
bench model name, never promoted, so the real champion is untouched). `--walk-only` times the history walk
alone (no MLflow, no stack needed); `--walk-cache` adds training's cached walk (ml/walk_cache.py, a fresh
temporary cache): a first run without the latest `--new-share` of the rows, a second run on all of them, and
whether the second run's frame equals the full walk's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.harness import machine_info

# simulated transactions per customer per day (measured: 950,694 for 416,666 customers x 60 days)
TX_PER_CUSTOMER_DAY = 0.038
CARDS_LABEL_DELAY_DAYS = 7.0  # the card file's chargebacks: a week after the transaction


def _label_delay(args: argparse.Namespace) -> float:
    if args.label_delay_days is not None:
        return args.label_delay_days
    from ml.train import TrainConfig

    return CARDS_LABEL_DELAY_DAYS if args.shape == "cards" else TrainConfig.label_delay_days


def _data(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(transactions, chargebacks, settings describing them) for the asked shape."""
    if args.shape == "cards":
        from events.simulator.cards import CARD_FILE_MAPPING, CardFileConfig, write_card_file
        from ml.data import replayed_history

        days = int(args.days or 135)
        cfg = CardFileConfig.for_rows(args.rows, days=days, seed=args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_card_file(Path(tmp) / "cards.csv", cfg)
            tx, cb = replayed_history(path, CARD_FILE_MAPPING, _label_delay(args))
        return tx, cb, {"customers": cfg.n_customers, "terminals": cfg.n_terminals, "days": days}
    from ml.data import simulated_history

    days = args.days or 60
    customers = max(1000, int(args.rows / (TX_PER_CUSTOMER_DAY * days)))
    tx, cb = simulated_history(seed=args.seed, n_customers=customers, days=days)
    return tx, cb, {"customers": customers, "days": days}


def _walk(tx: pd.DataFrame, cb: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    from ml.features import history_context

    t0, cpu0 = time.perf_counter(), time.process_time()
    full, _ = history_context(tx, cb, progress=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return full, {
        "context_s": round(wall, 2),
        "context_cpu_s": round(cpu, 2),
        "context_rows_per_s": round(len(tx) / wall),
        "context_rows_per_cpu_s": round(len(tx) / cpu),
    }


def _timed_cached_walk(tx: pd.DataFrame, cb: pd.DataFrame, cache_dir: Path) -> tuple[pd.DataFrame, dict]:
    from ml.walk_cache import cached_history_context

    t0, cpu0 = time.perf_counter(), time.process_time()
    enriched, _, outcome = cached_history_context(tx, cb, cache_dir, "bench walk cache", progress=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return enriched, {
        "rows": len(tx),
        "s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rows_per_s": round(len(tx) / wall),
        "rows_per_cpu_s": round(len(tx) / cpu),
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in outcome.as_dict().items()},
    }


def _walk_cache(tx: pd.DataFrame, cb: pd.DataFrame, full: pd.DataFrame, new_share: float) -> dict[str, Any]:
    """Training's walk with its cache (ml/walk_cache.py) in a fresh folder: a first run on the rows before
    the last `new_share` of them (walk order: an append-only master before its latest rows landed), then a
    second run on all rows; the second run's frame is compared with the plain full walk's (`full`)."""
    ordered = tx.sort_values(["event_time", "transaction_id"], kind="mergesort")
    first_rows = ordered.head(len(tx) - max(1, round(len(tx) * new_share)))
    with tempfile.TemporaryDirectory() as cache_dir:
        _, first = _timed_cached_walk(first_rows, cb, Path(cache_dir))
        second_frame, second = _timed_cached_walk(tx, cb, Path(cache_dir))
    identical = full.columns.equals(second_frame.columns) and all(
        full[c].equals(second_frame[c]) for c in full.columns
    )
    return {"new_share": new_share, "first": first, "second": second, "identical_to_full_walk": identical}


def bench_train(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    tx, cb, shape = _data(args)
    data_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "shape": args.shape,
        "rows": len(tx),
        "chargebacks": len(cb),
        "data_s": round(data_s, 2),
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }
    if args.walk_only or args.walk_cache:
        full, out["walk"] = _walk(tx, cb)
        if args.walk_cache:
            out["walk_cache"] = _walk_cache(tx, cb, full, args.new_share)
    else:
        from ml.train import TrainConfig, train

        cfg = TrainConfig(
            quick=args.grid == "quick",
            label_delay_days=_label_delay(args),
            source=f"bench {args.shape} " + " ".join(f"{k}={v}" for k, v in shape.items()),
        )
        result = train(tx, cb, cfg, model_name=args.model_name, promote=False)
        t = result.timings
        out["train_s"] = {k: round(v, 2) for k, v in t.items()}
        out["walk"] = {
            "context_rows_per_s": round(len(tx) / t["context_s"]),
            "context_rows_per_cpu_s": round(len(tx) / t["context_cpu_s"]),
        }
        out.update(
            holdout_metrics=result.metrics,
            variant=result.params["variant"],
            model_version=result.version,
            window_rows=result.n_rows,
        )
    out.update(
        load_avg_1m_after=round(os.getloadavg()[0], 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        settings={
            **shape,
            "grid": args.grid,
            "seed": args.seed,
            "label_delay_days": _label_delay(args),
            "walk_only": args.walk_only or args.walk_cache,
            "walk_cache": args.walk_cache,
            "model_name": args.model_name,
        },
        machine=machine_info(),
    )
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print(
            f"{out['rows']:,} {args.shape} transactions ({out['chargebacks']} chargebacks), made in {data_s:.1f} s"
        )
        for k, v in {**out.get("train_s", {}), **out["walk"]}.items():
            print(f"  {k:<24} {v:>12,.1f}")
        for run in ("first", "second") if "walk_cache" in out else ():
            r = out["walk_cache"][run]
            print(
                f"  cached walk, {run} run: {r['rows']:,} rows ({r['rows_from_cache']:,} from the cache) in "
                f"{r['s']:.1f} s = {r['rows_per_s']:,} rows/s ({r['rows_per_cpu_s']:,} rows/CPU-s)"
            )
        if "holdout_metrics" in out:
            print("  hold-out: " + ", ".join(f"{k}={v:.4f}" for k, v in out["holdout_metrics"].items()))
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("train", help="training time of the fraud model for N transactions")
    p.add_argument(
        "--rows", type=int, default=1_000_000, help="approximate transactions to generate (default 1M)"
    )
    p.add_argument(
        "--shape",
        choices=["simulator", "cards"],
        default="simulator",
        help="the shop simulator's events (default) or a five-column card file replayed",
    )
    p.add_argument(
        "--days", type=float, default=None, help="days of history (default: simulator 60, cards 135)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--label-delay-days",
        type=float,
        default=None,
        help="chargeback delay in days: the card file's replay delay and training's label delay (default: "
        "cards 7; simulator: training's default, its chargebacks arrive 1 + Gamma(2, 3.5) days later)",
    )
    p.add_argument(
        "--grid", choices=["quick", "full"], default="full", help="hyperparameter grid (default full)"
    )
    p.add_argument("--walk-only", action="store_true", help="time the history walk only (no MLflow)")
    p.add_argument(
        "--walk-cache",
        action="store_true",
        help="also time training's cached walk (implies --walk-only): a first run without the last "
        "--new-share of the rows, then a second run on all of them from the first run's cache",
    )
    p.add_argument(
        "--new-share",
        type=float,
        default=0.01,
        help="share of the rows the second cached run adds (default 0.01)",
    )
    p.add_argument("--model-name", default="fraud_detector_bench", help="registered model for the bench runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=bench_train)
