r"""Reference image classifiers: a small CNN and residual networks up to CIFAR ResNet-18.

Pure JAX functions of a parameter pytree (nested dicts and lists of float arrays), for
tests, experiments and benchmarks. Each builder takes a JAX key and returns
``(params, loss_fn)`` with ``loss_fn = advlip.models.ClassifierLoss(apply, loss)``: a
per-example loss ``loss_fn(params, x, y)`` of ONE image ``x`` of shape (H, W, C) and an
integer class ``y``, the convention of :mod:`advlip.attacks` and :mod:`advlip.adversarial`
(which flatten a batch of images (n, H, W, C) themselves and vmap over it).

**Layouts.** Images are NHWC (height, width, channels: the layout of the data loaders);
one example is (H, W, C). Convolution kernels are HWIO (kh, kw, C_in, C_out) and run
through :func:`jax.lax.conv_general_dilated` with dimension numbers
``("NHWC", "HWIO", "NHWC")``; dense weights are (in, out), applied as ``h @ W + b``.
A 3×3 convolution pads one pixel on each side (at stride 1 this is "SAME"; at stride 2
it gives ⌈H/2⌉ rows, as PyTorch's ``padding=1`` does), a 1×1 convolution pads nothing.

* :func:`cnn` — ``[conv3x3 → act → avg-pool 2] × len(channels) → flatten → dense hidden →
  act → dense K``. Each pooling halves every spatial axis of size ≥ 2 (⌊H/2⌋: an odd
  trailing row or column is dropped, as a VALID pool drops it) and leaves an axis of
  size 1 as it is, so any H, W ≥ 1 is valid.
* :func:`resnet` — ``conv3x3 stem → act → stages of basic blocks → global average pool →
  dense K``. Stage s has width ``width · 2**s``; its first block has stride 2 (s > 0). A
  basic block is :math:`\operatorname{act}(c\odot(W_2 * \operatorname{act}(W_1 * h + b_1)
  + b_2) + S h)` with :math:`S` the identity, or a 1×1 convolution (no bias) when the
  width or the stride changes, and :math:`c` an optional learnable per-channel scale
  (``residual_scale=True``, initialised to 1).
* :func:`resnet18` — the CIFAR ResNet-18 layout (3×3 stem, widths 64-128-256-512,
  blocks (2, 2, 2, 2)) built by the same code: 11,168,266 parameters for 10 classes.

**Why smooth activations.** The total Hessian of the adversarial loss exists where the
per-example loss :math:`\ell(x, y; \theta)` is twice continuously differentiable in
(x, θ) (implicit differentiation of the inner maximiser needs :math:`H_{xx}` and
:math:`H_{x\theta}`), so the default activation is ``softplus``; ``tanh`` and ``gelu``
(exact, with erf) are smooth too. ``relu`` is accepted, but a ReLU network's Hessian is
only piecewise defined: it is zero almost everywhere inside each linear region and does
not exist on the switching surfaces between regions, which an attack is drawn to; the
engine then reports the curvature of the current region only.

**Why no BatchNorm.** The engine evaluates, attacks and differentiates one example at a
time (a per-example loss, vmapped): a batch statistic would couple the examples, so an
example's maximiser would depend on the rest of the batch, and the per-example theory
no longer applies; with running statistics frozen, BatchNorm is only an affine map the
neighbouring convolution already represents. Conv biases (and the optional residual
scale) take the place of BatchNorm's learnable affine parameters, and nothing here is
nonsmooth (no max-pool, no normalisation by a batch norm).

**Initialisation.** Weights are normal with standard deviation :math:`1/\sqrt{\text{fan-in}}`
(LeCun; fan-in = kh·kw·C_in for a convolution), biases 0, drawn with NumPy from the
generator :func:`advlip.keys.numpy_rng` seeds with the key's bits: replayable from the
key, and no compilation (ResNet-18's 11M parameters are drawn in well under a second).
Parameters are stored in ``dtype`` (float64 by default; float64 needs
``jax.config.update("jax_enable_x64", True)``, without it JAX stores float32).
Convolutions and matrix products run at ``jax.lax.Precision.HIGHEST``: on GPUs the
default float32 precision may round the inputs to TF32 (10-bit mantissa), which the
error bounds of advlip, derived from float32's unit roundoff, would not cover.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from advlip import networks
    >>> params, loss_fn = networks.cnn(jax.random.PRNGKey(0))
    >>> loss_fn.logits(params, jnp.zeros((2, 8, 8, 1))).shape
    (2, 10)
    >>> bool(loss_fn(params, jnp.zeros((8, 8, 1)), 3) > 0)
    True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advlip import keys
from advlip._validate import check_positive_int
from advlip.losses import get_logit_loss
from advlip.models import ClassifierLoss

__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "conv2d",
    "avg_pool2",
    "CNN",
    "ResNet",
    "cnn",
    "resnet",
    "resnet18",
]

#: Activations of the networks here. ``softplus``, ``tanh`` and ``gelu`` (exact) are
#: smooth; ``relu`` makes the Hessian only piecewise defined (see the module docstring).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "relu": jax.nn.relu,
}

#: Parameter dtypes the builders accept (advlip's error model covers these two).
DTYPES: tuple[str, ...] = ("float32", "float64")

_HIGHEST = lax.Precision.HIGHEST
_DIMS = ("NHWC", "HWIO", "NHWC")


# --------------------------------------------------------------------------- validation


def _check_activation(activation: Any) -> str:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} is not allowed; allowed: {sorted(ACTIVATIONS)} "
            "(softplus, tanh, gelu are smooth; relu makes the Hessian piecewise defined)"
        )
    return activation


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
    return dt


def _check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    ok = isinstance(input_shape, Sequence) and not isinstance(input_shape, str)
    if ok and len(input_shape) == 3:
        try:
            return tuple(check_positive_int("input_shape[i]", s) for s in input_shape)
        except ValueError:
            pass
    raise ValueError(
        f"input_shape={input_shape!r} is not allowed; allowed: (H, W, C), three integers >= 1 "
        "(one image, channels last)"
    )


def _check_sizes(name: str, sizes: Any) -> tuple[int, ...]:
    ok = isinstance(sizes, Sequence) and not isinstance(sizes, str) and len(sizes) >= 1
    if ok:
        try:
            return tuple(check_positive_int(f"{name}[i]", s) for s in sizes)
        except ValueError:
            pass
    raise ValueError(
        f"{name}={sizes!r} is not allowed; allowed: a non-empty tuple of integers >= 1"
    )


def _check_classes(num_classes: Any, loss: Any) -> int:
    fam = get_logit_loss(loss)  # raises, naming the allowed losses
    k = check_positive_int("num_classes", num_classes)
    if k < max(fam.min_classes, 1):
        raise ValueError(
            f"num_classes={num_classes!r} is not allowed with loss={loss!r}; allowed: an "
            f"integer >= {fam.min_classes}"
        )
    return k


# --------------------------------------------------------------------------- layers


def conv2d(x: jax.Array, w: jax.Array, *, stride: int = 1) -> jax.Array:
    """Cross-correlation of ONE image ``x`` (H, W, C_in) with an HWIO kernel ``w``.

    ``w`` has shape (k, k, C_in, C_out) with k odd; the image is padded with (k − 1)/2
    zeros on each side (a 3×3 kernel: one pixel, "SAME" at stride 1), and the output has
    ⌈H/stride⌉ × ⌈W/stride⌉ pixels. Computed by :func:`jax.lax.conv_general_dilated`
    (``("NHWC", "HWIO", "NHWC")``, precision HIGHEST), on a batch of one.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(9.0).reshape(3, 3, 1)
        >>> w = jnp.ones((3, 3, 1, 1))  # sums every 3×3 neighbourhood
        >>> conv2d(x, w)[1, 1, 0].item(), conv2d(x, w)[0, 0, 0].item()
        (36.0, 8.0)
        >>> conv2d(x, w, stride=2).shape
        (2, 2, 1)
    """
    stride = check_positive_int("stride", stride)
    if x.ndim != 3 or w.ndim != 4 or w.shape[0] != w.shape[1] or w.shape[0] % 2 != 1:
        raise ValueError(
            f"conv2d takes ONE image x (H, W, C) and a square, odd HWIO kernel w (k, k, C, O); "
            f"got x of shape {tuple(x.shape)} and w of shape {tuple(w.shape)}"
        )
    if w.shape[2] != x.shape[2]:
        raise ValueError(
            f"w has {w.shape[2]} input channels but x has {x.shape[2]}; allowed: w of shape "
            f"(k, k, {x.shape[2]}, O)"
        )
    k = w.shape[0]
    pad = (k - 1) // 2
    out = lax.conv_general_dilated(
        x[None],
        w,
        window_strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=_DIMS,
        precision=_HIGHEST,
    )
    return out[0]


def _pool_factors(h: int, w: int) -> tuple[int, int]:
    return (2 if h >= 2 else 1), (2 if w >= 2 else 1)


def avg_pool2(x: jax.Array) -> jax.Array:
    """2×2 average pooling with stride 2 of ONE image (H, W, C).

    An axis of size ≥ 2 becomes ⌊size/2⌋ (an odd trailing row or column is dropped);
    an axis of size 1 is kept (so an image never shrinks below one pixel).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(16.0).reshape(4, 4, 1)
        >>> avg_pool2(x)[:, :, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        >>> avg_pool2(jnp.ones((1, 5, 2))).shape
        (1, 2, 2)
    """
    h, w, c = x.shape
    fh, fw = _pool_factors(h, w)
    ho, wo = h // fh, w // fw
    x = x[: ho * fh, : wo * fw].reshape(ho, fh, wo, fw, c)
    return jnp.mean(x, axis=(1, 3))


def _channels(c: jax.Array) -> jax.Array:
    """A per-channel vector (C,) as (1, 1, C), to broadcast over the pixels of an image
    explicitly (JAX's rank promotion may be set to raise)."""
    return c[None, None, :]


def _dense(h: jax.Array, layer: dict) -> jax.Array:
    return jnp.dot(h, layer["w"], precision=_HIGHEST) + layer["b"]


def _check_image(x: jax.Array, input_shape: tuple[int, int, int]) -> None:
    if tuple(x.shape) != input_shape:
        raise ValueError(
            f"x must be ONE image of shape {input_shape} (H, W, C), got shape {tuple(x.shape)}; "
            "advlip calls the network on one example and vmaps over the batch (for a batch "
            "use loss_fn.logits(params, X))"
        )


# --------------------------------------------------------------------------- networks


@dataclasses.dataclass(frozen=True)
class CNN:
    """Logits of :func:`cnn`'s network at ONE image: ``CNN(...)(params, x)`` → (K,).

    Static configuration only (hashable, so compiled programs are cached per
    configuration); the weights are the ``params`` pytree
    ``{"convs": [{"w", "b"}, ...], "hidden": {"w", "b"}, "out": {"w", "b"}}``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> params, loss_fn = cnn(jax.random.PRNGKey(0), (6, 6, 2), 3, channels=(4,))
        >>> loss_fn.apply
        CNN(input_shape=(6, 6, 2), num_classes=3, channels=(4,), hidden=32, activation='softplus')
        >>> loss_fn.apply(params, jnp.ones((6, 6, 2))).shape
        (3,)
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    channels: tuple[int, ...] = (8, 16)
    hidden: int = 32
    activation: str = "softplus"

    def __post_init__(self):
        # tuples, so that the configuration is hashable whatever sequences it was given
        object.__setattr__(self, "input_shape", _check_input_shape(self.input_shape))
        object.__setattr__(self, "channels", _check_sizes("channels", self.channels))
        check_positive_int("hidden", self.hidden)
        check_positive_int("num_classes", self.num_classes)
        _check_activation(self.activation)

    def feature_shape(self) -> tuple[int, int, int]:
        """(H, W, C) after the last pooling: what the hidden dense layer flattens."""
        h, w, _ = self.input_shape
        for _ in self.channels:
            fh, fw = _pool_factors(h, w)
            h, w = h // fh, w // fw
        return h, w, self.channels[-1]

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        _check_image(x, self.input_shape)
        act = ACTIVATIONS[self.activation]
        h = x
        for layer in params["convs"]:
            h = avg_pool2(act(conv2d(h, layer["w"]) + _channels(layer["b"])))
        h = act(_dense(h.reshape(-1), params["hidden"]))
        return _dense(h, params["out"])


@dataclasses.dataclass(frozen=True)
class ResNet:
    """Logits of :func:`resnet`'s network at ONE image: ``ResNet(...)(params, x)`` → (K,).

    Static configuration only (hashable); the weights are the ``params`` pytree
    ``{"stem": {"w", "b"}, "blocks": [block, ...], "head": {"w", "b"}}``, the blocks of
    all stages in order, each ``{"conv1": {"w", "b"}, "conv2": {"w", "b"}}`` plus
    ``"shortcut": {"w"}`` (1×1, where the width or stride changes) and ``"scale"``
    (``residual_scale``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> params, loss_fn = resnet(jax.random.PRNGKey(0), blocks=(1, 2))
        >>> tuple(b.stride for b in loss_fn.apply.block_layout())
        (1, 2, 1)
        >>> loss_fn.apply(params, jnp.ones((8, 8, 1))).shape
        (10,)
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    width: int = 8
    blocks: tuple[int, ...] = (1, 1)
    activation: str = "softplus"
    residual_scale: bool = False

    def __post_init__(self):
        # tuples, so that the configuration is hashable whatever sequences it was given
        object.__setattr__(self, "input_shape", _check_input_shape(self.input_shape))
        object.__setattr__(self, "blocks", _check_sizes("blocks", self.blocks))
        check_positive_int("width", self.width)
        check_positive_int("num_classes", self.num_classes)
        _check_activation(self.activation)

    def block_layout(self) -> list[_Block]:
        """Per block, in order: input and output widths, stride, whether a 1×1 shortcut."""
        out, c_in = [], self.width
        for s, nb in enumerate(self.blocks):
            c_out = self.width * 2**s
            for j in range(nb):
                stride = 2 if (s > 0 and j == 0) else 1
                out.append(_Block(c_in, c_out, stride, c_in != c_out or stride != 1))
                c_in = c_out
        return out

    def block(self, params: dict, h: jax.Array, layout: _Block) -> jax.Array:
        """One basic block at the feature map ``h`` (H, W, C_in)."""
        act = ACTIVATIONS[self.activation]
        r = conv2d(h, params["conv1"]["w"], stride=layout.stride)
        r = act(r + _channels(params["conv1"]["b"]))
        r = conv2d(r, params["conv2"]["w"])
        r = r + _channels(params["conv2"]["b"])
        if self.residual_scale:
            r = _channels(params["scale"]) * r
        skip = conv2d(h, params["shortcut"]["w"], stride=layout.stride) if layout.projection else h
        return act(r + skip)

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        _check_image(x, self.input_shape)
        act = ACTIVATIONS[self.activation]
        h = conv2d(x, params["stem"]["w"])
        h = act(h + _channels(params["stem"]["b"]))
        for bp, layout in zip(params["blocks"], self.block_layout(), strict=True):
            h = self.block(bp, h, layout)
        return _dense(jnp.mean(h, axis=(0, 1)), params["head"])


@dataclasses.dataclass(frozen=True)
class _Block:
    c_in: int
    c_out: int
    stride: int
    projection: bool


def _normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dt: np.dtype):
    # drawn in float64 and rounded once to dt: the same key gives the same values in both
    w = rng.standard_normal(shape) / math.sqrt(fan_in)
    return jnp.asarray(w.astype(dt))


def _conv_init(rng, k: int, c_in: int, c_out: int, dt, *, bias: bool = True) -> dict:
    layer = {"w": _normal(rng, (k, k, c_in, c_out), k * k * c_in, dt)}
    if bias:
        layer["b"] = jnp.asarray(np.zeros(c_out, dtype=dt))
    return layer


def _dense_init(rng, n_in: int, n_out: int, dt) -> dict:
    return {"w": _normal(rng, (n_in, n_out), n_in, dt), "b": jnp.asarray(np.zeros(n_out, dt))}


def cnn(
    key: jax.Array,
    input_shape: Sequence[int] = (8, 8, 1),
    num_classes: int = 10,
    *,
    channels: Sequence[int] = (8, 16),
    hidden: int = 32,
    activation: str = "softplus",
    loss: str = "cross_entropy",
    dtype: Any = jnp.float64,
) -> tuple[dict, ClassifierLoss]:
    r"""A small CNN classifier of images (H, W, C): ``(params, loss_fn)``.

    ``[conv3x3 → act → avg-pool 2] × len(channels) → flatten → dense hidden → act →
    dense num_classes``; any H, W ≥ 1 is valid (a pooling leaves an axis of size 1 as
    it is). Weights normal with std :math:`1/\sqrt{\text{fan-in}}`, biases 0, drawn
    with NumPy from :func:`advlip.keys.numpy_rng` ``(key)`` (replayable, no compilation).
    ``loss_fn = ClassifierLoss(CNN(...), loss)`` takes ONE image and an integer class;
    ``num_classes=1`` makes a binary classifier (one logit, labels ±1). ``activation``:
    ``softplus`` (default), ``tanh``, ``gelu`` are smooth; ``relu`` gives a Hessian
    defined only piecewise (see the module docstring); ``loss``: ``cross_entropy``
    (smooth), ``cw`` or ``dlr`` (piecewise: a max over the other classes).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> params, loss_fn = cnn(jax.random.PRNGKey(0), (8, 8, 1), 10)
        >>> tuple(layer["w"].shape for layer in params["convs"])
        ((3, 3, 1, 8), (3, 3, 8, 16))
        >>> hidden = params["hidden"]
        >>> hidden["w"].shape  # 2 × 2 pixels × 16 channels after two poolings
        (64, 32)
        >>> loss_fn(params, jnp.zeros((8, 8, 1)), 0).shape
        ()
    """
    rng = keys.numpy_rng(keys.check_key(key))
    dt = _check_dtype(dtype)
    apply = CNN(
        input_shape=_check_input_shape(input_shape),
        num_classes=_check_classes(num_classes, loss),
        channels=_check_sizes("channels", channels),
        hidden=check_positive_int("hidden", hidden),
        activation=_check_activation(activation),
    )
    convs, c_in = [], apply.input_shape[2]
    for c in apply.channels:
        convs.append(_conv_init(rng, 3, c_in, c, dt))
        c_in = c
    flat = math.prod(apply.feature_shape())
    params = {
        "convs": convs,
        "hidden": _dense_init(rng, flat, apply.hidden, dt),
        "out": _dense_init(rng, apply.hidden, apply.num_classes, dt),
    }
    return params, ClassifierLoss(apply, loss)


def resnet(
    key: jax.Array,
    input_shape: Sequence[int] = (8, 8, 1),
    num_classes: int = 10,
    *,
    width: int = 8,
    blocks: Sequence[int] = (1, 1),
    activation: str = "softplus",
    residual_scale: bool = False,
    loss: str = "cross_entropy",
    dtype: Any = jnp.float64,
) -> tuple[dict, ClassifierLoss]:
    r"""A residual network without BatchNorm: ``(params, loss_fn)``.

    3×3 stem (C → ``width``) → act → ``len(blocks)`` stages, stage s of ``blocks[s]``
    basic blocks of width ``width · 2**s`` (the first block of stage s > 0 has stride 2)
    → global average pool → dense ``num_classes``. A basic block is
    ``act(c ⊙ (conv3x3(act(conv3x3(h) + b1)) + b2) + shortcut(h))``, the shortcut the
    identity or, where the width or the stride changes, a 1×1 convolution (no bias); the
    per-channel scale c (initialised to 1) is a parameter with ``residual_scale=True``,
    else c = 1. No BatchNorm: the loss of one example must not depend on the others (see
    the module docstring). Initialisation, ``activation``, ``loss`` and ``dtype`` as in
    :func:`cnn`.

    Example:
        >>> import jax
        >>> params, loss_fn = resnet(jax.random.PRNGKey(0), width=4, blocks=(1, 1))
        >>> blocks = params["blocks"]
        >>> sorted(blocks[1])  # stride 2 and 4 → 8 channels: a 1×1 shortcut
        ['conv1', 'conv2', 'shortcut']
        >>> head = params["head"]
        >>> head["w"].shape
        (8, 10)
    """
    rng = keys.numpy_rng(keys.check_key(key))
    dt = _check_dtype(dtype)
    if not isinstance(residual_scale, bool):
        raise ValueError(f"residual_scale={residual_scale!r} is not allowed; allowed: True, False")
    apply = ResNet(
        input_shape=_check_input_shape(input_shape),
        num_classes=_check_classes(num_classes, loss),
        width=check_positive_int("width", width),
        blocks=_check_sizes("blocks", blocks),
        activation=_check_activation(activation),
        residual_scale=residual_scale,
    )
    params: dict[str, Any] = {"stem": _conv_init(rng, 3, apply.input_shape[2], apply.width, dt)}
    blocks_p = []
    for b in apply.block_layout():
        bp = {
            "conv1": _conv_init(rng, 3, b.c_in, b.c_out, dt),
            "conv2": _conv_init(rng, 3, b.c_out, b.c_out, dt),
        }
        if b.projection:
            bp["shortcut"] = _conv_init(rng, 1, b.c_in, b.c_out, dt, bias=False)
        if residual_scale:
            bp["scale"] = jnp.asarray(np.ones(b.c_out, dtype=dt))
        blocks_p.append(bp)
    params["blocks"] = blocks_p
    c_last = apply.width * 2 ** (len(apply.blocks) - 1)
    params["head"] = _dense_init(rng, c_last, apply.num_classes, dt)
    return params, ClassifierLoss(apply, loss)


def resnet18(
    key: jax.Array,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    activation: str = "softplus",
    loss: str = "cross_entropy",
    dtype: Any = jnp.float64,
) -> tuple[dict, ClassifierLoss]:
    """The CIFAR ResNet-18 layout, without BatchNorm: ``(params, loss_fn)``.

    :func:`resnet` with ``width=64, blocks=(2, 2, 2, 2)`` (widths 64-128-256-512, a 3×3
    stem at stride 1, as for 32 × 32 CIFAR images): 11,159,232 convolution weights, 3,904
    conv biases and a 512 × K head, 11,168,266 parameters for K = 10 (the BatchNorm
    version's 11,173,962 less BatchNorm's 9,600 affine parameters, plus the biases).

    Example:
        >>> import jax
        >>> params, loss_fn = resnet18(jax.random.PRNGKey(0))
        >>> sum(leaf.size for leaf in jax.tree.leaves(params))
        11168266
        >>> len(params["blocks"]), loss_fn.apply.input_shape
        (8, (32, 32, 3))
    """
    return resnet(
        key,
        input_shape,
        num_classes,
        width=64,
        blocks=(2, 2, 2, 2),
        activation=activation,
        loss=loss,
        dtype=dtype,
    )
