r"""Small reference models for the general adversarial loss (docs/theory/general-models.md):
per-example losses ``loss_fn(params, x, y)``.

Every model here is a *per-example* loss, the convention of :mod:`advlip.attacks`
and :mod:`advlip.adversarial`: ``x`` has shape (d,), ``y`` is a scalar, ``params`` a
pytree of float arrays, and the value is a scalar. The callables are hashable
(frozen dataclasses), so compiled attacks and Hessian-vector products are cached
across calls; the flatness family carries its curvature :math:`\kappa` as an array
leaf of a pytree, so changing :math:`\kappa` does not recompile.

* :class:`MLPLoss` — margin loss :math:`\ell(y f_\theta(x))` of a multilayer perceptron
  with ``tanh``, ``softplus``, ``gelu`` or ``linear`` hidden activations
  (``linear`` makes a deep *linear* network: linear in ``x``, nonlinear in θ).
* :class:`LinearLoss` — :math:`\ell(y(w\cdot x + b))`, the binary linear model
  (docs/theory/closed-form.md) as a ``loss_fn``, to tie the general machinery to the
  closed forms of :mod:`advlip.linear`.
* :class:`InputCurvature` — any base loss minus :math:`\tfrac{\kappa}{2}\|x\|^2`: a
  strictly concave-in-input loss whose maximiser is interior (docs/theory/gen-interior.md).
* :class:`FlatnessLoss` — the flatness family :math:`\ell_\kappa`
  (docs/theory/gen-flatness.md),

  .. math:: \ell_\kappa(x, y; w, c) = y\, w\cdot x - \tfrac{\kappa}{2}\|x\|^2
            + \operatorname{softplus}(-y c),

  whose input curvature is exactly :math:`-\kappa I`. Where the maximiser
  :math:`x + \delta^* = y w/\kappa` is interior, :math:`L(w, c) = \|w\|^2/(2\kappa) +
  \operatorname{mean}_i \operatorname{softplus}(-y_i c)`, so the total Hessian is
  :math:`\operatorname{diag}(I/\kappa,\ s(c))`,
  :math:`s(c) = \operatorname{mean}_i \sigma(y_i c)\sigma(-y_i c)`,
  and :math:`\lambda_{\max} = \max(1/\kappa, s(c))` falls as κ grows, while the naive
  Hessian (δ held fixed) is :math:`\operatorname{diag}(0, s(c))` for every κ.

Example:
    >>> import jax
    >>> from advlip import models
    >>> params = models.init_mlp(jax.random.PRNGKey(0), 3, (4,))
    >>> loss_fn = models.MLPLoss("tanh")
    >>> loss_fn(params, jax.numpy.ones(3), 1.0).shape
    ()
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advlip._validate import check_positive_int
from advlip.losses import check_labels, get_logit_loss, get_loss

__all__ = [
    "ACTIVATIONS",
    "init_mlp",
    "mlp",
    "MLPLoss",
    "LinearLoss",
    "InputCurvature",
    "FlatnessLoss",
    "init_flatness",
    "mlp_margin_loss",
    "ClassifierLoss",
    "from_equinox",
    "from_flax",
    "from_torch",
]

#: Hidden activations of :func:`mlp`: three smooth ones (the total Hessian of
#: docs/theory/general-models.md needs ℓ twice differentiable) and ``linear`` for deep
#: linear networks.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "linear": lambda h: h,
}


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not known; allowed: {sorted(ACTIVATIONS)}")


def _rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded by the bits of a JAX key: replayable from the key, and
    no compilation (a threefry draw compiles once per shape)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _kappa_to_array(obj: Any) -> None:
    # A Python number would be a static leaf (one compilation per value); make it an array.
    if isinstance(obj.kappa, int | float | np.number):
        object.__setattr__(obj, "kappa", jnp.asarray(float(obj.kappa)))


def init_mlp(
    key: jax.Array,
    d: int | Sequence[int],
    widths: Sequence[int] = (8,),
    *,
    scale: float = 1.0,
    skip: bool = False,
) -> Any:
    """Random parameters of a scalar-output MLP ``d → widths… → 1`` (float64).

    Drawn with NumPy from a generator seeded by the bits of ``key`` (replayable, no
    compilation). Weights are normal with standard deviation ``scale / sqrt(fan_in)``, biases normal
    with standard deviation ``0.1 * scale``. The pytree is a list of ``{"W", "b"}``
    layers, ``W`` of shape (out, in); with ``skip`` it is
    ``{"layers": [...], "skip": (d,)}``, a linear skip connection (normal, std
    ``scale / sqrt(d)``) that makes the output affine in any input whose first-layer
    column is 0 (used to place an L∞ switching surface exactly,
    docs/theory/gen-linf-vertex.md). ``d`` may also be the full list of layer sizes,
    ``(d, width…, 1)``.

    Example:
        Layer shapes of ``3 → 4 → 1``, and the skip connection's vector:

        >>> import jax
        >>> from advlip import models
        >>> params = models.init_mlp(jax.random.PRNGKey(0), 3, (4,))
        >>> tuple((layer["W"].shape, layer["b"].shape) for layer in params)
        (((4, 3), (4,)), ((1, 4), (1,)))
        >>> skip = models.init_mlp(jax.random.PRNGKey(0), 3, (4,), skip=True)
        >>> sorted(skip), skip["skip"].shape
        (['layers', 'skip'], (3,))
    """
    if isinstance(d, Sequence):
        sizes = [check_positive_int("sizes[i]", s) for s in d]
        if len(sizes) < 2 or sizes[-1] != 1:
            raise ValueError(
                f"sizes={tuple(d)!r} is not allowed; allowed: (d, width..., 1), a scalar output"
            )
        d = sizes[0]
    else:
        d = check_positive_int("d", d)
        sizes = [d, *(check_positive_int("widths[i]", w) for w in widths), 1]
    rng = _rng(key)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = scale * rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)
        b = 0.1 * scale * rng.standard_normal(fan_out)
        layers.append({"W": jnp.asarray(W), "b": jnp.asarray(b)})
    if skip:
        return {"layers": layers, "skip": jnp.asarray(scale * rng.standard_normal(d) / np.sqrt(d))}
    return layers


def mlp(params: Any, x: ArrayLike, *, activation: str = "tanh"):
    r"""The scalar output :math:`f_\theta(x)` of :func:`init_mlp`'s network at one input ``x`` (d,).

    ``params`` is a list of ``{"W", "b"}`` layers, or ``{"layers": [...], "skip": s}`` for
    a network with a linear skip connection, :math:`f(x) = \text{MLP}(x) + s\cdot x`.

    Example:
        One hidden unit :math:`h = \text{act}(x_1)` and output :math:`2h + 0.5`: at
        :math:`x_1 = 0.5` that is 1.5 for the linear activation and
        :math:`2\tanh(0.5) + 0.5 = 1.4242` for tanh.

        >>> import jax.numpy as jnp
        >>> from advlip import models
        >>> params = [{"W": jnp.array([[1.0, 0.0]]), "b": jnp.array([0.0])},
        ...           {"W": jnp.array([[2.0]]), "b": jnp.array([0.5])}]
        >>> x = jnp.array([0.5, 3.0])
        >>> round(float(models.mlp(params, x, activation="linear")), 4)
        1.5
        >>> round(float(models.mlp(params, x)), 4)
        1.4242
    """
    _check_activation(activation)
    act = ACTIVATIONS[activation]
    layers, skip = (
        (params["layers"], params["skip"]) if isinstance(params, dict) else (params, None)
    )
    x = jnp.asarray(x)
    h = x
    for layer in layers[:-1]:
        h = act(layer["W"] @ h + layer["b"])
    out = (layers[-1]["W"] @ h + layers[-1]["b"])[0]
    return out if skip is None else out + skip @ x


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MLPLoss:
    r"""Margin loss of an MLP, minus an optional input curvature.

    :math:`\ell(x, y; \theta) = \ell_{\rm margin}(y f_\theta(x)) - \tfrac{\kappa}{2}\|x\|^2`.

    ``loss`` is a margin loss of :mod:`advlip.losses` (``softplus`` by default);
    ``y`` is a label in {-1, +1}. ``kappa`` (default 0) adds input curvature, as
    :class:`InputCurvature` does; it is an array leaf, so every κ — 0 included —
    shares one compiled program.

    Example:
        The network of :func:`mlp`'s example gives :math:`f(x) = 1.5` at
        ``x = (0.5, 3)``: the softplus loss is :math:`\log(1 + e^{-1.5}) = 0.2014` at
        y = +1, and κ = 1 subtracts :math:`\|x\|^2/2 = 4.625`.

        >>> import jax.numpy as jnp
        >>> from advlip import models
        >>> params = [{"W": jnp.array([[1.0, 0.0]]), "b": jnp.array([0.0])},
        ...           {"W": jnp.array([[2.0]]), "b": jnp.array([0.5])}]
        >>> x = jnp.array([0.5, 3.0])
        >>> round(float(models.MLPLoss("linear")(params, x, 1.0)), 4)
        0.2014
        >>> round(float(models.MLPLoss("linear", kappa=1.0)(params, x, 1.0)), 4)
        -4.4236
    """

    activation: str = dataclasses.field(default="tanh", metadata=dict(static=True))
    loss: str = dataclasses.field(default="softplus", metadata=dict(static=True))
    kappa: Any = 0.0

    def __post_init__(self):
        _check_activation(self.activation)
        get_loss(self.loss)
        _kappa_to_array(self)

    def __call__(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        margin = y * mlp(params, x, activation=self.activation)
        return get_loss(self.loss).value(margin) - 0.5 * self.kappa * (x @ x)


@dataclasses.dataclass(frozen=True)
class LinearLoss:
    r"""The binary linear model as a per-example loss: :math:`\ell(y(w\cdot x + b))`.

    ``params = {"w": (d,), "b": ()}``. Its adversarial loss has the closed form of
    docs/theory/closed-form.md (:mod:`advlip.linear`), which the general machinery must
    reproduce.

    Example:
        Margin :math:`y(w\cdot x + b) = 0.6 + 0.4 = 1`, softplus loss
        :math:`\log(1 + e^{-1}) = 0.3133`:

        >>> import jax.numpy as jnp
        >>> from advlip import models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> round(float(models.LinearLoss()(params, jnp.array([2.0, 1.0]), 1.0)), 4)
        0.3133
    """

    loss: str = "softplus"

    def __post_init__(self):
        get_loss(self.loss)

    def __call__(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return get_loss(self.loss).value(y * (params["w"] @ x + params["b"]))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class InputCurvature:
    r"""A base loss made strictly concave in the input: :math:`\ell(x) - \tfrac{\kappa}{2}\|x\|^2`.

    With :math:`\kappa > \sup_x \lambda_{\max}(\nabla^2_{xx}\ell)` the inner maximisation is
    strictly concave, its maximiser unique, and interior when the ball is large
    enough (docs/theory/gen-interior.md). ``kappa`` is an array leaf: a new κ reuses
    the compiled code.

    Example:
        :class:`LinearLoss`'s example, 0.3133 at ``x = (2, 1)``, minus
        :math:`\kappa\|x\|^2/2 = 5` for κ = 2:

        >>> import jax.numpy as jnp
        >>> from advlip import models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> loss_fn = models.InputCurvature(models.LinearLoss(), kappa=2.0)
        >>> round(float(loss_fn(params, jnp.array([2.0, 1.0]), 1.0)), 4)
        -4.6867
    """

    base: Callable[..., jax.Array] = dataclasses.field(metadata=dict(static=True))
    kappa: jax.Array

    def __post_init__(self):
        _kappa_to_array(self)

    def __call__(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return self.base(params, x, y) - 0.5 * self.kappa * (x @ x)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FlatnessLoss:
    r"""The flatness family (docs/theory/gen-flatness.md), whose input curvature is the knob κ.

    :math:`\ell_\kappa(x, y; w, c) = y\,w\cdot x - \tfrac{\kappa}{2}\|x\|^2
    + \operatorname{softplus}(-yc)`.

    ``params = {"w": (d,), "c": ()}``; ``kappa`` > 0 is the input curvature,
    :math:`\nabla^2_{xx}\ell_\kappa = -\kappa I`. The methods give the closed forms
    the check compares with: the maximiser, the total Hessian and its top eigenvalue.

    Example:
        κ = 2, w = (0.3, 0.4), c = 0: the interior maximiser is :math:`yw/\kappa`, the
        c-block :math:`s(0) = \sigma(0)^2 = 0.25`, and :math:`\lambda_{\max} =
        \max(1/\kappa, s) = 0.5`.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import models
        >>> loss_fn = models.FlatnessLoss(kappa=2.0)
        >>> params, y = {"w": jnp.array([0.3, 0.4]), "c": jnp.array(0.0)}, jnp.array([1.0, -1.0])
        >>> np.round(np.asarray(loss_fn.maximiser(params, y), float), 4).tolist()
        [[0.15, 0.2], [-0.15, -0.2]]
        >>> np.round(np.diag(np.asarray(loss_fn.total_hessian(params, y), float)), 4).tolist()
        [0.25, 0.5, 0.5]
        >>> round(float(loss_fn.lambda_max(params, y)), 4)
        0.5
    """

    kappa: jax.Array

    def __post_init__(self):
        _kappa_to_array(self)

    def __call__(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return (
            y * (params["w"] @ x) - 0.5 * self.kappa * (x @ x) + jax.nn.softplus(-y * params["c"])
        )

    def maximiser(self, params: Any, y: ArrayLike) -> jax.Array:
        r"""Unconstrained maximiser :math:`x + \delta^* = y w/\kappa`, shape (n, d); it is
        the constrained one where :math:`\|y w/\kappa - x_i\| < \varepsilon`."""
        y = jnp.atleast_1d(jnp.asarray(y, dtype=float))
        return y[:, None] * params["w"][None, :] / self.kappa

    def curvature_of_c(self, params: Any, y: ArrayLike) -> jax.Array:
        r"""The c-block of both Hessians.

        :math:`s(c) = \operatorname{mean}_i \sigma(y_i c)\sigma(-y_i c)`."""
        yc = jnp.atleast_1d(jnp.asarray(y, dtype=float)) * params["c"]
        return jnp.mean(jax.nn.sigmoid(yc) * jax.nn.sigmoid(-yc))

    def total_hessian(self, params: Any, y: ArrayLike) -> jax.Array:
        r"""Closed-form total Hessian :math:`\operatorname{diag}(s(c), I/\kappa)`.

        Over ``ravel_pytree`` order: c first, then w."""
        d = params["w"].shape[0]
        s = self.curvature_of_c(params, y)
        # ravel_pytree orders dict keys alphabetically: "c" first, then "w".
        return jnp.diag(jnp.concatenate([s[None], jnp.full((d,), 1.0 / self.kappa)]))

    def lambda_max(self, params: Any, y: ArrayLike) -> jax.Array:
        r""":math:`\lambda_{\max}(\nabla^2 L) = \max(1/\kappa, s(c))` for interior maximisers."""
        return jnp.maximum(1.0 / self.kappa, self.curvature_of_c(params, y))


#: The default reference loss, :class:`MLPLoss` with tanh and softplus: ``loss_fn(params, x, y)``.
mlp_margin_loss = MLPLoss("tanh")


def init_flatness(key: jax.Array, d: int, *, w_norm: float = 0.25, c: float = 1.0) -> dict:
    """Parameters of :class:`FlatnessLoss`: ``w`` random with ``‖w‖₂ = w_norm``, ``c`` given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import models
        >>> params = models.init_flatness(jax.random.PRNGKey(0), 3, w_norm=0.25, c=1.0)
        >>> params["w"].shape, round(float(jnp.linalg.norm(params["w"])), 4), float(params["c"])
        ((3,), 0.25, 1.0)
    """
    d = check_positive_int("d", d)
    w = _rng(key).standard_normal(d)
    return {"w": jnp.asarray(w_norm * w / np.linalg.norm(w)), "c": jnp.asarray(float(c))}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ClassifierLoss:
    r"""The per-example loss of a classifier: :math:`\ell(x, y; \theta) = \text{loss}(f_\theta(x), y)`.

    ``apply(params, x)`` gives the logits of ONE input ``x`` — shape (K,) for K classes,
    or () / (1,) for a binary classifier with labels ±1 — and ``loss`` names a loss on
    logits (:data:`advlip.losses.LOGIT_LOSSES`: ``cross_entropy``, ``cw``, ``dlr``).
    Every model adapter (:func:`from_equinox`, :func:`from_flax`, :func:`from_torch`) and
    reference network returns one. ``apply`` is a pytree child: array constants it
    closes over as leaves (say BatchNorm statistics) are traced, not hashed.

    Example:
        >>> import jax.numpy as jnp
        >>> loss_fn = ClassifierLoss(lambda W, x: W @ x, "cross_entropy")
        >>> W = jnp.eye(3)
        >>> round(float(loss_fn(W, jnp.array([2.0, 0.0, 0.0]), 0)), 4)
        0.2395
        >>> loss_fn.num_classes(W, jnp.zeros(3))
        3
    """

    apply: Callable[[Any, jax.Array], jax.Array]
    loss: str = dataclasses.field(default="cross_entropy", metadata=dict(static=True))

    def __post_init__(self):
        if not callable(self.apply):
            raise ValueError(f"apply must be callable as apply(params, x), got {self.apply!r}")
        get_logit_loss(self.loss)

    def __call__(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return get_logit_loss(self.loss)(self.apply(params, x), y)

    def logits(self, params: Any, X: ArrayLike) -> jax.Array:
        """Logits of a batch ``X`` (n, …) — ``apply`` vmapped — for accuracy and attacks."""
        return jax.vmap(lambda x: self.apply(params, x))(jnp.asarray(X))

    def num_classes(self, params: Any, x: ArrayLike) -> int:
        """K for logits of shape (K,); 1 for a binary classifier's single logit."""
        shape = jax.eval_shape(self.apply, params, jnp.asarray(x)).shape
        if shape in ((), (1,)):
            return 1
        if len(shape) != 1:
            raise ValueError(
                f"apply(params, x) must return the logits of one input, shape (K,) or (); "
                f"got shape {shape} (advlip calls it on one example and vmaps over the batch)"
            )
        return int(shape[0])

    def check_labels(self, params: Any, x: ArrayLike, y: ArrayLike) -> None:
        """Refuse labels the classifier cannot take (see :func:`advlip.losses.check_labels`)."""
        k = self.num_classes(params, x)
        if k < get_logit_loss(self.loss).min_classes:
            raise ValueError(
                f"loss={self.loss!r} needs at least {get_logit_loss(self.loss).min_classes} "
                f"classes, the model has {k}; allowed: cross_entropy or cw"
            )
        check_labels(y, k)


from advlip.adapters import from_equinox, from_flax, from_torch  # noqa: E402 (re-exported)
