"""One cell in-process: curves, resume from a checkpoint, divergence, failures, config mismatches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _interrupt import interrupted_run
from mbrl_bench.baselines.api import Agent, register_agent

from mbrl_bench.harness import store
from mbrl_bench.harness.cells import build_agent, plan_cell
from mbrl_bench.harness.errors import ConfigMismatchError, ResumeError
from mbrl_bench.harness.executors import InProcessExecutor
from mbrl_bench.harness.runner import ProgressEvent, SeedBatch, run_cell, stack_metric_carry
from mbrl_bench.harness.session import run_session

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"
SMALL = {"num_distractors": 2}


@dataclass(frozen=True)
class CounterConfig:
    """Test-only."""

    flip_every: int = 3
    """Test-only."""


@register_agent
class CounterAgent(Agent):
    """Greedy actions depend on everything it learned, so a badly restored state changes the curve."""

    name: ClassVar[str] = "test-counter"
    Config: ClassVar[type] = CounterConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete"})

    def init(self, key):
        return {"n": jnp.int32(0), "acc": jax.random.normal(key)}

    def act(self, state, obs, key, explore):
        greedy = ((state["acc"] * obs[2] > 0) ^ (state["n"] % self.config.flip_every == 0)).astype(jnp.int32)
        if not explore:
            return greedy
        return jnp.where(jax.random.uniform(key) < 0.5, greedy, 1 - greedy)

    def update(self, state, transition, key, step):
        acc = state["acc"] + transition.reward * transition.next_obs[3] + 0.01 * jax.random.normal(key)
        return {"n": state["n"] + 1, "acc": acc}, {"acc": acc}


@register_agent
class UnbatchedCounterAgent(CounterAgent):
    name: ClassVar[str] = "test-counter-unbatched"
    batch_over_seeds: ClassVar[bool] = False


INIT_RUNS: list[int] = []
"""Host-side record of every executed ``KeyedCounterAgent.init``."""


@register_agent
class KeyedCounterAgent(CounterAgent):
    """Holds a typed PRNG key in its state, and its init reports each time it executes."""

    name: ClassVar[str] = "test-keyed-counter"

    def init(self, key):
        jax.debug.callback(lambda: INIT_RUNS.append(1))
        return {**super().init(key), "key": jax.random.wrap_key_data(key)}

    def update(self, state, transition, key, step):
        draw, carry = jax.random.split(state["key"])
        new, metrics = super().update(state, transition, key, step)
        return {**new, "acc": new["acc"] + 0.01 * jax.random.normal(draw), "key": carry}, metrics


@register_agent
class StepMetricAgent(CounterAgent):
    """Reports the env step as its metric, so each row's mean over the interval is known exactly."""

    name: ClassVar[str] = "test-step-metric"

    def update(self, state, transition, key, step):
        return super().update(state, transition, key, step)[0], {"step": step.astype(jnp.float32)}


@dataclass(frozen=True)
class NanConfig:
    """Test-only."""

    after: int = 150
    """Test-only."""
    in_state: bool = False
    """Test-only."""


@register_agent
class NanAgent(Agent):
    """Seeds whose init key says "fragile" emit NaN (in a metric or in the state) after ``after`` steps."""

    name: ClassVar[str] = "test-nan"
    Config: ClassVar[type] = NanConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete"})

    def init(self, key):
        return {"fragile": jax.random.uniform(key) < 0.5, "w": jnp.zeros(2)}

    def act(self, state, obs, key, explore):
        return jax.random.bernoulli(key).astype(jnp.int32)

    def update(self, state, transition, key, step):
        bad = state["fragile"] & (step > self.config.after)
        if self.config.in_state:
            return {**state, "w": jnp.where(bad, jnp.nan, state["w"])}, {}
        return state, {"loss": jnp.where(bad, jnp.nan, 0.0), "ok": jnp.float32(1)}


@register_agent
class FailingAgent(NanAgent):
    name: ClassVar[str] = "test-failing"

    def update(self, state, transition, key, step):
        raise RuntimeError("boom in update")


def _fragile(seed: int) -> bool:
    from mbrl_bench.harness.runner import _AGENT_INIT, derive_seed

    return bool(jax.random.uniform(jax.random.PRNGKey(derive_seed(seed, _AGENT_INIT))) < 0.5)


def test_curve_rows_hold_the_agent_metrics_mean_since_the_last_row(tmp_path) -> None:
    spec = plan_cell(
        "test-step-metric", CARTPOLE, env_kwargs=SMALL, seeds=2, steps=250, eval_every=100, eval_episodes=1
    )
    result = run_cell(spec, tmp_path)
    for seed in (0, 1):
        rows = store.read_curve(spec.cell_dir(tmp_path) / f"seed_{seed}" / store.CURVE_FILE)
        assert [r["env_step"] for r in rows] == [0, 100, 200, 250]
        assert np.isnan(rows[0]["step"])  # nothing trained before the first evaluation
        # steps 1..100, 101..200, 201..250
        assert [r["step"] for r in rows[1:]] == [50.5, 150.5, 225.5]
        assert rows[1:] == result.curves[seed][1:]


def test_a_metric_less_agent_carries_no_zero_size_array_and_resumes_an_old_checkpoint() -> None:
    # A zero-size array among the jitted step's arguments costs every call JAX's slow dispatch path.
    spec = plan_cell(
        "random", CARTPOLE, env_kwargs=SMALL, seeds=2, steps=100, eval_every=100, eval_episodes=1
    )
    batch = SeedBatch(build_agent(spec), spec, spec.seeds)
    batch.start()
    batch.train(5)
    assert batch.metric_names == []
    assert all(x.size > 0 for x in jax.tree.leaves(batch.carry))
    # Checkpoints written before the unused slot existed hold width-0 metric arrays: they still resume.
    old = {"bad_metrics": np.zeros(0, bool), "metric_sum": np.zeros(0, np.float32)}
    bad, sums = stack_metric_carry([old, old], batch.metric_names)
    assert bad.shape == sums.shape == (2, 1) and not bad.any()
    with pytest.raises(ResumeError, match="metric_sum"):
        stack_metric_carry([{**old, "metric_sum": np.zeros(3, np.float32)}] * 2, batch.metric_names)


def test_random_cell_writes_the_layout(tmp_path) -> None:
    spec = plan_cell(
        "random", CARTPOLE, env_kwargs=SMALL, seeds=2, steps=300, eval_every=100, eval_episodes=3
    )
    events: list[ProgressEvent] = []
    result = run_cell(spec, tmp_path, progress=events.append)
    assert result.state == "done" and result.seed_states == {0: "done", 1: "done"}
    for seed in (0, 1):
        sd = (
            tmp_path
            / "random"
            / "mbrl_bench__CartPoleDistractor-v0(num_distractors=2)"
            / "full"
            / f"seed_{seed}"
        )
        rows = store.read_curve(sd / store.CURVE_FILE)
        assert [r["env_step"] for r in rows] == [0, 100, 200, 300]
        assert all(r["eval_episodes"] == 3 and 8 <= r["eval_return"] <= 200 for r in rows)
        assert [r["wall_time_s"] for r in rows] == sorted(r["wall_time_s"] for r in rows)
        config = store.read_json(sd / store.CONFIG_FILE)
        assert config["seed"] == seed and config["env_kwargs"] == SMALL and config["jax"] == jax.__version__
        machine = {"git_commit", "python", "cpu_count", "cpu_model", "platform", "mbrl_bench_version"}
        assert machine <= set(config)
        status = store.read_json(sd / store.STATUS_FILE)
        assert status["state"] == "done" and status["env_step"] == 300 and status["ended_at"]
        assert (sd / store.CHECKPOINT_FILE).exists()
    assert result.curves[0] != result.curves[1]  # seeds really differ
    assert events[-1].state == "done" and events[-1].env_step == 300
    again = run_cell(spec, tmp_path)
    assert again.skipped and again.curves == result.curves


def test_interrupted_cell_resumes_to_the_same_curve(tmp_path) -> None:
    spec = plan_cell(
        "test-counter", CARTPOLE, env_kwargs=SMALL, seeds=3, steps=800, eval_every=200, eval_episodes=2
    )
    whole = run_cell(spec, tmp_path / "whole")
    cut_dir = interrupted_run(spec, tmp_path / "cut")
    assert store.read_json(cut_dir / "seed_0" / store.STATUS_FILE)["state"] == "running"
    resumed = run_cell(spec, tmp_path / "cut")
    assert resumed.state == "done"
    # the agent's metric means ("acc") must survive the resume too; NaN (the step-0 row) made comparable
    comparable = lambda r: {k: ("nan" if v != v else v) for k, v in r.items()}
    strip = lambda curves: {
        s: [comparable({**r, "wall_time_s": 0}) for r in rows] for s, rows in curves.items()
    }
    assert strip(resumed.curves) == strip(whole.curves)
    assert [r["env_step"] for r in resumed.curves[1]] == [0, 200, 400, 600, 800]
    # each start or resume records where it ran, so a run resumed elsewhere says so; seed 1 went on
    # from its older checkpoint
    for seed, resumed_at in ((0, 400), (1, 200)):
        starts = store.read_json(cut_dir / f"seed_{seed}" / store.STATUS_FILE)["starts"]
        assert [s["from_step"] for s in starts] == [0, resumed_at]
        assert all(s["device"] == jax.devices()[0].device_kind and s["host"] for s in starts)
        assert starts[0]["started_at"] <= starts[1]["started_at"]
    uninterrupted = spec.cell_dir(tmp_path / "whole") / "seed_0" / store.STATUS_FILE
    assert [s["from_step"] for s in store.read_json(uninterrupted)["starts"]] == [0]
    unbatched = plan_cell(
        "test-counter-unbatched",
        CARTPOLE,
        env_kwargs=SMALL,
        seeds=3,
        steps=800,
        eval_every=200,
        eval_episodes=2,
    )
    assert strip(run_cell(unbatched, tmp_path / "unbatched").curves) == strip(whole.curves)


@pytest.mark.parametrize("backend", ["gymnasium", "jax"])
def test_a_resume_runs_no_initialiser_and_restores_typed_keys(tmp_path, backend: str) -> None:
    # jaxlib 0.10's CPU deadlock once hung a resume inside the agent's initialisers (README, Known
    # issues): a resume takes only the state's shapes from init, and every value from the checkpoint.
    spec = plan_cell("test-keyed-counter", CARTPOLE, env_kwargs=SMALL, seeds=3, steps=800, eval_every=200,
                     eval_episodes=2, env_backend=backend)  # fmt: skip
    whole = run_cell(spec, tmp_path / "whole")
    interrupted_run(spec, tmp_path / "cut")
    INIT_RUNS.clear()
    resumed = run_cell(spec, tmp_path / "cut")
    assert resumed.state == "done" and INIT_RUNS == []
    # the typed key in the state drives the curve (update draws from it), so a mangled key shows here
    strip = lambda curves: {s: [{**r, "wall_time_s": 0} for r in rows[1:]] for s, rows in curves.items()}
    assert strip(resumed.curves) == strip(whole.curves)


@pytest.mark.parametrize("in_state", [False, True])
def test_diverged_seeds_stop_and_the_others_go_on(tmp_path, in_state: bool) -> None:
    seeds = (0, 1, 2, 3, 4, 5)
    fragile = {s: _fragile(s) for s in seeds}
    assert any(fragile.values()) and not all(fragile.values())
    spec = plan_cell("test-nan", CARTPOLE, env_kwargs=SMALL, seeds=seeds, steps=400, eval_every=100,
                     eval_episodes=1, overrides={"in_state": in_state})  # fmt: skip
    result = run_cell(spec, tmp_path)
    assert result.state == "diverged"
    for seed in seeds:
        sd = store.seed_dir(spec.cell_dir(tmp_path), seed)
        status = store.read_json(sd / store.STATUS_FILE)
        steps = [r["env_step"] for r in store.read_curve(sd / store.CURVE_FILE)]
        if fragile[seed]:
            assert status["state"] == "diverged" and steps == [0, 100]
            if in_state:
                assert status["error"] == "non-finite agent state ['w'] by env step 200"
            else:
                assert status["error"] == "non-finite metric 'loss' at env step 151"
                assert status["env_step"] == 151
        else:
            assert status["state"] == "done" and steps == [0, 100, 200, 300, 400]
    assert run_cell(spec, tmp_path).skipped  # diverged is final: a re-run does not retry it


def test_a_failing_cell_records_its_traceback_and_the_others_run(tmp_path) -> None:
    failing = plan_cell(
        "test-failing", CARTPOLE, env_kwargs=SMALL, seeds=2, steps=100, eval_every=50, eval_episodes=1
    )
    fine = plan_cell("random", CARTPOLE, env_kwargs=SMALL, seeds=1, steps=100, eval_every=50, eval_episodes=1)
    session = run_session([failing, fine], tmp_path, InProcessExecutor())
    assert [r.state for r in session.results] == ["failed", "done"]
    assert session.exit_code == 1
    status = store.read_json(store.seed_dir(failing.cell_dir(tmp_path), 1) / store.STATUS_FILE)
    assert status["state"] == "failed" and status["error"] == "RuntimeError: boom in update"
    assert "Traceback" in status["traceback"] and "boom in update" in status["traceback"]


def test_resuming_with_a_different_config_is_refused(tmp_path) -> None:
    spec = plan_cell("random", CARTPOLE, env_kwargs=SMALL, seeds=1, steps=100, eval_every=50, eval_episodes=1)
    run_cell(spec, tmp_path)
    other = plan_cell(
        "random", CARTPOLE, env_kwargs=SMALL, seeds=1, steps=100, eval_every=25, eval_episodes=1
    )
    with pytest.raises(ConfigMismatchError, match="eval_every: stored 50, requested 25"):
        run_session([other], tmp_path, InProcessExecutor())


def test_float64_agent_runs_in_float64_and_its_norm_sweep_is_plotted(tmp_path) -> None:
    from mbrl_bench.harness.plots import plot_capacity_sweep

    env = "mbrl_bench/TwoStatePolytope-v0"
    for bound in ("norm:1", "norm:3"):
        spec = plan_cell(
            "omd-tabular", env, capacity=bound, seeds=2, steps=20, eval_every=10, eval_episodes=1
        )
        assert run_cell(spec, tmp_path).state == "done"
    checkpoint = store.read_checkpoint(spec.cell_dir(tmp_path) / "seed_0" / store.CHECKPOINT_FILE)
    floats = [x for x in checkpoint["agent_state"] if np.asarray(x).dtype.kind == "f"]
    assert floats and all(np.asarray(x).dtype == np.float64 for x in floats)
    assert not jax.config.jax_enable_x64  # the precision stays with the cell
    rows = store.read_curve(spec.cell_dir(tmp_path) / "seed_0" / store.CURVE_FILE)
    assert -1.0 < rows[-1]["true_return"] <= 1.0273  # the exact J of the two-state MDP, below J*
    summary = plot_capacity_sweep(tmp_path)
    assert summary is not None and summary.path.read_bytes().startswith(b"\x89PNG")
    assert summary.lines == {env: ("omd-tabular (n=2)",)}
    assert plot_capacity_sweep(tmp_path / "omd-tabular" / "nothing-here") is None


def test_checkpoint_payloads_must_agree_in_format_and_step() -> None:
    from mbrl_bench.harness.runner import CHECKPOINT_FORMAT, checkpoint_step

    ok = [{"format": CHECKPOINT_FORMAT, "env_step": 3000, "env_state": None} for _ in range(2)]
    assert checkpoint_step(ok, "", "env_state") == 3000
    with pytest.raises(ResumeError, match=r"delete the cell's checkpoint\.pkl"):
        checkpoint_step([ok[0], {**ok[1], "format": CHECKPOINT_FORMAT - 1}], "")
    with pytest.raises(ResumeError, match="JAX-backend format"):
        checkpoint_step([ok[0], {"format": CHECKPOINT_FORMAT, "env_step": 3000}], "JAX-backend ", "env_state")
    with pytest.raises(ResumeError, match=r"different env steps: \[2000, 3000\]"):
        checkpoint_step([ok[0], {**ok[1], "env_step": 2000}], "")
