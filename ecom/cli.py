"""`ecom`: the platform's one command-line interface.

Each room registers its own sub-commands (a `register(subparsers)` function in its `cli` module), so
this file only assembles them. Errors the user can fix are `EcomError`s, printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kernel.errors import EcomError

# room modules that contribute sub-commands, in help order
COMMAND_MODULES = [
    "ecom.stack_cli",
    "events.cli",
    "streaming.cli",
    "ml.cli",
    "orchestration.cli",
    "analytics.cli",
    "expectations.cli",
    "dashboards.cli",
    "ecom.cluster_cli",
    "bench.cli",
    "ecom.demo",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line naming the command and how to get help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ecom", description="ecom-lambda: Lambda-architecture e-commerce data platform"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a room without commands of its own yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except EcomError as exc:
        print(f"ecom {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"ecom {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
