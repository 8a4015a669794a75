"""Env labels, --set coercion against typed configs, capacities and suite files: pure input handling."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mbrl_bench.harness.cells import plan_cell
from mbrl_bench.harness.config import coerce_value, resolve_agent_config
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.labels import canonical_env_kwargs, env_label
from mbrl_bench.harness.store import env_dir_name, env_label_from_dir
from mbrl_bench.harness.suites import load_suite, suite_names

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"


def test_label_is_canonical_whatever_the_spelling() -> None:
    a = env_label(CARTPOLE, {"num_distractors": "20", "distractor": "linear"})
    b = env_label(CARTPOLE, {"distractor": "linear", "num_distractors": 20, "distractor_scale": 1})
    c = env_label(CARTPOLE, {"num_distractors": 20.0, "distractor": "linear", "distractor_scale": "1.0"})
    assert a == b == c == f"{CARTPOLE}(distractor=linear,num_distractors=20)"


def test_default_kwargs_vanish_and_distinct_variants_get_distinct_labels() -> None:
    assert env_label(CARTPOLE, {"num_distractors": 10, "distractor": "gaussian"}) == CARTPOLE
    labels = {
        env_label(CARTPOLE, kw)
        for kw in ({}, {"num_distractors": 0}, {"num_distractors": 20}, {"distractor_scale": 2},
                   {"distractor_scale": 0.5}, {"distractor": "random_walk"})
    }  # fmt: skip
    assert len(labels) == 6
    assert f"{CARTPOLE}(distractor_scale=2.0)" in labels
    assert all(env_label_from_dir(env_dir_name(x)) == x for x in labels)
    assert all("/" not in env_dir_name(x) for x in labels)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"num_distractor": 3}, "valid kwargs: distractor, distractor_scale, num_distractors"),
        ({"num_distractors": "many"}, "must be of type int"),
        ({"num_distractors": 2.5}, "must be of type int"),
        ({"distractor": "a/b"}, "may only hold"),
    ],
)
def test_bad_env_kwargs_name_the_problem(kwargs: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        canonical_env_kwargs(CARTPOLE, kwargs)


@dataclass(frozen=True)
class _Cfg:
    lr: float = 1e-3
    hidden: tuple[int, ...] = (32, 32)
    double_q: bool = True
    name: str = "x"
    maybe: int | None = None


class _FakeAgent:
    name = "fake"
    Config = _Cfg


def test_set_values_are_coerced_by_field_type() -> None:
    cfg = resolve_agent_config(
        _FakeAgent, {"lr": "3e-4", "hidden": "64,64,64", "double_q": "false", "maybe": "7", "name": "y"}
    )
    assert cfg == _Cfg(lr=3e-4, hidden=(64, 64, 64), double_q=False, name="y", maybe=7)
    assert resolve_agent_config(_FakeAgent, {"hidden": [8], "maybe": "none"}) == _Cfg(hidden=(8,))
    assert coerce_value("(1, 2)", tuple[int, int]) == (1, 2)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"learning_rate": "1"}, "unknown config key 'learning_rate'.*valid keys: lr \\(float\\), hidden"),
        ({"lr": "fast"}, "bad value for fake.lr \\(float\\)"),
        ({"hidden": "64,x"}, "bad value for fake.hidden"),
        ({"double_q": "maybe"}, "not a bool"),
        ({"lr": True}, "not a float"),
    ],
)
def test_bad_set_values_list_the_valid_keys(overrides: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        resolve_agent_config(_FakeAgent, overrides)


def test_plan_cell_validates_everything_up_front() -> None:
    spec = plan_cell("random", CARTPOLE, env_kwargs={"num_distractors": "3"}, seeds=2, steps=10, eval_every=4)
    assert spec.env_label == f"{CARTPOLE}(num_distractors=3)"
    assert spec.eval_points() == [0, 4, 8, 10]
    assert spec.seeds == (0, 1)
    with pytest.raises(UsageError, match="only capacity 'full'"):
        plan_cell("random", CARTPOLE, capacity="width:8", steps=10, eval_every=5)
    with pytest.raises(UsageError, match=r"valid algorithms: .*random"):
        plan_cell("nope", CARTPOLE, steps=10, eval_every=5)
    with pytest.raises(UsageError, match="valid ids"):
        plan_cell("random", "mbrl_bench/Nope-v0", steps=10, eval_every=5)
    with pytest.raises(UsageError, match="steps must be an integer >= 1"):
        plan_cell("random", CARTPOLE, steps=0, eval_every=5)
    with pytest.raises(UsageError, match="width:N"):
        plan_cell("random", CARTPOLE, capacity="wide", steps=10, eval_every=5)


def test_quickstart_suite_is_shipped_and_valid() -> None:
    assert "quickstart" in suite_names()
    suite = load_suite("quickstart")
    assert [c.algo for c in suite.cells] == ["omd", "mle-dyna", "random"]
    assert load_suite("quickstart", {"seeds": 2, "steps": 50}).cells[0].seeds == (0, 1)


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_plans_its_cells(name: str) -> None:
    suite = load_suite(name)
    assert suite.cells and all(c.steps % c.eval_every == 0 for c in suite.cells)


def test_suite_files_are_checked(tmp_path) -> None:
    good = tmp_path / "s.toml"
    good.write_text(
        'seeds = 2\nsteps = 100\neval_every = 50\nalgos = ["random"]\n'
        '[[envs]]\nid = "mbrl_bench/CartPoleDistractor-v0"\nkwargs = { num_distractors = 0 }\n'
        '[[envs]]\nid = "mbrl_bench/CartPoleDistractor-v0"\nkwargs = { num_distractors = 5 }\n'
    )
    labels = [c.env_label for c in load_suite(str(good)).cells]
    assert labels == [f"{CARTPOLE}(num_distractors=0)", f"{CARTPOLE}(num_distractors=5)"]
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = 2\nsteps = 100\neval_every = 50\nalgo = ["random"]\nenvs = ["x"]\n')
    with pytest.raises(UsageError, match="unknown key\\(s\\) algo"):
        load_suite(str(bad))
    with pytest.raises(UsageError, match=r"unknown suite 'nope'; shipped suites: .*quickstart"):
        load_suite("nope")
