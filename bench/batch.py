"""`ecom bench batch`: how long the batch layer takes, full and incremental, through Dagster.

In a throwaway database (default `ecom_bench`, dropped afterwards unless --keep) so the shared one is not
touched: N transactions of the shop simulator (orchestration.synthetic) are landed, the `batch_refresh` job
builds the whole star with every dbt test (full build), then +M transactions land and the job runs again
(incremental refresh). Data generation is timed separately and not counted. Targets (issue 5): full <= 60 s over 1M,
incremental <= 15 s after +100k. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import machine_info
from kernel import db
from kernel.settings import get_settings
from orchestration.scratch import create_database, drop_database
from orchestration.synthetic import SyntheticSpec, insert_reference, insert_transactions

FULL_TARGET_S = 60.0
INCREMENTAL_TARGET_S = 15.0
CHUNK = 100_000  # rows simulated and landed per call (bounds the memory of one call)


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


class CpuMeter:
    """CPU seconds a build consumed: this process and its children (dbt) plus the Postgres backends serving
    the benchmark database (read from /proc while they live). On a shared, loaded machine wall time mostly
    measures the queue for the cores; CPU seconds measure the work, so both are reported."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._backend_ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
                    if not cmdline.startswith("postgres:"):
                        continue
                    leader = re.search(r"parallel worker for PID (\d+)", cmdline)
                    ours = f" {self.database} " in cmdline or (
                        leader is not None and int(leader.group(1)) in self._backend_ticks
                    )
                    if not ours:
                        continue
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    ticks = int(fields[11]) + int(fields[12])  # utime + stime
                except (OSError, IndexError, ValueError):
                    continue
                self._backend_ticks[int(proc.name)] = max(ticks, self._backend_ticks.get(int(proc.name), 0))
            self._stop.wait(0.2)

    def __enter__(self) -> CpuMeter:
        self._start = self._own_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client_s = self._own_cpu() - self._start
        self.postgres_s = sum(self._backend_ticks.values()) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def figures(self) -> dict[str, float]:
        return {
            "postgres_cpu_s": round(self.postgres_s, 1),
            "dagster_dbt_cpu_s": round(self.client_s, 1),
            "total_cpu_s": round(self.postgres_s + self.client_s, 1),
        }


def _dbt_run_figures(project_dir: Path, limit: int = 6) -> dict:
    """dbt's own elapsed time and slowest nodes in the latest invocation (dagster-dbt writes one target
    folder per run): separates the SQL work from Dagster's and the other domains' checks' overhead."""
    results = sorted(project_dir.glob("target/*/run_results.json"), key=lambda p: p.stat().st_mtime)
    if not results:
        return {}
    run = json.loads(results[-1].read_text())
    top = sorted(run["results"], key=lambda r: r.get("execution_time") or 0, reverse=True)[:limit]
    return {
        "dbt_elapsed_s": round(run["elapsed_time"], 2),
        "nodes": len(run["results"]),
        "slowest": [
            {"node": r["unique_id"].split(".", 2)[-1], "s": round(r["execution_time"], 2)} for r in top
        ],
    }


def run_benchmark(n: int, increment: int, database: str, keep: bool, log=print) -> dict:
    s = get_settings()
    if n < 1 or increment < 0:
        from kernel.errors import EcomError

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
        with CpuMeter(database) as full_cpu:
            full = run_batch()
        full_dbt = _dbt_run_figures(s.dbt.project_dir)
        log(f"full build {full.seconds:.1f} s; landing +{increment:,} ...")
        inc_setup_s = _land(scratch, spec, n, n + increment - 1)
        with CpuMeter(database) as inc_cpu:
            incremental = run_batch()
        inc_dbt = _dbt_run_figures(s.dbt.project_dir)
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
        "cpu_s": {"full": full_cpu.figures(), "incremental": inc_cpu.figures()},
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "checks": {"full": len(full.checks), "incremental": len(incremental.checks)},
        "failed_checks": [c.__dict__ for c in full.failed_checks + incremental.failed_checks],
        "runs_succeeded": full.success and incremental.success,
        "dbt": {"full": full_dbt, "incremental": inc_dbt},
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
            f"CPU seconds (Postgres + Dagster/dbt): full {figures['cpu_s']['full']['total_cpu_s']}, "
            f"incremental {figures['cpu_s']['incremental']['total_cpu_s']} "
            f"(load average now {figures['load_avg_1m_after']} on {os.cpu_count()} cores)\n"
            f"checks: {figures['checks']}, failed: {len(figures['failed_checks'])}; "
            f"dbt's own elapsed: full {figures['dbt']['full'].get('dbt_elapsed_s')} s, "
            f"incremental {figures['dbt']['incremental'].get('dbt_elapsed_s')} s; "
            f"slowest (full): {figures['dbt']['full'].get('slowest', [])[:3]}"
        )
    return 0 if figures["runs_succeeded"] and not figures["failed_checks"] else 1
