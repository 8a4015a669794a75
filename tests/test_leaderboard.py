"""The leaderboard on a synthetic results tree with a fixture reference table; the reference loader."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mbrl_bench.leaderboard import (
    AGGREGATE_COLUMNS,
    LEADERBOARD_COLUMNS,
    ResultsError,
    build_leaderboard,
    plot_aggregates,
    scan_results,
    write_leaderboard,
)
from mbrl_bench.reference import (
    REFERENCE_COLUMNS,
    REFERENCE_ENV_VAR,
    ReferenceTableError,
    load_reference_scores,
    match_reference,
)
from mbrl_bench.stats import BootstrapConfig

ENV_A = "mbrl_bench/CartPoleDistractor-v0"
ENV_B = "mbrl_bench/CartPoleDistractor-v0(num_distractors=20)"
ENV_C = "mbrl_bench/HalfCheetah-v5"
REQUIRED = [
    "algo", "env", "capacity", "n_seeds", "budget", "return_mean", "return_ci_low", "return_ci_high", "auc",
    "random_score", "ppo_score", "rainbow_score", "ppo_normalised", "rainbow_normalised",
]  # fmt: skip
HEADER = "env_step,eval_return,eval_return_std,eval_episodes,wall_time_s\n"


def write_seed(
    root: Path,
    algo: str,
    env: str,
    capacity: str,
    seed: int,
    returns: list[float] | None,
    state: str = "done",
    every: int = 1000,
) -> Path:
    """One seed directory in the harness's layout; ``returns`` at steps 0, every, 2*every, ..."""
    seed_dir = root / algo / env.replace("/", "__") / capacity / f"seed_{seed}"
    seed_dir.mkdir(parents=True)
    config = {"algo": algo, "env_id": env.split("(")[0], "env_kwargs": {}, "env_label": env,
              "capacity": capacity, "seed": seed, "steps": every * 2}  # fmt: skip
    (seed_dir / "config.json").write_text(json.dumps(config))
    (seed_dir / "status.json").write_text(json.dumps({"state": state}))
    if returns is not None:
        n = len(returns)
        pd.DataFrame(
            {
                "env_step": np.arange(n) * every,
                "eval_return": returns,
                "eval_return_std": np.ones(n),
                "eval_episodes": np.full(n, 10),
                "wall_time_s": np.arange(n) * 0.5,
            }
        ).to_csv(seed_dir / "curve.csv", index=False)
    return seed_dir


def reference_rows() -> list[tuple[str, int, str, float]]:
    return [
        (ENV_A, 2000, "random", 10.0),
        (ENV_A, 2000, "ppo", 110.0),
        (ENV_A, 2000, "rainbow", 60.0),
        (ENV_A, 4000, "random", 10.0),
        (ENV_A, 4000, "ppo", 210.0),
        (ENV_A, 4000, "rainbow", 110.0),
        (ENV_B, 2000, "random", 0.0),
        (ENV_B, 2000, "ppo", 50.0),
    ]


def write_reference(path: Path, rows: list[tuple[str, int, str, float]]) -> Path:
    frame = pd.DataFrame(
        [
            {"env": e, "budget": b, "agent": a, "mean": m, "std": 1.0, "n_seeds": 5, "commit": "abc123",
             "date": "2025-01-01", "command": "mbrl-bench calibrate --env X, --seeds 5"}
            for e, b, a, m in rows
        ],
        columns=list(REFERENCE_COLUMNS),
    )  # fmt: skip
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return write_reference(tmp_path / "reference.csv", reference_rows())


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed, (r1, r2) in enumerate([(30.0, 60.0), (50.0, 110.0), (80.0, 160.0)]):
        write_seed(root, "omd", ENV_A, "full", seed, [0.0, r1, r2])
    for seed, final in enumerate([35.0, 45.0]):
        write_seed(root, "mle", ENV_A, "full", seed, [0.0, 20.0, final])
    for seed, final in enumerate([25.0, 35.0]):
        write_seed(root, "omd", ENV_B, "full", seed, [0.0, 5.0, final])
    write_seed(root, "mle", ENV_B, "full", 0, [0.0, 5.0, 10.0])
    write_seed(root, "mle", ENV_B, "full", 1, [0.0, 5.0], state="diverged")
    write_seed(root, "omd", ENV_C, "full", 0, [0.0, 1.0, 2.0])
    return root


def board_of(results: Path, reference: Path, **kwargs):
    return build_leaderboard(results, references=reference, **kwargs)


def test_columns_and_sorting(results, reference):
    cells = board_of(results, reference).cells
    assert list(cells.columns[: len(REQUIRED)]) == REQUIRED
    assert list(cells.columns) == list(LEADERBOARD_COLUMNS)
    # by env, then ppo_normalised descending (NaN last)
    assert list(zip(cells["env"], cells["algo"], strict=True)) == [
        (ENV_A, "omd"), (ENV_A, "mle"), (ENV_B, "omd"), (ENV_B, "mle"), (ENV_C, "omd"),
    ]  # fmt: skip


def test_normalisation_against_the_matching_reference(results, reference):
    cells = board_of(results, reference).cells.set_index(["algo", "env"])
    omd = cells.loc[("omd", ENV_A)]
    assert omd["n_seeds"] == 3 and omd["budget"] == 2000 and omd["reference_budget"] == 2000
    assert omd["return_mean"] == pytest.approx(110.0)
    assert omd["return_ci_low"] < 110.0 < omd["return_ci_high"]
    assert omd["return_std"] == pytest.approx(50.0)
    # per-seed AUC (r1 + r2 / 2) / 2: 30, 52.5, 80
    assert omd["auc"] == pytest.approx(162.5 / 3.0)
    assert (omd["random_score"], omd["ppo_score"], omd["rainbow_score"]) == (10.0, 110.0, 60.0)
    assert omd["ppo_normalised"] == pytest.approx(1.0)  # (110 - 10) / (110 - 10)
    assert omd["rainbow_normalised"] == pytest.approx(2.0)  # (110 - 10) / (60 - 10)
    assert cells.loc[("mle", ENV_A), "ppo_normalised"] == pytest.approx(0.3)  # (40 - 10) / 100


def test_missing_reference_gives_nan_with_the_reason(results, reference):
    board = board_of(results, reference)
    cells = board.cells.set_index(["algo", "env"])
    omd_b = cells.loc[("omd", ENV_B)]
    assert omd_b["ppo_normalised"] == pytest.approx(0.6)  # (30 - 0) / 50
    assert math.isnan(omd_b["rainbow_normalised"]) and math.isnan(omd_b["rainbow_score"])
    assert f"no rainbow reference for {ENV_B} at budget 2000" in omd_b["notes"]
    omd_c = cells.loc[("omd", ENV_C)]
    assert omd_c["n_seeds"] == 1 and omd_c["return_mean"] == 2.0
    assert math.isnan(omd_c["ppo_normalised"]) and math.isnan(omd_c["random_score"])
    assert "no reference scores for mbrl_bench/HalfCheetah-v5" in omd_c["notes"]
    assert math.isnan(omd_c["return_ci_low"])  # one seed: no CI
    assert any(ENV_C in w and "no reference scores" in w for w in board.warnings)


def test_diverged_seeds_count_at_the_random_score_and_are_flagged(results, reference):
    board = board_of(results, reference)
    mle_b = board.cells.set_index(["algo", "env"]).loc[("mle", ENV_B)]
    # ENV_B's random reference is 0: the diverged seed counts as 0 beside the done seed's 10.
    assert (mle_b["n_seeds"], mle_b["n_diverged"], mle_b["return_mean"]) == (2, 1, 5.0)
    assert "1 seed(s) diverged, counted at the random reference's return 0" in mle_b["notes"]
    assert any("mle" in w and "diverged" in w for w in board.warnings)
    runs = board.runs.set_index(["algo", "env", "seed"])
    broken = runs.loc[("mle", ENV_B, 1)]
    assert (broken["outcome"], broken["final_return"], broken["ppo_normalised"]) == ("diverged", 0.0, 0.0)
    assert math.isnan(broken["auc"])
    # Counting it lowers mle's aggregate against leaving it out: runs 0.2 (done) and 0 (diverged).
    agg = board.aggregates.set_index("algo").loc["mle"]
    assert agg["ppo_n_runs"] == 4


def test_broken_seeds_without_a_random_reference_are_excluded_with_a_note(tmp_path, reference):
    root = tmp_path / "r"
    write_seed(root, "omd", ENV_C, "full", 0, [0.0, 1.0, 2.0])
    write_seed(root, "omd", ENV_C, "full", 1, None, state="failed")
    cell = build_leaderboard(root, references=reference).cells.iloc[0]
    assert (cell["n_seeds"], cell["n_failed"]) == (1, 1)
    assert "1 seed(s) failed, excluded: no random reference to score them" in cell["notes"]


def test_a_cell_whose_seeds_all_broke_is_scored_at_its_planned_budget(tmp_path, reference):
    root = tmp_path / "r"
    write_seed(root, "omd", ENV_A, "full", 0, [0.0, 50.0], state="diverged")  # planned for 2000 steps
    write_seed(root, "omd", ENV_A, "full", 1, None, state="failed")
    cell = build_leaderboard(root, references=reference).cells.iloc[0]
    assert (cell["budget"], cell["reference_budget"], cell["n_seeds"]) == (2000, 2000, 2)
    assert (cell["return_mean"], cell["ppo_normalised"]) == (10.0, 0.0)


def test_explicit_budget_picks_earlier_evaluations_and_the_nearest_reference_above(results, reference):
    cells = board_of(results, reference, budget=1500).cells.set_index(["algo", "env"])
    omd = cells.loc[("omd", ENV_A)]
    assert omd["budget"] == 1500 and omd["reference_budget"] == 2000
    assert omd["return_mean"] == pytest.approx(160.0 / 3.0)  # the step-1000 returns 30, 50, 80


def test_seeds_short_of_the_budget_are_excluded_and_flagged(results, reference):
    board = board_of(results, reference, budget=3000)
    omd = board.cells.set_index(["algo", "env"]).loc[("omd", ENV_A)]
    assert (omd["n_seeds"], omd["n_short"], omd["budget"]) == (0, 3, 3000)
    assert math.isnan(omd["return_mean"]) and math.isnan(omd["ppo_normalised"])
    assert any("not reaching budget 3000" in w for w in board.warnings)


def test_default_budget_follows_finished_seeds_and_drops_lagging_running_ones(tmp_path, reference):
    root = tmp_path / "r"
    write_seed(root, "omd", ENV_A, "full", 0, [0.0, 10.0, 20.0])
    write_seed(root, "omd", ENV_A, "full", 1, [0.0, 30.0], state="running")
    write_seed(root, "omd", ENV_A, "full", 2, None, state="failed")
    write_seed(root, "mle", ENV_A, "full", 0, [0.0, 10.0, 20.0], state="running")
    write_seed(root, "mle", ENV_A, "full", 1, [0.0, 30.0], state="running")
    write_seed(root, "mle", ENV_A, "full", 2, None, state="pending")
    cells = build_leaderboard(root, references=reference).cells.set_index("algo")
    # the failed seed counts at the random reference (10): seeds 20 and 10
    assert (cells.loc["omd", "budget"], cells.loc["omd", "n_seeds"]) == (2000, 2)
    assert (cells.loc["omd", "n_short"], cells.loc["omd", "n_failed"]) == (1, 1)
    assert cells.loc["omd", "return_mean"] == 15.0
    # no done seed: the shortest curve sets the budget, so both running seeds count
    assert (cells.loc["mle", "budget"], cells.loc["mle", "n_seeds"], cells.loc["mle", "n_short"]) == (
        1000,
        2,
        1,
    )
    assert cells.loc["mle", "return_mean"] == 20.0


def test_aggregates_by_hand(results, reference):
    agg = board_of(results, reference).aggregates.set_index(["algo", "capacity"])
    assert list(agg.reset_index().columns) == list(AGGREGATE_COLUMNS)
    omd = agg.loc[("omd", "full")]
    assert (omd["n_envs"], omd["ppo_n_envs"], omd["ppo_n_runs"]) == (3, 2, 5)
    # ppo-normalised runs: env A 0.5, 1.0, 1.5; env B 0.5, 0.7 -> IQM mean(0.5, 0.7, 1.0)
    assert omd["ppo_iqm"] == pytest.approx(2.2 / 3.0)
    assert omd["ppo_optimality_gap"] == pytest.approx(0.26)
    assert omd["ppo_iqm_ci_low"] <= omd["ppo_iqm"] <= omd["ppo_iqm_ci_high"]
    # rainbow: env A only (1, 2, 3): IQM of 3 runs is their mean; all above 1 -> no gap
    assert (omd["rainbow_n_envs"], omd["rainbow_iqm"], omd["rainbow_optimality_gap"]) == (1, 2.0, 0.0)


def test_write_is_atomic_and_round_trips(results, reference, tmp_path):
    board = board_of(results, reference)
    files = write_leaderboard(board, tmp_path / "out" / "lb.csv")
    assert files.aggregates.name == "lb_aggregates.csv" and files.runs.name == "lb_runs.csv"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "lb.csv",
        "lb_aggregates.csv",
        "lb_runs.csv",
    ]
    back = pd.read_csv(files.cells)
    assert list(back.columns) == list(LEADERBOARD_COLUMNS)
    np.testing.assert_allclose(back["ppo_normalised"], board.cells["ppo_normalised"])
    assert write_leaderboard(board).cells == results / "leaderboard.csv"
    build_leaderboard(results, references=reference)  # files written into DIR do not disturb a re-read


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty file"),
        (HEADER, "no evaluation rows"),
        ("env_step,eval_return\n0,1\n", "missing columns ['eval_return_std'"),
        (HEADER + "0,abc,1,10,0\n", "non-numeric value 'abc'"),
        (HEADER + "0,,1,10,0\n", "non-finite value"),
        (HEADER + "5,1,1,10,0\n", "first evaluation"),
        (HEADER + "0,1,1,10,0\n9,1,1,10,0\n4,1,1,10,0\n", "strictly increase"),
    ],
)  # fmt: skip
def test_malformed_curve_is_reported_by_path(tmp_path, reference, content, problem):
    seed_dir = write_seed(tmp_path / "r", "omd", ENV_A, "full", 0, [0.0, 1.0])
    (seed_dir / "curve.csv").write_text(content)
    with pytest.raises(ResultsError, match=re.escape(problem)) as err:
        build_leaderboard(tmp_path / "r", references=reference)
    assert str(seed_dir / "curve.csv") in str(err.value)


def test_malformed_curve_of_an_excluded_seed_is_still_reported(tmp_path, reference):
    write_seed(tmp_path / "r", "omd", ENV_A, "full", 0, [0.0, 1.0])
    bad = write_seed(tmp_path / "r", "omd", ENV_A, "full", 1, [0.0], state="diverged")
    (bad / "curve.csv").write_text("nonsense\n1\n")
    with pytest.raises(ResultsError, match="missing columns"):
        build_leaderboard(tmp_path / "r", references=reference)


def test_done_seed_without_curve_is_an_error_naming_the_path(tmp_path, reference):
    seed_dir = write_seed(tmp_path / "r", "omd", ENV_A, "full", 0, None)
    with pytest.raises(ResultsError, match=re.escape("missing curve.csv")) as err:
        build_leaderboard(tmp_path / "r", references=reference)
    assert err.value.path == seed_dir / "curve.csv"


@pytest.mark.parametrize(
    ("status", "problem"),
    [(None, "missing status.json"), ("{", "not valid JSON"), ('{"state": "ok"}', "'ok' is not one of")],
)
def test_bad_status_is_an_error_naming_the_path(tmp_path, reference, status, problem):
    seed_dir = write_seed(tmp_path / "r", "omd", ENV_A, "full", 0, [0.0, 1.0])
    if status is None:
        (seed_dir / "status.json").unlink()
    else:
        (seed_dir / "status.json").write_text(status)
    with pytest.raises(ResultsError, match=re.escape(problem)) as err:
        build_leaderboard(tmp_path / "r", references=reference)
    assert str(seed_dir / "status.json") in str(err.value)


def test_empty_or_missing_results_dir_is_an_error(tmp_path, reference):
    with pytest.raises(ResultsError, match="not a results directory"):
        scan_results(tmp_path / "nope")
    with pytest.raises(ResultsError, match="no results"):
        scan_results(tmp_path)


def test_misnamed_seed_dir_and_inconsistent_labels_are_errors(tmp_path):
    write_seed(tmp_path / "a", "omd", ENV_A, "full", 0, [0.0]).rename(
        tmp_path / "a" / "omd" / ENV_A.replace("/", "__") / "full" / "seed_x"
    )
    with pytest.raises(ResultsError, match="seed_<integer>"):
        scan_results(tmp_path / "a")
    write_seed(tmp_path / "b", "omd", ENV_A, "full", 0, [0.0])
    other = write_seed(tmp_path / "b", "omd", ENV_A, "full", 1, [0.0])
    (other / "config.json").write_text(json.dumps({"env_label": ENV_B}))
    with pytest.raises(ResultsError, match="seeds disagree"):
        scan_results(tmp_path / "b")


def test_env_label_comes_from_config_json(tmp_path):
    write_seed(tmp_path, "omd", "mbrl_bench/Odd__Name-v0", "full", 0, [0.0])
    (cell,) = scan_results(tmp_path)
    assert cell.env == "mbrl_bench/Odd__Name-v0"  # the directory name alone would decode "__" as "/"


def test_hidden_directories_are_ignored(tmp_path):
    write_seed(tmp_path, "omd", ENV_A, "full", 0, [0.0])
    (tmp_path / ".locks" / "x" / "y" / "seed_0").mkdir(parents=True)
    assert [c.algo for c in scan_results(tmp_path)] == ["omd"]


def test_aggregates_over_different_env_sets_are_flagged(results, reference):
    assert not any("different env sets" in w for w in board_of(results, reference).warnings)
    write_seed(results, "vep", ENV_A, "full", 0, [0.0, 1.0, 2.0])
    assert any(
        w.startswith("ppo aggregates cover different env sets") for w in board_of(results, reference).warnings
    )


def test_bad_budget_is_rejected(results, reference):
    with pytest.raises(ValueError, match="budget must be a non-negative int"):
        build_leaderboard(results, budget=-5, references=reference)


def test_plot_aggregates_draws_a_row_per_baseline(results, reference, tmp_path):
    import matplotlib.image

    board = board_of(results, reference, config=BootstrapConfig(reps=200))
    two_rows = matplotlib.image.imread(plot_aggregates(board, tmp_path / "agg.png"))
    no_refs = build_leaderboard(results, references=write_reference(tmp_path / "empty.csv", []))
    one_row = matplotlib.image.imread(plot_aggregates(no_refs, tmp_path / "none.png"))
    assert two_rows.shape[0] == 2 * one_row.shape[0]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["agg.png", "none.png"]


# --- the reference table -------------------------------------------------------------------------


def test_shipped_table_is_a_valid_header(monkeypatch):
    monkeypatch.delenv(REFERENCE_ENV_VAR, raising=False)
    table = load_reference_scores()
    assert list(table.columns) == list(REFERENCE_COLUMNS)


def test_env_var_overrides_the_shipped_table(monkeypatch, reference):
    monkeypatch.setenv(REFERENCE_ENV_VAR, str(reference))
    table = load_reference_scores()
    assert len(table) == len(reference_rows())
    assert table["budget"].dtype == np.int64 and table["mean"].dtype == np.float64
    assert table["command"].iloc[0] == "mbrl-bench calibrate --env X, --seeds 5"


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([(ENV_A, 2000, "dqn", 1.0)], "unknown agent 'dqn'; valid agents: random, zero, ppo, rainbow"),
        ([(ENV_A, 2000, "ppo", 1.0), (ENV_A, 2000, "ppo", 2.0)], "row 3 repeats"),
        ([(ENV_A, "lots", "ppo", 1.0)], "row 2, column 'budget'"),
        ([(ENV_A, 2000, "ppo", "inf")], "column 'mean' must be a finite number"),
    ],
)
def test_bad_reference_tables_are_rejected(tmp_path, rows, problem):
    path = write_reference(tmp_path / "bad.csv", rows)
    with pytest.raises(ReferenceTableError, match=re.escape(problem)) as err:
        load_reference_scores(path)
    assert str(path) in str(err.value)


def test_reference_table_missing_file_or_column(tmp_path):
    with pytest.raises(ReferenceTableError, match="not found"):
        load_reference_scores(tmp_path / "absent.csv")
    (tmp_path / "cols.csv").write_text("env,budget,agent\n")
    with pytest.raises(ReferenceTableError, match="missing columns"):
        load_reference_scores(tmp_path / "cols.csv")


def test_match_reference_rules(reference):
    table = load_reference_scores(reference)
    exact = match_reference(table, ENV_A, 4000)
    assert (exact.budget, exact.random, exact.ppo, exact.rainbow, exact.notes) == (
        4000,
        10.0,
        210.0,
        110.0,
        (),
    )
    assert match_reference(table, ENV_A, 2001).budget == 4000
    beyond = match_reference(table, ENV_A, 5000)
    assert beyond.budget is None and math.isnan(beyond.ppo)
    assert beyond.notes == (f"no reference budget >= 5000 for {ENV_A} (has: 2000, 4000)",)
    assert match_reference(table, ENV_C, 2000).notes[0].startswith("no reference scores for")
    # std 1 over 5 seeds in every row: the standard error of each mean
    assert exact.sem == pytest.approx({"random": 1 / math.sqrt(5), "ppo": 1 / math.sqrt(5),
                                       "rainbow": 1 / math.sqrt(5)})  # fmt: skip
    assert math.isnan(exact.zero)  # no zero row: no note either (it is a guard, not a denominator)


@pytest.mark.parametrize(
    ("zero", "random", "ppo", "flagged"),
    [
        (994.0, -56.0, 632.0, "zero-action"),  # doing nothing beats PPO (Ant before issue 14)
        (-56.5, -150.0, -40.0, "zero-action"),  # 0.85 PPO-normalised (Pusher-like)
        (0.0, -280.0, 1500.0, None),  # a clear margin over both
        (None, 95.0, 110.0, "random"),  # PPO within 20% of random (relative to PPO's score)
        (None, 10.0, 110.0, None),
    ],
)
def test_envs_where_a_trivial_policy_nears_ppo_are_flagged(tmp_path, zero, random, ppo, flagged):
    rows = [(ENV_A, 2000, "random", random), (ENV_A, 2000, "ppo", ppo)]
    rows += [(ENV_A, 2000, "zero", zero)] if zero is not None else []
    reference = write_reference(tmp_path / "ref.csv", rows)
    write_seed(tmp_path / "r", "omd", ENV_A, "full", 0, [0.0, 5.0, 20.0])
    cell = build_leaderboard(tmp_path / "r", references=reference).cells.iloc[0]
    assert bool(cell["reference_flag"]) == (flagged is not None)
    if flagged:
        assert f"{flagged} reference" in cell["notes"] and "unreliable" in cell["notes"]
        assert math.isfinite(cell["ppo_normalised"])  # shown, but flagged
    if zero is not None:
        assert cell["zero_score"] == zero


def test_model_metrics_are_reported_at_the_budget_beside_the_returns(tmp_path, reference):
    root = tmp_path / "results"
    for seed, errors in enumerate([[np.nan, 4.0, 2.0, 1.0], [np.nan, 6.0, 4.0, 3.0]]):
        sd = write_seed(root, "omd", ENV_A, "full", seed, [0.0, 10.0, 20.0, 30.0])
        curve = pd.read_csv(sd / "curve.csv")
        curve["value_equivalence_error"] = errors
        curve["next_obs_mse"] = [np.nan, 1.0, 1.0, 0.5]
        curve.to_csv(sd / "curve.csv", index=False)
    write_seed(root, "random", ENV_A, "full", 0, [0.0, 5.0, 5.0, 5.0])
    board = board_of(root, reference, budget=2000)
    omd = board.cells.set_index("algo").loc["omd"]
    assert omd["value_equivalence_error"] == pytest.approx(3.0)  # seeds' values at step 2000: 2 and 4
    assert omd["next_obs_mse"] == pytest.approx(1.0)
    assert np.isnan(omd["reward_mse"])  # a metric the agent does not report
    assert np.isnan(board.cells.set_index("algo").loc["random", "value_equivalence_error"])
    runs = board.runs.set_index(["algo", "seed"])
    assert runs.loc[("omd", 1), "value_equivalence_error"] == pytest.approx(4.0)


def test_non_numeric_metric_column_is_reported_by_path(tmp_path, reference):
    sd = write_seed(tmp_path / "results", "omd", ENV_A, "full", 0, [0.0, 10.0])
    curve = pd.read_csv(sd / "curve.csv")
    curve["model_loss"] = ["nan", "oops"]
    curve.to_csv(sd / "curve.csv", index=False)
    with pytest.raises(ResultsError, match=r"curve\.csv.*'oops' in metric column 'model_loss'"):
        board_of(tmp_path / "results", reference)
