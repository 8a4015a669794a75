"""Two reference tables side by side, as a markdown table for results/README.md: per (env, budget) the
mean ± sample std of every reference agent in the old and the new table, and whether the new table's
references are flagged by the leaderboard's rule (a zero-action or random policy within 20% of PPO).

    python scripts/compare_reference_tables.py OLD.csv NEW.csv

A cell is "—" where a table has no such row (Rainbow on continuous actions, `zero` on discrete ones, or
an env variant the old table did not calibrate).
"""

from __future__ import annotations

import argparse

import pandas as pd

from mbrl_bench.reference import REFERENCE_AGENTS, load_reference_scores, match_reference, reference_flags


def _cell(table: pd.DataFrame, env: str, budget: int, agent: str) -> str:
    rows = table[(table["env"] == env) & (table["budget"] == budget) & (table["agent"] == agent)]
    if rows.empty:
        return "—"
    row = rows.iloc[0]
    return f"{row['mean']:.1f} ± {row['std']:.1f}"


def side_by_side(old: pd.DataFrame, new: pd.DataFrame) -> str:
    """The markdown table: one row per (env, budget) of either table, old | new per agent, then flags."""
    agents = [a for a in REFERENCE_AGENTS if a in set(old["agent"]) | set(new["agent"])]
    header = ["env", "budget"] + [f"{a} {which}" for a in agents for which in ("old", "new")] + ["new flag"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = pd.concat([old[["env", "budget"]], new[["env", "budget"]]]).drop_duplicates()
    for env, budget in sorted(keys.itertuples(index=False, name=None)):
        cells = [_cell(t, env, budget, a) for a in agents for t in (old, new)]
        flags = reference_flags(match_reference(new, env, budget)) if (new["env"] == env).any() else ()
        flag = "; ".join(f.split(" reference")[0] for f in flags) or "no"
        lines.append("| " + " | ".join([f"`{env}`", f"{budget // 1000}K", *cells, flag]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the earlier reference table (CSV)")
    parser.add_argument("new", help="the later reference table (CSV)")
    args = parser.parse_args()
    print(side_by_side(load_reference_scores(args.old), load_reference_scores(args.new)))


if __name__ == "__main__":
    main()
