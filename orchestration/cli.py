"""`ecom` sub-commands of the orchestration room: `ecom batch` and `ecom docs`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from kernel.errors import EcomError
from kernel.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this room's sub-commands to the `ecom` parser."""
    batch = subparsers.add_parser(
        "batch",
        help="materialize the batch and serving layers through Dagster (exit 1 if a check fails)",
        description="Runs the Dagster job `batch_refresh` (dbt build: staging -> marts -> serving, every dbt "
        "test as an asset check) in this process against the instance at DAGSTER_HOME, so the run shows in "
        "the Dagster UI exactly like one launched there.",
    )
    batch.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    batch.add_argument(
        "--job",
        default="batch_refresh",
        choices=[
            "batch_refresh",
            "batch_refresh_full",
            "refresh_all",
            "analytics_refresh",
            "fraud_model_retrain",
            "quality_checks",
        ],
        help="the Dagster job to run (default batch_refresh, the increment; batch_refresh_full = every dbt test over every "
        "row and the Great Expectations suites on the marts, as the schedule runs it; refresh_all = every asset but the Metabase "
        "dashboards: dbt, analytics, model retrain, with all checks)",
    )
    batch.add_argument("--json", action="store_true", help="print the outcome as JSON")
    batch.add_argument("--verbose", action="store_true", help="show Dagster's debug log of the run")
    batch.set_defaults(func=cmd_batch)

    docs = subparsers.add_parser("docs", help="generate and serve the dbt docs site")
    docs.add_argument(
        "--no-serve", "--generate-only", dest="serve", action="store_false", help="generate the site and exit"
    )
    docs.add_argument("--port", type=int, default=None, help="port (default: settings, ECOM_DBT_DOCS_PORT)")
    docs.set_defaults(func=cmd_docs)


def cmd_batch(args: argparse.Namespace) -> int:
    from orchestration.batch import run_batch, summarize

    level = "DEBUG" if args.verbose else "WARNING"
    if args.json:  # dbt's progress lines go to stderr so stdout is only the JSON document
        with contextlib.redirect_stdout(sys.stderr):
            outcome = run_batch(full_refresh=args.full_refresh, log_level=level, job_name=args.job)
    else:
        outcome = run_batch(full_refresh=args.full_refresh, log_level=level, job_name=args.job)
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": outcome.run_id,
                    "success": outcome.success,
                    "nothing_changed": outcome.nothing_changed,
                    "seconds": round(outcome.seconds, 2),
                    "materialized": outcome.materialized,
                    "checks": len(outcome.checks),
                    "failed_checks": [c.__dict__ for c in outcome.failed_checks],
                },
                indent=2,
            )
        )
    else:
        print("\n".join(summarize(outcome)))
    if not outcome.success and not outcome.failed_checks:
        raise EcomError(
            f"the batch run {outcome.run_id} failed before its checks ran; open it in the Dagster UI "
            f"({get_settings().dagster.url}/runs/{outcome.run_id}) for the step's log"
        )
    return 0 if outcome.ok else 1


def cmd_docs(args: argparse.Namespace) -> int:
    from orchestration.dbt_docs import generate_docs, make_docs_server

    s = get_settings()
    target = generate_docs(s)
    print(f"dbt docs generated in {target}")
    if not args.serve:
        return 0
    port = args.port or s.dbt.docs_port
    server = make_docs_server(target, s.bind_host, port)
    print(f"serving dbt docs at http://{s.bind_host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
