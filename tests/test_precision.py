"""Precision: every error bound advlip reports is that of the dtype the computation ran in.

flax and equinox initialise float32 parameters. advlip computes in the working dtype
(the least precise of params and X) and derives each bound from that dtype's unit
roundoff. The properties below compare a float32 computation with a float64 one **on
the same float32-representable inputs** (the float32 arrays cast up, and ε, κ chosen
representable in float32), so the difference is pure rounding plus the float32
attack's error — exactly what the float32 bound claims to cover. The float64 result
carries its own (~1e-9 times smaller) bound, so each check is
``|r32 − r64| ≤ bound32 + bound64``: the distance between two approximations of the
same exact quantity is at most the sum of their errors.

Before this was fixed, a float32 problem was silently promoted to float64 inside the
attack, and the top eigenvalue's ``bound`` was the Lanczos residual alone — 0 once the
Krylov space is invariant — although the float32 and float64 values differ by ~1e-7.
"""

import json
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fresh import run_python
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from advlip import adversarial, attacks, models, spectral, tolerance

D, WIDTH, N = 4, 5, 6
_EXAMPLES = max(4, min(12, settings.default.max_examples // 3))


def _f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float32), tree)


def _up(tree):
    # float32 → float64 is exact: the float64 run sees the very same numbers
    return jax.tree.map(lambda a: jnp.asarray(a).astype(jnp.float64), tree)


@st.composite
def problems(draw):
    """A tanh MLP of fixed shapes (d = 4, width 5, n = 6: one compiled program per dtype;
    narrower networks by zeroing hidden units), float32 inputs, and a regime:
    ``boundary`` (L2, small ε: maximisers on the sphere, G2) or ``interior`` (input
    curvature κ above the network's: maximisers inside the ball, G1)."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    width = draw(st.integers(2, WIDTH))
    scale = draw(st.sampled_from([1.0, 2.0]))
    keep = (np.arange(WIDTH) < width).astype(float)
    params = [
        {
            "W": scale * rng.standard_normal((WIDTH, D)) / 2 * keep[:, None],
            "b": 0.2 * rng.standard_normal(WIDTH) * keep,
        },
        {
            "W": scale * rng.standard_normal((1, WIDTH)) / np.sqrt(width) * keep[None, :],
            "b": 0.2 * rng.standard_normal(1),
        },
    ]
    X = rng.standard_normal((N, D)) / 2
    y = rng.choice([-1.0, 1.0], N)
    regime = draw(st.sampled_from(["boundary", "interior"]))
    if regime == "boundary":
        # powers of two: representable in float32, so both runs use the same ball
        loss, eps = models.MLPLoss("tanh"), draw(st.sampled_from([0.0625, 0.125, 0.25]))
    else:
        # κ > sup λ_max(H_xx) of this network (|tanh''| ≤ 0.77, ‖W1‖² ‖W2‖ ≲ (2 scale)³):
        # a power of two, interior maximisers for ε = 1
        loss, eps = models.MLPLoss("tanh", kappa=float(2.0 ** np.ceil(np.log2(8 * scale**3)))), 1.0
    return loss, _f32(params), jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), eps


def _points(problem):
    loss, params, X, y, eps = problem
    pt32 = adversarial.linearize(loss, params, X, y, eps=eps, p=2.0)
    pt64 = adversarial.linearize(_up(loss), _up(params), _up(X), _up(y), eps=eps, p=2.0)
    return pt32, pt64


@settings(max_examples=_EXAMPLES)
@given(problems())
def test_float32_bounds_cover_the_difference_to_float64(problem):
    pt32, pt64 = _points(problem)
    assert pt32.dtype == np.float32 and pt64.dtype == np.float64
    assume(pt32.all_determined and pt64.all_determined and pt32.cases == pt64.cases)
    # two maximisers of one example are O(ε) apart; a tie between two of them (the
    # float32 run picking the other one) is Danskin's non-uniqueness, not rounding
    assume(np.abs(np.asarray(pt32.delta, np.float64) - np.asarray(pt64.delta)).max() < 1e-3)

    # the top eigenvalue of the total Hessian
    e32, e64 = pt32.top_eigenvalue(), pt64.top_eigenvalue()
    diff = abs(float(e32.value) - float(e64.value))
    assert diff <= float(e32.bound) + float(e64.bound), (diff, e32, e64)
    # the bound is float32-sized, not the float64 one the old code reported (0 here)
    assert float(e32.bound) > 1e3 * float(e64.bound)

    # the Danskin gradient
    g32 = np.asarray(ravel_pytree(pt32.grad())[0], dtype=np.float64)
    g64 = np.asarray(ravel_pytree(pt64.grad())[0])
    bound = pt32.gradient_error() + pt64.gradient_error()
    assert np.all(np.abs(g32 - g64) <= bound), np.max(np.abs(g32 - g64) / bound)

    # a total Hessian-vector product along a float32 vector
    v = np.random.default_rng(0).standard_normal(pt32.dim).astype(np.float32)
    h32 = np.asarray(pt32.total_hvp(jnp.asarray(v)), dtype=np.float64)
    h64 = np.asarray(pt64.total_hvp(jnp.asarray(v, jnp.float64)))
    bound = pt32.hvp_error(jnp.asarray(v)) + pt64.hvp_error(jnp.asarray(v, jnp.float64))
    assert np.all(np.abs(h32 - h64) <= bound), np.max(np.abs(h32 - h64) / bound)

    # the dense total Hessian
    B32, B64 = pt32.blocks(), pt64.blocks()
    dH = np.abs(np.asarray(B32.total, np.float64) - np.asarray(B64.total))
    assert np.all(dH <= np.asarray(B32.error) + np.asarray(B64.error))


@settings(max_examples=_EXAMPLES)
@given(problems())
def test_loss_error_covers_float32_rounding(problem):
    """attacks.loss_error bounds |ℓ32 − ℓ64| at any point of the ball (here random ones)."""
    loss, params, X, y, eps = problem
    delta = attacks.sample_ball(jax.random.PRNGKey(2), X.shape, eps=eps, p=2.0)
    delta = jnp.asarray(delta, jnp.float32)
    l32 = jax.vmap(lambda x, yi: loss(params, x, yi))(X + delta, y)
    l64 = jax.vmap(lambda x, yi: _up(loss)(_up(params), x, yi))(_up(X + delta), _up(y))
    b32 = attacks.loss_error(loss, params, X, y, delta)
    b64 = attacks.loss_error(_up(loss), _up(params), _up(X), _up(y), _up(delta))
    assert b32.dtype == np.float32
    diff = np.abs(np.asarray(l32, np.float64) - np.asarray(l64))
    assert np.all(diff <= np.asarray(b32, np.float64) + np.asarray(b64))


def test_float32_inputs_are_not_promoted_to_float64():
    """Under float64 mode a float64 scalar meeting a float32 array promotes it: nothing
    of a float32 problem may come back float64 (nor run in float64 inside)."""
    loss, params, X, y, eps = _fixed_problem()
    res = attacks.pgd(loss, params, X, y, eps=eps, p=2.0)
    for name in ("delta", "loss", "grad_x", "tol", "tangent_min", "value_error"):
        assert getattr(res, name).dtype == jnp.float32, name
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(res.danskin_grad))
    assert res.kkt.residual.dtype == jnp.float32
    pt = adversarial.linearize(loss, params, X, y, eps=eps, p=2.0, attack=res)
    assert pt.attack is res and pt.dtype == np.float32
    assert pt.total_hvp(jnp.ones(pt.dim, jnp.float32)).dtype == jnp.float32
    assert pt.total_hvp(jnp.ones(pt.dim)).dtype == jnp.float32  # a float64 v is cast down
    assert pt.total_hessian().dtype == jnp.float32
    assert pt.top_eigenvalue().value.dtype == jnp.float32
    # float32 parameters with float64 data: the working dtype is float32 for both
    pt2 = adversarial.linearize(loss, params, _up(X), y, eps=eps, p=2.0)
    assert pt2.dtype == np.float32 and pt2.X.dtype == jnp.float32
    # every norm: the L1 projection is the one that needed its own float32-safe version
    for p in (1.0, float("inf")):
        r = attacks.pgd(loss, params, X, y, eps=eps, p=p)
        assert r.delta.dtype == jnp.float32 and r.all_converged


def _fixed_problem():
    rng = np.random.default_rng(5)
    params = [
        {"W": rng.standard_normal((WIDTH, D)) / 2, "b": 0.2 * rng.standard_normal(WIDTH)},
        {"W": rng.standard_normal((1, WIDTH)) / 2, "b": 0.2 * rng.standard_normal(1)},
    ]
    X, y = rng.standard_normal((N, D)) / 2, rng.choice([-1.0, 1.0], N)
    return models.MLPLoss("tanh"), _f32(params), jnp.asarray(X, jnp.float32), jnp.asarray(y), 0.125


def test_the_old_zero_bound_is_now_only_one_part():
    """The root cause: Lanczos' a-posteriori bound |β s| is 0 once the Krylov space is
    invariant (P steps here), and it was the whole reported bound. It is still reported
    (``krylov``), beside the eigensolver's and the operator's rounding and the attack's
    error, which are not 0 in float32."""
    loss, params, X, y, eps = _fixed_problem()
    est = adversarial.top_eigenvalue(loss, params, X, y, eps=eps, p=2.0)
    # Lanczos stopped on an invariant Krylov space (at most P steps; where exactly
    # depends on the start vector drawn from the key) …
    assert est.steps <= ravel_pytree(params)[0].size
    # … so its a-posteriori bound is ~0, and it is not the whole bound any more
    assert est.krylov <= tolerance.unit_roundoff(np.float32) * abs(float(est.value))
    assert est.rounding > 0 and est.operator > 0 and est.attack > 0
    assert float(est.bound) == pytest.approx(est.krylov + est.rounding + est.operator + est.attack)
    assert float(est.bound) >= tolerance.unit_roundoff(np.float32) * abs(float(est.value))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_unsupported_dtypes_are_refused_with_the_conversion(dtype):
    loss, params, X, y, eps = _fixed_problem()
    name = jnp.dtype(dtype).name
    half = jax.tree.map(lambda a: a.astype(dtype), params)
    with pytest.raises(ValueError, match=rf"working dtype .* is {name}; allowed: float32, float64"):
        attacks.pgd(loss, half, X, y, eps=eps, p=2.0)
    with pytest.raises(ValueError, match=r"astype\(jnp.float32\)"):
        adversarial.linearize(loss, params, X.astype(dtype), y, eps=eps, p=2.0)


def test_spectral_thresholds_follow_the_dtype():
    """CG's default stop and Lanczos' rounding are those of the vector's dtype: with a
    float64 threshold a float32 CG could never stop early, and the float32 Lanczos
    rounding would be ~1e9 times too small to cover float32 against float64."""
    rng = np.random.default_rng(3)
    n = 6
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = ((Q * np.linspace(1.0, 3.0, n)) @ Q.T).astype(np.float32)
    A = (A + A.T) / 2
    b = rng.standard_normal(n).astype(np.float32)
    x, info = jax.jit(lambda A, b: spectral.cg(lambda v: A @ v, b, maxiter=50))(A, b)
    assert x.dtype == jnp.float32 and int(info.iterations) < 50
    assert float(info.residual) <= tolerance.gamma(2 * n + 4, np.float32) * np.linalg.norm(b)
    res = spectral.lanczos(lambda v: jnp.asarray(A) @ v, jnp.ones(n, jnp.float32), num_steps=n)
    lam = np.linalg.eigvalsh(A.astype(np.float64))
    # matvec rounding (the caller's part): a dense product errs by γ_n ‖|A|‖₂ ≤ γ_n ‖A‖_F
    matvec = tolerance.gamma(n, np.float32) * np.linalg.norm(A.astype(np.float64))
    err = abs(float(res.largest) - lam[-1])
    assert err <= float(res.largest_bound) + float(res.rounding) + matvec
    assert float(res.rounding) > 1e6 * tolerance.gamma(4 * n + 8) * lam[-1]


_SUBPROCESS = """
import json, warnings
warnings.simplefilter("error")
import jax, jax.numpy as jnp, numpy as np
import advlip
jax.config.update("jax_enable_x64", False)  # a user's float32 session
from advlip import adversarial, attacks, models, tolerance
assert jnp.zeros(1).dtype == jnp.float32
rng = np.random.default_rng(5)
params = [{"W": rng.standard_normal((5, 4)) / 2, "b": 0.2 * rng.standard_normal(5)},
          {"W": rng.standard_normal((1, 5)) / 2, "b": 0.2 * rng.standard_normal(1)}]
X, y = rng.standard_normal((6, 4)) / 2, rng.choice([-1.0, 1.0], 6)
loss = models.MLPLoss("tanh")
out = {}
for p in (1.0, float("inf")):  # L2 runs inside linearize below
    a = attacks.pgd(loss, params, X, y, eps=0.125, p=p)
    out[f"pgd{p}"] = [str(a.delta.dtype), bool(a.all_converged)]
pt = adversarial.linearize(loss, params, X, y, eps=0.125, p=2.0)
est = pt.top_eigenvalue()
out["dtype"] = str(pt.dtype)
out["value"] = float(est.value)
out["bound"] = float(est.bound)
out["grad_error"] = float(np.max(pt.gradient_error()))
out["hvp_error"] = float(np.max(pt.hvp_error(jnp.ones(pt.dim))))
out["blocks_error"] = float(np.max(pt.blocks().error))
out["determined"] = bool(pt.all_determined)
out["u32"] = tolerance.unit_roundoff(np.float32)
print("RESULT", json.dumps(out))
"""


def test_runs_with_float64_off_and_reports_float32_bounds():
    proc = run_python(["-c", textwrap.dedent(_SUBPROCESS)], timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT ") :])
    assert out["dtype"] == "float32" and out["determined"]
    assert all(v == ["float32", True] for k, v in out.items() if k.startswith("pgd"))
    # float32-sized: at least one float32 ulp of the value (the float64 bound is ~1e-13)
    assert out["bound"] >= out["u32"] * abs(out["value"])
    for name in ("grad_error", "hvp_error", "blocks_error"):
        assert out[name] >= out["u32"] * 1e-3, (name, out[name])


def test_gamma_falls_back_to_the_probabilistic_bound_past_k_u_1():
    # below k u = 1 the worst-case γ_k; past it (float32 chains of ~10^7 operations, a
    # ResNet-18's dot products) Higham & Mary's exp(λ√k u + k u²/(1-u)) - 1, with a warning
    import math

    u = tolerance.unit_roundoff(np.float32)
    k_ok = int(0.5 / u)
    assert tolerance.gamma(k_ok, np.float32) == k_ok * u / (1 - k_ok * u)
    k = 4 * 11_168_266 + 8
    with pytest.warns(UserWarning, match="probabilistic bound of Higham & Mary"):
        g = tolerance.gamma(k, np.float32)
    lam = tolerance.PROBABILISTIC_LAMBDA
    assert g == math.expm1(lam * math.sqrt(k) * u + k * u * u / (1 - u))
    assert 0 < g < 0.05  # a usable bound where the worst case (k u = 2.7) has none
