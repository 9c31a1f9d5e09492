"""`ecom bench quality`: time every expectation suite against the current data (median of N runs).

Results are not stored (`store=False`) and a private GX context folder is used, so the benchmark leaves
neither rows in quality.expectation_results nor pages in the committed context's Data Docs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import machine_info


def register_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quality", help="time all Great Expectations suites on the current data")
    p.add_argument("--runs", type=int, default=3, help="repetitions; the median is reported (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from kernel.db import connect
    from kernel.errors import EcomError
    from kernel.settings import get_settings

    if args.runs < 1:
        raise EcomError("--runs must be at least 1")
    settings = get_settings()
    t0 = time.perf_counter()
    from expectations.runner import run_suites  # GX import, timed separately: it dominates a cold CLI

    import_s = time.perf_counter() - t0
    with connect(settings) as conn:
        master_rows = conn.execute("SELECT count(*) FROM master.transactions").fetchone()[0]
    walls, runs = [], []
    with tempfile.TemporaryDirectory(prefix="ecom-gx-bench-") as root:
        for _ in range(args.runs):
            started = time.perf_counter()
            runs.append(run_suites(settings=settings, project_root=Path(root), store=False, trigger="bench"))
            walls.append(time.perf_counter() - started)
    last = runs[-1]
    figures = {
        "benchmark": "quality_suites",
        "master_rows": int(master_rows),
        "suites": len(last.suites),
        "expectations": len(last.rows),
        "runs": args.runs,
        "all_suites_seconds_median": round(statistics.median(walls), 2),
        "all_suites_seconds": [round(w, 2) for w in walls],
        "per_suite_seconds_median": {
            s.name: round(statistics.median(r.suite(s.name).seconds for r in runs), 2) for s in last.suites
        },
        "gx_import_seconds": round(import_s, 2),
        "score": last.score,
        "machine": machine_info(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{figures['suites']} suites, {figures['expectations']} expectations on {master_rows} master rows: "
            f"median {figures['all_suites_seconds_median']} s over {args.runs} runs {figures['all_suites_seconds']}"
        )
        for name, sec in figures["per_suite_seconds_median"].items():
            print(f"  {name:<30} {sec:>6.2f} s")
        print(f"GX import {figures['gx_import_seconds']} s; load avg {figures['machine'].get('load_avg_1m')}")
    return 0
