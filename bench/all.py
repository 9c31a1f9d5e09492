"""`ecom bench all`: every room's benchmark in one run, one JSON report and a short Markdown summary.

Each benchmark runs as its own `ecom bench <name> --json` subprocess (a fresh interpreter and JVM per room, so
one room's memory or a crash cannot skew the next), with modest default sizes that `--scale` multiplies. The
report keeps, beside each benchmark's own JSON (which carries its settings and machine), the exact command,
its wall time and exit code; a benchmark that is missing or fails is recorded as such, never dropped. The
report and the summary go under `<state_dir>/bench/` (latest copies plus time-stamped ones).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import machine_info
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings


@dataclass(frozen=True)
class BenchSpec:
    """One room's benchmark: its `ecom bench` name, the flags of a modest run, and which flags scale."""

    name: str
    base_args: dict[str, float]  # flag -> modest default value
    scaled: tuple[str, ...]  # flags multiplied by --scale
    extra: tuple[str, ...] = ()  # fixed flags
    runs_flag: str | None = None  # flag taking --runs, when the benchmark has one


# Modest defaults: the whole `bench all` stays within a few minutes on a 2-core machine. --scale 10 gives the
# sizes the rooms quote their targets at (1M transactions, 200k events).
BENCHES: list[BenchSpec] = [
    BenchSpec("produce", {"--events": 20_000, "--customers": 5_000}, ("--events",), runs_flag="--runs"),
    BenchSpec("stream", {"--rate": 1000, "--seconds": 20}, ("--seconds",), runs_flag="--runs"),
    BenchSpec(
        "batch",
        {"--transactions": 100_000, "--increment": 10_000},
        ("--transactions", "--increment"),
        extra=("--database", "ecom_bench_all"),
    ),  # fmt: skip
    BenchSpec(
        "analytics", {"--transactions": 100_000, "--customers": 5_000}, ("--transactions", "--customers")
    ),
    BenchSpec("train", {"--rows": 100_000}, ("--rows",), extra=("--grid", "quick")),
    BenchSpec("stack", {"--idle": 10}, (), runs_flag="--runs"),
]


def bench_command(spec: BenchSpec, scale: float = 1.0, runs: int = 1) -> list[str]:
    """The argv of one benchmark run (pure)."""
    argv = [sys.executable, "-m", "ecom.cli", "bench", spec.name]
    for flag, value in spec.base_args.items():
        v = value * scale if flag in spec.scaled else value
        argv += [flag, str(int(v)) if float(v).is_integer() else f"{v:g}"]
    argv += list(spec.extra)
    if spec.runs_flag:
        argv += [spec.runs_flag, str(runs)]
    return [*argv, "--json"]


def parse_json_output(stdout: str) -> dict[str, Any] | None:
    """The benchmark's JSON document: the whole output, else the last line (or trailing block) that parses."""
    text = stdout.strip()
    if not text:
        return None
    try:
        doc = json.loads(text)
        return doc if isinstance(doc, dict) else {"value": doc}
    except json.JSONDecodeError:
        pass
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("{"):
            try:
                doc = json.loads("\n".join(lines[i:]))
                return doc if isinstance(doc, dict) else {"value": doc}
            except json.JSONDecodeError:
                continue
    return None


def available_benchmarks() -> set[str]:
    """Names registered under `ecom bench` in this checkout (a room without a benchmark is reported as missing)."""
    import argparse

    from bench.cli import register

    root = argparse.ArgumentParser(add_help=False)
    register(root.add_subparsers())
    for action in root._subparsers._group_actions:  # noqa: SLF001 (argparse has no public accessor)
        bench = action.choices["bench"]
        for sub in bench._subparsers._group_actions:  # noqa: SLF001
            return set(sub.choices) - {"all"}
    return set()


def run_one(spec: BenchSpec, scale: float, runs: int, timeout_s: float) -> dict[str, Any]:
    argv = bench_command(spec, scale, runs)
    shown = ["ecom", *argv[3:]]
    t0 = time.monotonic()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)  # noqa: S603
    except subprocess.TimeoutExpired:
        return {"command": " ".join(shown), "status": "timeout", "wall_s": round(time.monotonic() - t0, 1),
                "error": f"no result within {timeout_s:.0f} s (raise --timeout)"}  # fmt: skip
    wall = round(time.monotonic() - t0, 1)
    result = parse_json_output(out.stdout)
    entry: dict[str, Any] = {"command": " ".join(shown), "wall_s": wall, "exit_code": out.returncode}
    if out.returncode == 0 and result is not None:
        entry.update(status="ok", result=result)
    else:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        entry.update(status="failed", result=result, error=" | ".join(tail)[-600:])
    return entry


def _fmt(v: float | int) -> str:
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def headline(name: str, result: dict[str, Any] | None) -> str:
    """A few figures of one benchmark's JSON, for the summary (pure; unknown shapes show numeric leaves)."""
    if not result:
        return "-"
    skip = {"machine", "settings", "runs", "per_run", "targets"}
    parts = []
    for key, value in result.items():
        if key in skip:
            continue
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            parts.append(f"{key}={_fmt(value)}")
        elif isinstance(value, dict):
            inner = [
                f"{k}={_fmt(v)}"
                for k, v in value.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            if inner and len(inner) <= 6:
                parts.append(f"{key}: " + ", ".join(inner))
        if len(parts) >= 8:
            break
    return "; ".join(parts) or "-"


def settings_summary(s: Settings) -> dict[str, Any]:
    return {
        "spark_master": s.spark.master,
        "spark_driver_memory": s.spark.driver_memory,
        "spark_shuffle_partitions": s.spark.shuffle_partitions,
        "speed_state_partitions": s.spark.state_partitions,
        "speed_state_buckets": s.spark.state_buckets,
        "max_offsets_per_trigger": s.spark.max_offsets_per_trigger,
        "trigger_interval": s.spark.trigger_interval,
        "kafka_partitions": s.kafka.partitions,
        "kafka_bootstrap": s.kafka.bootstrap_servers,
        "postgres": f"{s.postgres.host}:{s.postgres.port}",
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# ecom bench all — {report['generated_at']}",
        "",
        f"Machine: {m.get('cpu_count')} CPU ({m.get('cpu_model')}), {m.get('memory_gb')} GB RAM, "
        f"{m.get('platform')}, Python {m.get('python')}, load average {m.get('load_avg_1m')} at start.",
        f"Settings: {', '.join(f'{k}={v}' for k, v in report['settings'].items())}.",
        f"Reproduce: `{report['command']}` (scale {report['scale']}, runs {report['runs']}).",
        "",
        "| benchmark | status | wall s | figures | command |",
        "|---|---|---|---|---|",
    ]
    for name, b in report["benchmarks"].items():
        figures = headline(name, b.get("result")) if b["status"] == "ok" else b.get("error", "-")
        lines.append(
            f"| {name} | {b['status']} | {b.get('wall_s', '-')} | {figures.replace('|', '/')} | `{b.get('command', '-')}` |"
        )
    lines += ["", "Each benchmark's full JSON (with its own settings and machine) is in the JSON report.", ""]
    return "\n".join(lines)


def run_all(
    names: list[str], scale: float, runs: int, timeout_s: float, settings: Settings, command: str
) -> tuple[dict[str, Any], Path, Path]:
    present = available_benchmarks()
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "scale": scale,
        "runs": runs,
        "machine": machine_info(),
        "settings": settings_summary(settings),
        "benchmarks": {},
    }
    specs = {b.name: b for b in BENCHES}
    for name in names:
        if name not in present:
            report["benchmarks"][name] = {
                "status": "missing",
                "error": f"`ecom bench {name}` is not registered",
            }
            continue
        print(f"[bench all] {name} ...", file=sys.stderr, flush=True)
        entry = run_one(specs[name], scale, runs, timeout_s)
        print(
            f"[bench all] {name}: {entry['status']} in {entry.get('wall_s')} s", file=sys.stderr, flush=True
        )
        report["benchmarks"][name] = entry
    out_dir = settings.state_dir / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path, md_path = out_dir / "bench-all-latest.json", out_dir / "bench-all-latest.md"
    text = json.dumps(report, indent=2, default=str)
    for path in (json_path, out_dir / f"bench-all-{stamp}.json"):
        path.write_text(text)
    md = markdown(report)
    for path in (md_path, out_dir / f"bench-all-{stamp}.md"):
        path.write_text(md)
    return report, json_path, md_path


def _names(only: str | None, skip: str | None) -> list[str]:
    known = [b.name for b in BENCHES]
    chosen = [n.strip() for n in only.split(",")] if only else list(known)
    dropped = {n.strip() for n in skip.split(",")} if skip else set()
    unknown = sorted((set(chosen) | dropped) - set(known))
    if unknown:
        raise EcomError(f"unknown benchmark(s) {unknown}; choose from {known}")
    return [n for n in chosen if n not in dropped]


def cmd_bench_all(args: argparse.Namespace) -> int:
    if args.scale <= 0 or args.runs < 1 or args.timeout <= 0:
        raise EcomError("--scale and --timeout must be > 0 and --runs >= 1")
    names = _names(args.only, args.skip)
    command = "ecom bench all " + " ".join(sys.argv[sys.argv.index("all") + 1 :] if "all" in sys.argv else [])
    report, json_path, md_path = run_all(
        names, args.scale, args.runs, args.timeout, get_settings(), command.strip()
    )
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(md_path.read_text())
    print(f"[bench all] report {json_path}, summary {md_path}", file=sys.stderr)
    return 0 if all(b["status"] == "ok" for b in report["benchmarks"].values()) else 1


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser(
        "all", help="run every room's benchmark (modest sizes), write a JSON report + Markdown summary"
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply the data sizes (default 1; 10 = room targets)"
    )
    p.add_argument("--runs", type=int, default=1, help="runs for benchmarks that take the median of several")
    p.add_argument("--only", help="comma-separated benchmarks to run (default: all)")
    p.add_argument("--skip", help="comma-separated benchmarks to leave out (e.g. stack)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per benchmark (default 1800)")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.set_defaults(func=cmd_bench_all)
