"""`ecom bench stack`: how long `up` takes to reach all-healthy, and what the idle stack costs in memory.

Runs a private stack (own state folder under .local/bench-stack, free ports) so it never disturbs a
running one: a cold `up` (initdb + Kafka format + first migrations), then `runs` warm restarts
(down -> up); after each, waits `idle_s` seconds and sums the resident memory of every service's
process tree. Prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import time
import uuid

from bench.harness import machine_info, tree_rss_mb
from kernel.settings import REPO_ROOT, load_settings
from kernel.stats import median
from stack import services as stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_memory_mb(settings) -> dict[str, float]:
    """Resident memory (MB) of each service's whole process tree."""
    out = {}
    for svc in stack.services(settings):
        pid = svc.pid()
        if not pid or not stack.pid_alive(pid):
            continue
        out[svc.name] = round(tree_rss_mb(pid), 1)
    return out


def run(runs: int = 3, idle_s: float = 15.0) -> dict[str, object]:
    state = REPO_ROOT / ".local" / "bench-stack" / uuid.uuid4().hex[:8]
    state.mkdir(parents=True)
    saved = dict(os.environ)
    os.environ.update(
        {
            "ECOM_STATE_DIR": str(state),
            "ECOM_PG_PORT": str(_free_port()),
            "ECOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{_free_port()}",
            "ECOM_KAFKA_CONTROLLER_PORT": str(_free_port()),
            "ECOM_MLFLOW_PORT": str(_free_port()),
            "ECOM_DAGSTER_PORT": str(_free_port()),
            "DAGSTER_HOME": str(state / "dagster"),
        }
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("ECOM_PG_PASSWORD", None)
    s = load_settings()
    quiet = lambda _msg: None  # noqa: E731
    try:
        t0 = time.monotonic()
        stack.up(s, progress=quiet)
        cold = time.monotonic() - t0
        warm, memory = [], []
        for _ in range(runs):
            time.sleep(idle_s)
            memory.append(sum(stack_memory_mb(s).values()))
            per_service = stack_memory_mb(s)
            stack.down(s, progress=quiet)
            t0 = time.monotonic()
            stack.up(s, progress=quiet)
            warm.append(time.monotonic() - t0)
        return {
            "cold_up_s": round(cold, 1),
            "warm_up_s_median": round(median(warm), 1),
            "warm_up_s": [round(w, 1) for w in warm],
            "idle_memory_mb_median": round(median(memory), 0),
            "idle_memory_mb": memory,
            "idle_memory_mb_by_service_last": per_service,
            "settings": {"runs": runs, "idle_s": idle_s, "kafka_heap": s.kafka.heap},
            "machine": machine_info(),
        }
    finally:
        stack.down(s, progress=quiet)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(state, ignore_errors=True)


def _main(args: argparse.Namespace) -> int:
    result = run(args.runs, args.idle)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"cold up: {result['cold_up_s']} s; warm up (median of {args.runs}): {result['warm_up_s_median']} s; "
            f"idle memory (median): {result['idle_memory_mb_median']} MB {result['idle_memory_mb_by_service_last']}"
        )
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser(
        "stack", help="time `up` to all-healthy and measure the idle stack's memory"
    )
    p.add_argument("--runs", type=int, default=3, help="warm restarts to take the median over (default 3)")
    p.add_argument("--idle", type=float, default=15.0, help="seconds to idle before measuring memory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_main)
