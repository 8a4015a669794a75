"""Dynamics models, restricted-capacity wrappers, MLE training, model rollouts and model metrics.

Pure-functional Flax (linen) + Optax: parameters are pytrees, every function is pure and jits, so
agents vmap over seeds and differentiate through the models. See ``capacity`` for the capacity specs.
"""

from mbrl_bench.models.capacity import (
    Capacity,
    capacity_specs,
    l2_ball_projection,
    parse_capacity,
    project_l2_ball,
    projection_transform,
)
from mbrl_bench.models.dynamics import (
    DynamicsModel,
    InputStats,
    ModelConfig,
    ModelParams,
    Prediction,
    Transitions,
    fit_input_stats,
)
from mbrl_bench.models.metrics import (
    OneStepErrors,
    k_step_error,
    one_step_errors,
    soft_value_continuous,
    soft_value_discrete,
    value_equivalence_error,
)
from mbrl_bench.models.rollout import ModelEnv, Rollout
from mbrl_bench.models.tabular import TabularModel, TabularModelConfig, TabularParams
from mbrl_bench.models.training import FitInfo, ModelTrainer, TrainConfig

__all__ = [
    "Capacity",
    "DynamicsModel",
    "FitInfo",
    "InputStats",
    "ModelConfig",
    "ModelEnv",
    "ModelParams",
    "ModelTrainer",
    "OneStepErrors",
    "Prediction",
    "Rollout",
    "TabularModel",
    "TabularModelConfig",
    "TabularParams",
    "TrainConfig",
    "Transitions",
    "capacity_specs",
    "fit_input_stats",
    "k_step_error",
    "l2_ball_projection",
    "one_step_errors",
    "parse_capacity",
    "project_l2_ball",
    "projection_transform",
    "soft_value_continuous",
    "soft_value_discrete",
    "value_equivalence_error",
]
