"""advlip.torch_convert: PyTorch modules translated to JAX, checked against PyTorch itself.

Expected values come from PyTorch: the module's own forward, and ``torch.func``'s
gradient and forward-over-reverse Hessian-vector product of ``F.cross_entropy`` on
``functional_call``. Both sides compute the same formulas in float64, so they agree to
rounding; every tolerance is :func:`_rounding_tol` (its docstring says how it is derived),
or, end to end, the engine's own componentwise bound on its Hessian-vector products.
ReLU and max-pooling make the Hessian piecewise; random inputs avoid the kinks, where
both libraries differentiate the active piece.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import models, tolerance
from advlip.attacks import count_ops, partition

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from advlip import torch_convert  # noqa: E402

pytestmark = [
    # PyTorch warns that padding="same" with an even kernel copies the input: expected here
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
    # torch.func.jvp loads decompositions through torch.jit.script, which warns (PyTorch's own)
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

# --------------------------------------------------------------------------- helpers


def _rounding_tol(k: int, a: np.ndarray, b: np.ndarray) -> float:
    """Absolute tolerance for comparing two float64 evaluations of the same quantity.

    Rounding model (advlip.tolerance): a computation with at most k operations on any
    chain is off by at most gamma_k times the sum of |terms| of each result entry; k is
    counted by count_ops on the JAX computation (PyTorch runs the same arithmetic). The
    sums of |terms| are not observable; we bound them by the total magnitude of both
    results, sum_j |a_j| + |b_j| over every entry — for these small, randomly
    initialised networks no entry's terms cancel by more than that (a documented bound,
    not a proof). Two sides each carry the error: factor 2.
    """
    return 2.0 * tolerance.gamma(k, np.float64) * float(np.abs(a).sum() + np.abs(b).sum())


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(tree)])


def _torch_flat(d: dict, names) -> np.ndarray:
    return np.concatenate([d[n].detach().numpy().ravel() for n in names])


@jax.jit
def _loss_grad_hvp(loss_fn, params, x, y, v):
    """Loss, gradient and forward-over-reverse HVP in params: one jvp of value_and_grad."""
    (L, g), (_, hv) = jax.jvp(lambda q: jax.value_and_grad(loss_fn)(q, x, y), (params,), (v,))
    return L, g, hv


@jax.jit
def _logits(apply, params, x):
    return apply(params, x)


def _converted(module, x):
    """(loss_fn, params) through advlip.models.from_torch when it exists, else convert."""
    from_torch = getattr(models, "from_torch", None)
    if from_torch is None:
        params, apply = torch_convert.convert(module, x)
        return models.ClassifierLoss(apply, "cross_entropy"), params
    out = from_torch(module, example_x=x)
    loss_fn = next(o for o in out if isinstance(o, models.ClassifierLoss))
    params = next(o for o in out if isinstance(o, dict))
    return loss_fn, params


def _randomise_norms(module, gen):
    """Nontrivial running statistics (BatchNorm) and affine parameters (every norm layer)."""

    def rand(t, scale, shift=0.0):
        t.copy_(shift + scale * torch.randn(t.shape, generator=gen, dtype=t.dtype))

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                rand(m.running_mean, 1.0)
                m.running_var.copy_(
                    0.5 + torch.rand(m.num_features, generator=gen, dtype=torch.float64)
                )
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm):
                rand(m.weight, 0.3, 1.0)
                rand(m.bias, 0.3)
    return module


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv-BN-ReLU-conv-BN, plus the (downsampled) input."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, k=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(4, 4))
        self.layer2 = BasicBlock(4, 6, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(6, k)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _mlp():
    return nn.Sequential(
        nn.Linear(5, 6), nn.Tanh(),
        nn.Linear(6, 6), nn.GELU(),
        nn.Linear(6, 6), nn.GELU(approximate="tanh"),
        nn.Linear(6, 6), nn.SiLU(),
        nn.Linear(6, 6), nn.Softplus(),
        nn.Linear(6, 6), nn.Sigmoid(),
        nn.Linear(6, 4),
    )  # fmt: skip


def _cnn():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 2, padding="same"), nn.BatchNorm2d(4), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(16, 3),
    )  # fmt: skip


MODELS = {
    "mlp": (_mlp, (5,), 4),
    "cnn": (_cnn, (2, 8, 8), 3),
    "resnet": (TinyResNet, (3, 6, 6), 3),
}


def _build(name, seed=0):
    make, shape, k = MODELS[name]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    module = _randomise_norms(make().double(), gen)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    return module, x, k


# --------------------------------------------------------------------------- loss, grad, HVP


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_gradient_and_hvp_equal_pytorchs(name):
    module, x, _ = _build(name)
    loss_fn, params = _converted(module, x)
    names = [n for n, _ in module.named_parameters()]
    assert sorted(params) == sorted(names)

    gen = torch.Generator().manual_seed(1)
    y = 1
    v_t = {
        n: torch.randn(p.shape, generator=gen, dtype=torch.float64)
        for n, p in module.named_parameters()
    }
    v = {n: jnp.asarray(t.numpy()) for n, t in v_t.items()}

    # PyTorch: functional_call in eval mode, grad and forward-over-reverse jvp(grad)
    module.eval()
    p_t = {n: p.detach() for n, p in module.named_parameters()}
    xb, yb = x[None], torch.tensor([y])

    def t_loss(p):
        return F.cross_entropy(torch.func.functional_call(module, p, (xb,)), yb)

    L_t = t_loss(p_t).detach().numpy()
    g_t = torch.func.grad(t_loss)(p_t)
    hv_t = torch.func.jvp(torch.func.grad(t_loss), (p_t,), (v_t,))[1]

    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y)
    L, g, hv = _loss_grad_hvp(loss_fn, params, xj, yj, v)
    L = np.asarray(L)
    grad_fn = jax.grad(loss_fn)

    def hvp_fn(p, x, y, v):
        return jax.jvp(lambda q: grad_fn(q, x, y), (p,), (v,))[1]

    # every comparison is of the same float64 formula; k is counted once, on the HVP's
    # jaxpr, which contains the loss's and the gradient's chains (a bound for all three)
    k = count_ops(hvp_fn, params, xj, yj, v)
    assert abs(L - L_t) <= _rounding_tol(k, L, L_t)
    for ours, ref in ((g, g_t), (hv, hv_t)):
        a = np.concatenate([np.asarray(ours[n]).ravel() for n in names])
        b = _torch_flat(ref, names)
        assert np.abs(b).max() > 0  # the comparison is not vacuous
        np.testing.assert_allclose(a, b, rtol=0, atol=_rounding_tol(k, a, b))


def test_params_are_the_trainable_parameters_in_the_modules_dtype():
    module, x, _ = _build("cnn")
    module[4].weight.requires_grad_(False)  # frozen: a constant of apply
    params, apply = torch_convert.convert(module, x)
    trainable = {n: p for n, p in module.named_parameters() if p.requires_grad}
    assert sorted(params) == sorted(trainable)
    assert "4.weight" not in params and "4.bias" in params
    assert not any("running" in n or "num_batches" in n for n in params)
    for n, p in trainable.items():
        assert params[n].dtype == jnp.float64
        # a copy: exactly equal
        np.testing.assert_array_equal(np.asarray(params[n]), p.detach().numpy())
    # the frozen weight and the BN statistics are constants: the logits still match
    module.eval()
    with torch.no_grad():
        ref = module(x[None])[0].numpy()
    z = np.asarray(_logits(apply, params, jnp.asarray(x.numpy())))
    k = count_ops(apply, params, jnp.asarray(x.numpy()))
    np.testing.assert_allclose(z, ref, rtol=0, atol=_rounding_tol(k, z, ref))


def test_float32_module_gives_float32_params():
    module = _mlp()  # float32, as PyTorch initialises
    x = torch.randn(5)
    params, apply = torch_convert.convert(module, x)
    assert {p.dtype for p in params.values()} == {jnp.dtype(jnp.float32)}
    assert _logits(apply, params, jnp.asarray(x.numpy())).dtype == jnp.float32


# --------------------------------------------------------------------------- layer variants


class Functional(nn.Module):
    """Functional and method calls fx emits: F.*, torch.*, view(size(0), -1), mul, add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2)
        self.fc = nn.Linear(4 * 2 * 2, 3)
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, x):
        h = F.relu(self.conv(x))
        h = torch.add(h, F.gelu(h), alpha=0.5) * self.scale
        h = torch.tanh(h) + torch.relu(h)
        h = F.adaptive_avg_pool2d(h, 2)
        h = h.view(h.size(0), -1)
        h = h.reshape(h.shape[0], -1).flatten(1)
        return self.fc(h).mul(2.0)


class Pools(nn.Module):
    """Pooling rules side by side: ceil_mode, padding counted or not, a divisor, uneven
    adaptive bins (10 rows into 3 or 4), adaptive max; concatenated with torch.cat."""

    def __init__(self):
        super().__init__()
        self.max = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)  # 10 -> 6, not 5
        self.avg_ceil = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True)  # 6 -> 4, not 3
        self.avg_nopad = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.adaptive = nn.AdaptiveAvgPool2d((3, 4))
        self.adaptive_max = nn.AdaptiveMaxPool2d(3)
        self.fc = nn.Linear(32 + 18 + 24 + 18 + 50, 3)

    def forward(self, x):
        h = self.max(x)
        parts = [
            self.avg_ceil(h),
            self.avg_nopad(h),
            self.adaptive(x),
            self.adaptive_max(x),
            F.avg_pool2d(x, 2, divisor_override=3),
        ]
        return self.fc(torch.cat([torch.flatten(q, 1) for q in parts], 1))


VARIANTS = {
    "convolutions": (
        lambda: nn.Sequential(
            nn.Conv2d(4, 6, 3, dilation=2, groups=2, padding=2),
            nn.Conv2d(6, 3, (2, 3), padding="same", dilation=(1, 2)),
            nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"),
            nn.Conv2d(3, 2, 3, padding=1, padding_mode="replicate"),
            nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", bias=False),
            nn.Conv2d(2, 2, 3, stride=2, padding="valid"),
            nn.Flatten(),
            nn.Linear(8, 3),
        ),
        (4, 6, 6),
    ),
    "pools": (Pools, (2, 10, 10)),
    "sequence-1d": (
        lambda: nn.Sequential(
            nn.Conv1d(2, 3, 3, padding=1),
            nn.BatchNorm1d(3),
            nn.SiLU(),
            nn.MaxPool1d(2),
            nn.AvgPool1d(2, ceil_mode=True),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(3, 3),
        ),
        (2, 9),
    ),
    "norms-and-activations": (
        lambda: nn.Sequential(
            nn.Linear(4, 6),
            nn.BatchNorm1d(6),
            nn.LeakyReLU(0.1),
            nn.Linear(6, 6),
            nn.LayerNorm(6),
            nn.ELU(),
            nn.Linear(6, 6),
            nn.GroupNorm(2, 6),
            nn.ReLU6(),
            nn.Linear(6, 3),
            nn.LogSoftmax(dim=1),
        ),
        (4,),
    ),
    "functional": (Functional, (2, 4, 4)),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_logits_equal_pytorchs(name):
    make, shape = VARIANTS[name]
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    module = _randomise_norms(make().double(), gen)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    params, apply = torch_convert.convert(module, x)
    module.eval()
    for xt in (x, torch.randn(shape, generator=gen, dtype=torch.float64)):  # a second input
        with torch.no_grad():
            ref = module(xt[None])[0].numpy()
        xj = jnp.asarray(xt.numpy())
        z = np.asarray(_logits(apply, params, xj))
        assert z.shape == ref.shape
        np.testing.assert_allclose(
            z, ref, rtol=0, atol=_rounding_tol(count_ops(apply, params, xj), z, ref)
        )


# --------------------------------------------------------------------------- refusals


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.LSTM(4, 4))

    def forward(self, x):
        return self.features(x)[0]


class Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, -1)


class WithCustom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.block = Cumsum()

    def forward(self, x):
        return self.block(self.fc(x))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class AlwaysDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)  # training=True by default: random in eval too


def test_unsupported_layer_is_named():
    with pytest.raises(ValueError, match=r"module 'features\.3' of type LSTM is not supported"):
        torch_convert.convert(WithLSTM().double(), torch.randn(2, 4, dtype=torch.float64))


def test_unknown_function_is_named_with_its_module():
    with pytest.raises(ValueError, match=r"cumsum.*'block' of type Cumsum.*not supported"):
        torch_convert.convert(WithCustom().double(), torch.randn(4, dtype=torch.float64))


@pytest.mark.parametrize(
    "module, match",
    [
        (DataDependent(), "cannot be traced by torch.fx"),
        (AlwaysDropout(), "training=True"),
        (
            nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False)),
            "batch statistics",
        ),
    ],
    ids=["control-flow", "random-dropout", "batch-statistics"],
)
def test_untranslatable_semantics_are_refused(module, match):
    with pytest.raises(ValueError, match=match):
        torch_convert.convert(module.double(), torch.randn(4, dtype=torch.float64))


@pytest.mark.parametrize(
    "example_x",
    [
        torch.ones(4, dtype=torch.int64),
        [0.0, 1.0, 2.0, 3.0],
        torch.tensor(1.0),
        torch.full((4,), float("nan")),
    ],
    ids=["integer", "list", "scalar", "nan"],
)
def test_bad_example_x_is_named(example_x):
    with pytest.raises(ValueError, match="example_x"):
        torch_convert.convert(nn.Linear(4, 3), example_x)


def test_batched_example_x_is_refused_by_torch_and_named():
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 3))
    with pytest.raises(ValueError, match="example_x"):
        torch_convert.convert(module, torch.randn(2, 1, 5, 5))  # (n, C, H, W): batched


def test_non_module_and_float64_without_x64_are_refused():
    with pytest.raises(ValueError, match="module"):
        torch_convert.convert(lambda x: x, torch.randn(4))
    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        torch_convert.convert(nn.Linear(4, 3).double(), torch.randn(4, dtype=torch.float64))


def test_batched_x_at_call_time_is_refused():
    module, x, _ = _build("cnn")
    params, apply = torch_convert.convert(module, x)
    with pytest.raises(ValueError, match="x has shape"):
        apply(params, jnp.zeros((2, *x.shape)))


# --------------------------------------------------------------------------- modes, hashing


def test_training_modes_and_statistics_are_restored():
    module, x, _ = _build("resnet")
    module.train()
    module.layer2.eval()  # mixed modes: each restored as it was
    before = {m: m.training for m in module.modules()}
    stats = {n: b.clone() for n, b in module.named_buffers()}
    torch_convert.convert(module, x)
    assert {m: m.training for m in module.modules()} == before
    assert any(before.values()) and not all(before.values())
    for n, b in module.named_buffers():  # the check ran in eval mode: no update
        assert torch.equal(b, stats[n]), n


def test_apply_is_hashable_and_shares_compilation_across_conversions():
    m1, x1, _ = _build("resnet", seed=0)
    m2, x2, _ = _build("resnet", seed=5)  # same architecture, other weights and statistics
    _, a1 = torch_convert.convert(m1, x1)
    _, a2 = torch_convert.convert(m2, x2)
    hash(a1)
    s1 = partition(models.ClassifierLoss(a1))[1]
    s2 = partition(models.ClassifierLoss(a2))[1]
    assert s1 == s2 and hash(s1) == hash(s2)
    assert a1.graph == a2.graph
    # the constants (BN statistics) are array leaves, not part of the static graph
    assert len(jax.tree.leaves(a1)) == len(a1.consts) > 0
    other = nn.Sequential(*[nn.Tanh() if isinstance(m, nn.ReLU) else m for m in _cnn()]).double()
    m3, x3, _ = _build("cnn")
    _, a3 = torch_convert.convert(m3, x3)
    _, a4 = torch_convert.convert(other, x3)
    assert partition(models.ClassifierLoss(a3))[1] != partition(models.ClassifierLoss(a4))[1]


# --------------------------------------------------------------------------- end to end


def test_linearize_on_images_gives_a_symmetric_total_hessian():
    from advlip.adversarial import linearize

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3)
    ).double()
    gen = torch.Generator().manual_seed(2)
    X = torch.randn((3, 1, 6, 6), generator=gen, dtype=torch.float64)
    loss_fn, params = _converted(module, X[0])
    y = jnp.asarray([0, 1, 2])
    pt = linearize(
        loss_fn, params, jnp.asarray(X.numpy()), y, eps=0.05, p=2, key=jax.random.PRNGKey(0)
    )
    rng = np.random.default_rng(0)
    v = jnp.asarray(rng.standard_normal(pt.dim))
    w = jnp.asarray(rng.standard_normal(pt.dim))
    Hv, Hw = np.asarray(pt.total_hvp(v)), np.asarray(pt.total_hvp(w))
    v, w = np.asarray(v), np.asarray(w)
    assert np.abs(Hv).max() > 0
    # |v.Hw - w.Hv| <= |v|.err(Hw) + |w|.err(Hv) (hvp_error: componentwise bounds of the
    # products) + the two dot products' rounding, gamma_P of their sums of |terms|
    err = np.abs(v) @ pt.hvp_error(w) + np.abs(w) @ pt.hvp_error(v)
    err += tolerance.gamma(pt.dim) * (np.abs(v) @ np.abs(Hw) + np.abs(w) @ np.abs(Hv))
    assert abs(v @ Hw - w @ Hv) <= err
    assert np.isfinite(float(pt.loss()))
