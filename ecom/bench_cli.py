"""`ecom bench <name>`: benchmark commands that print figures (never timed asserts in tests).

Each room that has something to measure provides a `bench` module with `register_bench(subparsers)`;
this module assembles them under `ecom bench`. Every benchmark prints JSON with `--json` and records
the machine and the settings beside each figure (see `ecom.benchmark.machine_info`).
"""

from __future__ import annotations

import argparse
import importlib

BENCH_MODULES = [
    "ecom.stack_bench",
    "streaming.bench",
    "streaming.bench_stream",
    "ml.bench",
    "orchestration.bench",
    "analytics.bench",
    "expectations.bench",
    "ecom.bench_all",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", parser_class=type(bench))
    for name in BENCH_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the room has no benchmark yet
                continue
            raise
        module.register_bench(bench_sub)
