"""Natural policy gradient (Kakade 2001) as mjrl's NPG learner (aravindr93/mjrl, ``algos/npg_cg.py``), in JAX.

The pieces PAL and MAL share (``baselines/pal.py``), each a pure function that jits and vmaps over seeds:

- policies (``NPGPolicy``): a Gaussian MLP, (64, 64) tanh, output layer scaled by 0.01 at init, with a
  state-independent log-std clamped to [``min_log_std``, ``max_log_std``] after every step (mjrl's
  ``policies/gaussian_mlp.py``); a categorical MLP for discrete actions (no mjrl counterpart: the same
  torso with logits);
- ``gae_paths``: GAE over padded paths, value 0 after a terminal state, else the baseline's value
  (mjrl's ``utils/process_samples.py``), and ``discounted_returns`` (terminal 0: what mjrl's baseline
  regresses on);
- ``fisher_vector_product``: F v of the mean KL's Hessian at the current policy, by a jvp of the
  distribution's parameters, the Fisher of the distribution in those parameters, and a vjp back
  (the Gauss-Newton form; mjrl differentiates the mean KL twice, which is the same matrix);
- ``conjugate_gradient``: ``jax.scipy.sparse.linalg.cg``, started at b and stopped at 25 iterations or
  at r.r < 1e-10 as mjrl's ``utils/cg_solve.py``; damping 1e-3 is added in the product;
- ``npg_step``: whitened advantages, the likelihood-ratio gradient g, x = F^-1 g, the normalised step
  alpha = sqrt(delta / g.x) with delta 0.05 (mjrl's ``normalized_step_size``), KL measured after it;
- ``TimeBaseline``: mjrl's ``MLPBaseline``: a (128, 128) ReLU MLP on clip(obs, +-10) / 10 and
  (t / 1000)^1..4, fit by one epoch of Adam (1e-3, L2 1e-3, minibatch 128) on the discounted returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from mbrl_bench.baselines.common.distributions import categorical_log_prob, gaussian_log_prob


# ---------------------------------------------------------------------------------------------- policy
class PolicyNet(nn.Module):
    """mjrl's policy MLP: tanh hidden layers, torch-default (uniform +-1/sqrt(fan_in)) init, the output
    layer's weights and bias scaled by 0.01 at init; a Gaussian head adds a state-independent log-std."""

    hidden_sizes: tuple[int, ...]
    out_dim: int
    continuous: bool
    init_log_std: float

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        def torch_uniform(scale: float) -> Callable[..., jax.Array]:
            def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
                bound = scale / jnp.sqrt(shape[0])
                return jax.random.uniform(key, shape, dtype, -bound, bound)

            return init

        x = obs
        for width in self.hidden_sizes:
            fan_in = x.shape[-1]
            bias_init = lambda k, s, d=jnp.float32, f=fan_in: jax.random.uniform(k, s, d, -1, 1) / jnp.sqrt(f)
            x = nn.tanh(nn.Dense(width, kernel_init=torch_uniform(1.0), bias_init=bias_init)(x))
        fan_in = x.shape[-1]
        out_bias = lambda k, s, d=jnp.float32, f=fan_in: (
            0.01 * jax.random.uniform(k, s, d, -1, 1) / jnp.sqrt(f)
        )
        out = nn.Dense(self.out_dim, kernel_init=torch_uniform(0.01), bias_init=out_bias)(x)
        if not self.continuous:
            return out, jnp.zeros((0,))
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.out_dim,))
        return out, log_std


@dataclass(frozen=True)
class NPGPolicy:
    """A Gaussian (continuous) or categorical (discrete) MLP policy and its distribution maths."""

    obs_dim: int
    action_dim: int
    """Action vector length (continuous) or number of actions (discrete)."""
    continuous: bool
    hidden_sizes: tuple[int, ...] = (64, 64)
    """mjrl's ``policy_size`` (64, 64) in both PAL and MAL configs."""
    init_log_std: float = 0.0
    """PAL 0.0, MAL -0.5 (the official configs)."""
    min_log_std: float = -2.5
    """The floor of the log-std (both official configs)."""
    max_log_std: float = 1.0
    """The ceiling of the log-std (mjrl's ``MLP`` default)."""

    @property
    def net(self) -> PolicyNet:
        return PolicyNet(self.hidden_sizes, self.action_dim, self.continuous, self.init_log_std)

    def init(self, key: jax.Array) -> Any:
        params = self.net.init(key, jnp.zeros((self.obs_dim,)))
        return self.clamp(params)

    def clamp(self, params: Any) -> Any:
        """The log-std clamped to [min_log_std, max_log_std], as mjrl's ``set_param_values``."""
        if not self.continuous:
            return params
        inner = dict(params["params"])
        inner["log_std"] = jnp.clip(inner["log_std"], self.min_log_std, self.max_log_std)
        return {"params": inner}

    def dist(self, params: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std) of a Gaussian, or (logits, empty) of a categorical, for ``obs`` [..., obs_dim]."""
        return self.net.apply(params, obs)

    def log_prob(self, params: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        out, log_std = self.dist(params, obs)
        if self.continuous:
            return gaussian_log_prob(out, log_std, action)
        return categorical_log_prob(out, action)

    def sample(self, params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        """A raw sample: mean + exp(log_std) noise (unclipped, as mjrl), or a categorical index."""
        out, log_std = self.dist(params, obs)
        if self.continuous:
            return out + jnp.exp(log_std) * jax.random.normal(key, out.shape)
        return jax.random.categorical(key, out).astype(jnp.int32)

    def mode(self, params: Any, obs: jax.Array) -> jax.Array:
        """The evaluation action: the mean (mjrl's ``evaluation`` action) or the most likely index."""
        out, _ = self.dist(params, obs)
        return out if self.continuous else jnp.argmax(out, axis=-1).astype(jnp.int32)

    def kl(self, old: tuple[jax.Array, jax.Array], new: tuple[jax.Array, jax.Array]) -> jax.Array:
        """KL(old || new) per sample, summed over action dims (mjrl's ``kl_divergence`` for a Gaussian)."""
        if self.continuous:
            (m0, s0), (m1, s1) = old, new
            v0, v1 = jnp.exp(2 * s0), jnp.exp(2 * s1)
            return jnp.sum(((m0 - m1) ** 2 + v0 - v1) / (2 * v1) + s1 - s0, axis=-1)
        p0 = jax.nn.log_softmax(old[0], axis=-1)
        p1 = jax.nn.log_softmax(new[0], axis=-1)
        return jnp.sum(jnp.exp(p0) * (p0 - p1), axis=-1)


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` over the True entries of ``mask`` (0 when there are none)."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def fisher_vector_product(
    policy: NPGPolicy, params: Any, obs: jax.Array, mask: jax.Array, vector: jax.Array, damping: float
) -> jax.Array:
    """(F + damping I) v for the flat parameter vector ``vector``; F is the Fisher matrix of the policy
    averaged over the rows of ``obs`` [N, obs_dim] where ``mask`` [N] holds.

    F = mean_n J_n^T M_n J_n, with J_n the Jacobian of sample n's distribution parameters (mean and
    log-std, or logits) and M_n the Fisher of the distribution in them: diag(1/std^2) for the mean,
    2 per log-std dim, diag(p) - p p^T for logits. That is the Hessian of the mean KL(old || new) at
    new = old, which mjrl takes by double back-propagation; here one jvp and one vjp.
    """
    flat, unravel = ravel_pytree(params)
    dist = lambda p: policy.dist(unravel(p), obs)
    out, vjp = jax.vjp(dist, flat)
    _, (d_out, d_log_std) = jax.jvp(dist, (flat,), (vector,))
    weight = mask.astype(flat.dtype) / jnp.maximum(jnp.sum(mask), 1.0)
    if policy.continuous:
        _, log_std = out
        m_mean = d_out * jnp.exp(-2.0 * log_std) * weight[:, None]
        m_log_std = 2.0 * d_log_std * jnp.sum(weight)
    else:
        p = jax.nn.softmax(out[0], axis=-1)
        m_mean = (p * d_out - p * jnp.sum(p * d_out, axis=-1, keepdims=True)) * weight[:, None]
        m_log_std = jnp.zeros_like(d_log_std)
    (fv,) = vjp((m_mean, m_log_std))
    return fv + damping * vector


def conjugate_gradient(
    matvec: Callable[[jax.Array], jax.Array],
    b: jax.Array,
    x0: jax.Array | None = None,
    iters: int = 25,
    residual_tol: float = 1e-10,
) -> jax.Array:
    """Solve A x = b for a symmetric positive-definite A given by ``matvec``.

    ``jax.scipy.sparse.linalg.cg`` with mjrl's stopping rule: at most ``iters`` iterations (25 in the
    PAL/MAL configs' ``FIM_invert_args``), or once r.r < ``residual_tol`` (mjrl's 1e-10, i.e. an
    absolute residual norm of 1e-5). mjrl starts from x0 = b; so does this when ``x0`` is None.
    """
    x0 = b if x0 is None else x0
    x, _ = jax.scipy.sparse.linalg.cg(matvec, b, x0=x0, tol=0.0, atol=residual_tol**0.5, maxiter=iters)
    return x


# ---------------------------------------------------------------------------------------------- paths
def discounted_returns(rewards: jax.Array, valid: jax.Array, gamma: float) -> jax.Array:
    """sum_k gamma^k r_{t+k} along the last axis of ``rewards`` [..., T], over the valid prefix only,
    with 0 after the path's last step (mjrl's ``discount_sum``, terminal 0, what its baseline fits)."""
    r = jnp.where(valid, rewards, 0.0)

    def back(carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        carry = x + gamma * carry
        return carry, carry

    _, out = jax.lax.scan(back, jnp.zeros(r.shape[:-1], r.dtype), jnp.moveaxis(r, -1, 0), reverse=True)
    return jnp.where(valid, jnp.moveaxis(out, 0, -1), 0.0)


def gae_paths(
    rewards: jax.Array,
    values: jax.Array,
    bootstrap: jax.Array,
    valid: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> jax.Array:
    """GAE (Schulman et al. 2016) of padded paths, time on the last axis: ``rewards``, ``values``,
    ``valid`` [..., T], ``bootstrap`` [...] the value after each path's last valid step.

    Each path is the prefix of ``valid`` (length L); delta_t = r_t + gamma V_{t+1} - V_t with V_L =
    ``bootstrap``, which the caller sets to 0 for a terminated path and to the baseline's value
    otherwise (mjrl's ``compute_advantages``); A_t = sum_k (gamma lambda)^k delta_{t+k} up to L - 1.
    Entries past L are 0.
    """
    valid_next = jnp.concatenate([valid[..., 1:], jnp.zeros_like(valid[..., :1])], axis=-1)
    next_values = jnp.concatenate([values[..., 1:], jnp.zeros_like(values[..., :1])], axis=-1)
    # The step whose successor is outside the path takes the bootstrap value.
    next_values = jnp.where(valid_next, next_values, bootstrap[..., None])
    deltas = jnp.where(valid, rewards + gamma * next_values - values, 0.0)

    def back(carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        carry = x + gamma * gae_lambda * carry
        return carry, carry

    _, adv = jax.lax.scan(
        back, jnp.zeros(deltas.shape[:-1], deltas.dtype), jnp.moveaxis(deltas, -1, 0), reverse=True
    )
    return jnp.where(valid, jnp.moveaxis(adv, 0, -1), 0.0)


# ---------------------------------------------------------------------------------------------- NPG step
class NPGInfo(NamedTuple):
    """What one NPG step reports."""

    alpha: jax.Array
    """The step length sqrt(delta / g.F^-1 g)."""
    kl: jax.Array
    """Mean KL(old || new) over the samples, measured after the step (mjrl's ``kl_dist``)."""
    surrogate_gain: jax.Array
    """Change of the surrogate mean(log pi(a|s) A) over the step (mjrl's ``surr_improvement``)."""
    grad_norm: jax.Array


def whiten(advantages: jax.Array, mask: jax.Array) -> jax.Array:
    """(A - mean) / (std + 1e-6) over the masked samples (mjrl's advantage whitening)."""
    mean = masked_mean(advantages, mask)
    std = jnp.sqrt(masked_mean((advantages - mean) ** 2, mask))
    return jnp.where(mask, (advantages - mean) / (std + 1e-6), 0.0)


def npg_step(
    policy: NPGPolicy,
    params: Any,
    obs: jax.Array,
    actions: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    step_size: float = 0.05,
    cg_iters: int = 25,
    damping: float = 1e-3,
    cg_residual_tol: float = 1e-10,
) -> tuple[Any, NPGInfo]:
    """One normalised natural-gradient step on flat samples ``obs`` [N, d], ``actions``, ``advantages``
    [N] (whitened here) where ``mask`` [N] holds; mjrl's ``NPG.train_from_paths``.

    ``step_size`` is mjrl's ``normalized_step_size`` delta (0.05 in the PAL/MAL configs): the step
    alpha x with x = (F + damping I)^-1 g and alpha = sqrt(|delta / (g.x + 1e-10)|) puts the quadratic
    KL model 0.5 alpha^2 x.F.x at about delta / 2; the log-std is clamped afterwards.
    """
    adv = whiten(advantages, mask)
    flat, unravel = ravel_pytree(params)

    def surrogate(p: jax.Array) -> jax.Array:
        return masked_mean(policy.log_prob(unravel(p), obs, actions) * adv, mask)

    surr_before, grad = jax.value_and_grad(surrogate)(flat)
    fvp = lambda v: fisher_vector_product(policy, params, obs, mask, v, damping)
    direction = conjugate_gradient(fvp, grad, iters=cg_iters, residual_tol=cg_residual_tol)
    alpha = jnp.sqrt(jnp.abs(step_size / (jnp.dot(grad, direction) + 1e-10)))
    new_params = policy.clamp(unravel(flat + alpha * direction))
    old_dist = jax.lax.stop_gradient(policy.dist(params, obs))
    kl = masked_mean(policy.kl(old_dist, policy.dist(new_params, obs)), mask)
    gain = surrogate(ravel_pytree(new_params)[0]) - surr_before
    return new_params, NPGInfo(alpha, kl, gain, jnp.linalg.norm(grad))


# ---------------------------------------------------------------------------------------------- baseline
class _BaselineNet(nn.Module):
    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


@dataclass(frozen=True)
class TimeBaseline:
    """mjrl's ``MLPBaseline`` as ``run_model_based_npg.py`` builds it: (128, 128) ReLU on
    [clip(obs, -10, 10) / 10, (t / 1000)^1..4], Adam lr 1e-3 with L2 ``reg_coef`` 1e-3 (torch's
    ``weight_decay``, added to the gradient), minibatch 128, 1 epoch per fit of max(floor(N / 128) - 1, 1)
    steps over a fresh permutation."""

    obs_dim: int
    hidden_sizes: tuple[int, ...] = (128, 128)
    learning_rate: float = 1e-3
    reg_coef: float = 1e-3
    batch_size: int = 128
    epochs: int = 1

    @property
    def net(self) -> _BaselineNet:
        return _BaselineNet(self.hidden_sizes)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.chain(optax.add_decayed_weights(self.reg_coef), optax.adam(self.learning_rate))

    def init(self, key: jax.Array) -> tuple[Any, Any]:
        params = self.net.init(key, jnp.zeros((self.obs_dim + 4,)))
        return params, self.optimizer.init(params)

    @staticmethod
    def features(obs: jax.Array, t: jax.Array) -> jax.Array:
        """[clip(obs, +-10) / 10, (t/1000)^1..4] for ``obs`` [..., d] at time indices ``t`` [...]."""
        tt = (t.astype(obs.dtype) / 1000.0)[..., None]
        return jnp.concatenate([jnp.clip(obs, -10.0, 10.0) / 10.0, tt, tt**2, tt**3, tt**4], axis=-1)

    def predict(self, params: Any, obs: jax.Array, t: jax.Array) -> jax.Array:
        return self.net.apply(params, self.features(obs, t))

    def fit(
        self,
        params: Any,
        opt_state: Any,
        features: jax.Array,
        targets: jax.Array,
        mask: jax.Array,
        key: jax.Array,
    ) -> tuple[Any, Any, jax.Array]:
        """Fit on the rows of ``features`` [N, d + 4] where ``mask`` holds; returns the new params,
        optimiser state and the relative error sum (y - f)^2 / sum y^2 after the fit (mjrl's
        ``VF_error_after``)."""
        n = jnp.sum(mask)
        steps = jnp.maximum(n // self.batch_size - 1, 1)
        bs = self.batch_size

        def epoch(_: int, carry: tuple) -> tuple:
            p, o, k = carry
            k, k_perm = jax.random.split(k)
            # Valid rows first, in a random order: a permutation of the valid rows.
            order = jnp.argsort(jnp.where(mask, jax.random.uniform(k_perm, mask.shape), 2.0))

            def step(i: jax.Array, c: tuple) -> tuple:
                p, o = c
                idx = jax.lax.dynamic_slice(order, (i * bs,), (bs,))
                x, y = features[idx], targets[idx]
                # A batch reaching past the valid rows (fewer than 2 batches of data) uses only valid ones.
                w = mask[idx].astype(y.dtype)
                loss = lambda q: jnp.sum(w * (self.net.apply(q, x) - y) ** 2) / jnp.maximum(w.sum(), 1.0)
                g = jax.grad(loss)(p)
                upd, o = self.optimizer.update(g, o, p)
                return optax.apply_updates(p, upd), o

            p, o = jax.lax.fori_loop(0, steps, step, (p, o))
            return p, o, k

        padded = features.shape[0] < bs
        if padded:  # fewer rows than one minibatch: pad so the slice exists
            pad = bs - features.shape[0]
            features = jnp.pad(features, ((0, pad), (0, 0)))
            targets = jnp.pad(targets, (0, pad))
            mask = jnp.pad(mask, (0, pad))
        params, opt_state, _ = jax.lax.fori_loop(0, self.epochs, epoch, (params, opt_state, key))
        err = jnp.where(mask, targets - self.net.apply(params, features), 0.0)
        rel = jnp.sum(err**2) / (jnp.sum(jnp.where(mask, targets, 0.0) ** 2) + 1e-8)
        return params, opt_state, rel
