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
the measure is that of docs/theory/entropy-smooth.md, and the estimate converges to the quadrature value in 2-D
(tested). ``gamma`` may be a float or an optax schedule (γ-scoping: γ grows over training).

Examples:
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
    """The state of :func:`local_entropy_gradient`.

    Attributes:
      key: the JAX PRNG key of the next outer step's Langevin noise.
      count: outer steps taken (the argument of a ``gamma`` schedule).
      last_mean: the last estimate of :math:`E[\\theta']`, a params pytree (the params
        themselves before the first step), for diagnostics.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from advlip.entropy_sgd import local_entropy_gradient
        >>> tx = local_entropy_gradient(lambda th: th, gamma=1.0, key=jax.random.PRNGKey(1))
        >>> state = tx.init(jnp.array([2.0, -1.0]))
        >>> int(state.count), state.last_mean.tolist()
        (0, [2.0, -1.0])
    """

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
      step_size: the SGLD step η.
      temperature: T (1 gives the Gibbs measure of docs/theory/entropy-smooth.md; 0 makes
        SGLD plain gradient descent to the measure's mode).
      averaging: None for the uniform mean after burn-in, or α ∈ (0, 1] for the
        exponential average μ ← (1−α)μ + αθ' of Chaudhari et al.
      chains: independent chains averaged together (variance ÷ chains).
      key: the JAX PRNG key of the Langevin noise (default ``jax.random.PRNGKey(0)``); the
        state carries it, split once per outer step.

    Examples:
        For :math:`L(\\theta) = \\|\\theta\\|^2/2` the Gibbs measure is Gaussian with mean
        :math:`\\theta/(1+\\gamma)`, so the update is :math:`\\gamma^2\\theta/(1+\\gamma)`:
        θ/2 for γ = 1. At T = 0 the chain descends to that mean without noise:

        >>> import jax.numpy as jnp
        >>> from advlip.entropy_sgd import local_entropy_gradient
        >>> grad_L = lambda th: th
        >>> tx = local_entropy_gradient(grad_L, gamma=1.0, steps=100, step_size=0.1, temperature=0.0)
        >>> params = jnp.array([2.0, -1.0])
        >>> updates, state = tx.update(jnp.zeros(2), tx.init(params), params)
        >>> [round(float(u), 3) for u in updates], int(state.count)
        ([1.0, -0.5], 1)
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
    r"""Per-chain SGLD estimates of :math:`E[\theta']` (shape (chains, P)) for flat ``theta``.

    Independent chains give the Monte-Carlo standard error of the mean directly:
    ``means.std(0) / sqrt(chains)``.

    Examples:
        For :math:`L(\theta') = \|\theta'\|^2/2` and γ = 1 the Gibbs mean is θ/2; with
        ``temperature=0`` every chain is the same noiseless descent, contracting by
        :math:`1 - 2\eta = 0.8` a step, so after the 50 burn-in steps it sits at θ/2 to
        :math:`0.8^{50} \approx 10^{-5}`:

        >>> import jax, jax.numpy as jnp
        >>> from advlip.entropy_sgd import sgld_chain_means
        >>> means = sgld_chain_means(lambda th: th, jnp.array([2.0, -1.0]), jax.random.PRNGKey(0),
        ...                          gamma=1.0, steps=100, step_size=0.1, temperature=0.0,
        ...                          burn_in=50, chains=3)
        >>> means.shape, [round(float(m), 3) for m in means[0]]
        ((3, 2), [1.0, -0.5])
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
    r"""EntropySGD: :func:`local_entropy_gradient` chained with ``optax.sgd(learning_rate, momentum)``.

    ``kwargs`` go to :func:`local_entropy_gradient` (``steps``, ``step_size``,
    ``temperature``, ``burn_in``, ``averaging``, ``chains``, ``key``).

    Examples:
        One step on :math:`L(\theta) = \|\theta\|^2/2` at T = 0: the update θ/2 (see
        :func:`local_entropy_gradient`) times the learning rate 0.5 (momentum starts at 0):

        >>> import jax.numpy as jnp, optax
        >>> from advlip.entropy_sgd import entropy_sgd
        >>> opt = entropy_sgd(lambda th: th, 0.5, gamma=1.0, steps=100, step_size=0.1,
        ...                   temperature=0.0)
        >>> params = jnp.array([2.0, -1.0])
        >>> updates, _ = opt.update(jnp.zeros(2), opt.init(params), params)
        >>> [round(float(v), 3) for v in optax.apply_updates(params, updates)]
        [1.5, -0.75]
    """
    return optax.chain(
        local_entropy_gradient(grad_fn, gamma=gamma, **kwargs),
        optax.sgd(learning_rate, momentum=momentum),
    )
