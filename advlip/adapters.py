r"""Classifiers written in equinox, flax or PyTorch as advlip per-example losses.

Each adapter returns ``(params, loss_fn)``: ``params`` the model's trainable float arrays
(a pytree), ``loss_fn`` an :class:`advlip.models.ClassifierLoss` with
``loss_fn(params, x, y)`` the loss of ONE example — ``x`` one input in the model's own
layout (say an image (C, H, W) or (H, W, C)), ``y`` an integer class, or ±1 for a model
with a single logit. Everything else the model holds (BatchNorm statistics, random-number
state, integer buffers, the layer structure) is closed over inside ``loss_fn``: constants,
never differentiated or trained. The pair goes straight into
:func:`advlip.adversarial.linearize`, :func:`advlip.attacks.pgd` and the rest of the
engine, which vmap ``loss_fn`` over the examples and flatten shaped inputs themselves.

* :func:`from_equinox` — an ``equinox.Module``: split by
  ``eqx.partition(model, eqx.is_inexact_array)``; ``params`` is the float-array part (an
  equinox pytree, ``None`` where the model holds no trainable array), and the model is
  called on one unbatched input, equinox's convention. A stateful model (BatchNorm) takes
  its ``eqx.nn.State`` as ``state=`` and is called as ``model(x, state)``.
* :func:`from_flax` — a ``flax.nnx.Module`` (``params`` the ``nnx.Param`` variables as a
  plain nested dict, every other variable a constant) or a ``flax.linen.Module`` with its
  ``variables`` (``variables["params"]`` trained, the other collections, say
  ``batch_stats``, constants). Flax layers expect a batch axis: by default
  (``batched=True``) ``x`` gets a leading axis of length 1 and the output loses it.
* :func:`from_torch` — a ``torch.nn.Module``, translated to JAX by
  :func:`advlip.torch_convert.convert` (``params`` keyed by the torch parameter names).

**Inference mode.** Every adapter evaluates the network as it is deployed: Dropout is off
and BatchNorm normalises with its running statistics, which are constants. Equinox models
pass through ``eqx.nn.inference_mode``; flax nnx modules through
``nnx.view(..., deterministic=True, use_running_average=True)`` (a copy: the caller's
module is not changed); linen modules are applied with immutable collections and no random
streams, so a layer left in training mode (``BatchNorm(use_running_average=False)``,
``Dropout(deterministic=False)``) fails loudly — pass its flag through ``call_kwargs``
(say ``{"train": False}``). Inference mode makes ``loss_fn`` a deterministic function of
``(params, x)``, which the attack and the Hessians need.

**Derivatives.** Gradients are reverse-mode and Hessian-vector products forward-over-reverse
(``jax.jvp`` of ``jax.grad``), traced through the framework's own layers and compiled by
XLA; nothing is approximated by finite differences. The theory wants a twice
differentiable loss: with ReLU (or max-pooling) the Hessian is only defined piecewise,
away from the kinks, and is zero in the activations there; smooth activations (tanh,
softplus, GELU) avoid that.

**Precision.** The adapters keep the model's dtype; the engine computes in the least
precise dtype of ``params`` and the inputs and casts the closed-over constants to it. To
verify in float64 build the model under float64: equinox follows JAX's default dtype, so
build it with ``jax.config.update("jax_enable_x64", True)`` (or inside
``with jax.enable_x64(True):``); flax initialises in float32 unless told otherwise
(``param_dtype=jnp.float64``), or cast afterwards:
``params = jax.tree.map(lambda a: a.astype(jnp.float64), params)``.

**Compilation.** ``loss_fn`` is hashable: its arrays are pytree leaves, traced by the
engine's compiled programs, and the rest (the layer structure, activation functions,
static attributes) is hashed, so a second adapter of the same architecture reuses every
compiled program.

Example:
    >>> import jax, jax.numpy as jnp, equinox as eqx
    >>> from advlip.adapters import from_equinox
    >>> mlp = eqx.nn.MLP(4, 3, 8, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    >>> params, loss_fn = from_equinox(mlp)
    >>> loss_fn(params, jnp.ones(4), 2).shape
    ()
    >>> loss_fn.num_classes(params, jnp.ones(4))
    3
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from advlip.losses import LOGIT_LOSSES

if TYPE_CHECKING:  # models imports this module at its end: a runtime import would cycle
    from advlip.models import ClassifierLoss

__all__ = ["from_equinox", "from_flax", "from_torch"]


# --------------------------------------------------------------------------- shared checks


def _check_loss(loss: Any) -> str:
    if not isinstance(loss, str) or loss not in LOGIT_LOSSES:
        raise ValueError(
            f"loss={loss!r} is not a known loss on logits; allowed: {sorted(LOGIT_LOSSES)}"
        )
    return loss


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}={value!r} is not allowed; allowed: True or False")
    return bool(value)


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array | np.ndarray | np.generic)


def _check_hashable(name: str, apply: Any) -> None:
    """The engine hashes the non-array leaves and the structure of ``loss_fn``; say which
    argument holds something that cannot be hashed, here rather than deep in an attack."""
    leaves, treedef = jax.tree.flatten(apply)
    try:
        hash((treedef, tuple(None if _is_array(leaf) else leaf for leaf in leaves)))
    except TypeError as err:
        raise ValueError(
            f"{name} holds an attribute that cannot be hashed ({err}); allowed: models whose "
            "non-array attributes are hashable (numbers, strings, tuples, functions), since "
            "advlip caches compiled programs by them — make such an attribute a tuple, or "
            "an array (arrays are traced, not hashed)"
        ) from None


def _classifier(apply: Any, loss: str):
    # Imported here: advlip.models re-exports the adapters, so a top-level import of
    # advlip.models would be circular.
    from advlip.models import ClassifierLoss

    return ClassifierLoss(apply, loss)


def _call_kwargs(call_kwargs: Any) -> tuple[tuple[str, Any], ...]:
    if call_kwargs is None:
        return ()
    if not isinstance(call_kwargs, Mapping) or not all(isinstance(k, str) for k in call_kwargs):
        raise ValueError(
            f"call_kwargs={call_kwargs!r} is not allowed; allowed: None or a dict of keyword "
            "arguments by name (say {'train': False})"
        )
    items = tuple(sorted(call_kwargs.items()))
    for key, value in items:
        if not isinstance(value, Hashable) or _is_array(value):
            raise ValueError(
                f"call_kwargs[{key!r}]={value!r} is not allowed; allowed: hashable Python "
                "values (bool, int, float, str, tuple) — arrays belong in params or the model"
            )
    return items


# --------------------------------------------------------------------------- equinox


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _EquinoxApply:
    """``apply(params, x)`` of an equinox model: ``eqx.combine(params, static)(x)``.

    ``static`` (the model without its float arrays) and ``state`` (an ``eqx.nn.State`` or
    None) are pytree children: their arrays are traced constants, the rest is hashed.
    """

    static: Any
    state: Any

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        import equinox as eqx

        model = eqx.combine(params, self.static)
        if self.state is None:
            return model(x)
        out, _ = model(x, self.state)  # a stateful model returns (output, new state)
        return out


def _has_state_index(model: Any) -> bool:
    import equinox as eqx

    leaves = jax.tree.leaves(model, is_leaf=lambda a: isinstance(a, eqx.nn.StateIndex))
    return any(isinstance(leaf, eqx.nn.StateIndex) for leaf in leaves)


def from_equinox(
    model: Any, *, state: Any = None, loss: str = "cross_entropy"
) -> tuple[Any, ClassifierLoss]:
    r"""``(params, loss_fn)`` of an equinox classifier, evaluated in inference mode.

    ``model(x)`` must give the logits (K,) of ONE unbatched input ``x`` (equinox's
    convention), or a single logit () / (1,) for labels ±1. ``params`` is
    ``eqx.partition(model, eqx.is_inexact_array)[0]``: every float array of the model, an
    equinox pytree like ``model`` (``eqx.combine(params, ...)`` and optax updates work on
    it). Integer arrays, functions and static fields are constants of ``loss_fn``.

    The model passes through ``eqx.nn.inference_mode``: Dropout is the identity and
    BatchNorm uses its running statistics. A stateful model (one with
    ``eqx.nn.BatchNorm`` or another ``StatefulLayer``, built with
    ``eqx.nn.make_with_state``) needs its ``state``: it is called as
    ``model(x, state)``, must return ``(logits, state)``, and the running statistics in
    ``state`` are closed over as constants — they are not in ``params``, not
    differentiated, not trained.

    Args:
      model: an ``equinox.Module`` whose call gives logits.
      state: the model's ``eqx.nn.State`` (required iff the model is stateful).
      loss: a loss on logits, one of :data:`advlip.losses.LOGIT_LOSSES`.

    Returns:
      ``(params, loss_fn)``, ``loss_fn`` an :class:`advlip.models.ClassifierLoss`.

    Example:
        >>> import jax, jax.numpy as jnp, equinox as eqx, optax
        >>> mlp = eqx.nn.MLP(4, 3, 8, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0))
        >>> params, loss_fn = from_equinox(mlp)
        >>> x = jnp.linspace(-1.0, 1.0, 4)
        >>> direct = optax.softmax_cross_entropy_with_integer_labels(mlp(x), 1)
        >>> bool(jnp.allclose(loss_fn(params, x, 1), direct))
        True
        >>> from_equinox(mlp, loss="hinge")
        Traceback (most recent call last):
        ...
        ValueError: loss='hinge' is not a known loss on logits; allowed: ['cross_entropy', 'cw', 'dlr']
    """
    import equinox as eqx

    if not isinstance(model, eqx.Module) or not callable(model):
        raise ValueError(
            f"model must be an equinox.Module that is callable as model(x); got "
            f"{type(model).__name__}. For flax use from_flax, for PyTorch from_torch"
        )
    loss = _check_loss(loss)
    stateful = _has_state_index(model)
    if state is not None and not isinstance(state, eqx.nn.State):
        raise ValueError(
            f"state must be None or an equinox.nn.State (from eqx.nn.make_with_state); got "
            f"{type(state).__name__}"
        )
    if stateful and state is None:
        raise ValueError(
            "state is required: the model has stateful layers (say eqx.nn.BatchNorm); pass "
            "state=the eqx.nn.State from eqx.nn.make_with_state(Model)(...)"
        )
    if state is not None and not stateful:
        raise ValueError(
            "state must be None for a model without stateful layers (it is called as "
            "model(x)); allowed: state=None"
        )
    if stateful:
        # initial states left in the model (built without make_with_state) would otherwise
        # be float arrays, hence trained parameters; the running values live in `state`.
        model = eqx.nn.delete_init_state(model)
        # a copy: `state.set` (a training step of the caller's) invalidates the State object
        # it is called on, which must not break this loss_fn
        leaves, treedef = jax.tree.flatten(state)
        state = jax.tree.unflatten(treedef, leaves)
    model = eqx.nn.inference_mode(model)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    apply = _EquinoxApply(static, state)
    _check_hashable("model", apply)
    return params, _classifier(apply, loss)


# --------------------------------------------------------------------------- flax


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _NNXApply:
    """``apply(params, x)`` of a flax nnx module: ``nnx.merge(graphdef, params, rest)(x)``.

    ``graphdef`` (structure and static attributes, hashable) is static; ``rest`` (every
    non-Param variable as a nested dict of arrays) is a pytree child of traced constants.
    """

    graphdef: Any = dataclasses.field(metadata=dict(static=True))
    rest: Any
    batched: bool = dataclasses.field(metadata=dict(static=True))
    call_kwargs: tuple = dataclasses.field(metadata=dict(static=True))

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        from flax import nnx

        module = nnx.merge(self.graphdef, params, self.rest)
        kwargs = dict(self.call_kwargs)
        if self.batched:
            return module(x[None], **kwargs)[0]
        return module(x, **kwargs)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _LinenApply:
    """``apply(params, x)`` of a linen module: ``module.apply({"params": params, **constants}, x)``."""

    module: Any = dataclasses.field(metadata=dict(static=True))
    constants: Any
    batched: bool = dataclasses.field(metadata=dict(static=True))
    call_kwargs: tuple = dataclasses.field(metadata=dict(static=True))

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        variables = {"params": params, **self.constants}
        kwargs = dict(self.call_kwargs)
        if self.batched:
            return self.module.apply(variables, x[None], **kwargs)[0]
        return self.module.apply(variables, x, **kwargs)


def from_flax(
    module: Any,
    variables: Mapping | None = None,
    *,
    loss: str = "cross_entropy",
    batched: bool = True,
    call_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Any, ClassifierLoss]:
    r"""``(params, loss_fn)`` of a flax classifier (nnx or linen), evaluated in inference mode.

    **nnx** (``flax.nnx.Module``; ``variables`` must be None): the module is viewed with
    ``nnx.view(module, deterministic=True, use_running_average=True)`` — Dropout off,
    BatchNorm on its running averages — and split by ``nnx.split(module, nnx.Param, ...)``.
    ``params`` is the ``nnx.Param`` state as a plain nested dict of arrays
    (``nnx.to_pure_dict``; write one back with ``nnx.replace_by_pure_dict``); every other
    variable (``BatchStat``, RNG state, …) is a constant of ``loss_fn``. The caller's module
    is not modified.

    **linen** (``flax.linen.Module`` with its ``variables``, as ``module.init`` returns):
    ``params = variables["params"]``; the other collections (``batch_stats``, …) are
    constants. ``loss_fn`` calls ``module.apply(variables, x, **call_kwargs)`` with every
    collection immutable and no random streams, so a layer in training mode raises: put
    BatchNorm and Dropout in inference mode through the module's own flag, e.g.
    ``call_kwargs={"train": False}``. A linen module is stored as a static (hashed) value.

    **Batch axis.** Flax layers are written for batches (a linen or nnx ``Conv`` reads the
    leading axis as the batch, a flatten ``h.reshape(h.shape[0], -1)`` needs one). With
    ``batched=True`` (default) ``loss_fn`` calls the module on ``x[None]`` and returns
    row 0 of its output, so ``x`` is ONE input without the batch axis, e.g. an image
    (H, W, C); pass ``batched=False`` for a module written for one unbatched input.

    Args:
      module: a ``flax.nnx.Module``, or a ``flax.linen.Module`` with ``variables``.
      variables: linen only: the variables dict, with a ``"params"`` collection.
      loss: a loss on logits, one of :data:`advlip.losses.LOGIT_LOSSES`.
      batched: whether the module expects a leading batch axis (see above).
      call_kwargs: keyword arguments of every call (hashable values), e.g.
        ``{"train": False}``.

    Returns:
      ``(params, loss_fn)``, ``loss_fn`` an :class:`advlip.models.ClassifierLoss`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> net = nnx.Sequential(
        ...     nnx.Linear(4, 8, rngs=nnx.Rngs(0)), jnp.tanh, nnx.Dropout(0.5, rngs=nnx.Rngs(1)),
        ...     nnx.Linear(8, 3, rngs=nnx.Rngs(2)))
        >>> params, loss_fn = from_flax(net)
        >>> sorted(params["layers"])
        [0, 3]
        >>> x = jnp.ones(4)
        >>> bool(loss_fn(params, x, 0) == loss_fn(params, x, 0))  # dropout is off
        True
        >>> import flax.linen as nn
        >>> from_flax(nn.Dense(3))
        Traceback (most recent call last):
        ...
        ValueError: variables is required for a flax.linen module: pass variables=module.init(key, x_batch) (a dict with a 'params' collection)
    """
    try:
        import flax.linen as linen
        from flax import nnx
    except ImportError as err:  # pragma: no cover - flax is optional
        raise ImportError("from_flax needs flax: pip install flax") from err
    loss = _check_loss(loss)
    batched = _check_bool("batched", batched)
    kwargs = _call_kwargs(call_kwargs)
    if isinstance(module, nnx.Module):
        if variables is not None:
            raise ValueError(
                "variables must be None for a flax.nnx module (it holds its own variables); "
                "allowed: variables=None, or a flax.linen module with its variables"
            )
        view = nnx.view(
            module, deterministic=True, use_running_average=True, raise_if_not_found=False
        )
        graphdef, param_state, rest_state = nnx.split(view, nnx.Param, ...)
        params = nnx.to_pure_dict(param_state)
        apply: Any = _NNXApply(graphdef, nnx.to_pure_dict(rest_state), batched, kwargs)
    elif isinstance(module, linen.Module):
        if variables is None:
            raise ValueError(
                "variables is required for a flax.linen module: pass "
                "variables=module.init(key, x_batch) (a dict with a 'params' collection)"
            )
        if not isinstance(variables, Mapping) or "params" not in variables:
            raise ValueError(
                f"variables must be a dict with a 'params' collection (what module.init "
                f"returns); got {type(variables).__name__}"
                + (
                    f" with collections {sorted(variables)}"
                    if isinstance(variables, Mapping)
                    else ""
                )
            )
        params = variables["params"]
        constants = {k: v for k, v in variables.items() if k != "params"}
        apply = _LinenApply(module, constants, batched, kwargs)
    else:
        raise ValueError(
            f"module must be a flax.nnx.Module or a flax.linen.Module; got "
            f"{type(module).__name__}. For equinox use from_equinox, for PyTorch from_torch"
        )
    _check_hashable("module", apply)
    return params, _classifier(apply, loss)


# --------------------------------------------------------------------------- PyTorch


def from_torch(
    module: Any, *, example_x: Any, loss: str = "cross_entropy"
) -> tuple[Any, ClassifierLoss]:
    r"""``(params, loss_fn)`` of a PyTorch classifier, translated to JAX.

    A thin wrapper of :func:`advlip.torch_convert.convert`, which traces ``module`` on
    ``example_x`` (ONE input in torch layout, e.g. an image (C, H, W)) and rebuilds it in
    JAX: ``params`` is a dict of arrays keyed by the torch parameter names, and
    ``loss_fn(params, x, y)`` takes one unbatched input in the same layout. The module is
    evaluated in inference mode (Dropout off, BatchNorm on its running statistics, which
    are constants). Needs PyTorch (``pip install advlip[torch]``).

    Args:
      module: a ``torch.nn.Module`` giving logits.
      example_x: one input in torch layout, to trace the module with.
      loss: a loss on logits, one of :data:`advlip.losses.LOGIT_LOSSES`.

    Returns:
      ``(params, loss_fn)``, ``loss_fn`` an :class:`advlip.models.ClassifierLoss`.

    Example:
        >>> import torch, jax.numpy as jnp
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        >>> params, loss_fn = from_torch(net, example_x=torch.randn(4))
        >>> sorted(params)
        ['0.bias', '0.weight', '2.bias', '2.weight']
        >>> loss_fn(params, jnp.ones(4), 2).shape
        ()
        >>> from_torch(lambda x: x, example_x=torch.randn(4))
        Traceback (most recent call last):
        ...
        ValueError: module must be a torch.nn.Module; got function. For equinox use from_equinox, for flax from_flax
    """
    loss = _check_loss(loss)
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            "from_torch needs PyTorch: pip install advlip[torch] (or pip install torch)"
        ) from err
    if not isinstance(module, torch.nn.Module):
        raise ValueError(
            f"module must be a torch.nn.Module; got {type(module).__name__}. For equinox use "
            "from_equinox, for flax from_flax"
        )
    from advlip import torch_convert

    params, apply = torch_convert.convert(module, example_x)
    return params, _classifier(apply, loss)
