"""`ecom cluster up|down|status`: the local Spark standalone cluster (see stack/spark_cluster.py)."""

from __future__ import annotations

import argparse
import json

from stack import spark_cluster


def _up(args: argparse.Namespace) -> int:
    st = spark_cluster.up()
    print(json.dumps(st) if args.json else _text(st))
    print(f"run the stream on it: SPARK_MASTER={st['master_url']} ecom stream ...")
    return 0


def _down(args: argparse.Namespace) -> int:
    spark_cluster.down()
    print("spark cluster stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    st = spark_cluster.status()
    print(json.dumps(st) if args.json else _text(st))
    return 0 if st["workers"] and all(d["healthy"] for d in st["daemons"]) else 1


def _text(st: dict) -> str:
    lines = [f"  master {st['master_url']}  ui {st['ui']}"]
    for d in st["daemons"]:
        lines.append(f"  {d['name']:<13} {'healthy' if d['healthy'] else 'DOWN':<8} pid={d['pid'] or '-'}")
    for w in st["workers"]:
        lines.append(f"  worker {w['id']} {w['state']} cores={w['cores']} memory={w['memory_mb']} MB")
    if st["running_apps"]:
        lines.append(f"  running: {', '.join(st['running_apps'])}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cluster", help="start/stop a local Spark standalone master + one worker (the scale-out path)"
    )
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])  # `ecom cluster` alone: show the actions
    sub = p.add_subparsers(dest="cluster_command", metavar="ACTION", parser_class=type(p))
    for name, func, text in (
        ("up", _up, "start the master and one worker on the stack's address; idempotent"),
        ("down", _down, "stop the worker, its executors and the master"),
        ("status", _status, "master URL, daemons, workers and running applications"),
    ):
        q = sub.add_parser(name, help=text)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=func)
