"""`ecom quality`: run every Great Expectations suite, print the score, build and serve the Data Docs."""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys

from kernel.errors import EcomError
from kernel.settings import get_settings

BLOCKING_EXIT = 1  # a critical expectation failed: what depends on the data must not run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this room's sub-commands to the `ecom` parser."""
    from expectations.catalog import Thresholds

    defaults = Thresholds()
    p = subparsers.add_parser(
        "quality",
        help="run the data-quality suites (Great Expectations) and print the score",
        description="Run every expectation suite against Postgres, store each result in "
        "quality.expectation_results, rebuild the Data Docs. Exits 1 when a blocking (critical) "
        "expectation fails.",
    )
    p.add_argument("--json", action="store_true", help='print {"score", "suites": [...]} as JSON')
    p.add_argument("--suite", action="append", metavar="NAME", help="run only this suite (repeatable)")
    p.add_argument(
        "--speed-lag-minutes",
        type=int,
        default=defaults.speed_lag_minutes,
        help="master rows older than this must have a speed-layer row (default %(default)s)",
    )
    p.add_argument(
        "--future-tolerance-minutes",
        type=int,
        default=defaults.future_tolerance_minutes,
        help="how far past its landing time an event may be dated (default %(default)s)",
    )
    p.add_argument(
        "--no-store", action="store_true", help="do not write results to quality.expectation_results"
    )
    p.add_argument(
        "--schema",
        help="validate copies of the tables in this one schema (<schema>.transactions, .scored_transactions, "
        ".fct_transactions, ...) instead of the platform's relations",
    )
    p.add_argument(
        "--context-dir",
        help="GX project folder to use instead of the generated one in the state dir (its context goes in <dir>/gx)",
    )
    p.set_defaults(func=run_command)
    sub = p.add_subparsers(dest="quality_command", metavar="{docs}", parser_class=type(p))
    d = sub.add_parser("docs", help="rebuild the Data Docs site and print its path (or serve it)")
    d.add_argument(
        "--serve",
        action="store_true",
        help="serve the site over HTTP on settings.gx_data_docs_port (ECOM_DATA_DOCS_PORT) until Ctrl-C",
    )
    d.set_defaults(func=docs_command)


def _format_table(report: dict) -> str:
    lines = [f"{'suite':<28} {'status':<8} {'evaluated':>9} {'failed':>6} {'score':>6}"]
    for s in report["suites"]:
        sc = "-" if s["score"] is None else f"{s['score']:.3f}"
        lines.append(
            f"{s['name']:<28} {s['status']:<8} {s['evaluated']:>9} {len(s['failed_expectations']):>6} {sc:>6}"
        )
        for f in s["failed_expectations"]:
            what = f.get("description") or f["expectation"]
            lines.append(
                f"    [{f['severity']}] {what}: observed {json.dumps(f['observed_value'], default=str)}"
            )
    score = "-" if report["score"] is None else f"{report['score']:.3f}"
    lines.append(f"quality score {score}  (run {report['run_id']})")
    if report["blocking_failure"]:
        lines.append("BLOCKING: a critical expectation failed; downstream assets must not run")
    if report["data_docs"]:
        lines.append(f"Data Docs: {report['data_docs']}")
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    from expectations.catalog import Thresholds
    from expectations.runner import run_suites

    if args.speed_lag_minutes < 0 or args.future_tolerance_minutes < 0:
        raise EcomError(
            "--speed-lag-minutes and --future-tolerance-minutes must be >= 0; pass a number of minutes"
        )
    from pathlib import Path

    from expectations.catalog import Targets, suite_names

    known = suite_names()
    unknown = [n for n in args.suite or () if n not in known]
    if unknown:
        raise EcomError(f"unknown suite {', '.join(unknown)}; choose from {', '.join(known)}")
    run = run_suites(
        args.suite,
        targets=Targets.in_schema(args.schema) if args.schema else None,
        thresholds=Thresholds(args.speed_lag_minutes, args.future_tolerance_minutes),
        project_root=Path(args.context_dir) if args.context_dir else None,
        store=not args.no_store,
    )
    report = run.to_json()
    print(json.dumps(report, indent=2, default=str) if args.json else _format_table(report))
    return BLOCKING_EXIT if run.blocking else 0


def docs_command(args: argparse.Namespace) -> int:
    from expectations.runner import build_docs

    settings = get_settings()
    index = build_docs(settings=settings)
    print(index)
    if not args.serve:
        return 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(index.parent))
    host, port = settings.bind_host, settings.gx_data_docs_port
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise EcomError(
            f"cannot serve Data Docs on {host}:{port} ({exc.strerror}); "
            "free the port or set ECOM_DATA_DOCS_PORT"
        ) from exc
    print(f"serving Data Docs at http://{host}:{port}/index.html (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
