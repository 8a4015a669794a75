"""Per-cell figures read off a results directory's curves, for the tables in results/README.md that the
leaderboard does not print: a column's value at given env steps (mean or median over seeds) and the
mean evaluation return over a window of the last env steps.

    python scripts/curve_table.py results/virel-cartpole --at 5000 20000 100000 --column eps_w --median
    python scripts/curve_table.py results/misspecification-cartpole --window 180000 200000

Diverged and failed seeds count with the rows their curves have (a diverged seed's curve stops early); a
value read at a step some seeds have not reached (running, diverged or failed) says how many reached it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def cells(results: Path) -> dict[str, list[pd.DataFrame]]:
    """``algo/env/capacity`` -> the curves of its seeds."""
    found: dict[str, list[pd.DataFrame]] = {}
    for curve in sorted(results.glob("*/*/*/seed_*/curve.csv")):
        found.setdefault(str(curve.parent.parent.relative_to(results)), []).append(pd.read_csv(curve))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--column", default="eval_return", help="curve.csv column (default eval_return)")
    parser.add_argument("--at", type=int, nargs="*", default=[], help="env steps to read the column at")
    parser.add_argument("--median", action="store_true", help="median over seeds instead of the mean")
    parser.add_argument(
        "--window",
        type=int,
        nargs=2,
        metavar=("AFTER", "UPTO"),
        help="mean eval_return over evaluations with AFTER < env_step <= UPTO, then over seeds",
    )
    args = parser.parse_args()
    found = cells(args.results)
    if not found:
        parser.exit(2, f"error: no */*/*/seed_*/curve.csv under {args.results}\n")
    for cell, curves in found.items():
        columns = sorted(set().union(*(c.columns for c in curves)))
        if args.at and args.column not in columns:
            parser.exit(2, f"error: {cell} has no column {args.column!r}; valid: {', '.join(columns)}\n")
        parts = [cell, f"{len(curves)} seeds"]
        for step in args.at:
            values = pd.Series([c.loc[c.env_step <= step, args.column].iloc[-1] for c in curves])
            value = f"{args.column}@{step}={values.median() if args.median else values.mean():.4g}"
            reached = sum(int(c.env_step.max() >= step) for c in curves)
            if reached < len(curves):  # a running, diverged or failed seed: read at its last evaluation
                value += f" [{reached}/{len(curves)} seeds reached {step}]"
            parts.append(value)
        if args.window:
            after, upto = args.window
            late = [c.loc[(c.env_step > after) & (c.env_step <= upto), "eval_return"].mean() for c in curves]
            parts.append(f"eval_return({after},{upto}]={pd.Series(late).mean():.4g}")
        print(" | ".join(parts))


if __name__ == "__main__":
    main()
