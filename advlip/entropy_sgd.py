r"""EntropySGD (Chaudhari et al., ICLR 2017) as an optax ``GradientTransformation``.

EntropySGD descends the local entropy :math:`F_\gamma` (:mod:`advlip.entropy`) instead of
:math:`L`. Its gradient :math:`\nabla F_\gamma(\theta) = \gamma(\theta - \mathbb{E}[\theta'])` needs the
mean of the Gibbs measure :math:`p(\theta'|\theta) \propto \exp(-(L(\theta') + \frac{\gamma}{2}\|\theta-\theta'\|^2)/T)`,
estimated by stochastic gradient Langevin dynamics (SGLD) started at θ:

.. math:: \theta' \leftarrow \theta' - \eta\big(\nabla L(\theta') + \gamma(\theta' - \theta)\big) + \sqrt{2\eta T}\,\xi,
          \qquad \xi \sim \mathcal{N}(0, I),

averaged after ``burn_in`` steps (or exponentially with weight ``averaging``, as in the
paper). :func:`local_entropy_gradient` replaces the incoming updates by that estimate
(the incoming gradient of L is not needed, and is ignored), so it chains with any
optax optimiser; :func:`entropy_sgd` is the chain with SGD + momentum. With T = 1
the measure is SPEC §4's, and the estimate converges to the quadrature value in 2-D
(tested). ``gamma`` may be a float or an optax schedule (γ-scoping: γ grows over training).

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from advlip.entropy_sgd import entropy_sgd
    >>> grad_L = jax.grad(lambda th: 0.5 * jnp.sum(th**2))
    >>> key = jax.random.PRNGKey(0)
    >>> opt = entropy_sgd(grad_L, learning_rate=0.5, gamma=1.0, steps=50, key=key)
    >>> params = jnp.array([2.0, -1.0]); state = opt.init(params)
    >>> updates, state = opt.update(jnp.zeros(2), state, params)
    >>> params = optax.apply_updates(params, updates)
    >>> bool(jnp.linalg.norm(params) < jnp.linalg.norm(jnp.array([2.0, -1.0])))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from advlip import keys

__all__ = ["local_entropy_gradient", "entropy_sgd", "sgld_chain_means", "LocalEntropyState"]


class LocalEntropyState(NamedTuple):
    key: jax.Array
    count: jax.Array
    last_mean: Any  # the last estimate of E[θ'] (a params pytree), for diagnostics


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = (
        isinstance(value, int | float)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ValueError(
            f"{name}={value!r} is not allowed; allowed: a finite real {'>=' if allow_zero else '>'} 0"
        )


def local_entropy_gradient(
    grad_fn: Callable[..., Any],
    *,
    gamma: float | Callable[[jax.Array], jax.Array],
    steps: int = 20,
    step_size: float = 0.05,
    temperature: float = 1.0,
    burn_in: int | None = None,
    averaging: float | None = None,
    chains: int = 1,
    key: jax.Array | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Replace the updates by the SGLD estimate of :math:`\\gamma(\\theta - E[\\theta'])`.

    Args:
      grad_fn: ``grad_fn(params, *batch)`` → gradient of L (a params pytree). Extra
        arguments given to ``update(..., batch=(...))`` are passed on, so minibatches work.
      gamma: the coupling γ > 0, or an optax schedule of the step count.
      steps: SGLD steps per outer step; ``burn_in`` of them are discarded (default steps // 4).
      step_size: SGLD step η; temperature: T (1 gives SPEC §4's Gibbs measure).
      averaging: None for the uniform mean after burn-in, or α ∈ (0, 1] for the
        exponential average μ ← (1−α)μ + αθ' of Chaudhari et al.
      chains: independent chains averaged together (variance ÷ chains).
      key: the JAX PRNG key of the Langevin noise (default ``jax.random.PRNGKey(0)``); the
        state carries it, split once per outer step.
    """
    if not callable(gamma):
        _check_positive("gamma", gamma)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; allowed: an integer >= 1")
    _check_positive("step_size", step_size)
    _check_positive("temperature", temperature, allow_zero=True)
    burn = steps // 4 if burn_in is None else burn_in
    if not (isinstance(burn, int) and 0 <= burn < steps):
        raise ValueError(f"burn_in={burn_in!r} is not allowed; allowed: an integer in [0, steps)")
    if averaging is not None and not (0 < averaging <= 1):
        raise ValueError(
            f"averaging={averaging!r} is not allowed; allowed: None or 0 < averaging <= 1"
        )
    if isinstance(chains, bool) or not isinstance(chains, int) or chains < 1:
        raise ValueError(f"chains={chains!r} is not allowed; allowed: an integer >= 1")
    key = jax.random.PRNGKey(0) if key is None else keys.check_key(key)
    gamma_fn = gamma if callable(gamma) else (lambda count: gamma)

    def init(params):
        return LocalEntropyState(key, jnp.zeros((), jnp.int32), params)

    def update(updates, state, params=None, *, batch=(), **extra_args):
        del updates, extra_args
        if params is None:
            raise ValueError(
                "local_entropy_gradient needs params: call update(updates, state, params)"
            )
        g = gamma_fn(state.count)
        key, sub = jax.random.split(state.key)
        flat, unravel = jax.flatten_util.ravel_pytree(params)

        def grad_flat(x):
            return jax.flatten_util.ravel_pytree(grad_fn(unravel(x), *batch))[0]

        means = sgld_chain_means(
            grad_flat,
            flat,
            sub,
            gamma=g,
            steps=steps,
            step_size=step_size,
            temperature=temperature,
            burn_in=burn,
            averaging=averaging,
            chains=chains,
        )
        mean = jnp.mean(means, axis=0)
        new_updates = unravel(g * (flat - mean))
        return new_updates, LocalEntropyState(key, state.count + 1, unravel(mean))

    return optax.GradientTransformationExtraArgs(init, update)


def sgld_chain_means(
    grad_flat: Callable[[jax.Array], jax.Array],
    theta: jax.Array,
    key: jax.Array,
    *,
    gamma: float | jax.Array,
    steps: int,
    step_size: float,
    temperature: float = 1.0,
    burn_in: int = 0,
    averaging: float | None = None,
    chains: int = 1,
) -> jax.Array:
    """Per-chain SGLD estimates of :math:`E[\theta']` (shape (chains, P)) for flat ``theta``.

    Independent chains give the Monte-Carlo standard error of the mean directly:
    ``means.std(0) / sqrt(chains)``.
    """

    def chain(k):
        def step(carry, k_t):
            x, mean, i = carry
            noise = jax.random.normal(k_t, x.shape, x.dtype)
            drift = grad_flat(x) + gamma * (x - theta)
            x = x - step_size * drift + jnp.sqrt(2 * step_size * temperature) * noise
            if averaging is None:
                n = jnp.maximum(i - burn_in + 1, 1)
                mean = jnp.where(i >= burn_in, mean + (x - mean) / n, mean)
            else:
                mean = (1 - averaging) * mean + averaging * x
            return (x, mean, i + 1), None

        (_, mean, _), _ = jax.lax.scan(step, (theta, theta, 0), jax.random.split(k, steps))
        return mean

    return jax.vmap(chain)(jax.random.split(key, chains))


def entropy_sgd(
    grad_fn: Callable[..., Any],
    learning_rate: float | optax.Schedule,
    *,
    gamma: float | Callable[[jax.Array], jax.Array],
    momentum: float | None = 0.9,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """EntropySGD: :func:`local_entropy_gradient` chained with ``optax.sgd(learning_rate, momentum)``."""
    return optax.chain(
        local_entropy_gradient(grad_fn, gamma=gamma, **kwargs),
        optax.sgd(learning_rate, momentum=momentum),
    )
