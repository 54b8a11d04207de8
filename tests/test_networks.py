"""advlip.networks: reference image classifiers (CNN, ResNet, CIFAR ResNet-18).

The convolution and pooling are checked against explicit NumPy loops, the residual
wiring by zeroing the second convolution of a block (the block must then be the
activation of its shortcut alone), parameter counts against formulas written out from
the layer shapes, and the engine end to end: a tiny CNN's adversarial point is
determined and its total Hessian-vector product symmetric within the point's own
``hvp_error`` bound. Tolerances come from float64 rounding (Higham §3.1: a k-operation
computation errs by at most γ_k Σ|terms|, :func:`advlip.tolerance.gamma`).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import adversarial, networks, tolerance

U64 = tolerance.UNIT_ROUNDOFF


def _np_conv(x, w, stride, pad):
    """Cross-correlation of one image (H, W, C) with an HWIO kernel, by explicit loops."""
    H, W, C = x.shape
    k, _, _, O = w.shape
    xp = np.zeros((H + 2 * pad, W + 2 * pad, C))
    xp[pad : pad + H, pad : pad + W] = x
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((Ho, Wo, O))
    mag = np.zeros((Ho, Wo, O))  # Σ|x_i w_i| of every output: the scale of its rounding
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[i * stride : i * stride + k, j * stride : j * stride + k]
            for o in range(O):
                terms = patch * w[:, :, :, o]
                out[i, j, o] = terms.sum()
                mag[i, j, o] = np.abs(terms).sum()
    return out, mag


@pytest.mark.parametrize(
    "shape, k, c_out, stride",
    [((5, 4, 2), 3, 3, 1), ((5, 4, 2), 3, 3, 2), ((6, 6, 3), 1, 2, 2), ((1, 1, 2), 3, 2, 1)],
)
def test_conv2d_matches_explicit_loops(shape, k, c_out, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k, k, shape[2], c_out))
    want, mag = _np_conv(x, w, stride, (k - 1) // 2)
    got = np.asarray(networks.conv2d(jnp.asarray(x), jnp.asarray(w), stride=stride))
    assert (
        got.shape
        == want.shape
        == (math.ceil(shape[0] / stride), math.ceil(shape[1] / stride), c_out)
    )
    # each output is a sum of m = k·k·C_in products; either implementation, in any order,
    # errs by at most γ_m Σ|x_i w_i| (products add one rounding: γ_{m+1})
    m = k * k * shape[2]
    tol = 2 * tolerance.gamma(m + 1) * mag
    assert np.all(np.abs(got - want) <= tol)
    # the check can fail: a kernel flipped in space (convolution, not correlation) misses it
    if k > 1 and min(shape[:2]) > 1:
        flipped = np.asarray(
            networks.conv2d(jnp.asarray(x), jnp.asarray(w[::-1, ::-1]), stride=stride)
        )
        assert not np.all(np.abs(flipped - want) <= tol)


def test_avg_pool2_matches_loops_and_keeps_unit_axes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 2))
    got = np.asarray(networks.avg_pool2(jnp.asarray(x)))
    want = np.zeros((2, 2, 2))
    for i in range(2):
        for j in range(2):
            want[i, j] = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].sum(axis=(0, 1)) / 4
    # a mean of 4 terms: 4 roundings (3 additions, one division) on Σ|x|/4, either side
    tol = 2 * tolerance.gamma(4) * np.abs(x[:4]).reshape(2, 2, 2, 2, 2).sum(axis=(1, 3)) / 4
    assert got.shape == (2, 2, 2) and np.all(np.abs(got - want) <= tol)
    assert networks.avg_pool2(jnp.ones((1, 3, 1))).shape == (1, 1, 1)
    assert networks.avg_pool2(jnp.ones((1, 1, 4))).shape == (1, 1, 4)


@pytest.mark.parametrize(
    "input_shape, channels, feature, activation",
    [
        ((8, 8, 1), (8, 16), (2, 2, 16), "softplus"),
        ((5, 7, 2), (3, 4), (1, 1, 4), "relu"),  # allowed; the Hessian is piecewise
        ((1, 1, 1), (2,), (1, 1, 2), "gelu"),
    ],
)
def test_cnn_shapes_and_parameter_count(input_shape, channels, feature, activation):
    params, loss_fn = networks.cnn(
        jax.random.PRNGKey(0), input_shape, 4, channels=channels, hidden=5, activation=activation
    )
    assert loss_fn.apply.feature_shape() == feature
    X = jnp.asarray(np.random.default_rng(0).uniform(size=(3, *input_shape)))
    logits = loss_fn.logits(params, X)
    assert logits.shape == (3, 4) and np.all(np.isfinite(logits))
    assert jax.eval_shape(loss_fn, params, X[0], 2).shape == ()
    # the count written out from the layer shapes: 3×3 kernels and biases, then two dense
    c_in, expected = input_shape[2], 0
    for c in channels:
        expected += 9 * c_in * c + c
        c_in = c
    expected += math.prod(feature) * 5 + 5 + 5 * 4 + 4
    assert sum(a.size for a in jax.tree.leaves(params)) == expected


def _resnet_count(c0, width, blocks, k):
    """Parameters of a basic-block ResNet from its layer shapes (no BatchNorm)."""
    total = 9 * c0 * width + width  # stem
    c_in = width
    for s, nb in enumerate(blocks):
        c = width * 2**s
        for j in range(nb):
            stride = 2 if s > 0 and j == 0 else 1
            total += 9 * c_in * c + c + 9 * c * c + c  # two 3×3 convolutions with biases
            if c_in != c or stride != 1:
                total += c_in * c  # the 1×1 shortcut, no bias
            c_in = c
    return total + c_in * k + k  # head


def test_resnet_shapes_and_parameter_count():
    params, loss_fn = networks.resnet(
        jax.random.PRNGKey(0), (7, 6, 2), 3, width=4, blocks=(2, 1, 1)
    )
    X = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 7, 6, 2)))
    assert loss_fn.logits(params, X).shape == (2, 3)
    assert sum(a.size for a in jax.tree.leaves(params)) == _resnet_count(2, 4, (2, 1, 1), 3)
    p2, _ = networks.resnet(jax.random.PRNGKey(0), (7, 6, 2), 3, width=4, residual_scale=True)
    # the scale adds C_out per block: blocks (1, 1) of widths 4 and 8
    assert sum(a.size for a in jax.tree.leaves(p2)) == _resnet_count(2, 4, (1, 1), 3) + 4 + 8


def test_resnet18_layout_and_parameter_count():
    params, loss_fn = networks.resnet18(jax.random.PRNGKey(0))
    P = sum(a.size for a in jax.tree.leaves(params))
    expected = _resnet_count(3, 64, (2, 2, 2, 2), 10)
    # the BatchNorm CIFAR ResNet-18 has 11,173,962: the same convolutions and head plus
    # 2 affine parameters on each of its 4,800 BatchNorm channels; here conv biases
    # (4,800 channels less the 896 of the bias-free shortcuts) take their place
    assert P == expected == 11_173_962 - 2 * 4_800 + (4_800 - 896)
    assert [b["conv1"]["w"].shape[-1] for b in params["blocks"]] == [
        64,
        64,
        128,
        128,
        256,
        256,
        512,
        512,
    ]
    # shape only (no compilation): one 32×32×3 image gives 10 logits
    assert loss_fn.num_classes(params, jnp.zeros((32, 32, 3))) == 10


def _rand_block(rng, layout, act):
    bp = {
        "conv1": {
            "w": rng.standard_normal((3, 3, layout.c_in, layout.c_out)),
            "b": rng.standard_normal(layout.c_out),
        },
        "conv2": {"w": np.zeros((3, 3, layout.c_out, layout.c_out)), "b": np.zeros(layout.c_out)},
    }
    if layout.projection:
        bp["shortcut"] = {"w": rng.standard_normal((1, 1, layout.c_in, layout.c_out))}
    return jax.tree.map(jnp.asarray, bp)


@pytest.mark.parametrize("activation", ["softplus", "tanh"])
def test_residual_block_with_zero_second_conv_is_its_shortcut(activation):
    _, loss_fn = networks.resnet(
        jax.random.PRNGKey(0), (6, 6, 2), width=3, blocks=(1, 1), activation=activation
    )
    net = loss_fn.apply
    act = networks.ACTIVATIONS[activation]
    ident, proj = net.block_layout()
    assert (ident.stride, ident.projection, proj.stride, proj.projection) == (1, False, 2, True)
    rng = np.random.default_rng(3)
    # identity shortcut: act(0 + h) is act(h) exactly (adding an exact 0 rounds nothing)
    h = jnp.asarray(rng.standard_normal((6, 6, 3)))
    bp = _rand_block(rng, ident, activation)
    out = net.block(bp, h, ident)
    assert np.array_equal(np.asarray(out), np.asarray(act(h)))
    # the residual branch is used: a nonzero second convolution changes the output
    bp2 = {**bp, "conv2": {"w": jnp.ones((3, 3, 3, 3)), "b": bp["conv2"]["b"]}}
    assert not np.allclose(np.asarray(net.block(bp2, h, ident)), np.asarray(out))
    # projection shortcut: act(1×1 stride-2 conv of h), against explicit loops; the
    # pre-activations differ by ≤ 2 γ_{C+1} Σ|h w| and |act'| ≤ 1 (softplus, tanh), plus
    # the activation's own rounding on both sides (a few ulps: 4u|out| covers ±2 ulps)
    bp = _rand_block(rng, proj, activation)
    want, mag = _np_conv(np.asarray(h), np.asarray(bp["shortcut"]["w"]), 2, 0)
    got = np.asarray(net.block(bp, h, proj))
    ref = np.asarray(act(jnp.asarray(want)))
    tol = 2 * tolerance.gamma(3 + 1) * mag + 4 * U64 * np.abs(ref)
    assert got.shape == (3, 3, 6) and np.all(np.abs(got - ref) <= tol)
    # a skip wired to the residual branch's input of the wrong stride or to nothing fails
    assert not np.all(np.abs(np.asarray(act(jnp.zeros((3, 3, 6)))) - ref) <= tol)


def test_resnet_chains_blocks_in_order():
    """With every second convolution zero the network is stem → act → (act∘shortcut)
    per block → mean → head; composed here from the checked primitives."""
    params, loss_fn = networks.resnet(jax.random.PRNGKey(4), (6, 6, 1), 5, width=2, blocks=(2, 1))
    for bp in params["blocks"]:
        bp["conv2"] = jax.tree.map(jnp.zeros_like, bp["conv2"])
    act = jax.nn.softplus
    x = jnp.asarray(np.random.default_rng(5).uniform(size=(6, 6, 1)))
    h = act(networks.conv2d(x, params["stem"]["w"]) + params["stem"]["b"][None, None, :])
    h = act(act(h))  # two identity blocks of stage 0
    h = act(networks.conv2d(h, params["blocks"][2]["shortcut"]["w"], stride=2))
    want = jnp.mean(h, axis=(0, 1)) @ params["head"]["w"] + params["head"]["b"]
    got = loss_fn.apply(params, x)
    # the same operations in the same order; allow a few ulps of the dot products'
    # reassociation: γ_m with m = 4 channels + 9 pixels of the mean, on Σ|terms|
    scale = np.abs(np.asarray(jnp.mean(h, axis=(0, 1)))) @ np.abs(np.asarray(params["head"]["w"]))
    tol = 2 * tolerance.gamma(4 + 9 + 1) * (scale + np.abs(np.asarray(params["head"]["b"])))
    assert np.all(np.abs(np.asarray(got) - np.asarray(want)) <= tol)


@pytest.mark.parametrize("build", [networks.cnn, networks.resnet])
def test_init_replays_from_the_key_and_differs_across_keys(build):
    a, la = build(jax.random.PRNGKey(7))
    b, lb = build(jax.random.PRNGKey(7))
    c, _ = build(jax.random.PRNGKey(8))
    f32, _ = build(jax.random.PRNGKey(7), dtype=jnp.float32)
    leaves = jax.tree.leaves
    assert la == lb and hash(la) == hash(lb)  # a hashable, equal configuration
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))
    assert all(x.dtype == jnp.float64 for x in leaves(a))
    weights = [i for i, x in enumerate(leaves(a)) if np.any(x != 0)]  # biases start at 0
    assert weights and all(not np.array_equal(leaves(a)[i], leaves(c)[i]) for i in weights)
    # float32 is the float64 draw rounded once
    assert all(y.dtype == jnp.float32 for y in leaves(f32))
    assert all(
        np.array_equal(np.float32(x), y) for x, y in zip(leaves(a), leaves(f32), strict=True)
    )
    # LeCun scale: the largest kernel's sample variance is 1/fan-in within sampling error
    w = max((np.asarray(leaves(a)[i]) for i in weights), key=np.size)
    fan_in = math.prod(w.shape[:-1])
    # chi-square: the sample variance of N draws has relative std sqrt(2/N); 6 of them
    assert abs(w.var() * fan_in - 1) <= 6 * math.sqrt(2 / w.size)


@pytest.mark.parametrize(
    "build, kwargs, match",
    [
        (networks.cnn, dict(activation="sigmoid"), "activation="),
        (networks.cnn, dict(dtype=jnp.float16), "dtype="),
        (networks.cnn, dict(input_shape=(8, 8)), "input_shape="),
        (networks.cnn, dict(input_shape=(0, 8, 1)), "input_shape="),
        (networks.cnn, dict(channels=()), "channels="),
        (networks.cnn, dict(channels=(8, 0)), "channels="),
        (networks.cnn, dict(hidden=0), "hidden="),
        (networks.cnn, dict(num_classes=0), "num_classes="),
        (networks.cnn, dict(loss="hinge"), "loss="),
        (networks.cnn, dict(num_classes=2, loss="dlr"), "num_classes="),
        (networks.resnet, dict(width=0), "width="),
        (networks.resnet, dict(blocks=()), "blocks="),
        (networks.resnet, dict(blocks=(1, -1)), "blocks="),
        (networks.resnet, dict(residual_scale="yes"), "residual_scale="),
        (networks.resnet18, dict(activation="swish"), "activation="),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_bad_arguments_raise_naming_the_argument(build, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(jax.random.PRNGKey(0), **kwargs)


def test_bad_conv_arguments_raise():
    x = jnp.zeros((4, 4, 2))
    for w, match in [
        (jnp.zeros((2, 2, 2, 1)), "square, odd"),
        (jnp.zeros((3, 1, 2, 1)), "square, odd"),
        (jnp.zeros((3, 3, 3, 1)), "input channels"),
    ]:
        with pytest.raises(ValueError, match=match):
            networks.conv2d(x, w)
    with pytest.raises(ValueError, match="stride="):
        networks.conv2d(x, jnp.zeros((3, 3, 2, 1)), stride=0)


def test_bad_key_and_bad_image_raise():
    with pytest.raises(ValueError, match="key"):
        networks.cnn(0)
    params, loss_fn = networks.cnn(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"x must be ONE image of shape \(8, 8, 1\)"):
        loss_fn.apply(params, jnp.zeros((2, 8, 8, 1)))


def test_tiny_cnn_adversarial_point_is_determined_and_symmetric():
    """The engine end to end on images (n, H, W, C): an L2 attack on 3 images 8×8×1.

    P = 202 ≤ FROBENIUS_MAX_P, so every error bound here is a bound, not an estimate."""
    params, loss_fn = networks.cnn(jax.random.PRNGKey(0), (8, 8, 1), 10, channels=(2,), hidden=4)
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.uniform(size=(3, 8, 8, 1)))
    y = jnp.asarray([0, 3, 7])
    pt = adversarial.linearize(loss_fn, params, X, y, eps=0.05, p=2, key=jax.random.PRNGKey(1))
    assert pt.dim == 202 <= adversarial.FROBENIUS_MAX_P
    assert pt.delta.shape == (3, 64)
    assert pt.all_determined, pt.reasons
    est = pt.top_eigenvalue(hessian="total", num_steps=20)
    assert np.isfinite(float(est.value)) and np.isfinite(est.bound) and est.exact_scale
    # symmetry of the total operator: u·(Hv) = v·(Hu) exactly for the true Hessian; the
    # computed products each err componentwise by at most hvp_error, so the two sides
    # differ by ≤ Σ|u| e(v) + Σ|v| e(u), plus the rounding of the two P-term dot products
    u, v = (jnp.asarray(rng.standard_normal(pt.dim)) for _ in range(2))
    Hu, Hv = np.asarray(pt.total_hvp(u)), np.asarray(pt.total_hvp(v))
    un, vn = np.asarray(u), np.asarray(v)
    lhs, rhs = un @ Hv, vn @ Hu
    tol = np.abs(un) @ pt.hvp_error(v) + np.abs(vn) @ pt.hvp_error(u)
    tol += tolerance.gamma(pt.dim) * (np.abs(un) @ np.abs(Hv) + np.abs(vn) @ np.abs(Hu))
    assert abs(lhs - rhs) <= tol
    # the bound is not vacuous: far below the size of the products it compares
    assert tol < 1e-6 * (np.abs(un) @ np.abs(Hv))
