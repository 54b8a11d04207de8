r"""The model adapters (advlip.adapters): equinox, flax nnx and flax linen classifiers.

Each adapter's per-example loss, its gradient in the parameters and a Hessian-vector
product (``jax.jvp`` of ``jax.grad``) are compared with the framework's own computation —
the model called through its own API in inference mode, ``optax`` cross-entropy, and
derivatives by ``eqx.filter_value_and_grad`` / ``eqx.filter_jvp`` (equinox), by JAX
transforms of the ``nnx.split`` state rebuilt with ``nnx.merge`` (nnx's functional API),
and by ``jax.value_and_grad`` / ``jax.jvp`` of ``module.apply`` (linen). Then: inference
mode is what is compared (the training-mode loss is farther off than the tolerance), the
equinox CNN runs through :func:`advlip.adversarial.linearize` to a symmetric total
Hessian, a second adapter reuses the compiled programs, and bad input is refused.

Tolerances. Both routes evaluate the same function with floating-point operations in
float64. To first order, rounding each of the k operations of a route by a relative
:math:`u` moves a computed quantity q by at most :math:`\gamma_k S`, with S the
first-order sensitivity of q to its inputs times their size,
:math:`S = |q| + \sum_j |\partial q/\partial a_j|\,|a_j|` over every float input
:math:`a_j` (parameters, closed-over constants such as BatchNorm statistics, the input x,
the tangent v) — the error model of :func:`advlip.attacks.loss_error`, applied to each
component of the gradient and of the HVP as well. k is counted on the jaxprs of both
routes (:func:`advlip.attacks.count_ops`, the larger), and two routes differ by at most
the sum of their bounds, :math:`2\gamma_k S`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from advlip import adapters, adversarial, models, tolerance
from advlip.attacks import count_ops, partition

H = W = 4  # tiny images: d = 16
K = 3  # classes
Y = 2  # the label of the single-example comparisons


def _ce(z, y):
    return optax.softmax_cross_entropy_with_integer_labels(z, y)


def _flat(tree) -> np.ndarray:
    return np.asarray(ravel_pytree(tree)[0], dtype=np.float64)


def _split_float(args):
    """Float leaves of ``args`` (what rounds and what q is sensitive to) and the rest."""
    return eqx.partition(args, eqx.is_inexact_array)


def _reference(q, args) -> tuple[np.ndarray, np.ndarray, int]:
    r"""``q(*args)`` flattened, its scale :math:`|q| + \sum_j |\partial q/\partial a_j| |a_j|`
    over the float leaves a of ``args`` (componentwise), and its operation count k."""
    dyn, static = _split_float(args)
    flat, unravel = ravel_pytree(dyn)

    def g(f):
        return ravel_pytree(q(*eqx.combine(unravel(f), static)))[0]

    value, J = jax.jit(lambda f: (g(f), jax.jacfwd(g)(f)))(flat)
    value, J, flat = (np.asarray(a, dtype=np.float64) for a in (value, J, flat))
    return value, np.abs(value) + np.abs(J) @ np.abs(flat), count_ops(g, flat)


def _check_adapter(params, loss_fn, x, v, reference, ref_args) -> tuple[float, float]:
    """The loss, gradient and HVP of ``loss_fn`` at (params, x, Y) along v equal the
    framework's ``reference(*ref_args)`` — ``((loss, grad), (grad·v, hvp))`` — within
    2 γ_k S componentwise (module docstring). One program per route: the HVP's
    forward-over-reverse pass carries the loss and the gradient as its primal output.
    Returns the framework's loss and its tolerance."""

    def ours(p, z, t):
        return jax.jvp(lambda q: jax.value_and_grad(loss_fn)(q, z, Y), (p,), (t,))

    got = _flat(jax.jit(ours)(params, x, v))
    assert got[0] == _flat(jax.jit(ours)(params, x, v))[0]  # deterministic: no dropout draw
    want, scale, k_ref = _reference(reference, ref_args)
    assert got.shape == want.shape
    tol = 2 * tolerance.gamma(max(k_ref, count_ops(ours, params, x, v))) * scale
    err = np.abs(got - want)
    i = int(err.argmax())
    assert np.all(err <= tol), f"max error {err[i]:.3g} at component {i}, tolerance {tol[i]:.3g}"
    assert np.all(np.abs(want[1:]) > 0)  # a nonzero gradient and HVP: nothing compared is vacuous
    return float(want[0]), float(tol[0])


def _assert_training_mode_differs(eval_loss: float, train_loss: float, tol: float) -> None:
    """The framework's training-mode loss of the same single input (batch statistics,
    dropout) is farther from its inference-mode loss than the agreement tolerance: so
    an adapter left in training mode would fail :func:`_check_adapter`."""
    assert abs(train_loss - eval_loss) > tol, (train_loss, eval_loss, tol)


def _tangent(params, key):
    flat, unravel = ravel_pytree(params)
    return unravel(jax.random.normal(key, flat.shape, flat.dtype))


# --------------------------------------------------------------------------- equinox models


class EqxCNN(eqx.Module):
    """Conv2d → BatchNorm → tanh → Dropout → Linear on one image (1, H, W)."""

    conv: eqx.nn.Conv2d
    bn: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout
    lin: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.conv = eqx.nn.Conv2d(1, 2, 3, padding=1, key=k1)
        self.bn = eqx.nn.BatchNorm(2, "batch", mode="batch", momentum=0.9)
        self.drop = eqx.nn.Dropout(0.5)
        self.lin = eqx.nn.Linear(2 * H * W, K, key=k2)

    def __call__(self, x, state, *, key=None):
        h, state = self.bn(self.conv(x), state)
        h = self.drop(jnp.tanh(h), key=key)
        return self.lin(h.ravel()), state


def _eqx_cnn():
    """The CNN with a nontrivial BatchNorm state: running means ≠ 0, variances ≠ 1, and a
    step counter of 3 (so the debiasing factor 1 - 0.9³ enters)."""
    model, state = eqx.nn.make_with_state(EqxCNN)(jax.random.PRNGKey(0))
    stats = (jnp.array([0.3, -0.2]), jnp.array([0.5, 2.0]))
    state = state.set(model.bn.batch_state_index, stats)
    state = state.set(model.bn.batch_counter, jnp.array(3))
    return model, state


def _eqx_mlp():
    return eqx.nn.MLP(4, K, 6, 1, activation=jnp.tanh, key=jax.random.PRNGKey(1))


def _image(key, n=None):
    shape = (1, H, W) if n is None else (n, 1, H, W)
    return jax.random.normal(key, shape)


def test_equinox_mlp_matches_equinox():
    mlp = _eqx_mlp()
    params, loss_fn = adapters.from_equinox(mlp)
    assert isinstance(loss_fn, models.ClassifierLoss)
    x = jnp.array([0.3, -1.2, 0.8, 0.1])
    v = _tangent(params, jax.random.PRNGKey(2))

    def reference(m, z, t):
        value_and_grad = eqx.filter_value_and_grad(lambda mm: _ce(mm(z), Y))
        return eqx.filter_jvp(value_and_grad, (m,), (t,))

    _check_adapter(params, loss_fn, x, v, reference, (mlp, x, v))


def test_equinox_stateful_cnn_matches_equinox_in_inference_mode():
    model, state = _eqx_cnn()
    params, loss_fn = adapters.from_equinox(model, state=state)
    # the running statistics are constants: not among the trained parameters
    n_params = sum(a.size for a in jax.tree.leaves(params))
    assert n_params == (9 * 2 + 2) + (2 + 2) + (2 * H * W * K + K)
    x = _image(jax.random.PRNGKey(3))
    v = _tangent(params, jax.random.PRNGKey(4))
    inference = eqx.nn.inference_mode(model)

    def value(m, st, z):
        return _ce(m(z, st)[0], Y)

    def reference(m, st, z, t):
        return eqx.filter_jvp(eqx.filter_value_and_grad(lambda mm: value(mm, st, z)), (m,), (t,))

    evaluated, tol = _check_adapter(params, loss_fn, x, v, reference, (inference, state, x, v))

    # training mode: BatchNorm on the statistics of the (single-example) batch, Dropout on;
    # a copy of the state, since a training-mode call invalidates the State it is given
    state_copy = jax.tree.unflatten(*reversed(jax.tree.flatten(state)))

    @eqx.filter_jit
    def trained(m, st, z, key):
        batch = jax.vmap(lambda zz, kk: m(zz, st, key=kk)[0], axis_name="batch")
        return _ce(batch(z[None], key[None])[0], Y)

    _assert_training_mode_differs(
        evaluated, float(trained(model, state_copy, x, jax.random.PRNGKey(6))), tol
    )


# --------------------------------------------------------------------------- flax


def _nnx_model():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            f64 = dict(param_dtype=jnp.float64)
            self.conv = nnx.Conv(1, 2, (3, 3), padding="SAME", rngs=rngs, **f64)
            self.bn = nnx.BatchNorm(2, momentum=0.9, rngs=rngs, **f64)
            self.drop = nnx.Dropout(0.5, rngs=rngs)
            self.lin = nnx.Linear(2 * H * W, K, rngs=rngs, **f64)

        def __call__(self, x):  # x: (batch, H, W, 1)
            h = self.drop(jnp.tanh(self.bn(self.conv(x))))
            return self.lin(h.reshape(h.shape[0], -1))

    net = Net(nnx.Rngs(0))
    # nontrivial running statistics, in float64 (nnx makes them float32 whatever param_dtype)
    net.bn.mean = nnx.BatchStat(jnp.array([0.3, -0.2]))
    net.bn.var = nnx.BatchStat(jnp.array([0.5, 2.0]))
    return net


def test_flax_nnx_matches_nnx_in_eval_mode():
    pytest.importorskip("flax")
    from flax import nnx

    net = _nnx_model()
    params, loss_fn = adapters.from_flax(net)
    # the caller's module is left in training mode; only Params are trained
    assert net.drop.deterministic is False and net.bn.use_running_average is False
    assert set(params) == {"conv", "bn", "lin"} and set(params["bn"]) == {"bias", "scale"}
    x = jax.random.normal(jax.random.PRNGKey(3), (H, W, 1))
    v = _tangent(params, jax.random.PRNGKey(4))

    evaluated = nnx.view(net, deterministic=True, use_running_average=True)
    graphdef, pstate, rest = nnx.split(evaluated, nnx.Param, ...)

    # nnx's functional API: jax transforms of the split state, the module rebuilt by
    # nnx.merge (nnx.grad itself refuses BatchStat values traced by an outer jax.jit)
    def reference(ps, rs, z, t):
        def loss(q):
            return _ce(nnx.merge(graphdef, q, rs)(z[None])[0], Y)

        def value_and_grad(q):
            value, g = jax.value_and_grad(loss)(q)
            return value, nnx.to_pure_dict(g)

        return jax.jvp(value_and_grad, (ps,), (t,))

    _, v_state, _ = nnx.split(evaluated, nnx.Param, ...)
    nnx.replace_by_pure_dict(v_state, v)
    want, tol = _check_adapter(params, loss_fn, x, v, reference, (pstate, rest, x, v_state))

    # training mode on the same single input: batch statistics, dropout
    train_def, train_state = nnx.split(net)

    @jax.jit
    def trained(st, z):
        return _ce(nnx.merge(train_def, st)(z[None])[0], Y)

    _assert_training_mode_differs(want, float(trained(train_state, x)), tol)


def _linen_model():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = True):  # x: (batch, H, W, 1)
            f64 = dict(param_dtype=jnp.float64)
            h = nn.Conv(2, (3, 3), padding="SAME", **f64)(x)
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9, **f64)(h)
            h = nn.Dropout(0.5, deterministic=not train)(jnp.tanh(h))
            return nn.Dense(K, **f64)(h.reshape(h.shape[0], -1))

    net = Net()
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, H, W, 1)), train=False)
    variables = {
        "params": variables["params"],
        "batch_stats": {
            "BatchNorm_0": {"mean": jnp.array([0.3, -0.2]), "var": jnp.array([0.5, 2.0])}
        },
    }
    return net, variables


def test_flax_linen_matches_linen_apply():
    pytest.importorskip("flax")
    net, variables = _linen_model()
    params, loss_fn = adapters.from_flax(net, variables, call_kwargs={"train": False})
    x = jax.random.normal(jax.random.PRNGKey(3), (H, W, 1))
    v = _tangent(params, jax.random.PRNGKey(4))

    def value(ps, stats, z):
        out = net.apply({"params": ps, "batch_stats": stats}, z[None], train=False)
        return _ce(out[0], Y)

    def reference(ps, stats, z, t):
        return jax.jvp(jax.value_and_grad(lambda q: value(q, stats, z)), (ps,), (t,))

    stats = variables["batch_stats"]
    want, tol = _check_adapter(params, loss_fn, x, v, reference, (params, stats, x, v))

    @jax.jit
    def trained(variables, z, key):
        out, _ = net.apply(
            variables, z[None], train=True, mutable=["batch_stats"], rngs={"dropout": key}
        )
        return _ce(out[0], Y)

    _assert_training_mode_differs(want, float(trained(variables, x, jax.random.PRNGKey(6))), tol)
    # left in training mode, linen refuses to update its immutable statistics
    _, train_loss = adapters.from_flax(net, variables)
    with pytest.raises(Exception, match="batch_stats"):
        train_loss(params, x, 0)


def test_flax_unbatched_module():
    pytest.importorskip("flax")
    from flax import nnx

    lin = nnx.Linear(4, K, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    x = jnp.array([0.3, -1.2, 0.8, 0.1])
    p1, batched = adapters.from_flax(lin)
    p2, unbatched = adapters.from_flax(lin, batched=False)
    # x @ kernel + bias: 4 products and 4 sums per logit, each route within
    # γ_8 (|x| @ |kernel| + |bias|) of the exact value
    tol = 2 * tolerance.gamma(8) * (np.abs(x) @ np.abs(lin.kernel[...]) + np.abs(lin.bias[...]))
    assert np.all(np.abs(batched.apply(p1, x) - unbatched.apply(p2, x)) <= tol)
    assert np.all(np.abs(unbatched.apply(p2, x) - lin(x)) <= tol)
    assert batched.apply(p1, x).shape == (K,)


# --------------------------------------------------------------------------- end to end


def test_equinox_cnn_end_to_end_symmetric_total_hessian_and_compile_cache():
    model, state = _eqx_cnn()
    params, loss_fn = adapters.from_equinox(model, state=state)
    X = _image(jax.random.PRNGKey(7), 4)
    y = jnp.array([0, 1, 2, 0])
    pt = adversarial.linearize(loss_fn, params, X, y, eps=0.05, p=2, key=jax.random.PRNGKey(8))
    P, (n, d) = pt.dim, pt.X.shape
    assert np.isfinite(float(pt.loss()))
    mv = pt.matvec(hessian="total", solver="dense")
    Ht = np.stack([np.asarray(mv(e)) for e in jnp.eye(P, dtype=pt.dtype)])  # row j: ∇²L e_j
    assert np.all(np.isfinite(Ht))

    # The exact total Hessian is symmetric, also at an inexact δ: its formula
    # mean_i (H_θθ + H_θx A_i⁺ H_xθ) is symmetric for every δ (A_i⁺ is). So |H_ij - H_ji|
    # is at most twice the rounding of the operator on a unit vector, which (the model of
    # AdversarialPoint's operator error) is, per example, γ_k times the Frobenius norm of
    # the example's total Hessian, ≤ ‖H_θθ‖_F + ‖H_θx‖_F²/λ_min(A_i) (‖A_i⁺‖₂ = 1/λ_min),
    # plus the tangent solve's κ(A_i)·ρ·‖H_θx‖_F²/λ_min, ρ = γ_{2d+4} + γ_{c(2d+4)},
    # c = 2d + 5 (the factorisation's backward error is below it); k the ops of one
    # example's HVP plus the mean over n. The blocks are computed here independently, by
    # forward-over-reverse differentiation of the example loss at x + δ.
    flat, unravel = ravel_pytree(params)

    def joint(th, z, yi):
        return loss_fn(unravel(th), z.reshape(1, H, W), yi)

    lam = np.asarray(pt.tangent_min, dtype=np.float64)
    kappa = np.asarray(pt.tangent_max, dtype=np.float64) / lam
    assert np.all(lam > 0)
    Z = pt.X + pt.delta
    Htt, Htx = jax.jit(jax.vmap(jax.jacfwd(jax.grad(joint), argnums=(0, 1)), in_axes=(None, 0, 0)))(
        flat, Z, y
    )
    f_tt = np.linalg.norm(np.asarray(Htt), axis=(1, 2))
    f_tx = np.linalg.norm(np.asarray(Htx), axis=(1, 2))
    k = (
        count_ops(
            lambda th, z, t: jax.jvp(lambda q: jax.grad(joint)(q, z, 0), (th,), (t,))[1],
            flat,
            Z[0],
            flat,
        )
        + n
    )
    rho = tolerance.gamma(2 * d + 4) + tolerance.gamma((2 * d + 5) * (2 * d + 4))
    op = np.mean(tolerance.gamma(k) * (f_tt + f_tx**2 / lam) + kappa * rho * f_tx**2 / lam)
    asym = np.abs(Ht - Ht.T)
    assert np.max(asym) <= 2 * op, (np.max(asym), op)
    assert np.max(np.abs(Ht)) > 1e3 * op  # the check is not vacuous

    # A second adapter of the same model hashes alike: the compiled program is reused
    # (and, same inputs through the same program, gives the same bits).
    e0 = jnp.eye(P, dtype=pt.dtype)[0]
    col = mv(e0)
    size = adversarial.apply_matvec_jit._cache_size()
    params2, loss_fn2 = adapters.from_equinox(model, state=state)
    assert partition(loss_fn2)[1] == partition(loss_fn)[1]
    pt2 = adversarial.linearize(loss_fn2, params2, X, y, eps=0.05, p=2, key=jax.random.PRNGKey(8))
    col2 = pt2.matvec(hessian="total", solver="dense")(e0)
    assert adversarial.apply_matvec_jit._cache_size() == size
    assert np.array_equal(np.asarray(col2), np.asarray(col))


def _same_static(make) -> bool:
    """Two adapters of one model have equal, equally hashed static parts (what the
    engine's compile cache keys on; partition raises if one cannot be hashed)."""
    a, b = partition(make()[1])[1], partition(make()[1])[1]
    return a == b and hash(a) == hash(b)


def test_adapters_hash_alike():
    mlp = _eqx_mlp()
    assert _same_static(lambda: adapters.from_equinox(mlp))
    pytest.importorskip("flax")
    net = _nnx_model()
    assert _same_static(lambda: adapters.from_flax(net))
    linen_net, variables = _linen_model()
    assert _same_static(
        lambda: adapters.from_flax(linen_net, variables, call_kwargs={"train": False})
    )

    # the static part carries the call options: another flag is another program
    def static(train):
        return partition(adapters.from_flax(linen_net, variables, call_kwargs={"train": train})[1])[
            1
        ]

    assert static(True) != static(False)


# --------------------------------------------------------------------------- bad input


def test_labels_out_of_range_name_y():
    params, loss_fn = adapters.from_equinox(_eqx_mlp())
    X = jnp.zeros((2, 4))
    with pytest.raises(ValueError, match=r"y holds the label 3; allowed: integer classes 0\.\.2"):
        adversarial.linearize(loss_fn, params, X, jnp.array([0, 3]), eps=0.1, p=2)


def test_bad_equinox_arguments():
    mlp = _eqx_mlp()
    with pytest.raises(ValueError, match=r"loss='hinge' is not a known loss on logits; allowed"):
        adapters.from_equinox(mlp, loss="hinge")
    with pytest.raises(ValueError, match="model must be an equinox.Module"):
        adapters.from_equinox(lambda x: x)
    model, state = _eqx_cnn()
    with pytest.raises(ValueError, match="state is required"):
        adapters.from_equinox(model)
    with pytest.raises(ValueError, match="state must be None for a model without stateful"):
        adapters.from_equinox(mlp, state=state)
    with pytest.raises(ValueError, match="state must be None or an equinox.nn.State"):
        adapters.from_equinox(model, state={"mean": 0.0})

    class Tagged(eqx.Module):
        lin: eqx.nn.Linear
        tags: set

        def __call__(self, x):
            return self.lin(x)

    tagged = Tagged(eqx.nn.Linear(2, 3, key=jax.random.PRNGKey(0)), {"a"})
    with pytest.raises(ValueError, match="model holds an attribute that cannot be hashed"):
        adapters.from_equinox(tagged)


def test_bad_flax_arguments():
    pytest.importorskip("flax")
    import flax.linen as nn
    from flax import nnx

    net, variables = _linen_model()
    with pytest.raises(ValueError, match="variables is required for a flax.linen module"):
        adapters.from_flax(net)
    with pytest.raises(ValueError, match="variables must be a dict with a 'params' collection"):
        adapters.from_flax(net, {"batch_stats": variables["batch_stats"]})
    with pytest.raises(ValueError, match=r"loss='mse' is not a known loss on logits"):
        adapters.from_flax(net, variables, loss="mse")
    with pytest.raises(ValueError, match="module must be a flax.nnx.Module or a flax.linen"):
        adapters.from_flax(_eqx_mlp())
    lin = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="variables must be None for a flax.nnx module"):
        adapters.from_flax(lin, variables)
    with pytest.raises(ValueError, match="batched='yes' is not allowed; allowed: True or False"):
        adapters.from_flax(lin, batched="yes")
    with pytest.raises(ValueError, match="call_kwargs"):
        adapters.from_flax(nn.Dense(3), variables, call_kwargs={"mask": jnp.ones(3)})
