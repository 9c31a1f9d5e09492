"""`ecom metabase ...`: provision the dashboards into Metabase and check their SQL against Postgres;
`ecom dashboards serve`: the same dashboards in the browser without Metabase (Plotly Dash)."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import psycopg

from kernel.errors import EcomError
from kernel.settings import get_settings


def _specs(args: argparse.Namespace):
    from dashboards.spec import load_specs

    settings = get_settings()
    specs_dir = Path(args.specs_dir) if args.specs_dir else settings.metabase.specs_dir
    return settings, load_specs(specs_dir, args.only or None)


def cmd_provision(args: argparse.Namespace) -> int:
    from dashboards.provision import provision

    settings, specs = _specs(args)
    result = provision(settings, specs, dry_run=args.dry_run, sync=args.sync, wait_s=args.wait)
    print(result.report())
    return 0


def _parse_values(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise EcomError(f"--param {pair!r} is not NAME=VALUE; write e.g. --param customer_id=C000123")
        values[name] = value
    return values


def cmd_check_sql(args: argparse.Namespace) -> int:
    from dashboards.check_sql import check_specs

    settings, specs = _specs(args)
    values = _parse_values(args.param)
    try:
        results = check_specs(settings, specs, values, require_rows=args.require_rows)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EcomError(
            f"cannot connect to Postgres at {settings.postgres.host}:{settings.postgres.port} ({first}); "
            "start the stack with 'ecom up'"
        ) from None
    failed = [r for r in results if not r.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "cards": len(results),
                    "failed": len(failed),
                    "results": [
                        {
                            "dashboard": r.dashboard,
                            "card": r.card,
                            "ok": r.ok,
                            "rows": r.rows,
                            "ms": round(r.ms, 1),
                            "missing_columns": list(r.missing),
                            "error": r.error or None,
                        }
                        for r in results
                    ],
                }
            )
        )
    else:
        for r in results:
            print(r.line())
        print(f"{len(results) - len(failed)}/{len(results)} cards ok")
    return 1 if failed else 0


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise EcomError(
                f"cannot serve the dashboards on {host}:{port} ({exc.strerror}); stop what uses it or set "
                "ECOM_DASHBOARDS_PORT (or pass --port)"
            ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from dashboards.app import serve

    settings, specs = _specs(args)
    host = args.host or settings.dashboards.host
    port = args.port or settings.dashboards.port
    _check_port_free(host, port)
    print(f"serving {len(specs)} dashboards at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    serve(settings, specs, host, port)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this room's sub-commands to the `ecom` parser."""
    mb = subparsers.add_parser("metabase", help="Metabase dashboards as code: provision and check")
    mb_sub = mb.add_subparsers(dest="metabase_command", metavar="SUBCOMMAND", parser_class=type(mb))
    mb.set_defaults(func=lambda a: (mb.print_help(), 2)[1])

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--specs-dir", help="folder of dashboard YAML specs (default: dashboards/specs)")
    common.add_argument(
        "--only", action="append", metavar="KEY", help="only this dashboard (file stem); repeatable"
    )

    p = mb_sub.add_parser(
        "provision",
        parents=[common],
        help="create or update the database connection, collections, cards and dashboards (idempotent)",
        description="Reconcile Metabase (METABASE_URL) with the specs. Credentials: METABASE_API_KEY, or "
        "METABASE_USER (an email) + METABASE_PASSWORD; on a new instance these create the admin.",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    p.add_argument(
        "--sync", action="store_true", help="also trigger a schema sync when the database is unchanged"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for Metabase to be healthy",
    )
    p.set_defaults(func=cmd_provision)

    c = mb_sub.add_parser(
        "check-sql",
        parents=[common],
        help="run every card's SQL against the platform Postgres; non-zero exit on any failure",
    )
    c.add_argument(
        "--param", action="append", default=[], metavar="TAG=VALUE", help="template tag value; repeatable"
    )
    c.add_argument("--require-rows", action="store_true", help="also fail cards that return no rows")
    c.add_argument("--json", action="store_true", help="print results as JSON")
    c.set_defaults(func=cmd_check_sql)

    d = subparsers.add_parser(
        "dashboards", help="the dashboards of dashboards/specs/ in the browser, without Metabase"
    )
    d_sub = d.add_subparsers(dest="dashboards_command", metavar="SUBCOMMAND", parser_class=type(d))
    d.set_defaults(func=lambda a: (d.print_help(), 2)[1])
    s = d_sub.add_parser(
        "serve",
        parents=[common],
        help="serve every dashboard (Plotly Dash) as the read-only role ecom_dashboards until Ctrl-C",
    )
    s.add_argument("--host", help="address to bind (default: ECOM_DASHBOARDS_HOST, else ECOM_BIND_HOST)")
    s.add_argument("--port", type=int, help="port (default: ECOM_DASHBOARDS_PORT, 8050)")
    s.set_defaults(func=cmd_serve)
