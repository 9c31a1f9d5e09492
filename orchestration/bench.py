"""`ecom bench batch`: how long the batch layer takes, full and incremental, through Dagster.

In a throwaway database (default `ecom_bench`, dropped afterwards unless --keep) so the shared one is not
touched: N synthetic transactions (orchestration.synthetic) are landed, the `batch_refresh` job builds the
whole star with every dbt test (full build), then +M transactions land and the job runs again (incremental
refresh). Data generation is timed separately and not counted. Targets (issue 5): full <= 60 s over 1M,
incremental <= 15 s after +100k. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ecom import db
from ecom.benchmark import machine_info
from ecom.settings import get_settings
from orchestration.scratch import create_database, drop_database
from orchestration.synthetic import SyntheticSpec, insert_reference, insert_transactions

FULL_TARGET_S = 60.0
INCREMENTAL_TARGET_S = 15.0
CHUNK = 250_000


def register_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("batch", help="full and incremental batch-layer build time (dbt via Dagster)")
    p.add_argument("--transactions", type=int, default=1_000_000, help="rows for the full build (default 1M)")
    p.add_argument("--increment", type=int, default=100_000, help="rows added before the incremental run")
    p.add_argument("--database", default="ecom_bench", help="throwaway database to build in")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards (to inspect it)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON only")
    p.set_defaults(func=cmd_bench_batch)


def _land(settings, spec: SyntheticSpec, first: int, last: int) -> float:
    started = time.monotonic()
    with db.connect(settings) as conn:
        for lo in range(first, last + 1, CHUNK):
            insert_transactions(conn, spec, lo, min(last, lo + CHUNK - 1))
    with db.connect(settings, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE master.transactions")
        conn.execute("VACUUM ANALYZE speed.scored_transactions")
    return time.monotonic() - started


def _slowest_models(project_dir: Path, limit: int = 6) -> list[dict]:
    """Per-node timings of the latest dbt invocation (dagster-dbt writes one target folder per run)."""
    results = sorted(project_dir.glob("target/*/run_results.json"), key=lambda p: p.stat().st_mtime)
    if not results:
        return []
    nodes = json.loads(results[-1].read_text())["results"]
    top = sorted(nodes, key=lambda r: r.get("execution_time") or 0, reverse=True)[:limit]
    return [{"node": r["unique_id"].split(".", 2)[-1], "s": round(r["execution_time"], 2)} for r in top]


def run_benchmark(n: int, increment: int, database: str, keep: bool, log=print) -> dict:
    s = get_settings()
    if n < 1 or increment < 0:
        from ecom.errors import EcomError

        raise EcomError("--transactions must be >= 1 and --increment >= 0")
    scratch = create_database(database, s, fresh=True)
    # dbt (profiles.yml) and the build lock follow ECOM_PG_DB; an empty DAGSTER_HOME gives an ephemeral
    # instance, so benchmark runs do not appear in the shared UI
    os.environ["ECOM_PG_DB"] = database
    os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="ecom-bench-dagster-")
    from orchestration.batch import run_batch  # after the environment points at the scratch database

    spec = SyntheticSpec(
        prefix="b",
        topic="bench",
        n_customers=max(100, n // 20),
        n_merchants=max(10, n // 2_000),
        n_products=max(100, n // 200),
        total_rows=n + increment,
    )
    try:
        with db.connect(scratch) as conn:
            insert_reference(conn, spec, every=1)
        log(f"landing {n:,} synthetic transactions in database {database} ...")
        setup_s = _land(scratch, spec, 0, n - 1)
        log(f"landed in {setup_s:.1f} s; full build through Dagster ...")
        full = run_batch()
        full_slowest = _slowest_models(s.dbt.project_dir)
        log(f"full build {full.seconds:.1f} s; landing +{increment:,} ...")
        inc_setup_s = _land(scratch, spec, n, n + increment - 1)
        incremental = run_batch()
        inc_slowest = _slowest_models(s.dbt.project_dir)
        with db.connect(scratch) as conn:
            fct = conn.execute("SELECT count(*) FROM marts.fct_transactions").fetchone()[0]
            lines = conn.execute("SELECT count(*) FROM marts.fct_order_lines").fetchone()[0]
    finally:
        if not keep:
            drop_database(database, s)
    return {
        "transactions": n,
        "increment": increment,
        "fct_transactions_rows": fct,
        "fct_order_lines_rows": lines,
        "full_build_s": round(full.seconds, 2),
        "incremental_build_s": round(incremental.seconds, 2),
        "targets_s": {"full": FULL_TARGET_S, "incremental": INCREMENTAL_TARGET_S},
        "met": {
            "full": full.seconds <= FULL_TARGET_S,
            "incremental": incremental.seconds <= INCREMENTAL_TARGET_S,
        },
        "checks": {"full": len(full.checks), "incremental": len(incremental.checks)},
        "failed_checks": [c.__dict__ for c in full.failed_checks + incremental.failed_checks],
        "runs_succeeded": full.success and incremental.success,
        "slowest_nodes": {"full": full_slowest, "incremental": inc_slowest},
        "data_generation_s": {"full": round(setup_s, 1), "increment": round(inc_setup_s, 1)},
        "settings": {"database": database, "dbt_threads": 4, "path": "Dagster batch_refresh job, in-process"},
        "machine": machine_info(),
    }


def cmd_bench_batch(args: argparse.Namespace) -> int:
    if args.json:  # dbt's progress lines go to stderr so stdout is only the JSON document
        with contextlib.redirect_stdout(sys.stderr):
            figures = run_benchmark(args.transactions, args.increment, args.database, args.keep)
    else:
        figures = run_benchmark(args.transactions, args.increment, args.database, args.keep)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"full build over {figures['transactions']:,} transactions: {figures['full_build_s']} s "
            f"(target {FULL_TARGET_S:.0f} s, {'met' if figures['met']['full'] else 'NOT met'})\n"
            f"incremental refresh after +{figures['increment']:,}: {figures['incremental_build_s']} s "
            f"(target {INCREMENTAL_TARGET_S:.0f} s, {'met' if figures['met']['incremental'] else 'NOT met'})\n"
            f"checks: {figures['checks']}, failed: {len(figures['failed_checks'])}; "
            f"slowest (full): {figures['slowest_nodes']['full'][:3]}"
        )
    return 0 if figures["runs_succeeded"] and not figures["failed_checks"] else 1
