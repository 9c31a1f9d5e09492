"""`ecom bench all`'s pure pieces: the commands it runs, how it reads a benchmark's output, its summary."""

from __future__ import annotations

import pytest

from bench.all import BENCHES, _names, bench_command, headline, markdown, parse_json_output
from kernel.errors import EcomError


def test_scale_multiplies_only_the_size_flags_and_runs_is_passed_through():
    produce = next(b for b in BENCHES if b.name == "produce")
    argv = bench_command(produce, scale=10, runs=3)
    assert argv[argv.index("--events") + 1] == str(int(produce.base_args["--events"] * 10))
    assert argv[argv.index("--customers") + 1] == str(int(produce.base_args["--customers"]))
    assert argv[argv.index("--runs") + 1] == "3" and argv[-1] == "--json"
    assert argv[3:5] == ["bench", "produce"]


def test_the_json_document_is_found_after_log_lines():
    assert parse_json_output('{"a": 1}') == {"a": 1}
    assert parse_json_output('starting\nprogress 50%\n{"events_per_s": 12.5,\n "lost": 0}\n') == {
        "events_per_s": 12.5,
        "lost": 0,
    }
    assert parse_json_output("no json here") is None
    assert parse_json_output("") is None


def test_headline_shows_figures_not_machine_or_settings():
    line = headline("stream", {"sustained_events_per_s": 1234.5, "latency_ms": {"p50": 80.0, "p95": 410.2},
                               "lost": 0, "machine": {"cpu_count": 2}, "settings": {"x": 1}})  # fmt: skip
    assert "sustained_events_per_s=1,234" in line and "p95=410" in line and "lost=0" in line
    assert "cpu_count" not in line and "x=1" not in line


def test_unknown_benchmark_names_are_refused_in_one_line():
    assert _names("produce,stream", "stream") == ["produce"]
    with pytest.raises(EcomError, match=r"unknown benchmark\(s\) \['nope'\]"):
        _names("nope", None)


def test_markdown_has_machine_settings_and_a_row_per_benchmark():
    report = {
        "generated_at": "t", "command": "ecom bench all", "scale": 1.0, "runs": 1,
        "machine": {"cpu_count": 2, "cpu_model": "cpu", "memory_gb": 8, "platform": "p", "python": "3.11",
                    "load_avg_1m": 1.0},
        "settings": {"spark_master": "local[*]"},
        "benchmarks": {"produce": {"status": "ok", "wall_s": 3.0, "command": "ecom bench produce",
                                   "result": {"events_per_s": 10.0}},
                       "batch": {"status": "missing", "error": "`ecom bench batch` is not registered"}},
    }  # fmt: skip
    md = markdown(report)
    assert "2 CPU" in md and "spark_master=local[*]" in md
    assert "| produce | ok | 3.0 | events_per_s=10 |" in md and "| batch | missing |" in md
