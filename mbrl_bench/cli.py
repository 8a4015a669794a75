"""The ``mbrl-bench`` command line."""

from __future__ import annotations

import argparse
import sys


def _cmd_envs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from mbrl_bench.envs.listing import describe_envs

    table = Table(title="mbrl-bench environments")
    for column in ("id", "observation space", "action space", "horizon", "what it is for"):
        table.add_column(column, overflow="fold")
    for row in describe_envs():
        table.add_row(row.env_id, row.observation_space, row.action_space, str(row.horizon), row.description)
    Console(width=200).print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mbrl-bench", description="Model-based RL under model misspecification: a benchmark."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    envs = sub.add_parser("envs", help="list the registered environments")
    envs.set_defaults(func=_cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
