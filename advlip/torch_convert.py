r"""Translate a PyTorch module into a pure JAX function of its parameters.

:func:`convert` traces a ``torch.nn.Module`` with ``torch.fx`` and rewrites its graph,
node by node, as JAX operations with PyTorch's semantics (NCHW activations, OIHW
kernels, the same padding and pooling rules). The result is ``(params, apply)``:
``params`` a dict of the module's trainable parameters as JAX arrays, keyed by their
PyTorch names, and ``apply(params, x)`` the logits of ONE input in PyTorch's layout. The
translation is ordinary JAX: gradients and Hessian-vector products (forward over
reverse) are compiled by XLA, with no call back into PyTorch.

The module is translated in eval mode: BatchNorm uses its running statistics (constants
of ``apply``, not parameters) and Dropout is the identity. Where the network uses ReLU,
max-pooling or other kinks, its loss is twice differentiable only away from them: the
Hessian is piecewise defined (random inputs almost surely avoid the kinks, and there
XLA's derivatives agree with PyTorch's).

Example:
    >>> import torch
    >>> from advlip import torch_convert
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> params, apply = torch_convert.convert(net, torch.randn(4))
    >>> sorted(params)
    ['0.bias', '0.weight', '2.bias', '2.weight']
    >>> apply(params, torch.randn(4).numpy()).shape
    (3,)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["convert", "TorchApply", "TorchGraph", "Step", "supported"]

_HIGHEST = lax.Precision.HIGHEST


# --------------------------------------------------------------------------- the graph


class Step(NamedTuple):
    """One operation of a translated graph.

    ``op`` names a JAX implementation with PyTorch's semantics; ``args`` and ``kwargs``
    are encoded references (to earlier values, parameters, constants) and literals;
    ``where`` says which layer of the module it came from, for error messages.

    Example:
        A ``Linear`` layer becomes one step that reads the input (node 0) and the
        layer's two parameters by name:

        >>> import torch
        >>> from advlip import torch_convert
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Softplus())
        >>> params, apply = torch_convert.convert(net, torch.zeros(2))
        >>> step = apply.graph.steps[0]
        >>> step.op, step.args, step.where
        ('linear', (('n', 0), ('p', '0.weight'), ('p', '0.bias')), "module '0' of type Linear")
    """

    op: str
    args: tuple
    kwargs: tuple
    where: str


@dataclasses.dataclass(frozen=True)
class TorchGraph:
    """The static, hashable part of a translated module: its steps, its output and the
    number of dimensions of one input. Two modules of the same architecture (same layer
    names, types and hyperparameters) give equal graphs, so they share compiled code.

    Example:
        Two networks of one architecture (different weights) give equal graphs:

        >>> import torch
        >>> from advlip import torch_convert
        >>> def make():
        ...     net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Softplus())
        ...     return torch_convert.convert(net, torch.zeros(2))[1].graph
        >>> _ = torch.manual_seed(0)
        >>> g1, g2 = make(), make()
        >>> g1 == g2, hash(g1) == hash(g2), g1.input_ndim, len(g1.steps)
        (True, True, 1, 2)
    """

    steps: tuple[Step, ...]
    output: tuple
    input_ndim: int
    source: str


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class TorchApply:
    r"""``apply(params, x)``: the logits of ONE input ``x`` of a translated PyTorch module.

    ``x`` is in PyTorch's layout without the batch dimension (say (C, H, W)); a batch
    dimension of 1 is added for the module's operations and removed from the result.
    ``graph`` (:class:`TorchGraph`) is static and hashable; ``consts`` — buffers such as
    BatchNorm running statistics, and frozen parameters — are array leaves of this pytree,
    so they are traced, not hashed. Equality and hashing are by identity; the compile
    cache of :mod:`advlip.attacks` compares the graph, so a second conversion of the same
    architecture reuses compiled programs.

    Example:
        >>> import torch
        >>> from advlip import torch_convert
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Softplus())
        >>> params, apply = torch_convert.convert(net, torch.randn(2))
        >>> tuple(step.op for step in apply.graph.steps)
        ('linear', 'softplus')
    """

    graph: TorchGraph = dataclasses.field(metadata=dict(static=True))
    consts: tuple = ()

    def __call__(self, params: Any, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim != self.graph.input_ndim:
            raise ValueError(
                f"x has shape {x.shape}; allowed: ONE input of {self.graph.input_ndim} "
                f"dimensions without the batch dimension, like the example_x the module "
                "was converted with (advlip vmaps over the batch)"
            )
        env = [x[None]]
        for step in self.graph.steps:
            fn = _OPS[step.op]
            try:
                args = [_decode(a, env, params, self.consts) for a in step.args]
                kwargs = {k: _decode(v, env, params, self.consts) for k, v in step.kwargs}
                env.append(fn(*args, **kwargs))
            except _ParamsError:
                raise
            except Exception as err:  # noqa: BLE001 - re-raised with the layer named
                raise ValueError(f"{step.where}: {type(err).__name__}: {err}") from err
        out = _decode(self.graph.output, env, params, self.consts)
        if not isinstance(out, jax.Array) or out.ndim == 0 or out.shape[0] != 1:
            raise ValueError(
                f"the module's output {getattr(out, 'shape', type(out).__name__)} is not a "
                "batch of one: the module must keep the batch dimension"
            )
        return out[0]

    def __repr__(self) -> str:
        return (
            f"TorchApply(<{len(self.graph.steps)} steps of {self.graph.source}>, "
            f"{len(self.consts)} constants)"
        )


class _ParamsError(ValueError):
    pass


def _decode(e: tuple, env: list, params: Any, consts: tuple) -> Any:
    tag = e[0]
    if tag == "n":
        return env[e[1]]
    if tag == "c":
        return e[2]
    if tag == "t":
        return tuple(_decode(a, env, params, consts) for a in e[1])
    if tag == "s":
        return slice(*(_decode(a, env, params, consts) for a in e[1:]))
    if tag == "p":
        try:
            return params[e[1]]
        except (KeyError, TypeError, IndexError):
            raise _ParamsError(
                f"params has no entry {e[1]!r}; allowed: the dict convert returned, keyed by "
                "the module's parameter names"
            ) from None
    if tag == "k":
        return consts[e[1]]
    raise AssertionError(f"unknown encoding {e!r}")  # pragma: no cover


# --------------------------------------------------------------------------- JAX ops


def _is_array(a: Any) -> bool:
    return isinstance(a, jax.Array | np.ndarray)


def _broadcast(a: Any, b: Any) -> tuple[Any, Any]:
    """PyTorch broadcasting of two operands, with the lower rank padded explicitly (JAX
    may be set to refuse implicit rank promotion)."""
    if _is_array(a) and _is_array(b) and a.ndim != b.ndim:
        if a.ndim < b.ndim:
            a = jnp.reshape(a, (1,) * (b.ndim - a.ndim) + a.shape)
        else:
            b = jnp.reshape(b, (1,) * (a.ndim - b.ndim) + b.shape)
    return a, b


def _binary(fn: Callable) -> Callable:
    def op(a, b):
        a, b = _broadcast(a, b)
        return fn(a, b)

    return op


def _channel(v: jax.Array, ndim: int) -> jax.Array:
    """A per-channel vector (C,) shaped (1, C, 1, …) for an (N, C, …) activation."""
    return jnp.reshape(v, (1, -1) + (1,) * (ndim - 2))


def _ntuple(v: Any, n: int, name: str) -> tuple[int, ...]:
    if isinstance(v, tuple | list):
        if len(v) == 1:
            return (int(v[0]),) * n
        if len(v) != n:
            raise ValueError(f"{name}={v!r} needs {n} entries")
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _add(input, other, *, alpha=1):
    a, b = _broadcast(input, other)
    return a + (b if alpha == 1 else alpha * b)


def _sub(input, other, *, alpha=1):
    a, b = _broadcast(input, other)
    return a - (b if alpha == 1 else alpha * b)


def _mul(input, other):
    a, b = _broadcast(input, other)
    return a * b


def _div(input, other, *, rounding_mode=None):
    if rounding_mode is not None:
        raise ValueError(f"rounding_mode={rounding_mode!r} is not supported; allowed: None")
    a, b = _broadcast(input, other)
    return a / b


def _pow(input, exponent):
    a, b = _broadcast(input, exponent)
    return a**b


def _matmul(input, other):
    return jnp.matmul(input, other, precision=_HIGHEST)


def _relu(input, inplace=False):
    # where, not maximum: the derivative at 0 is 0, as in PyTorch
    return jnp.where(input > 0, input, jnp.zeros_like(input))


def _hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    inside = (input > min_val) & (input < max_val)
    return jnp.where(inside, input, jnp.clip(input, min_val, max_val))


def _relu6(input, inplace=False):
    return _hardtanh(input, 0.0, 6.0)


def _leaky_relu(input, negative_slope=0.01, inplace=False):
    return jnp.where(input > 0, input, input * negative_slope)


def _elu(input, alpha=1.0, inplace=False):
    pos = input > 0
    return jnp.where(pos, input, alpha * jnp.expm1(jnp.where(pos, 0.0, input)))


def _gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r} is not allowed; allowed: 'none', 'tanh'")
    return jax.nn.gelu(input, approximate=approximate == "tanh")


def _silu(input, inplace=False):
    return input * jax.nn.sigmoid(input)


def _softplus(input, beta=1.0, threshold=20.0):
    # PyTorch's rule: x where beta*x > threshold, else log1p(exp(beta*x))/beta (the
    # untaken branch gets a safe argument, so its derivative is finite)
    z = input * beta
    big = z > threshold
    safe = jnp.where(big, jnp.zeros_like(z), z)
    return jnp.where(big, input, jnp.log1p(jnp.exp(safe)) / beta)


def _softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None or dtype is not None:
        raise ValueError(
            f"softmax needs an explicit dim and no dtype; got dim={dim}, dtype={dtype}"
        )
    return jax.nn.softmax(input, axis=dim)


def _log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None or dtype is not None:
        raise ValueError(
            f"log_softmax needs an explicit dim and no dtype; got dim={dim}, dtype={dtype}"
        )
    return jax.nn.log_softmax(input, axis=dim)


def _linear(input, weight, bias=None):
    out = lax.dot_general(input, weight, (((input.ndim - 1,), (1,)), ((), ())), precision=_HIGHEST)
    if bias is not None:
        out = out + jnp.reshape(bias, (1,) * (out.ndim - 1) + (-1,))
    return out


_CONV_DIMS = {
    1: ("NCH", "OIH", "NCH"),
    2: ("NCHW", "OIHW", "NCHW"),
    3: ("NCDHW", "OIDHW", "NCDHW"),
}
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _conv(
    input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    n = weight.ndim - 2
    if n not in _CONV_DIMS:
        raise ValueError(f"a {n}-d convolution is not supported; allowed: 1-, 2- or 3-d")
    stride = _ntuple(stride, n, "stride")
    dilation = _ntuple(dilation, n, "dilation")
    kernel = weight.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * n
        elif padding == "same":
            # PyTorch: total d*(k-1), the odd one on the right (as XLA's SAME)
            totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
            pads = [(t // 2, t - t // 2) for t in totals]
        else:
            raise ValueError(f"padding={padding!r} is not allowed; allowed: 'same', 'valid'")
    else:
        pads = [(p, p) for p in _ntuple(padding, n, "padding")]
    if padding_mode != "zeros":
        if padding_mode not in _PAD_MODES:
            raise ValueError(
                f"padding_mode={padding_mode!r} is not supported; allowed: 'zeros', "
                + ", ".join(repr(m) for m in _PAD_MODES)
            )
        input = jnp.pad(input, [(0, 0), (0, 0), *pads], mode=_PAD_MODES[padding_mode])
        pads = [(0, 0)] * n
    out = lax.conv_general_dilated(
        input,
        weight,
        window_strides=stride,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=_CONV_DIMS[n],
        feature_group_count=groups,
        precision=_HIGHEST,
    )
    if bias is not None:
        out = out + _channel(bias, out.ndim)
    return out


def _batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    if training or running_mean is None or running_var is None:
        raise ValueError(
            "batch norm with batch statistics is not supported (the loss of one example "
            "would depend on its batch); allowed: running statistics (eval mode, "
            "track_running_stats=True)"
        )
    nd = input.ndim
    out = (input - _channel(running_mean, nd)) / jnp.sqrt(_channel(running_var, nd) + eps)
    if weight is not None:
        out = out * _channel(weight, nd)
    if bias is not None:
        out = out + _channel(bias, nd)
    return out


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        shape = (normalized_shape,)
    else:
        shape = tuple(normalized_shape)
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    mean = jnp.mean(input, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(input - mean), axis=axes, keepdims=True)
    out = (input - mean) / jnp.sqrt(var + eps)
    lead = (1,) * (input.ndim - len(shape))
    if weight is not None:
        out = out * jnp.reshape(weight, lead + shape)
    if bias is not None:
        out = out + jnp.reshape(bias, lead + shape)
    return out


def _group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    g = jnp.reshape(input, (input.shape[0], num_groups, -1))
    mean = jnp.mean(g, axis=2, keepdims=True)
    var = jnp.mean(jnp.square(g - mean), axis=2, keepdims=True)
    out = jnp.reshape((g - mean) / jnp.sqrt(var + eps), input.shape)
    if weight is not None:
        out = out * _channel(weight, input.ndim)
    if bias is not None:
        out = out + _channel(bias, input.ndim)
    return out


def _pool_geometry(input, n, kernel_size, stride, padding, dilation, ceil_mode):
    """Window, strides, dilation and (lo, hi) padding of a PyTorch pooling layer.

    With ``ceil_mode`` the output has ``ceil((L + 2p - d(k-1) - 1)/s) + 1`` entries
    (one fewer if the last window would start in the right padding), and the right
    side is padded as far as the last window reaches."""
    if input.ndim != n + 2:
        raise ValueError(f"a {n}-d pooling needs an (N, C, …) input of {n + 2} dimensions")
    k = _ntuple(kernel_size, n, "kernel_size")
    s = k if stride is None or stride == () or stride == [] else _ntuple(stride, n, "stride")
    p = _ntuple(padding, n, "padding")
    d = _ntuple(dilation, n, "dilation")
    pads = []
    for L, ki, si, pi, di in zip(input.shape[2:], k, s, p, d, strict=True):
        span = di * (ki - 1) + 1
        hi = pi
        if ceil_mode:
            out = -(-(L + 2 * pi - span) // si) + 1
            if (out - 1) * si >= L + pi:
                out -= 1
            hi = max(pi, (out - 1) * si + span - L - pi)
        pads.append((pi, hi))
    return k, s, d, pads


def _max_pool(
    n, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    if return_indices:
        raise ValueError("return_indices=True is not supported; allowed: False")
    k, s, d, pads = _pool_geometry(input, n, kernel_size, stride, padding, dilation, ceil_mode)
    # a concrete (NumPy) initial value lets JAX use its differentiable max/sum windows
    init = np.array(-np.inf, dtype=input.dtype)
    return lax.reduce_window(
        input,
        init,
        lax.max,
        (1, 1, *k),
        (1, 1, *s),
        ((0, 0), (0, 0), *pads),
        window_dilation=(1, 1, *d),
    )


def _avg_pool(
    n,
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    k, s, _, pads = _pool_geometry(input, n, kernel_size, stride, padding, 1, ceil_mode)
    zero = np.array(0, dtype=input.dtype)
    total = lax.reduce_window(input, zero, lax.add, (1, 1, *k), (1, 1, *s), ((0, 0), (0, 0), *pads))
    if divisor_override:
        return total / divisor_override
    spatial = input.shape[2:]
    if count_include_pad:
        # PyTorch counts the zero padding, not what ceil_mode adds beyond it
        ones = jnp.ones(tuple(L + 2 * lo for L, (lo, _) in zip(spatial, pads, strict=True)))
        cpads = [(0, hi - lo) for lo, hi in pads]
    else:
        ones = jnp.ones(spatial)
        cpads = pads
    counts = lax.reduce_window(ones, 0.0, lax.add, k, s, cpads)
    return total / jnp.reshape(counts, (1, 1, *counts.shape)).astype(input.dtype)


def _avg_pool1d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
):
    # F.avg_pool1d has no divisor_override; the 2-d and 3-d ones do
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def _adaptive(n, reduce, input, output_size):
    if input.ndim != n + 2:
        raise ValueError(f"a {n}-d adaptive pooling needs an (N, C, …) input of {n + 2} dims")
    sizes = output_size if isinstance(output_size, tuple | list) else (output_size,) * n
    if len(sizes) == 1:
        sizes = tuple(sizes) * n
    out = input
    for i, o in enumerate(sizes):
        axis = 2 + i
        L = out.shape[axis]
        o = L if o is None else int(o)
        if L % o == 0:  # equal bins: one reshape
            shape = out.shape[:axis] + (o, L // o) + out.shape[axis + 1 :]
            out = reduce(jnp.reshape(out, shape), axis=axis + 1)
        else:  # PyTorch's bins [floor(j L / o), ceil((j + 1) L / o))
            parts = [
                reduce(
                    lax.slice_in_dim(out, (j * L) // o, -(-((j + 1) * L) // o), axis=axis),
                    axis=axis,
                    keepdims=True,
                )
                for j in range(o)
            ]
            out = jnp.concatenate(parts, axis=axis)
    return out


def _adaptive_avg(n, input, output_size):
    return _adaptive(n, jnp.mean, input, output_size)


def _adaptive_max(n, input, output_size, return_indices=False):
    if return_indices:
        raise ValueError("return_indices=True is not supported; allowed: False")
    return _adaptive(n, jnp.max, input, output_size)


def _dropout(input, p=0.5, training=True, inplace=False):
    if training and p > 0:
        raise ValueError(
            "dropout is called with training=True, which is random; allowed: "
            "training=False (write F.dropout(x, p, self.training), as nn.Dropout does)"
        )
    return input


def _flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return jnp.reshape(input, (1,))
    s, e = start_dim % input.ndim, end_dim % input.ndim
    shape = input.shape[:s] + (math.prod(input.shape[s : e + 1]),) + input.shape[e + 1 :]
    return jnp.reshape(input, shape)


def _unflatten(input, dim, sizes):
    dim = dim % input.ndim
    return jnp.reshape(input, input.shape[:dim] + tuple(sizes) + input.shape[dim + 1 :])


def _shape_args(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        return tuple(shape[0])
    return tuple(shape)


def _view(input, *shape):
    return jnp.reshape(input, _shape_args(shape))


def _reshape(input, shape):
    return jnp.reshape(input, tuple(shape))


def _view_as(input, other):
    return jnp.reshape(input, other.shape)


def _permute(input, *dims):
    return jnp.transpose(input, _shape_args(dims))


def _transpose(input, dim0, dim1):
    return jnp.swapaxes(input, dim0, dim1)


def _squeeze(input, dim=None):
    if dim is None:
        return jnp.squeeze(input)
    dims = tuple(dim) if isinstance(dim, tuple | list) else (dim,)
    dims = tuple(d % input.ndim for d in dims if input.shape[d] == 1)  # others: no-op
    return jnp.squeeze(input, dims) if dims else input


def _unsqueeze(input, dim):
    return jnp.expand_dims(input, dim % (input.ndim + 1))


def _axes(dim):
    return tuple(dim) if isinstance(dim, tuple | list) else dim


def _mean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        raise ValueError(f"dtype={dtype} is not supported; allowed: None")
    return jnp.mean(input, axis=_axes(dim), keepdims=keepdim)


def _sum(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        raise ValueError(f"dtype={dtype} is not supported; allowed: None")
    return jnp.sum(input, axis=_axes(dim), keepdims=keepdim)


def _cat(tensors, dim=0):
    arrays = list(tensors)
    return jnp.concatenate(arrays, axis=dim)


def _size(input, dim=None):
    return tuple(input.shape) if dim is None else input.shape[dim]


def _getattr(obj, name):
    if name == "shape":
        return tuple(obj.shape)
    if name == "ndim":
        return obj.ndim
    raise ValueError(f"tensor attribute {name!r} is not supported; allowed: 'shape', 'ndim'")


def _identity(input):
    return input


def _value(value):
    return value


#: Every operation a translated graph can use, by name: JAX with PyTorch's semantics
#: and PyTorch's argument names (a call is bound against these signatures).
_OPS: dict[str, Callable] = {
    "value": _value,
    "identity": _identity,
    "add_op": _binary(operator.add),
    "sub_op": _binary(operator.sub),
    "mul_op": _binary(operator.mul),
    "truediv_op": _binary(operator.truediv),
    "floordiv_op": _binary(operator.floordiv),
    "pow_op": _binary(operator.pow),
    "neg": lambda input: -input,
    "add": _add,
    "sub": _sub,
    "mul": _mul,
    "div": _div,
    "pow": _pow,
    "matmul": _matmul,
    "getitem": operator.getitem,
    "getattr": _getattr,
    "size": _size,
    "dim": lambda input: input.ndim,
    "exp": lambda input: jnp.exp(input),
    "log": lambda input: jnp.log(input),
    "abs": lambda input: jnp.abs(input),
    "sqrt": lambda input: jnp.sqrt(input),
    "relu": _relu,
    "relu6": _relu6,
    "hardtanh": _hardtanh,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "gelu": _gelu,
    "silu": _silu,
    "softplus": _softplus,
    "tanh": lambda input: jnp.tanh(input),
    "sigmoid": lambda input: jax.nn.sigmoid(input),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "linear": _linear,
    "conv": _conv,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "dropout": _dropout,
    "flatten": _flatten,
    "unflatten": _unflatten,
    "view": _view,
    "reshape": _reshape,
    "view_as": _view_as,
    "permute": _permute,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "unsqueeze": _unsqueeze,
    "mean": _mean,
    "sum": _sum,
    "cat": _cat,
}
for _n in (1, 2, 3):
    _OPS[f"max_pool{_n}d"] = functools.partial(_max_pool, _n)
    _OPS[f"adaptive_avg_pool{_n}d"] = functools.partial(_adaptive_avg, _n)
    _OPS[f"adaptive_max_pool{_n}d"] = functools.partial(_adaptive_max, _n)
_OPS["avg_pool1d"] = _avg_pool1d
_OPS["avg_pool2d"] = functools.partial(_avg_pool, 2)
_OPS["avg_pool3d"] = functools.partial(_avg_pool, 3)


# --------------------------------------------------------------------------- torch tables


def _import_torch():
    try:
        return importlib.import_module("torch")
    except ImportError as err:  # pragma: no cover - torch is an optional dependency
        raise ImportError(
            "advlip.torch_convert needs PyTorch: pip install 'advlip[torch]'"
        ) from err


#: PyTorch functions (dotted names) and the operation each becomes.
_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("operator.add", "add_op"),
    ("operator.iadd", "add_op"),
    ("operator.sub", "sub_op"),
    ("operator.isub", "sub_op"),
    ("operator.mul", "mul_op"),
    ("operator.imul", "mul_op"),
    ("operator.truediv", "truediv_op"),
    ("operator.itruediv", "truediv_op"),
    ("operator.floordiv", "floordiv_op"),
    ("operator.pow", "pow_op"),
    ("operator.neg", "neg"),
    ("operator.matmul", "matmul"),
    ("operator.getitem", "getitem"),
    ("builtins.getattr", "getattr"),
    ("torch.add", "add"),
    ("torch.sub", "sub"),
    ("torch.mul", "mul"),
    ("torch.div", "div"),
    ("torch.pow", "pow"),
    ("torch.neg", "neg"),
    ("torch.matmul", "matmul"),
    ("torch.exp", "exp"),
    ("torch.log", "log"),
    ("torch.abs", "abs"),
    ("torch.sqrt", "sqrt"),
    ("torch.relu", "relu"),
    ("torch.tanh", "tanh"),
    ("torch.sigmoid", "sigmoid"),
    ("torch.softmax", "softmax"),
    ("torch.log_softmax", "log_softmax"),
    ("torch.flatten", "flatten"),
    ("torch.reshape", "reshape"),
    ("torch.permute", "permute"),
    ("torch.transpose", "transpose"),
    ("torch.squeeze", "squeeze"),
    ("torch.unsqueeze", "unsqueeze"),
    ("torch.mean", "mean"),
    ("torch.sum", "sum"),
    ("torch.cat", "cat"),
    ("torch.concat", "cat"),
    ("torch.nn.functional.relu", "relu"),
    ("torch.nn.functional.relu6", "relu6"),
    ("torch.nn.functional.hardtanh", "hardtanh"),
    ("torch.nn.functional.leaky_relu", "leaky_relu"),
    ("torch.nn.functional.elu", "elu"),
    ("torch.nn.functional.gelu", "gelu"),
    ("torch.nn.functional.silu", "silu"),
    ("torch.nn.functional.softplus", "softplus"),
    ("torch.nn.functional.tanh", "tanh"),
    ("torch.nn.functional.sigmoid", "sigmoid"),
    ("torch.nn.functional.softmax", "softmax"),
    ("torch.nn.functional.log_softmax", "log_softmax"),
    ("torch.nn.functional.linear", "linear"),
    ("torch.nn.functional.conv1d", "conv"),
    ("torch.nn.functional.conv2d", "conv"),
    ("torch.nn.functional.conv3d", "conv"),
    ("torch.nn.functional.batch_norm", "batch_norm"),
    ("torch.nn.functional.layer_norm", "layer_norm"),
    ("torch.nn.functional.group_norm", "group_norm"),
    ("torch.nn.functional.max_pool1d", "max_pool1d"),
    ("torch.nn.functional.max_pool2d", "max_pool2d"),
    ("torch.nn.functional.max_pool3d", "max_pool3d"),
    ("torch.nn.functional.avg_pool1d", "avg_pool1d"),
    ("torch.nn.functional.avg_pool2d", "avg_pool2d"),
    ("torch.nn.functional.avg_pool3d", "avg_pool3d"),
    ("torch.nn.functional.adaptive_avg_pool1d", "adaptive_avg_pool1d"),
    ("torch.nn.functional.adaptive_avg_pool2d", "adaptive_avg_pool2d"),
    ("torch.nn.functional.adaptive_avg_pool3d", "adaptive_avg_pool3d"),
    ("torch.nn.functional.adaptive_max_pool1d", "adaptive_max_pool1d"),
    ("torch.nn.functional.adaptive_max_pool2d", "adaptive_max_pool2d"),
    ("torch.nn.functional.dropout", "dropout"),
    ("torch.nn.functional.dropout1d", "dropout"),
    ("torch.nn.functional.dropout2d", "dropout"),
    ("torch.nn.functional.dropout3d", "dropout"),
    ("torch.nn.functional.alpha_dropout", "dropout"),
    ("torch.nn.functional.feature_alpha_dropout", "dropout"),
)

#: Tensor methods and the operation each becomes.
_METHODS: dict[str, str] = {
    "add": "add",
    "sub": "sub",
    "mul": "mul",
    "div": "div",
    "pow": "pow",
    "neg": "neg",
    "matmul": "matmul",
    "exp": "exp",
    "log": "log",
    "abs": "abs",
    "sqrt": "sqrt",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "view": "view",
    "reshape": "view",
    "view_as": "view_as",
    "reshape_as": "view_as",
    "flatten": "flatten",
    "permute": "permute",
    "transpose": "transpose",
    "squeeze": "squeeze",
    "unsqueeze": "unsqueeze",
    "contiguous": "identity",
    "mean": "mean",
    "sum": "sum",
    "size": "size",
    "dim": "dim",
}


def _resolve(dotted: str) -> Any:
    mod, _, name = dotted.rpartition(".")
    obj = importlib.import_module(mod)
    return getattr(obj, name, None)


@functools.cache
def _function_table() -> dict[Any, tuple[str, str]]:
    table = {}
    for dotted, op in _FUNCTIONS:
        fn = _resolve(dotted)
        if fn is not None:
            table.setdefault(fn, (op, dotted))
    return table


def _one_input(node_args: tuple, kwargs: dict, what: str) -> Any:
    if len(node_args) != 1 or kwargs:
        raise ValueError(f"{what} is called with {len(node_args)} inputs; allowed: one")
    return node_args[0]


def _module_builders(torch) -> dict[type, Callable]:
    """Per supported layer type: (module, input) -> (op, args, kwargs) in functional form."""
    nn = torch.nn

    def conv(m, x):
        kw = dict(
            stride=m.stride,
            padding=m.padding,
            dilation=m.dilation,
            groups=m.groups,
            padding_mode=m.padding_mode,
        )
        return "conv", (x, m.weight, m.bias), kw

    def batch_norm(m, x):
        if not m.track_running_stats or m.running_mean is None or m.running_var is None:
            raise ValueError(
                "has no running statistics (track_running_stats=False), so it normalises "
                "with batch statistics even in eval mode: the loss of one example would "
                "depend on its batch; allowed: BatchNorm with track_running_stats=True"
            )
        return "batch_norm", (x, m.running_mean, m.running_var, m.weight, m.bias), {"eps": m.eps}

    def softmax(op):
        def build(m, x):
            if m.dim is None:
                raise ValueError("has dim=None (an implicit dimension); allowed: an explicit dim")
            return op, (x,), {"dim": m.dim}

        return build

    def max_pool(n):
        def build(m, x):
            kw = dict(
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                ceil_mode=m.ceil_mode,
                return_indices=m.return_indices,
            )
            return f"max_pool{n}d", (x, m.kernel_size), kw

        return build

    def avg_pool(n):
        def build(m, x):
            kw = dict(
                stride=m.stride,
                padding=m.padding,
                ceil_mode=m.ceil_mode,
                count_include_pad=m.count_include_pad,
            )
            if n > 1:
                kw["divisor_override"] = m.divisor_override
            return f"avg_pool{n}d", (x, m.kernel_size), kw

        return build

    identity = lambda m, x: ("identity", (x,), {})  # noqa: E731
    table = {
        nn.Linear: lambda m, x: ("linear", (x, m.weight, m.bias), {}),
        nn.Conv1d: conv,
        nn.Conv2d: conv,
        nn.Conv3d: conv,
        nn.BatchNorm1d: batch_norm,
        nn.BatchNorm2d: batch_norm,
        nn.BatchNorm3d: batch_norm,
        nn.LayerNorm: lambda m, x: (
            "layer_norm",
            (x, tuple(m.normalized_shape), m.weight, m.bias),
            {"eps": m.eps},
        ),
        nn.GroupNorm: lambda m, x: (
            "group_norm",
            (x, m.num_groups, m.weight, m.bias),
            {"eps": m.eps},
        ),
        nn.ReLU: lambda m, x: ("relu", (x,), {}),
        nn.ReLU6: lambda m, x: ("hardtanh", (x, 0.0, 6.0), {}),
        nn.Hardtanh: lambda m, x: ("hardtanh", (x, m.min_val, m.max_val), {}),
        nn.LeakyReLU: lambda m, x: ("leaky_relu", (x, m.negative_slope), {}),
        nn.ELU: lambda m, x: ("elu", (x, m.alpha), {}),
        nn.GELU: lambda m, x: ("gelu", (x,), {"approximate": m.approximate}),
        nn.SiLU: lambda m, x: ("silu", (x,), {}),
        nn.Tanh: lambda m, x: ("tanh", (x,), {}),
        nn.Sigmoid: lambda m, x: ("sigmoid", (x,), {}),
        nn.Softplus: lambda m, x: ("softplus", (x, m.beta, m.threshold), {}),
        nn.Softmax: softmax("softmax"),
        nn.LogSoftmax: softmax("log_softmax"),
        nn.MaxPool1d: max_pool(1),
        nn.MaxPool2d: max_pool(2),
        nn.MaxPool3d: max_pool(3),
        nn.AvgPool1d: avg_pool(1),
        nn.AvgPool2d: avg_pool(2),
        nn.AvgPool3d: avg_pool(3),
        nn.AdaptiveAvgPool1d: lambda m, x: ("adaptive_avg_pool1d", (x, m.output_size), {}),
        nn.AdaptiveAvgPool2d: lambda m, x: ("adaptive_avg_pool2d", (x, m.output_size), {}),
        nn.AdaptiveAvgPool3d: lambda m, x: ("adaptive_avg_pool3d", (x, m.output_size), {}),
        nn.AdaptiveMaxPool1d: lambda m, x: (
            "adaptive_max_pool1d",
            (x, m.output_size, m.return_indices),
            {},
        ),
        nn.AdaptiveMaxPool2d: lambda m, x: (
            "adaptive_max_pool2d",
            (x, m.output_size, m.return_indices),
            {},
        ),
        nn.Flatten: lambda m, x: ("flatten", (x, m.start_dim, m.end_dim), {}),
        nn.Unflatten: lambda m, x: ("unflatten", (x, m.dim, tuple(m.unflattened_size)), {}),
        nn.Identity: identity,
        # eval mode: every dropout is the identity
        nn.Dropout: identity,
        nn.Dropout1d: identity,
        nn.Dropout2d: identity,
        nn.Dropout3d: identity,
        nn.AlphaDropout: identity,
        nn.FeatureAlphaDropout: identity,
    }
    return table


def supported() -> dict[str, tuple[str, ...]]:
    """The layers, functions and tensor methods :func:`convert` translates, by name.

    Example:
        >>> from advlip import torch_convert
        >>> "Conv2d" in torch_convert.supported()["modules"]
        True
    """
    torch = _import_torch()
    return {
        "modules": tuple(sorted(t.__name__ for t in _module_builders(torch))),
        "functions": tuple(sorted({name for _, name in _function_table().values()})),
        "methods": tuple(sorted(_METHODS)),
    }


# --------------------------------------------------------------------------- translation


def _describe_fn(fn: Any) -> str:
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__name__", None) or repr(fn)
    return f"{mod}.{name}" if mod else name


class _Translator:
    """Turns an fx graph into :class:`Step` s, encoding every argument."""

    def __init__(self, torch, gm, module):
        self.torch = torch
        self.gm = gm
        self.source = type(module).__name__
        self.trainable = {id(p): name for name, p in module.named_parameters() if p.requires_grad}
        self.consts: list = []
        self.const_ids: dict[int, int] = {}
        self.index: dict[Any, int] = {}

    def tensor(self, t: Any, where: str) -> tuple:
        if id(t) in self.trainable:
            return ("p", self.trainable[id(t)])
        if id(t) not in self.const_ids:
            if t.is_complex():
                raise ValueError(f"{where}: complex tensors are not supported")
            self.const_ids[id(t)] = len(self.consts)
            self.consts.append(jnp.asarray(t.detach().cpu().numpy()))
        return ("k", self.const_ids[id(t)])

    def encode(self, a: Any, where: str) -> tuple:
        torch = self.torch
        if isinstance(a, torch.fx.Node):
            return ("n", self.index[a])
        if isinstance(a, torch.Tensor):
            return self.tensor(a, where)
        if isinstance(a, tuple | list):  # torch.Size included
            return ("t", tuple(self.encode(e, where) for e in a))
        if isinstance(a, slice):
            return ("s", *(self.encode(e, where) for e in (a.start, a.stop, a.step)))
        if a is None or a is Ellipsis or isinstance(a, bool | int | float | str):
            return ("c", type(a).__name__, a)
        raise ValueError(
            f"{where}: an argument of type {type(a).__name__} ({a!r}) is not supported; "
            "allowed: tensors, numbers, strings, None, tuples and slices"
        )

    def where(self, node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        if stack:
            qualname, typ = list(stack.values())[-1]
            typ = getattr(typ, "__name__", str(typ))
            return f"in module {qualname!r} of type {typ}"
        return f"in the forward of {self.source}"

    def step(self, node) -> Step:
        torch = self.torch
        args, kwargs = node.args, dict(node.kwargs)
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            where = f"module {node.target!r} of type {type(mod).__name__}"
            builders = _module_builders(torch)
            build = builders.get(type(mod))
            if build is None:
                names = ", ".join(sorted(t.__name__ for t in builders))
                raise ValueError(f"{where} is not supported; supported: {names}")
            x = _one_input(args, kwargs, where)
            try:
                op, args, kwargs = build(mod, x)
            except ValueError as err:
                raise ValueError(f"{where} {err}") from None
        elif node.op == "call_function":
            try:
                op, name = _function_table()[node.target]
            except (KeyError, TypeError):
                names = ", ".join(sorted({n for _, n in _function_table().values()}))
                raise ValueError(
                    f"function {_describe_fn(node.target)} (node {node.name!r}, "
                    f"{self.where(node)}) is not supported; supported functions: {names}"
                ) from None
            where = f"function {name} (node {node.name!r}, {self.where(node)})"
        elif node.op == "call_method":
            where = f"method Tensor.{node.target} (node {node.name!r}, {self.where(node)})"
            if node.target not in _METHODS:
                names = ", ".join(sorted(_METHODS))
                raise ValueError(f"{where} is not supported; supported methods: {names}")
            op = _METHODS[node.target]
        elif node.op == "get_attr":
            where = f"attribute {node.target!r}"
            obj = self.gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            if not isinstance(obj, torch.Tensor):
                raise ValueError(f"{where} of type {type(obj).__name__} is not supported")
            op, args, kwargs = "value", (obj,), {}
        else:  # pragma: no cover - fx has no other node kinds in a traced graph
            raise ValueError(f"fx node {node.name!r} of kind {node.op!r} is not supported")
        if op == "getattr" and (len(args) != 2 or args[1] not in ("shape", "ndim")):
            attr = args[1] if len(args) == 2 else args[1:]
            raise ValueError(
                f"{where}: tensor attribute {attr!r} is not supported; allowed: 'shape', 'ndim'"
            )
        fn = _OPS[op]
        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as err:
            raise ValueError(
                f"{where} is called with arguments the converter does not support: {err}"
            ) from None
        enc_args = tuple(self.encode(a, where) for a in args)
        enc_kwargs = tuple((k, self.encode(v, where)) for k, v in sorted(kwargs.items()))
        return Step(op, enc_args, enc_kwargs, where)

    def run(self, input_ndim: int) -> TorchApply:
        steps = []
        placeholders = 0
        output = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if placeholders == 0:
                    self.index[node] = 0
                elif node.args:  # an extra forward argument with a default: a literal
                    self.index[node] = len(steps) + 1
                    where = f"argument {node.target!r} of forward"
                    steps.append(Step("value", (self.encode(node.args[0], where),), (), where))
                else:
                    raise ValueError(
                        f"forward takes a second input {node.target!r}; allowed: one input "
                        "(further arguments need defaults)"
                    )
                placeholders += 1
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, self.torch.fx.Node):
                    raise ValueError(
                        f"the module returns {type(out).__name__}; allowed: one tensor "
                        "of logits (wrap the module to select it)"
                    )
                output = ("n", self.index[out])
            else:
                steps.append(self.step(node))
                self.index[node] = len(steps)
        if placeholders == 0:
            raise ValueError("the module's forward takes no input; allowed: one input")
        graph = TorchGraph(tuple(steps), output, input_ndim, self.source)
        return TorchApply(graph, tuple(self.consts))


# --------------------------------------------------------------------------- convert


def _check_example(torch, example_x: Any) -> np.ndarray:
    if isinstance(example_x, torch.Tensor):
        if not example_x.is_floating_point():
            raise ValueError(
                f"example_x has dtype {example_x.dtype}; allowed: a floating tensor or array "
                "(one input without the batch dimension)"
            )
        arr = example_x.detach().cpu().numpy()
    elif isinstance(example_x, np.ndarray | jax.Array):
        arr = np.asarray(example_x)
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(
                f"example_x has dtype {arr.dtype}; allowed: a floating tensor or array "
                "(one input without the batch dimension)"
            )
    else:
        raise ValueError(
            f"example_x is a {type(example_x).__name__}; allowed: a floating torch tensor, "
            "NumPy or JAX array (one input without the batch dimension)"
        )
    if arr.ndim == 0:
        raise ValueError("example_x is a scalar; allowed: one input of shape (d,), (C, H, W), …")
    if not np.all(np.isfinite(arr)):
        raise ValueError("example_x has non-finite entries; allowed: finite values")
    return arr


def _module_dtype(torch, module) -> Any:
    dtypes = {t.dtype for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()}
    bad = dtypes - {torch.float32, torch.float64}
    if bad:
        raise ValueError(
            f"module has tensors of dtype {sorted(map(str, bad))}; allowed: float32, float64 "
            "(module.float() or module.double())"
        )
    if torch.float64 in dtypes and not jax.config.jax_enable_x64:
        raise ValueError(
            "module is float64 but JAX's float64 mode is off, so its parameters would be "
            "rounded to float32; allowed: jax.config.update('jax_enable_x64', True), or "
            "module.float() to convert in float32"
        )
    if not dtypes:
        return None
    return torch.float64 if torch.float64 in dtypes else torch.float32


def convert(module: Any, example_x: Any) -> tuple[dict[str, jax.Array], TorchApply]:
    r"""Translate a PyTorch module into ``(params, apply)``: JAX, with PyTorch's semantics.

    ``module`` is traced with ``torch.fx`` in **eval mode** — BatchNorm normalises with
    its running statistics and Dropout is the identity — and every node becomes a JAX
    operation; the module's own ``training`` flags are restored afterwards. ``params`` is
    a dict of the trainable parameters (``requires_grad``), keyed by their names in
    ``module.named_parameters()`` and in the module's dtype (float64 stays float64: turn on
    ``jax_enable_x64`` first); buffers (BatchNorm statistics) and frozen parameters are
    constants of ``apply``. ``apply(params, x)`` gives the logits (K,) of ONE input ``x``
    in PyTorch's layout without the batch dimension, e.g. (C, H, W) — a
    :class:`TorchApply`, hashable, whose constants are traced array leaves.

    ``example_x`` is one input (a floating torch tensor, NumPy or JAX array, cast to the
    module's dtype). The translation is checked on it: ``module(example_x[None])`` in
    PyTorch and ``apply(params, example_x)`` must agree to within the rounding of the
    dtype, :math:`2\gamma_k S_j` per logit j: k the operations of the JAX graph
    (:func:`advlip.attacks.count_ops`) and
    :math:`S_j = |z_j| + \sum_a |\partial z_j/\partial a|\,|a|` over every entry a of
    the parameters, constants and input — the first-order effect of perturbing each by
    a relative :math:`\gamma_k`, which is how backward-stable layers' roundings act (one
    such bound for each side). A larger difference is a converter bug or a PyTorch
    semantic it does not reproduce (say in-place updates of aliased tensors) and raises.

    Supported layers: Linear; Conv1d/2d/3d (stride, padding ints or "same"/"valid",
    dilation, groups, bias, every padding_mode); BatchNorm1d/2d/3d with running
    statistics; LayerNorm; GroupNorm; ReLU, ReLU6, Hardtanh, LeakyReLU, ELU, GELU (both
    approximations), SiLU, Tanh, Sigmoid, Softplus, Softmax, LogSoftmax; MaxPool and
    AvgPool 1d/2d/3d (ceil_mode included); AdaptiveAvgPool 1d/2d/3d, AdaptiveMaxPool
    1d/2d; Flatten, Unflatten, Identity, the Dropouts; containers and custom modules
    whose forward uses these and the functions and tensor methods of :func:`supported`
    (arithmetic, ``torch.flatten``, ``view``/``reshape``, ``torch.cat``, ``mean``,
    ``F.relu``, ``F.gelu``, ``F.adaptive_avg_pool2d``, …). Residual blocks
    (``out = relu(bn2(conv2(...)) + identity)``) translate as written. Anything else
    raises ``ValueError`` naming the layer and its type. ReLU, max-pooling and the other
    kinks make the Hessian only piecewise defined: it is the Hessian of the active piece.

    Raises ``ValueError`` naming ``module`` or ``example_x`` for a non-module, a
    non-floating or non-finite input, a forward torch.fx cannot trace (data-dependent
    control flow), an unsupported layer, or a failed check.

    Example:
        >>> import torch
        >>> from advlip import torch_convert
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(
        ...     torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
        ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 4))
        >>> params, apply = torch_convert.convert(net, torch.randn(1, 5, 5))
        >>> sorted(params)[:2], net.training
        (['0.bias', '0.weight'], True)
        >>> apply(params, torch.randn(1, 5, 5).numpy()).shape
        (4,)
    """
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module is a {type(module).__name__}; allowed: a torch.nn.Module")
    x_np = _check_example(torch, example_x)
    dtype = _module_dtype(torch, module)
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        try:
            gm = torch.fx.symbolic_trace(module)
        except Exception as err:  # noqa: BLE001 - re-raised with what to do
            raise ValueError(
                f"module of type {type(module).__name__} cannot be traced by torch.fx "
                f"({type(err).__name__}: {err}); allowed: a forward without Python control "
                "flow on tensor values"
            ) from err
        apply = _Translator(torch, gm, module).run(x_np.ndim)
        params = {
            name: jnp.asarray(p.detach().cpu().numpy())
            for name, p in module.named_parameters()
            if p.requires_grad
        }
        if dtype is not None:
            x_np = x_np.astype(np.float64 if dtype == torch.float64 else np.float32)
        _check_translation(torch, module, params, apply, x_np)
    finally:
        for m, training in modes:
            m.training = training
    return params, apply


def _scaled(graph, floating, params, consts, fc, x):
    r"""The logits z and :math:`S_j = |z_j| + \sum_a |\partial z_j/\partial a|\,|a|` over
    the parameters, the floating constants ``fc`` (at positions ``floating``) and the input."""

    def logits(p, fc, x):
        cs = list(consts)
        for i, c in zip(floating, fc, strict=True):
            cs[i] = c
        return TorchApply(graph, tuple(cs))(p, x)

    z, vjp = jax.vjp(logits, params, fc, x)
    absolute = jax.tree.map(jnp.abs, (params, fc, x))

    def row(e):
        g = vjp(jnp.reshape(e, z.shape))
        terms = jax.tree.map(lambda gi, ai: jnp.sum(jnp.abs(gi) * ai), g, absolute)
        return sum(jax.tree.leaves(terms), jnp.zeros((), z.dtype))

    eye = jnp.eye(z.size, dtype=z.dtype)
    return z, jnp.abs(z) + jnp.reshape(lax.map(row, eye, batch_size=64), z.shape)


# one compilation per architecture (graph), however often it is converted
_scaled_jit = jax.jit(_scaled, static_argnames=("graph", "floating"))


def _check_translation(torch, module, params, apply: TorchApply, x_np: np.ndarray) -> None:
    """Compare PyTorch's logits with the translation's at one input (see :func:`convert`)."""
    from advlip import tolerance
    from advlip.attacks import count_ops

    device = next((t.device for t in [*module.parameters(), *module.buffers()]), "cpu")
    xt = torch.as_tensor(x_np).to(device)
    try:
        with torch.no_grad(), torch.backends.cudnn.flags(allow_tf32=False):
            ref = module(xt[None])
    except Warning:  # a warning made an error (-W error): PyTorch's own, not a failure
        raise
    except Exception as err:  # noqa: BLE001 - re-raised naming example_x
        raise ValueError(
            f"module(example_x[None]) failed in PyTorch ({type(err).__name__}: {err}); "
            f"example_x has shape {x_np.shape}: allowed: ONE input without the batch "
            "dimension, e.g. (C, H, W)"
        ) from err
    if not isinstance(ref, torch.Tensor) or ref.ndim == 0 or ref.shape[0] != 1:
        raise ValueError(
            f"module(example_x[None]) returned {type(ref).__name__} "
            f"{tuple(getattr(ref, 'shape', ()))}; allowed: a tensor of logits (1, K)"
        )
    ref = ref[0].detach().cpu().numpy()
    if not np.all(np.isfinite(ref)):
        raise ValueError("module(example_x[None]) is not finite; allowed: finite logits")
    x = jnp.asarray(x_np)
    floating = tuple(i for i, c in enumerate(apply.consts) if jnp.issubdtype(c.dtype, jnp.floating))
    fc = tuple(apply.consts[i] for i in floating)
    z, S = _scaled_jit(apply.graph, floating, params, apply.consts, fc, x)
    if z.shape != ref.shape:
        raise ValueError(
            f"the translation gives logits of shape {z.shape}, PyTorch {ref.shape}: "
            "a converter bug, please report it"
        )
    z, S, ref = (np.asarray(a, np.float64).ravel() for a in (z, S, ref))
    dt = tolerance.working_dtype(params, apply.consts, x)
    k = count_ops(apply, params, x)
    tol = 2.0 * tolerance.gamma(k, dt) * S + 2.0 * tolerance.underflow(dt)
    diff = np.abs(z - ref)
    if not np.all(diff <= tol):
        j = int(np.argmax(diff - tol))
        raise ValueError(
            f"the JAX translation of {type(module).__name__} differs from PyTorch at "
            f"example_x: logit {j} is {float(z[j])!r} in JAX and {float(ref[j])!r} in "
            f"PyTorch, |difference| {diff[j]:.3g} > {tol[j]:.3g} = 2 gamma_k S_j "
            f"(k = {k} operations in {dt.name}); a converter bug or a PyTorch semantic it "
            "does not reproduce (in-place updates of aliased tensors?), please report it"
        )
