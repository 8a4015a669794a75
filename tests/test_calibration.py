"""mbrl-bench calibrate: one run per budget, reference rows are the seeds' final evaluation returns,
and the leaderboard normalises against them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mbrl_bench.calibration import (
    CALIBRATION_EVAL_EVERY,
    budget_dir,
    default_variants,
    merge_reference_rows,
    plan_calibration,
)
from mbrl_bench.cli import main
from mbrl_bench.harness import store
from mbrl_bench.reference import load_reference_scores
from mbrl_bench.scores import normalised_score

TABULAR = "mbrl_bench/TwoStatePolytope-v0"


def test_calibrate_writes_rows_the_leaderboard_uses(tmp_path, capsys):
    cal, runs = tmp_path / "cal", tmp_path / "runs"
    common = ["--seeds", "2", "--eval-every", "200", "--out"]
    rc = main(["calibrate", "--env", TABULAR, "--budgets", "200,400", *common, str(cal), "--workers", "1"])
    assert rc == 0
    table = load_reference_scores(cal / "reference_scores.csv")
    assert sorted(set(table.agent)) == ["ppo", "rainbow", "random"]
    assert sorted(set(table.budget)) == [200, 400]
    assert set(table.n_seeds) == {2}
    assert all(c.startswith("mbrl-bench calibrate --env") for c in table.command)
    for row in table.itertuples():
        # Each budget is its own run, ending at that budget (PPO anneals over it).
        cell = budget_dir(cal, row.budget) / row.agent / store.env_dir_name(row.env) / "full"
        at_budget = []
        for s in (0, 1):
            curve = store.read_curve(cell / f"seed_{s}" / "curve.csv")
            assert curve[-1]["env_step"] == row.budget
            at_budget.append(curve[-1]["eval_return"])
            config = store.read_json(cell / f"seed_{s}" / "config.json")
            assert (config["steps"], config["eval_every"]) == (row.budget, 200)
        assert row.mean == pytest.approx(np.mean(at_budget), rel=1e-5)
        assert row.std == pytest.approx(np.std(at_budget, ddof=1), rel=1e-5, abs=1e-9)

    assert main(["run", "--algo", "random", "--env", TABULAR, "--steps", "400", *common, str(runs)]) == 0
    reference = str(cal / "reference_scores.csv")
    assert main(["leaderboard", str(runs), "--reference", reference, "--budget", "400"]) == 0
    board = pd.read_csv(runs / "leaderboard.csv")
    (row,) = board.itertuples()
    ref = table[table.budget == 400].set_index("agent")["mean"]
    # The random cell ran the same seeds as the calibration's random agent: same evaluation returns, up
    # to the table's 6 significant digits (float_format %.6g).
    assert row.random_score == pytest.approx(ref["random"]) == pytest.approx(row.return_mean, rel=1e-5)
    assert row.ppo_normalised == pytest.approx(normalised_score(row.return_mean, ref["random"], ref["ppo"]))


def test_rainbow_only_on_discrete_and_zero_only_on_continuous_actions():
    plan = plan_calibration([("mbrl_bench/Reacher-v0", {})], seeds=1, budgets=(1000,), eval_every=1000)
    assert sorted(s.algo for s in plan[1000]) == ["ppo", "random", "zero"]
    plan = plan_calibration([(TABULAR, {})], seeds=1, budgets=(1000,), eval_every=1000)
    assert sorted(s.algo for s in plan[1000]) == ["ppo", "rainbow", "random"]


def test_default_plan_has_separate_runs_per_budget_and_the_cartpole_variants():
    variants = default_variants(["mbrl_bench/CartPoleDistractor-v0"])
    plan = plan_calibration(variants, seeds=5)
    assert sorted(plan) == [100_000, 200_000]
    for budget, specs in plan.items():
        assert {s.steps for s in specs} == {budget}
        assert {s.eval_every for s in specs} == {CALIBRATION_EVAL_EVERY}
        labels = sorted({s.env_label for s in specs})
        assert labels == [
            "mbrl_bench/CartPoleDistractor-v0",
            "mbrl_bench/CartPoleDistractor-v0(num_distractors=0)",
            "mbrl_bench/CartPoleDistractor-v0(num_distractors=50)",
        ]
    # PPO is told each run's budget: a 100K run anneals over 100K steps, not 200K.
    assert {s.agent_config["anneal_lr"] for s in plan[100_000] if s.algo == "ppo"} == {True}


def test_the_cli_default_eval_every_is_the_plans(tmp_path, monkeypatch):
    seen = {}

    def fake_plan(variants, seeds, budgets, eval_every):
        seen["eval_every"] = eval_every
        raise SystemExit(0)

    monkeypatch.setattr("mbrl_bench.calibration.plan_calibration", fake_plan)
    with pytest.raises(SystemExit):
        main(["calibrate", "--env", TABULAR, "--out", str(tmp_path)])
    assert seen["eval_every"] == CALIBRATION_EVAL_EVERY


def test_merging_replaces_only_the_same_env_budget_agent(tmp_path):
    path = tmp_path / "table.csv"
    row = dict(
        env="e", budget=100, agent="random", mean=1.0, std=0.0, n_seeds=5, commit="c", date="d", command="x"
    )
    merge_reference_rows(path, pd.DataFrame([row, {**row, "agent": "ppo", "mean": 5.0}]))
    merged = merge_reference_rows(path, pd.DataFrame([{**row, "mean": 2.0}]))
    assert merged.set_index("agent")["mean"].to_dict() == {"ppo": 5.0, "random": 2.0}
    assert len(load_reference_scores(path)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budgets", "150", "--eval-every", "100"], "every budget must be a multiple of eval_every"),
        (["--budgets", "1k"], "--budgets expects comma-separated integers"),
        (["--env", "mbrl_bench/Nope-v0"], "unknown environment"),
        (["--env-kwarg", "num_distractors=0"], "--env-kwarg applies to the --env ids given"),
    ],
)
def test_bad_calibrate_input_is_one_line_exit_2(args, message, capsys, tmp_path):
    assert main(["calibrate", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
