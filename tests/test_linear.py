"""The closed-form adversarial loss of linear models (docs/theory/closed-form.md), checked by independent routes.

* the closed form against the maximum over the ball: every vertex for p = inf and p = 1,
  optimality conditions (random feasible points, KKT) and projected gradient ascent otherwise;
* δ* feasible and attaining Hölder's equality;
* the Danskin gradient and the Hessian against jax.grad / jax.hessian of the loss, and the
  Hessian against central finite differences of the gradient (Richardson error estimate);
* the API's shapes, vmap and jit behaviour.

Every tolerance comes from :class:`ErrorModel`: ``gamma(k) * (sum of |terms|)`` with ``k``
counted from the formula (advlip.tolerance), plus the underflow term of the standard model
(each operation may add an absolute error of the smallest subnormal, Higham (2.8)).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.projections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advlip import linear, norms, strategies
from advlip.linear import LinearProblem
from advlip.losses import LOSSES
from advlip.tolerance import UNIT_ROUNDOFF, gamma

P_VALUES = (1.0, 1.5, 2.0, 3.0, math.inf)
# JAX compiles every operation per shape (eagerly too), and each (p, loss, shape) of
# jax.grad / jax.hessian costs about a second the first time: the checks share one shape,
# (n, d) = (3, 3), besides d = 6 for the vertex enumeration and n = 1 for single examples.
D3 = st.just(3)
N3 = st.just(3)
#: The smallest subnormal: the absolute error an operation may add by underflowing.
ETA = 2.0**-1074
#: Roundings of a margin loss or its derivatives relative to their value (test_losses.K_LOSS).
K_LOSS = 8
# Radii are 0 or >= 1e-100, so eps * u and the products below stay normal floats: the gamma
# model does not cover underflow (tiny radii are a matter of the strategy, not of the code).
POSITIVE_EPS = strategies.epsilons(min_eps=1e-100)
EPS = st.one_of(st.just(0.0), POSITIVE_EPS)
ANY_P = st.sampled_from(P_VALUES)
LOSS_NAMES = strategies.margin_losses()


def g(k: float) -> float:
    return gamma(math.ceil(k))


def gv(k: np.ndarray) -> np.ndarray:
    """``g`` elementwise."""
    return np.vectorize(g, otypes=[float])(k)


def k_norm(q: float, d: int) -> float:
    """Roundings of ``lp_norm(w, q)`` relative to ``||w||_q`` (derived in test_norms)."""
    return 4.0 if math.isinf(q) else (q + d + 1.0) / q + 3.0


def k_dual(q: float, d: int) -> float:
    """Roundings of each ``u_i`` of ``dual_direction(w, q=q)`` (derived in test_norms)."""
    if q == 1.0 or math.isinf(q):
        return 0.0
    return (q - 1.0) * (k_norm(q, d) + 1.0) + 2.0


def k_norm_hessian(q: float, d: int) -> float:
    """Roundings of ``norm_hessian(w, q=q)`` relative to its terms (derived in test_norms).

    For q in {1, inf} the Hessian is exactly 0 and so are its terms: no roundings."""
    if q == 1.0 or math.isinf(q):
        return 0.0
    kn = k_norm(q, d)
    return max(abs(q - 2.0) * (kn + 1.0) + 2.0, 2.0 * k_dual(q, d) + 1.0) + 1.0 + kn + 2.0


def assert_close(actual, expected, tol, what: str = "") -> None:
    """``|actual - expected| <= tol`` elementwise, reporting the worst case."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    err = np.abs(actual - expected)
    tol = np.broadcast_to(np.asarray(tol, dtype=float), err.shape)
    bad = ~(err <= tol)
    assert not bad.any(), (
        f"{what}: max error {err[bad].max():.3e} exceeds tolerance {tol[bad].min():.3e}\n"
        f"actual={actual}\nexpected={expected}\ntol={tol}"
    )


# --------------------------------------------------------------------------- the error model


@dataclasses.dataclass(frozen=True)
class Case:
    w: np.ndarray
    X: np.ndarray
    y: np.ndarray
    b: float
    eps: float
    p: float
    loss: str

    @property
    def q(self) -> float:
        return norms.dual_exponent(self.p)

    @property
    def kwargs(self) -> dict:
        return dict(eps=self.eps, p=self.p, b=self.b, loss=self.loss)

    @property
    def theta(self) -> np.ndarray:
        return np.append(self.w, self.b)


class ErrorModel:
    r"""Float64 error bounds of the closed forms of docs/theory/closed-form.md at one case, per route.

    Margins :math:`\tilde m_i = y_i(w\cdot x_i + b) - \varepsilon N`, :math:`N = \|w\|_q`: the
    dot product (d), ``+ b`` (1), ``eps * N`` (1) and the subtraction (1) on top of N's own
    k_norm, on the terms :math:`M_i = \sum_j |w_j x_{ij}| + |b| + \varepsilon N`.
    A margin error :math:`e_i` moves :math:`\ell'` by at most :math:`\sup \ell''\, e_i` and
    :math:`\ell''` by at most :math:`\sup|\ell'''|\, e_i \le \sup \ell''\, e_i` over
    :math:`[\tilde m_i \pm e_i]` (test_losses checks ``d2_sup``; :math:`|\ell'''| \le \ell''` for
    softplus and exponential, and 0 for the squared hinge off :math:`m = 1`, which
    :meth:`clear_of_hinge_kink` keeps out of that interval).
    ``a_i = y_i x_i - eps u`` carries ``k_dual + 2`` roundings on
    :math:`|x_{ij}| + \varepsilon|u_j|`.
    jax.grad differentiates lp_norm's ``s * S**(1/q)``, ``s = max|w_i|``: for ``1 < q < inf``
    the chain rule through ``s`` adds two cancelling terms of size ``N/s`` to the gradient of
    N in the coordinate of ``argmax|w_i|`` and ``(q + 1) N / s**2`` to its Hessian's row and
    column there; they enter the sums of |terms| of the autodiff route.
    """

    def __init__(self, case: Case):
        self.case = case
        w, q = case.w, case.q
        X = np.atleast_2d(case.X)
        y = np.atleast_1d(case.y)
        self.n, self.d = n, d = X.shape
        loss = LOSSES[case.loss]
        self.N = N = float(norms.lp_norm(w, q))
        self.u = u = np.asarray(norms.dual_direction(w, q=q))
        self.margins = mt = y * (X @ w + case.b) - case.eps * N
        self.k_margin = d + 3 + k_norm(q, d)
        terms = np.abs(X * w).sum(axis=1) + abs(case.b) + case.eps * N
        self.e_margin = g(self.k_margin) * terms + self.k_margin * ETA
        lo, hi = jnp.asarray(mt - self.e_margin), jnp.asarray(mt + self.e_margin)
        self.sup_d2 = np.asarray(loss.d2_sup(lo, hi))  # bounds |l''| and |l'''| near each margin
        self.abs_d1 = np.abs(np.asarray(loss.d1(jnp.asarray(mt))))
        # l' and l'' at each margin: K_LOSS roundings in closed form; jax.grad of softplus forms
        # l' as exp(x - logaddexp(x, 0)), whose exponent is off by u (2|m| + 1) (test_losses).
        self.k_loss = K_LOSS + 2.0 * np.abs(mt) + 1.0
        self.d2 = np.asarray(loss.d2(jnp.asarray(mt)))
        # |a_ij| terms, with the bias column (a_i,d = y_i)
        A = np.abs(X) + case.eps * np.abs(u)
        self.A = np.concatenate([A, np.ones((n, 1))], axis=1)
        self.k_a = k_dual(q, d) + 2
        self.scale_path = np.zeros(d)
        self.hess_terms = np.zeros((d, d))
        self.hess_scale_path = np.zeros((d, d))
        if 1.0 < q < math.inf:
            s = float(np.max(np.abs(w)))
            kmax = int(np.argmax(np.abs(w)))
            self.scale_path[kmax] = 2.0 * N / s
            r = np.abs(w) / N
            self.hess_terms = (q - 1.0) / N * (np.diag(r ** (q - 2.0)) + np.abs(np.outer(u, u)))
            self.hess_scale_path[kmax, :] += (q + 1.0) * N / s**2
            self.hess_scale_path[:, kmax] += (q + 1.0) * N / s**2
        self.abs_norm_hessian = np.abs(np.asarray(norms.norm_hessian(w, q=q)))

    def grad(self) -> np.ndarray:
        """Bound on the error of one route's gradient over θ = (w, b), shape (d+1,)."""
        eps = self.case.eps
        k = self.k_loss + self.k_a + self.n + 2  # l', a (k_a), the product (1), the mean (n+1)
        through_margin = np.mean((self.sup_d2 * self.e_margin)[:, None] * self.A, axis=0)
        extra = eps * np.append(self.scale_path, 0.0)
        own = np.mean((gv(k) * self.abs_d1)[:, None] * (self.A + extra), axis=0)  # k per example
        return through_margin + own + np.max(k) * ETA

    def hessian(self) -> np.ndarray:
        """Bound on the error of one route's Hessian over θ = (w, b), shape (d+1, d+1)."""
        eps, d = self.case.eps, self.d
        AA = self.A[:, :, None] * self.A[:, None, :]
        # l'' (k_loss), a_j a_k (2 k_a + 1), the mean (n + 1), the curvature term
        # eps mean(l') Hess N (k_norm_hessian + 2) and the sum of the two (1).
        count = self.k_loss + 2 * self.k_a + self.n + 3 + k_norm_hessian(self.case.q, d) + 2
        k = gv(count)
        pad = partial(np.pad, pad_width=((0, 1), (0, 1)))
        # l'' as autodiff forms it, s (1 - s): terms |l''| + |l'|(1 + |l'|) (test_losses)
        d2_terms = self.d2 + self.abs_d1 * (1.0 + self.abs_d1)
        through_margin = np.mean((self.sup_d2 * self.e_margin)[:, None, None] * AA, axis=0)
        through_margin += eps * np.mean(self.sup_d2 * self.e_margin) * pad(self.abs_norm_hessian)
        own = np.mean((k * d2_terms)[:, None, None] * AA, axis=0) + eps * np.mean(
            k * self.abs_d1
        ) * pad(self.hess_terms + self.hess_scale_path)
        return through_margin + own + np.max(count) * ETA

    def clear_of_hinge_kink(self, reach: np.ndarray | float = 0.0) -> bool:
        """For the squared hinge, every margin stays off m = 1 within its error (+ reach)."""
        if self.case.loss != "squared_hinge":
            return True
        return bool(np.all(np.abs(self.margins - 1.0) > self.e_margin + reach))


@st.composite
def cases(
    draw,
    *,
    kinds=("generic",),
    p=ANY_P,
    loss=LOSS_NAMES,
    eps=EPS,
    n=N3,
    d=D3,
) -> Case:
    X, y = draw(strategies.datasets(n=n, d=d))
    kind = draw(st.sampled_from(kinds))
    w = draw(strategies.weights(X.shape[1], kind=kind))
    b = draw(st.floats(-1.0, 1.0, allow_subnormal=False))
    return Case(w=w, X=X, y=y, b=b, eps=draw(eps), p=draw(p), loss=draw(loss))


def danskin(case: Case) -> np.ndarray:
    gw, gb = linear.adversarial_grad(case.w, case.X, case.y, **case.kwargs)
    return np.append(np.asarray(gw), float(gb))


def autodiff_grad(case: Case) -> np.ndarray:
    f = lambda w, b: linear.adversarial_loss(w, case.X, case.y, **{**case.kwargs, "b": b})  # noqa: E731
    gw, gb = jax.grad(f, argnums=(0, 1))(jnp.asarray(case.w), jnp.asarray(case.b))
    return np.append(np.asarray(gw), float(gb))


def autodiff_hessian(case: Case) -> np.ndarray:
    d = case.w.shape[0]

    def f(theta):
        return linear.adversarial_loss(theta[:d], case.X, case.y, **{**case.kwargs, "b": theta[d]})

    return np.asarray(jax.hessian(f)(jnp.asarray(case.theta)))


# --------------------------------------------------------------------------- closed form = max


def margin_terms(case: Case) -> np.ndarray:
    """Sum of |terms| of a brute-force margin y (w.(x + delta) + b) with ||delta||_inf <= eps."""
    X = np.atleast_2d(case.X)
    return np.abs(X * case.w).sum(axis=1) + abs(case.b) + case.eps * np.abs(case.w).sum()


def vertices(d: int, eps: float, p: float) -> np.ndarray:
    """The vertices of B_p(eps) for p in {1, inf}, where a linear function is minimised."""
    if math.isinf(p):
        return eps * np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    return eps * np.concatenate([np.eye(d), -np.eye(d)])


@given(
    cases(
        p=st.sampled_from([1.0, math.inf]),
        kinds=strategies.WEIGHT_KINDS,
        d=st.sampled_from([3, 6]),
    )
)
def test_closed_form_equals_maximum_over_vertices(case):
    # A linear function of delta is minimised over a polytope at a vertex, and l is
    # decreasing: the maximum of l over the ball is l at the smallest vertex margin.
    # Enumerating every vertex (2^d for p = inf, 2d for p = 1) is exact.
    X, y = np.atleast_2d(case.X), np.atleast_1d(case.y)
    V = vertices(X.shape[1], case.eps, case.p)
    brute = y[:, None] * ((X @ case.w + case.b)[:, None] + (V @ case.w)[None, :])
    brute_min = brute.min(axis=1)
    closed = np.asarray(
        linear.adversarial_margin(case.w, case.X, case.y, eps=case.eps, p=case.p, b=case.b)
    )
    model = ErrorModel(case)
    # brute force: two dot products (2d), two sums (2), the product with y (exact)
    e_brute = g(2 * X.shape[1] + 2) * margin_terms(case) + 4 * ETA
    assert_close(closed, brute_min, model.e_margin + e_brute, "margins")
    # the loss: l is Lipschitz with constant sup|l'| between the two margins
    loss = LOSSES[case.loss]
    gap = model.e_margin + e_brute
    lip = np.asarray(loss.d1_abs_sup(jnp.asarray(brute_min - gap), jnp.asarray(brute_min + gap)))
    brute_loss = np.mean(np.asarray(loss.value(jnp.asarray(brute_min))))
    closed_loss = float(linear.adversarial_loss(case.w, case.X, case.y, **case.kwargs))
    values = np.abs(np.asarray(loss.value(jnp.asarray(brute_min))))
    tol = np.mean(lip * gap) + 2 * g(K_LOSS + len(y) + 1) * np.mean(values) + K_LOSS * ETA
    assert_close(closed_loss, brute_loss, tol, "loss")


def holder_tolerance(case: Case, delta: np.ndarray) -> float:
    """Error of ``y w.delta`` (d products, d-1 sums) and of ``-eps ||w||_q`` (k_norm + 1)."""
    d = case.w.shape[0]
    return (
        g(d) * float(np.sum(np.abs(case.w * delta)))
        + g(k_norm(case.q, d) + 1) * case.eps * float(norms.lp_norm(case.w, case.q))
        + d * ETA
    )


@given(
    case=cases(p=st.sampled_from([1.5, 2.0, 3.0]), n=1),
    direction=st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=3, max_size=3).filter(
        lambda v: max(map(abs, v)) > 1e-3
    ),
)
def test_no_feasible_point_beats_the_optimal_perturbation(case, direction):
    # For 1 < p < inf: every delta on the p-sphere has y w.delta >= -eps ||w||_q (Hölder),
    # so no delta gives a smaller margin than delta*, whose margin is the closed form.
    d = case.w.shape[0]
    v = np.array(direction[:d])
    if not np.any(v):
        v[0] = 1.0
    delta = case.eps * v / float(norms.lp_norm(v, case.p))
    y = float(np.atleast_1d(case.y)[0])
    attained = -case.eps * float(norms.lp_norm(case.w, case.q))
    # delta carries k_norm(p) + 2 roundings relative to |delta_i|
    tol = holder_tolerance(case, delta) + g(k_norm(case.p, d) + 2) * float(
        np.sum(np.abs(case.w * delta))
    )
    assert y * float(case.w @ delta) >= attained - tol


@given(cases(p=st.sampled_from([1.5, 2.0, 3.0]), eps=POSITIVE_EPS))
def test_optimal_perturbation_satisfies_kkt(case):
    # max over ||delta||_p <= eps of c.delta, c = -y w: optimal iff c is in the normal cone
    # of the ball at delta*, {lam grad||.||_p(delta*) : lam >= 0}; Hölder fixes
    # lam = ||c||_q = ||w||_q (the gradient of ||.||_p has unit q-norm).
    y = float(np.atleast_1d(case.y)[0])
    d, p, q = case.w.shape[0], case.p, case.q
    delta = np.asarray(linear.optimal_perturbation(case.w, y, eps=case.eps, p=p))
    grad_p = np.asarray(jax.grad(partial(norms.lp_norm, p=p))(jnp.asarray(delta)))
    lam = float(norms.lp_norm(case.w, q))
    residual = -y * case.w - lam * grad_p
    # grad_p_i = (|delta_i| / ||delta||_p)^(p-1): delta carries k_dual(q) + 1 roundings, the
    # ratio k_norm(p) + 1 more, the power multiplies by p - 1 and adds 2; lam: k_norm(q);
    # the product and difference: 2. jax.grad's path through lp_norm's scale s = max|delta_i|
    # adds cancelling terms of size 2 ||delta||_p / s in that coordinate.
    k = (p - 1) * (k_dual(q, d) + 1 + k_norm(p, d) + 1) + 2 + k_norm(q, d) + 2
    s = np.zeros(d)
    s[int(np.argmax(np.abs(delta)))] = 2.0 * case.eps / float(np.max(np.abs(delta)))
    tol = g(k) * (np.abs(case.w) + lam * (np.abs(grad_p) + s)) + k * ETA
    assert_close(residual, 0.0, tol, "KKT residual")


def _pga_factory(loss_name: str, steps: int = 20):
    loss = LOSSES[loss_name]

    @jax.jit
    def pga(w, x, y, b, eps, lr):
        def objective(delta):  # the inner maximisation, one example
            return loss.value(y * (w @ (x + delta) + b))

        opt = optax.sgd(lr)

        def step(_, carry):
            delta, state = carry
            grad = jax.grad(objective)(delta)
            updates, state = opt.update(-grad, state)  # ascent
            delta = optax.projections.projection_l2_ball(optax.apply_updates(delta, updates), eps)
            return delta, state

        delta0 = jnp.zeros_like(w)
        delta, _ = jax.lax.fori_loop(0, steps, step, (delta0, opt.init(delta0)))
        return delta

    return pga


# l' < 0 everywhere for these two: the gradient never vanishes, so ascent cannot stall (the
# squared hinge is flat for margins >= 1, a stationary point that is not the maximum).
PGA = {name: _pga_factory(name) for name in ("softplus", "exponential")}


@given(
    cases(
        p=st.just(2.0),
        n=1,
        loss=st.sampled_from(sorted(PGA)),
        eps=POSITIVE_EPS,
    )
)
def test_projected_gradient_ascent_finds_the_closed_form(case):
    x, y = case.X[0], float(case.y[0])
    loss = LOSSES[case.loss]
    m0 = y * float(case.w @ x + case.b)
    # a step that reaches the sphere from 0 (the gradient is l'(m) y w, |l'| decreasing in m,
    # so |l'(m0)| is the smallest along the ascent path)
    lr = case.eps / (float(np.linalg.norm(case.w)) * abs(float(loss.d1(jnp.float64(m0)))))
    delta = np.asarray(PGA[case.loss](case.w, x, y, case.b, case.eps, lr))
    star = np.asarray(linear.optimal_perturbation(case.w, y, eps=case.eps, p=2.0))
    d = case.w.shape[0]
    # Both are eps w/||w||_2 up to roundings: the norm (k_norm(2)), the division and the product
    # (2) for delta*, and for ascent the step, its norm and the rescaling (k_norm(2) + 4).
    assert_close(delta, star, g(2 * k_norm(2.0, d) + 6) * np.abs(star) + ETA, "delta")
    value = float(loss.value(jnp.float64(y * float(case.w @ (x + delta) + case.b))))
    closed = float(linear.adversarial_loss(case.w, x, y, **case.kwargs))
    model = ErrorModel(case)
    lip = float(loss.d1_abs_sup(jnp.float64(model.margins[0] - 2 * model.e_margin[0]), jnp.inf))
    tol = lip * 2 * model.e_margin[0] + 2 * g(K_LOSS) * closed + ETA
    assert_close(value, closed, tol, "loss")


# --------------------------------------------------------------------------- δ*


@given(cases(kinds=strategies.WEIGHT_KINDS))
def test_optimal_perturbation_is_feasible_and_attains_holder(case):
    d, q = case.w.shape[0], case.q
    y = np.atleast_1d(case.y)
    delta = np.asarray(linear.optimal_perturbation(case.w, y, eps=case.eps, p=case.p))
    assert delta.shape == (len(y), d)
    for yi, row in zip(y, delta, strict=True):
        # ||delta*||_p = eps: u_i carries k_dual roundings, eps*u one more, the norm k_norm(p)
        norm = float(norms.lp_norm(row, case.p))
        assert_close(norm, case.eps, g(k_dual(q, d) + 1 + k_norm(case.p, d)) * case.eps + ETA)
        # y w.delta* = -eps ||w||_q
        attained = -case.eps * float(norms.lp_norm(case.w, q))
        tol = holder_tolerance(case, row) + g(k_dual(q, d) + 1) * float(
            np.sum(np.abs(case.w * row))
        )
        assert_close(yi * float(case.w @ row), attained, tol)
    # a scalar label gives one perturbation of shape (d,)
    single = np.asarray(linear.optimal_perturbation(case.w, float(y[0]), eps=case.eps, p=case.p))
    np.testing.assert_array_equal(single, delta[0])


def test_optimal_perturbation_at_zero_weights_is_zero():
    for p in P_VALUES:
        np.testing.assert_array_equal(
            linear.optimal_perturbation(np.zeros(3), 1.0, eps=0.5, p=p), np.zeros(3)
        )


# --------------------------------------------------------------------------- derivatives


@given(cases())
def test_danskin_gradient_equals_autodiff(case):
    model = ErrorModel(case)
    assert_close(danskin(case), autodiff_grad(case), 2 * model.grad(), "gradient")


HESSIAN_CASES = cases().filter(lambda c: ErrorModel(c).clear_of_hinge_kink())


@given(HESSIAN_CASES)
def test_hessian_equals_autodiff(case):
    H = np.asarray(linear.adversarial_hessian(case.w, case.X, case.y, **case.kwargs))
    model = ErrorModel(case)
    assert_close(H, autodiff_hessian(case), 2 * model.hessian(), "Hessian")
    assert_close(H, H.T, 2 * model.hessian(), "symmetry")  # einsum may sum i,j and j,i apart


def fd_step(case: Case) -> float:
    """Central differences err by c h^2 (truncation) + e_g / h (rounding of the gradient, e_g
    ~ u |g|); the sum is smallest at h ~ (e_g / c)^(1/3). With the curvature scale of θ set
    by |θ| (c ~ |g| / |θ|^3 for a loss homogeneous in θ), h = u^(1/3) ||θ||_inf."""
    return UNIT_ROUNDOFF ** (1.0 / 3.0) * float(np.max(np.abs(case.theta)))


def fd_clear(case: Case) -> bool:
    """The differences move one coordinate of θ by at most 2h: that must keep every w_i's sign
    and the argmax of |w_i| (generic weights are 1e-3 relative away; the check makes it
    explicit) and, for the squared hinge, every margin on one side of m = 1 (a step of 2h
    moves margin i by at most 2h (|x_i|_inf + eps |u_j| or 1), |u_j| <= ||u||_p = 1)."""
    reach = 2 * fd_step(case)
    a = np.sort(np.abs(case.w))
    if a[0] <= reach or (a[-1] - a[-2]) <= reach:
        return False
    X = np.atleast_2d(case.X)
    margin_reach = reach * (np.max(np.abs(X), axis=1) + 1.0 + case.eps)
    return ErrorModel(case).clear_of_hinge_kink(margin_reach)


@given(cases().filter(fd_clear))
def test_hessian_equals_finite_differences_of_danskin_gradient(case):
    prob = LinearProblem(X=case.X, y=case.y, eps=case.eps, p=case.p, loss=case.loss, fit_bias=True)
    theta = case.theta
    dim = theta.shape[0]
    grad = jax.vmap(prob.grad)

    def central(h: float) -> np.ndarray:
        plus = theta[None, :] + h * np.eye(dim)
        minus = theta[None, :] - h * np.eye(dim)
        spacing = np.diag(plus - minus)  # the steps actually taken
        gp, gm = np.asarray(grad(jnp.asarray(plus))), np.asarray(grad(jnp.asarray(minus)))
        return ((gp - gm) / spacing[:, None]).T  # column j: d grad / d theta_j

    h = fd_step(case)
    D_h, D_2h = central(h), central(2 * h)
    H = np.asarray(prob.hessian(jnp.asarray(theta)))
    model = ErrorModel(case)
    e_g = model.grad()  # error of one gradient, per row i of the Hessian
    # Richardson: D_h = H + c h^2 + r_h and D_2h = H + 4 c h^2 + r_2h (+ O(h^4), negligible at
    # 1e-3-relative clearance from the kinks), |r_h| <= e_g/h, |r_2h| <= e_g/(2h). Hence
    # |D_h - H| <= |D_2h - D_h| + 2|r_h| + |r_2h| (the full difference, not the classical third,
    # so that an h^4 term of either sign is covered); plus the closed form's own error, and
    # the differences' own roundings: gp - gm, the spacing, the division (gamma(3) |D_h|).
    tol = np.abs(D_2h - D_h) + 2.5 * e_g[:, None] / h + model.hessian() + gamma(3) * np.abs(D_h)
    assert_close(H, D_h, tol, "Hessian vs finite differences")


# --------------------------------------------------------------------------- API consistency


@given(
    prob=strategies.linear_problems(
        n=N3,
        d=D3,
        p=st.sampled_from(P_VALUES),
        eps=EPS,
        fit_bias=st.booleans(),
        b=st.floats(-1, 1, allow_subnormal=False),
    ),
    data=st.data(),
)
def test_linear_problem_agrees_with_the_functions(prob, data):
    w = data.draw(strategies.weights(prob.d), label="w")
    b = data.draw(st.floats(-1, 1, allow_subnormal=False), label="b") if prob.fit_bias else prob.b
    theta = np.append(w, b) if prob.fit_bias else w
    b = float(b)
    case = Case(
        w=w,
        X=np.asarray(prob.X),
        y=np.asarray(prob.y),
        b=b,
        eps=float(prob.eps),
        p=prob.p,
        loss=prob.loss,
    )
    model = ErrorModel(case)
    d = prob.d
    dims = slice(None) if prob.fit_bias else slice(0, d)
    assert prob.dim == theta.shape[0]
    assert_close(prob.grad(jnp.asarray(theta)), danskin(case)[dims], 2 * model.grad()[dims])
    assert_close(
        prob.margins(jnp.asarray(theta)),
        linear.adversarial_margin(w, case.X, case.y, eps=case.eps, p=case.p, b=b),
        2 * model.e_margin,
    )
    value = float(linear.adversarial_loss(w, case.X, case.y, **case.kwargs))
    assert_close(prob.loss_value(jnp.asarray(theta)), value, 2 * g(K_LOSS + model.n) * abs(value))
    if model.clear_of_hinge_kink():
        H = linear.adversarial_hessian(w, case.X, case.y, **case.kwargs)
        assert_close(
            prob.hessian(jnp.asarray(theta)),
            np.asarray(H)[dims, dims],
            2 * model.hessian()[dims, dims],
        )


@given(cases(n=st.just(1)))
def test_single_example_equals_batch_of_one(case):
    x, y = case.X[0], float(case.y[0])
    model = ErrorModel(case)
    single = Case(**{**dataclasses.asdict(case), "X": x, "y": y})
    assert_close(danskin(single), danskin(case), 2 * model.grad())
    assert_close(
        linear.adversarial_margin(case.w, x, y, eps=case.eps, p=case.p, b=case.b),
        linear.adversarial_margin(case.w, case.X, case.y, eps=case.eps, p=case.p, b=case.b),
        2 * model.e_margin,
    )
    value = float(linear.adversarial_loss(case.w, case.X, case.y, **case.kwargs))
    assert_close(
        linear.adversarial_loss(case.w, x, y, **case.kwargs), value, 2 * g(K_LOSS + 2) * abs(value)
    )
    if model.clear_of_hinge_kink():
        H1 = linear.adversarial_hessian(case.w, x, y, **case.kwargs)
        Hn = linear.adversarial_hessian(case.w, case.X, case.y, **case.kwargs)
        assert_close(H1, Hn, 2 * model.hessian())


@given(pair=strategies.weight_pairs(D3), data=st.data())
def test_vmap_over_pairs_equals_a_loop(pair, data):
    w1, w2 = pair
    d = w1.shape[0]
    problem = data.draw(cases(d=st.just(d)), label="problem")
    case1, case2 = (dataclasses.replace(problem, w=w) for w in (w1, w2))
    kw = case1.kwargs

    def grad(w):
        gw, gb = linear.adversarial_grad(w, case1.X, case1.y, **kw)
        return jnp.append(gw, gb)

    def loss(w):
        return linear.adversarial_loss(w, case1.X, case1.y, **kw)

    W = jnp.stack([w1, w2])
    G = np.asarray(jax.vmap(grad)(W))
    values = np.asarray(jax.vmap(loss)(W))
    for i, c in enumerate((case1, case2)):
        assert_close(G[i], danskin(c), 2 * ErrorModel(c).grad(), f"gradient {i}")
        expected = float(loss(c.w))
        assert_close(values[i], expected, 2 * g(K_LOSS + ErrorModel(c).n) * abs(expected))


def test_jit_matches_eager_and_does_not_recompile():
    traces = []

    def f(w, X, y, b, eps):
        traces.append(None)  # runs once per trace
        loss = linear.adversarial_loss(w, X, y, eps=eps, p=2.0, b=b, loss="softplus")
        grad = linear.adversarial_grad(w, X, y, eps=eps, p=2.0, b=b, loss="softplus")
        hess = linear.adversarial_hessian(w, X, y, eps=eps, p=2.0, b=b, loss="softplus")
        return loss, grad, hess

    jf = jax.jit(f)
    X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    y = np.array([1.0, -1.0])
    for w, b, eps in (
        (np.array([1.0, -2.0, 0.5]), 0.1, 0.3),
        (np.array([-0.3, 0.7, 1.1]), -0.4, 0.05),
    ):
        case = Case(w=w, X=X, y=y, b=b, eps=eps, p=2.0, loss="softplus")
        model = ErrorModel(case)
        loss, (gw, gb), H = jf(w, X, y, b, eps)
        eager_loss, eager_grad, eager_H = f(w, X, y, b, eps)
        assert_close(loss, eager_loss, 2 * g(K_LOSS + 3) * abs(float(eager_loss)))
        assert_close(np.append(gw, gb), np.append(*eager_grad), 2 * model.grad())
        assert_close(H, eager_H, 2 * model.hessian())
    assert len(traces) == 2 + 1  # two eager calls, one trace for both jitted calls
    assert jf._cache_size() == 1


@settings(max_examples=60)
@given(
    prob=strategies.linear_problems(p=st.sampled_from([1.5, 2.0, 3.0, math.inf])),
    data=st.data(),
)
def test_grad_error_bound_follows_the_dtype(prob, data):
    # The float32 gradient of float32 inputs, against the float64 gradient of the *same*
    # inputs (the float32 arrays cast up exactly): the difference is pure float32
    # rounding, so the float32 bound must cover it. A bound computed with float64's unit
    # roundoff (2^-53) is ~5e8 times too small and fails here.
    w = data.draw(strategies.weights(prob.d, kind="generic"))
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    X32, y32, w32 = as32(prob.X), as32(prob.y), as32(w)
    eps32 = float(as32(prob.eps))
    p32 = LinearProblem(X=jnp.asarray(X32), y=jnp.asarray(y32), eps=eps32, p=prob.p, loss=prob.loss)
    p64 = LinearProblem(
        X=jnp.asarray(X32, dtype=jnp.float64),
        y=jnp.asarray(y32, jnp.float64),
        eps=eps32,
        p=prob.p,
        loss=prob.loss,
    )
    g32 = p32.grad(jnp.asarray(w32))
    assert g32.dtype == jnp.float32  # advlip computes in the dtype it is given
    g64 = p64.grad(jnp.asarray(w32, dtype=jnp.float64))
    bound32 = float(p32.grad_error_bound(jnp.asarray(w32)))
    bound64 = float(p64.grad_error_bound(jnp.asarray(w32, dtype=jnp.float64)))
    diff = float(np.linalg.norm(np.asarray(g32, np.float64) - np.asarray(g64)))
    assert diff <= bound32 + bound64, (diff, bound32, bound64)
    assert bound32 >= 1e6 * bound64  # the float32 bound uses float32's unit roundoff


# --------------------------------------------------------------------------- what training uses


@given(HESSIAN_CASES)
def test_naive_hessian_is_the_hessian_with_the_attack_held_fixed(case):
    prob = LinearProblem(X=case.X, y=case.y, eps=case.eps, p=case.p, loss=case.loss, fit_bias=True)
    theta = jnp.asarray(case.theta)
    d = case.w.shape[0]
    X, y = np.atleast_2d(case.X), np.atleast_1d(case.y)
    delta = np.asarray(linear.optimal_perturbation(case.w, y, eps=case.eps, p=case.p))  # frozen
    lo = LOSSES[case.loss]

    def frozen(th):  # θ ↦ mean ℓ(y (w·(x + δ*) + b)), δ* the attack at case.theta, held fixed
        return jnp.mean(lo.value(y * ((X + delta) @ th[:d] + th[d])))

    # The frozen route forms the margin from Σ|w_j||x_j + δ_j| ≤ Σ|w_j x_j| + ε‖w‖_q (Hölder's
    # equality, u dual to w) with fewer operations than the closed form, and a_j = y(x_j + δ_j)
    # in one rounding instead of two: its error is within the closed form's ErrorModel, so
    # the two routes differ by at most twice that model, as in test_hessian_equals_autodiff.
    model = ErrorModel(case)
    naive = np.asarray(prob.naive_hessian(theta))
    assert_close(naive, np.asarray(jax.hessian(frozen)(theta)), 2 * model.hessian(), "naive")
    if math.isinf(case.q) or case.q == 1.0:  # ∇²‖w‖_q = 0 exactly: nothing is added
        np.testing.assert_array_equal(np.asarray(prob.hessian(theta)), naive)


def test_curvature_bound_is_attained_where_every_bound_in_it_is_tight():
    # one example at m̃ = 0 (softplus ℓ'' = ¼ = ℓ''max), x = −0.4 sign(w), so that under L∞
    # a = x − ε sign(w) has ‖a‖ = ‖x‖ + ε√d exactly and the bias column adds 1: the naive
    # Hessian ℓ''(0) a aᵀ has top eigenvalue ¼((‖x‖ + ε√d)² + 1) = curvature_bound
    w = np.array([1.0, -2.0, 0.5])
    x = -0.4 * np.sign(w)
    eps = 0.3
    b = eps * np.sum(np.abs(w)) - w @ x  # m̃ = w·x + b − ε‖w‖₁ = 0
    prob = LinearProblem(X=x[None, :], y=np.ones(1), eps=eps, p=math.inf, fit_bias=True)
    bound = prob.curvature_bound()
    assert bound == 0.25 * ((0.4 * math.sqrt(3) + eps * math.sqrt(3)) ** 2 + 1.0)
    top = float(np.linalg.eigvalsh(np.asarray(prob.naive_hessian(jnp.append(w, b))))[-1])
    # m̃ = 0 up to γ_12 · 7 (its terms), which moves ℓ'' by < its square (ℓ''' = 0 at 0); the
    # outer product, the mean and eigvalsh add γ_(16+12) relative
    assert abs(top - bound) <= gamma(28) * bound


def test_crosses_kink_certifies_a_smooth_segment():
    # p = 1: the largest |w_j| is coordinate 0 at both ends, but w_0 changes sign: on the way
    # (0, 0.9) the largest is coordinate 1, a kink of ‖w‖_∞ a two-point argmax test misses
    assert linear.crosses_kink([1.0, 0.9], [-1.0, 0.9], p=1.0)
    assert not linear.crosses_kink([1.0, 0.5], [2.0, 0.1], p=1.0)
    assert linear.crosses_kink([1.0, 1.0], [2.0, 0.1], p=1.0)  # a tie: at the kink already
    assert linear.crosses_kink([1.0, -0.5], [1.0, 0.5], p=math.inf)  # w_1 changes sign
    assert not linear.crosses_kink([1.0, -0.5], [2.0, -0.1], p=math.inf)
    assert linear.crosses_kink([0.0, 0.0], [1.0, 0.0], p=2.0)  # w = 0, the L2 kink


@settings(max_examples=60)
@given(
    pair=strategies.weight_pairs(D3, max_rel_dist=2.0),
    p=st.sampled_from([1.0, 3.0, math.inf]),
)
def test_crosses_kink_false_means_one_piece_along_the_whole_segment(pair, p):
    w1, w2 = (np.asarray(w) for w in pair)
    if linear.crosses_kink(w1, w2, p=p):
        return
    s = np.linspace(0.0, 1.0, 257)[:, None]
    W = (1 - s) * w1[None, :] + s * w2[None, :]
    if p == 1.0:  # one coordinate is the unique largest |w_j| throughout
        A = np.abs(W)
        top = np.argmax(A, axis=1)
        assert np.all(top == top[0])
        assert np.all(np.sum(A == A[:, top[:1]], axis=1) == 1)
    else:  # no coordinate is 0 or changes sign
        assert np.all(np.sign(W) == np.sign(w1)[None, :]) and np.all(W != 0)


def _problem(p: float) -> LinearProblem:
    X, y = _data()
    return LinearProblem(X=X, y=y, eps=0.3, p=p, fit_bias=True)


def _data():
    rng = np.random.default_rng([2103, 1400])
    X = rng.standard_normal((12, 3)) / np.sqrt(3)
    y = np.where(rng.uniform(size=12) < 0.5, 1.0, -1.0)
    y[:2] = 1.0, -1.0
    return X, y


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_ratio_bound_bounds_the_gradient_ratio_of_every_pair(p):
    from advlip import tolerance

    prob = _problem(p)
    rng = np.random.default_rng([2103, int(p) if math.isfinite(p) else 99])
    T1 = rng.standard_normal((300, prob.dim))
    T2 = T1 + rng.standard_normal((300, prob.dim)) * rng.uniform(1e-4, 1.0, (300, 1))
    _, G1 = prob.loss_and_grad_many(T1)
    _, G2 = prob.loss_and_grad_many(T2)
    e1, e2 = prob.grad_error_bound_many(T1), prob.grad_error_bound_many(T2)
    bounded = 0
    for t in range(T1.shape[0]):
        dt = float(np.linalg.norm(T2[t] - T1[t]))
        R = float(np.linalg.norm(np.asarray(G2[t] - G1[t]))) / dt
        beta = prob.ratio_bound(T1[t], T2[t])
        if math.isinf(beta):  # L∞ across a kink: no bound, and the pair does cross one
            assert linear.crosses_kink(T1[t, :3], T2[t, :3], p=p)
            continue
        bounded += 1
        # both gradients' rounding, then the norms and the division (tolerance.ratio_error)
        assert R <= beta + tolerance.ratio_error((e1[t] + e2[t]) / 2, dt, R)
    assert bounded >= 30  # the check is not vacuous


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_training_members_agree_with_the_closed_form(p):
    import jax.random as jr

    prob = _problem(p)
    key = jr.PRNGKey(5)
    theta = prob.init(key)
    # init: the documented draw, 0.1·N(0, 1)/√d from numpy_rng(key, 17) = default_rng([5, 17])
    expected = 0.1 * np.random.default_rng([5, 17]).standard_normal(prob.dim) / math.sqrt(prob.d)
    np.testing.assert_array_equal(np.asarray(theta), expected)
    assert not np.array_equal(np.asarray(prob.init(jr.PRNGKey(6))), expected)
    with pytest.raises(ValueError, match="key=5 is an integer"):
        prob.init(5)
    L, g, clean, robust = prob.evaluate(theta, prob.X, prob.y)
    err_g = float(prob.grad_error_bound(theta))
    # the same formulas as loss_value and grad, in another program: within their error bounds
    assert float(jnp.linalg.norm(g - prob.grad(theta))) <= 2 * err_g
    value = float(prob.loss_value(theta))
    m = np.asarray(prob.margins(theta))
    w, b = np.asarray(theta[:3]), float(theta[3])
    # each m̃ is 2d + 4 operations on terms ≤ |x||w| + |b| + ε‖w‖_q and |ℓ'| ≤ 1 (softplus);
    # then ℓ (K_LOSS relative) and the mean of n: per route, twice for the difference
    terms = np.abs(np.asarray(prob.X)) @ np.abs(w) + abs(b) + 0.3 * float(norms.lp_norm(w, prob.q))
    k = 2 * prob.d + 4 + K_LOSS + prob.X.shape[0]
    assert abs(float(L) - value) <= 2 * gamma(k) * float(np.mean(terms) + value)
    clean_margins = np.asarray(prob.y) * (np.asarray(prob.X) @ w + b)
    # a mean of zeros and ones: the sum is exact, the division by n (or a product with 1/n)
    # rounds twice at most
    for frac, margins in ((clean, clean_margins), (robust, m)):
        assert abs(float(frac) - np.mean(margins > 0)) <= gamma(2) * np.mean(margins > 0)
    assert float(robust) <= float(clean)
    # on other data: the problem of that data
    sub = LinearProblem(X=prob.X[:5], y=prob.y[:5], eps=0.3, p=p, fit_bias=True)
    g_sub = prob.evaluate(theta, prob.X[:5], prob.y[:5])[1]
    assert float(jnp.linalg.norm(g_sub - sub.grad(theta))) <= 2 * float(sub.grad_error_bound(theta))
    # many at once: rows of one compiled program, each within the bound of the single route
    thetas = np.stack([np.asarray(theta), 2.0 * np.asarray(theta)])
    Ls, Gs = prob.loss_and_grad_many(thetas)
    for k in range(2):
        th = jnp.asarray(thetas[k])
        assert float(jnp.linalg.norm(Gs[k] - prob.grad(th))) <= 2 * float(prob.grad_error_bound(th))
    path = prob.path_bounds(thetas)
    assert np.isnan(path["near_zero"][0]) and path["ratio_bound"].shape == (1,)
    assert path["ratio_bound"][0] == prob.ratio_bound(thetas[0], thetas[1])
    assert path["kink_crossed"][0] == linear.crosses_kink(thetas[0][:3], thetas[1][:3], p=p)
