"""`ecom bench <name>`: benchmark commands that print figures (never timed asserts in tests).

Every benchmark of the platform lives in this room, one module per figure set, each with
`register_bench(subparsers)`; this module assembles them under `ecom bench`. Every benchmark prints JSON
with `--json` and records the machine and the settings beside each figure (`bench.harness.machine_info`).
"""

from __future__ import annotations

import argparse
import importlib

# one module per benchmark, in help order
BENCH_MODULES = [
    "bench.stack",
    "bench.produce",
    "bench.replay",
    "bench.stream",
    "bench.train",
    "bench.batch",
    "bench.analytics",
    "bench.quality",
    "bench.soak",
    "bench.all",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", parser_class=type(bench))
    for name in BENCH_MODULES:
        importlib.import_module(name).register_bench(bench_sub)
