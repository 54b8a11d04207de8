r"""The results for general models, each with its numerical check.

Their theory is docs/theory/general-models.md (the maximiser δ*(θ), the blocks
:math:`H_{\theta\theta}`, :math:`H_{xx}`, :math:`H_{x\theta}`, the KKT cases G0–G4 defined
in docs/theory/index.md) and one page per case, cited below.

Every check attacks a small reference model (:mod:`advlip.models`: a tanh MLP with a
linear skip connection, d = 4 inputs, width 5; the flatness family :math:`\ell_\kappa`)
on a seeded synthetic dataset (:func:`advlip.data.synthetic`) and compares the total
curvature that :mod:`advlip.adversarial` computes by implicit differentiation with an
independent route: central finite differences of the Danskin gradient with the attack
**re-solved** at every θ (:func:`advlip.adversarial.fd_hessian`), Richardson-extrapolated,
with the tolerance derived from the step (the size of the extrapolation), the
float64 error of a gradient and the attack's measured KKT residual. Nothing here
prints.

* ``GEN-DANSKIN`` (case G0, Danskin; docs/theory/gen-danskin.md): the Danskin gradient
  equals the derivative of L, for L2 and L∞ attacks; the gradient at the clean input (a
  planted wrong formula) does not.
* ``GEN-INTERIOR`` (case G1, interior maximiser; docs/theory/gen-interior.md): total
  Hessian = FD, the naive Hessian differs by the PSD correction
  :math:`-H_{\theta x}H_{xx}^{-1}H_{x\theta}`, and
  :math:`\|\nabla^2 L\| \le \|H_{\theta\theta}\| + \|H_{x\theta}\|^2/\lambda_{\min}(-H_{xx})`.
* ``GEN-L2-BOUNDARY`` (case G2, L2 sphere; docs/theory/gen-l2-boundary.md): maximisers on
  the L2 sphere; total Hessian (bordered KKT system on the tangent space) = FD, the naive
  Hessian differs.
* ``GEN-LINF-VERTEX`` (case G3, L∞ vertex; docs/theory/gen-linf-vertex.md): at vertices the
  total Hessian is :math:`H_{\theta\theta}` = FD; across a switching surface the gradient
  jumps by :math:`H_{\theta x}\Delta\delta` and the gradient ratio grows like
  :math:`t^{-1}`.
* ``GEN-FLATNESS`` (case G4, flatness in x vs smoothness in θ;
  docs/theory/gen-flatness.md): on :math:`\ell_\kappa`, :math:`\lambda_{\max}` of the total
  Hessian (Lanczos on implicit HVPs) falls with κ as :math:`\max(1/\kappa, s(c))`; beside
  it Liu et al.'s bound, valid but with an additive term that does not shrink.

Example:
    >>> from advlip import theorems
    >>> print(*(r.id for r in theorems.all_results() if r.family == "general"))
    GEN-DANSKIN GEN-INTERIOR GEN-L2-BOUNDARY GEN-LINF-VERTEX GEN-FLATNESS
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from advlip import adversarial, attacks, data, models, smoothness, tolerance
from advlip.theorems.base import CheckConfig, CheckResult, Result, register

__all__ = [
    "check_gen_danskin",
    "check_gen_interior",
    "check_gen_l2_boundary",
    "check_gen_linf_vertex",
    "check_gen_flatness",
    "reference_problem",
    "EPS_L2",
    "EPS_LINF",
]

#: Input dimension and hidden width of the reference MLP.
D, WIDTH = 4, 5
#: Attack radii of the reference cases (inputs have ‖x‖ ≈ 1): small enough that the
#: L2 maximisers sit on the sphere with μ = ‖∇_xℓ‖/ε well above the curvature in x,
#: and the L∞ maximisers at vertices.
EPS_L2 = 0.15
EPS_LINF = 0.05
#: Suprema of |σ'| and |σ''| of the hidden activations, the constants of the
#: input-curvature bound of :func:`interior_setup`: tanh' ≤ 1, |tanh''| ≤ 4/(3√3)
#: (at tanh x = ±1/√3); softplus' ≤ 1, softplus'' ≤ 1/4; gelu' ≤ Φ(√2) + √2φ(√2),
#: |gelu''| = φ(x)|2 − x²| ≤ 2φ(0).
ACTIVATION_BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (1.0, 4.0 / (3.0 * math.sqrt(3.0))),
    "softplus": (1.0, 0.25),
    "gelu": (
        0.5 * (1.0 + math.erf(1.0)) + math.sqrt(2.0) * math.exp(-1.0) / math.sqrt(2.0 * math.pi),
        2.0 / math.sqrt(2.0 * math.pi),
    ),
}

_LOSS = models.MLPLoss("tanh")


def _n(config: CheckConfig) -> int:
    return 8 if config.quick else 16


@functools.lru_cache(maxsize=4)
def reference_problem(seed: int, n: int) -> tuple[Any, jax.Array, jax.Array]:
    """``(params, X, y)``: the reference tanh MLP with skip weights and its dataset.

    Args:
      seed: seeds both the data (:func:`advlip.data.synthetic`) and the weights.
      n: the number of examples.

    Returns:
      The parameters of a tanh MLP with d = :data:`D` inputs, one hidden layer of
      :data:`WIDTH` units and a linear skip connection, ``X`` of shape (n, d) and labels
      ``y`` in {−1, +1}.

    Example:
        >>> from advlip.theorems.general import reference_problem
        >>> params, X, y = reference_problem(0, 8)
        >>> hidden, out = params["layers"]
        >>> hidden["W"].shape, out["W"].shape, params["skip"].shape, X.shape, y.shape
        ((5, 4), (1, 5), (4,), (8, 4), (8,))
    """
    X, y = data.synthetic(jax.random.PRNGKey(seed), n=n, d=D)
    params = models.init_mlp(jax.random.PRNGKey(seed), D, (WIDTH,), scale=1.5, skip=True)
    return params, X, y


@functools.lru_cache(maxsize=8)
def _point(seed: int, n: int, p: float, kappa: float = 0.0, x_scale: float = 1.0, eps=None):
    params, X, y = reference_problem(seed, n)
    loss = _LOSS if kappa == 0.0 else models.MLPLoss("tanh", kappa=kappa)
    if eps is None:
        eps = EPS_LINF if p == math.inf else EPS_L2
    return adversarial.linearize(loss, params, x_scale * X, y, eps=eps, p=p)


@functools.lru_cache(maxsize=8)
def _fd(seed: int, n: int, p: float, kappa: float = 0.0, x_scale: float = 1.0, eps=None):
    return adversarial.fd_hessian(_point(seed, n, p, kappa, x_scale, eps))


def _flat(tree: Any) -> np.ndarray:
    return np.asarray(ravel_pytree(tree)[0])


def _case_counts(pt: adversarial.AdversarialPoint) -> dict[str, int]:
    return pt.summary()["cases"]


def _undetermined(rid: str, statement: str, kind: str, reason: str, figures: dict) -> CheckResult:
    return CheckResult(
        id=rid,
        statement=statement,
        kind=kind,
        verdict="undetermined",
        figure="undetermined",
        figures=figures,
        reason=reason,
    )


def _hessian_comparison(pt: adversarial.AdversarialPoint, fd: adversarial.FDHessian) -> dict:
    """Total and naive Hessians against the FD estimate, with every number behind it."""
    B = pt.blocks()
    tot = fd.compare(B.total, B.error)
    naive = fd.compare(B.naive, B.error)
    corr = np.asarray(B.total - B.naive)
    return {
        "total_vs_fd": tot,
        "naive_vs_fd": naive,
        "correction_norm": float(np.linalg.norm(corr, 2)),
        "total_norm": float(np.linalg.norm(np.asarray(B.total), 2)),
        "fd_step": fd.h,
        "max_attack_residual": fd.max_residual,
        "active_set_changed": fd.active_set_changed,
        "n_params": pt.dim,
    }


# --------------------------------------------------------------------------- GEN-DANSKIN


def check_gen_danskin(config: CheckConfig, *, planted: str | None = None) -> CheckResult:
    r"""Case G0 (Danskin; docs/theory/gen-danskin.md):
    :math:`\nabla L = \operatorname{mean}_i \nabla_\theta\ell(x_i+\delta_i^*)` against central
    differences of L with δ* re-solved at every θ ± h e_j, ± 2h e_j (L2 and L∞; L1 too
    in the full run).

    The comparison is componentwise against the Richardson tolerance of
    :class:`advlip.adversarial.FDHessian` (the value error includes the attack's
    Frank–Wolfe gap and :math:`r^2/2\lambda`). Power: the gradient at the clean input
    (δ = 0, the formula of a tool that ignores the attack) must be refuted. ``planted``
    replaces the Danskin gradient by that wrong formula (``"clean"``), for the tests.

    Args:
      config: size (quick: n = 8, p ∈ {2, ∞}) and seed.
      planted: None, or ``"clean"`` to plant the clean-input gradient.

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``identity``), one row per p.

    Example:
        A quick run takes about 30 s (``advlip verify --only GEN-DANSKIN --quick``):

        >>> from advlip import theorems
        >>> from advlip.theorems.general import check_gen_danskin
        >>> r = theorems.get("GEN-DANSKIN")
        >>> r.check_fn is check_gen_danskin, r.kind
        (True, 'identity')
    """
    n = _n(config)
    ps = (2.0, math.inf) if config.quick else (2.0, math.inf, 1.0)
    rows, ok, powered, undetermined = [], True, True, []
    for p in ps:
        eps = EPS_LINF if p == math.inf else EPS_L2
        pt = _point(config.seed, n, p)
        params, X, y = reference_problem(config.seed, n)
        clean = attacks.pgd(_LOSS, params, X, y, eps=0.0, p=p).danskin_grad
        danskin = _flat(clean if planted == "clean" else pt.grad())
        if not pt.all_determined:
            undetermined.append(f"p={p:g}: {pt.summary()['cases']}")
            continue
        fd = _fd(config.seed, n, p)
        cmp_d = fd.compare_grad(danskin)
        cmp_clean = fd.compare_grad(_flat(clean))
        ok &= cmp_d["excess"] <= 0.0
        powered &= cmp_clean["excess"] > 0.0
        rows.append(
            {
                "p": p,
                "eps": eps,
                "cases": _case_counts(pt),
                "max_residual": float(np.max(np.asarray(pt.kkt.residual))),
                "danskin_vs_fd": cmp_d,
                "clean_gradient_vs_fd": cmp_clean,
                "grad_norm": float(np.linalg.norm(danskin)),
                "fd_step": fd.h,
                "active_set_changed": fd.active_set_changed,
            }
        )
    statement = GEN_DANSKIN.statement
    if undetermined:
        return _undetermined(
            "GEN-DANSKIN",
            statement,
            "identity",
            f"the attack's case is not determined: {undetermined}",
            {"rows": rows},
        )
    worst = max(rows, key=lambda r: r["danskin_vs_fd"]["max_ratio"])
    if not ok:
        verdict = "fails"
    elif not powered:
        verdict = "undetermined"
    else:
        verdict = "holds"
    power = min(r["clean_gradient_vs_fd"]["max_ratio"] for r in rows)
    figure = ", ".join(
        f"p={r['p']:g}: |∇L−FD|/tol ≤ {r['danskin_vs_fd']['max_ratio']:.2g}" for r in rows
    )
    figure += f"; clean-input gradient off by ≥ {power:.2g}×tol"
    return CheckResult(
        id="GEN-DANSKIN",
        statement=statement,
        kind="identity",
        verdict=verdict,
        figure=figure,
        figures={"rows": rows, "planted": planted},
        worst={"p": worst["p"], **worst["danskin_vs_fd"]},
        reason=None if powered else "the clean-input gradient is within tolerance: no power",
    )


# --------------------------------------------------------------------------- GEN-L2-BOUNDARY


def _verdict_from_hessians(cmp: dict, *, naive_must_differ: bool) -> tuple[str, str | None]:
    if cmp["active_set_changed"]:
        return "undetermined", "a re-solved attack changed case inside the FD stencil"
    if cmp["total_vs_fd"]["excess"] > 0.0:
        return "fails", None
    if naive_must_differ and not cmp["naive_vs_fd"]["excess"] > 0.0:
        return "undetermined", "the naive Hessian is within tolerance of FD: the check has no power"
    return "holds", None


def check_gen_l2_boundary(config: CheckConfig, *, planted: str | None = None) -> CheckResult:
    r"""Case G2 (L2 sphere; docs/theory/gen-l2-boundary.md): on the L2 sphere the total
    Hessian :math:`H_{\theta\theta} - H_{\theta x}P(P(H_{xx}-\mu I)P)^{+}PH_{x\theta}`
    matches central differences of the Danskin gradient with δ* re-solved; the naive
    :math:`H_{\theta\theta}` does not.

    Every example must be in the ``l2_boundary`` case with the second-order condition
    :math:`P(\mu I - H_{xx})P \succ 0` (else: undetermined). ``planted="naive"`` reports
    the naive Hessian as the total one (the implicit term dropped), for the tests.

    Args:
      config: size (quick: n = 8) and seed.
      planted: None, or ``"naive"`` to plant the naive Hessian.

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``identity``).

    Example:
        >>> from advlip import theorems
        >>> theorems.get("GEN-L2-BOUNDARY").hypotheses[1]
        '‖δ*‖₂ = ε, μ > 0'
    """
    n = _n(config)
    pt = _point(config.seed, n, 2.0)
    statement = GEN_L2_BOUNDARY.statement
    cases = _case_counts(pt)
    if not pt.all_determined or set(pt.cases) != {"l2_boundary"}:
        return _undetermined(
            "GEN-L2-BOUNDARY",
            statement,
            "identity",
            f"not every example is a determined L2-boundary case: {cases}",
            {"cases": cases},
        )
    cmp = _hessian_comparison(pt, _fd(config.seed, n, 2.0))
    if planted == "naive":
        cmp["total_vs_fd"] = cmp["naive_vs_fd"]
    verdict, reason = _verdict_from_hessians(cmp, naive_must_differ=True)
    mu = np.asarray(pt.kkt.mu)
    figures = {
        **cmp,
        "cases": cases,
        "eps": EPS_L2,
        "mu_range": [float(mu.min()), float(mu.max())],
        "min_tangent_curvature": float(np.min(np.asarray(pt.tangent_min))),
        "planted": planted,
    }
    return CheckResult(
        id="GEN-L2-BOUNDARY",
        statement=statement,
        kind="identity",
        verdict=verdict,
        figure=(
            f"|∇²L−FD|/tol ≤ {cmp['total_vs_fd']['max_ratio']:.2g}; naive off by "
            f"{cmp['naive_vs_fd']['max_error']:.2g} (×{cmp['naive_vs_fd']['max_ratio']:.2g} tol)"
        ),
        figures=figures,
        worst=cmp["total_vs_fd"],
        reason=reason,
    )


# --------------------------------------------------------------------------- GEN-INTERIOR


def interior_setup(params: Any, X: jax.Array, activation: str = "tanh") -> dict[str, float]:
    r"""κ, the input scale and ε that make every maximiser of the reference MLP interior.

    For :math:`f(z) = a\cdot\sigma(Wz + b) + b_2 + s\cdot z` and
    :math:`\ell = \operatorname{softplus}(-yf)`,
    with :math:`|\sigma'| \le c_1`, :math:`|\sigma''| \le c_2` (:data:`ACTIVATION_BOUNDS`):
    :math:`\|\nabla f\| \le G = c_1\sum_k |a_k|\|W_k\| + \|s\|` and
    :math:`\|\nabla^2 f\| \le c_2\sum_k |a_k|\|W_k\|^2`, so
    :math:`\|\nabla^2_{xx}\ell\| \le B = G^2/4 + c_2\sum_k|a_k|\|W_k\|^2`
    (softplus'' ≤ 1/4, |softplus'| ≤ 1).
    With κ = 2B the loss :math:`\ell - \tfrac{\kappa}{2}\|z\|^2` is (κ/2)-strongly concave, its
    maximiser :math:`z^*` unique with :math:`\|z^*\| \le G/(\kappa/2)`; inputs scaled to
    :math:`\|x\| \le` ``x_max`` and :math:`\varepsilon = 2(2G/\kappa + x_{\max})` keep
    :math:`\|\delta^*\| = \|z^* - x\| \le \varepsilon/2`: interior with room to spare.

    Args:
      params: the reference MLP's parameters (:func:`reference_problem`).
      X: the inputs, shape (n, d).
      activation: the hidden activation, a key of :data:`ACTIVATION_BOUNDS`.

    Returns:
      ``kappa``, ``x_scale``, ``eps`` and the constants ``G``, ``B`` behind them.

    Example:
        >>> from advlip.theorems.general import interior_setup, reference_problem
        >>> params, X, _ = reference_problem(0, 8)
        >>> st = interior_setup(params, X)
        >>> st["x_scale"], st["kappa"] == 2 * st["B"], st["eps"] > 4 * st["G"] / st["kappa"]
        (0.5, True, True)
    """
    c1, c2 = ACTIVATION_BOUNDS[activation]
    W = np.asarray(params["layers"][0]["W"])
    a = np.asarray(params["layers"][1]["W"])[0]
    s = np.asarray(params["skip"])
    rows = np.linalg.norm(W, axis=1)
    G = float(c1 * np.sum(np.abs(a) * rows) + np.linalg.norm(s))
    B = G**2 / 4.0 + c2 * float(np.sum(np.abs(a) * rows**2))
    kappa = 2.0 * B
    x_scale = 0.5
    x_max = x_scale * float(np.max(np.linalg.norm(np.asarray(X), axis=1)))
    eps = 2.0 * (2.0 * G / kappa + x_max)
    return {"kappa": kappa, "x_scale": x_scale, "eps": eps, "G": G, "B": B}


def check_gen_interior(config: CheckConfig, *, planted: str | None = None) -> CheckResult:
    r"""Case G1 (interior maximiser; docs/theory/gen-interior.md): for interior maximisers
    :math:`\nabla^2 L = H_{\theta\theta} - H_{\theta x}H_{xx}^{-1}H_{x\theta}`
    matches re-solved central differences; the correction is PSD (so the naive Hessian
    is off by it); and :math:`\|\nabla^2 L\|_2 \le \operatorname{mean}_i(\|H^i_{\theta\theta}\|
    + \|H^i_{x\theta}\|^2/\lambda_{\min}(-H^i_{xx}))`.

    The model is the reference MLP made strictly concave in x (:func:`interior_setup`).
    ``planted="naive"`` drops the implicit term (for the tests).

    Args:
      config: size (quick: n = 8) and seed.
      planted: None, or ``"naive"`` to drop the implicit term.

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``identity``).

    Example:
        >>> from advlip import theorems
        >>> theorems.get("GEN-INTERIOR").hypotheses
        ('ℓ C²', '∇_xℓ = 0 at δ*, ‖δ*‖ < ε', 'H_xx ≺ 0')
    """
    n = _n(config)
    params, X, _ = reference_problem(config.seed, n)
    st = interior_setup(params, X)
    args = (config.seed, n, 2.0, st["kappa"], st["x_scale"], st["eps"])
    pt = _point(*args)
    statement = GEN_INTERIOR.statement
    cases = _case_counts(pt)
    if not pt.all_determined or set(pt.cases) != {"interior"}:
        return _undetermined(
            "GEN-INTERIOR",
            statement,
            "identity",
            f"not every example is a determined interior case: {cases}",
            {"cases": cases, **st},
        )
    cmp = _hessian_comparison(pt, _fd(*args))
    if planted == "naive":
        cmp["total_vs_fd"] = cmp["naive_vs_fd"]
    verdict, reason = _verdict_from_hessians(cmp, naive_must_differ=True)
    B = pt.blocks()
    # PSD correction: eigenvalues of total − naive move by at most ‖error‖_F (Weyl)
    corr = np.asarray(B.total - B.naive)
    corr_min = float(np.linalg.eigvalsh(0.5 * (corr + corr.T))[0])
    err_f = float(np.linalg.norm(np.asarray(B.error)))
    psd_ok = corr_min >= -err_f
    # G1 bound, per example, then averaged (triangle inequality)
    Htt, Hxt, Hxx = (np.asarray(a) for a in (B.Htt, B.Hxt, B.Hxx))
    lam = np.array([np.linalg.eigvalsh(-h)[0] for h in Hxx])
    bound = float(
        np.mean(
            [
                np.linalg.norm(a, 2) + np.linalg.norm(b, 2) ** 2 / c
                for a, b, c in zip(Htt, Hxt, lam, strict=True)
            ]
        )
    )
    measured = float(np.linalg.norm(np.asarray(B.total), 2))
    bound_ok = measured <= bound + err_f
    if verdict == "holds" and not (psd_ok and bound_ok):
        verdict = "fails"
    figures = {
        **cmp,
        **st,
        "cases": cases,
        "correction_min_eigenvalue": corr_min,
        "correction_psd": psd_ok,
        "hessian_norm": measured,
        "g1_bound": bound,
        "g1_bound_holds": bound_ok,
        "min_lambda_neg_Hxx": float(lam.min()),
        "planted": planted,
    }
    return CheckResult(
        id="GEN-INTERIOR",
        statement=statement,
        kind="identity",
        verdict=verdict,
        figure=(
            f"|∇²L−FD|/tol ≤ {cmp['total_vs_fd']['max_ratio']:.2g}; naive off by "
            f"{cmp['naive_vs_fd']['max_error']:.2g}; ‖∇²L‖ = {measured:.3g} ≤ G1 (interior "
            f"maximiser) bound {bound:.3g}"
        ),
        figures=figures,
        worst=cmp["total_vs_fd"],
        reason=reason,
    )


# --------------------------------------------------------------------------- GEN-LINF-VERTEX


def switching_surface(params: Any, j: int = 0) -> tuple[Any, np.ndarray]:
    r"""``(θ0, e)``: the reference MLP with input j cut from the hidden layer
    (:math:`W_{:,j} = 0`) and skip weight :math:`s_j = 0`, and the unit direction of
    :math:`s_j` in ``ravel_pytree`` order.

    At θ0 the output is affine — in fact constant — in :math:`x_j`, so
    :math:`\partial_{x_j}\ell = 0` for every example: a switching surface of the L∞
    attack. Along :math:`\theta_0 \pm t e` the sign of
    :math:`\partial_{x_j}\ell = \ell'(m)\,y\,(\pm t)`
    flips, every example's :math:`\delta^*_j` jumps between :math:`\pm\varepsilon`, and since
    :math:`\nabla_\theta\ell` is affine in :math:`x_j` on the segment the jump of ∇L is exactly
    :math:`\operatorname{mean}_i H^i_{\theta x}\Delta\delta_i` (case G3,
    docs/theory/gen-linf-vertex.md).

    Args:
      params: the reference MLP's parameters (:func:`reference_problem`).
      j: the input coordinate to cut.

    Returns:
      θ0 (a parameter pytree) and the unit direction e (a flat array).

    Example:
        >>> import numpy as np
        >>> from advlip.theorems.general import reference_problem, switching_surface
        >>> params, _, _ = reference_problem(0, 8)
        >>> theta0, e = switching_surface(params, j=0)
        >>> hidden, _ = theta0["layers"]
        >>> skip = theta0["skip"]
        >>> column = hidden["W"].T[0]   # input j = 0's weights into the hidden layer
        >>> bool(np.all(column == 0)), float(skip[0])
        (True, 0.0)
        >>> e.shape, float(np.linalg.norm(e))
        ((35,), 1.0)
    """
    layers = [dict(layer) for layer in params["layers"]]
    layers[0]["W"] = layers[0]["W"].at[:, j].set(0.0)
    theta0 = {"layers": layers, "skip": params["skip"].at[j].set(0.0)}
    e = jax.tree.map(jnp.zeros_like, theta0)
    e["skip"] = e["skip"].at[j].set(1.0)
    return theta0, _flat(e)


def check_gen_linf_vertex(config: CheckConfig, *, planted: str | None = None) -> CheckResult:
    r"""Case G3 (L∞ vertex; docs/theory/gen-linf-vertex.md): (a) at L∞ vertices δ* is locally
    constant and :math:`\nabla^2 L = H_{\theta\theta}`, which matches re-solved central
    differences; (b) across a switching surface (:func:`switching_surface`) ∇L jumps by :math:`H_{\theta x}\Delta\delta`, with
    :math:`\|\Delta\delta_i\| = 2\varepsilon`, and R grows like :math:`t^{-1}`.

    The jump is measured on witness pairs :math:`\theta_0 \pm t e`,
    :math:`t = 10^{-6}\cdot 2^k`, Richardson-extrapolated to t → 0 (the one-sided
    gradients are smooth in t), against the mixed product from the dense blocks at θ0.
    ``planted="no_jump"`` predicts no jump (a smooth-Hessian model), for the tests.

    Args:
      config: size (quick: n = 8) and seed.
      planted: None, or ``"no_jump"`` to predict no jump.

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``witness``).

    Example:
        >>> from advlip import theorems
        >>> theorems.get("GEN-LINF-VERTEX").kind
        'witness'
    """
    n = _n(config)
    statement = GEN_LINF_VERTEX.statement
    # (a) vertices
    pt = _point(config.seed, n, math.inf)
    cases = _case_counts(pt)
    if not pt.all_determined:
        return _undetermined(
            "GEN-LINF-VERTEX",
            statement,
            "witness",
            f"the L∞ attack's case is not determined: {cases}",
            {"cases": cases},
        )
    cmp = _hessian_comparison(pt, _fd(config.seed, n, math.inf))
    all_vertex = set(pt.cases) == {"linf_vertex"}
    naive_ok = cmp["naive_vs_fd"]["excess"] <= 0.0
    part_a = cmp["total_vs_fd"]["excess"] <= 0.0 and (naive_ok or not all_vertex)

    # (b) the switching surface
    params, X, y = reference_problem(config.seed, n)
    theta0, e = switching_surface(params)
    flat0, unravel = ravel_pytree(theta0)
    flat0, e = np.asarray(flat0), np.asarray(e)
    ts = smoothness.witness_ts(1e-6, 1e-2)

    def attacked(theta):
        return attacks.pgd(_LOSS, unravel(jnp.asarray(theta)), X, y, eps=EPS_LINF, p=math.inf)

    plus = [attacked(flat0 + t * e) for t in ts]
    minus = [attacked(flat0 - t * e) for t in ts]
    residual = max(float(np.max(np.asarray(a.kkt.residual))) for a in plus + minus)
    gp = np.stack([_flat(a.danskin_grad) for a in plus])
    gm = np.stack([_flat(a.danskin_grad) for a in minus])
    J = gp - gm
    dtheta = 2.0 * ts
    pt0 = adversarial.linearize(_LOSS, theta0, X, y, eps=EPS_LINF, p=math.inf)
    e_g = float(np.max(pt0.gradient_error(np.zeros(n))))
    fit = smoothness.fit_growth_exponent(ts, J, dtheta, grad_abs_error=e_g)
    # predicted jump: mean_i H_θx^i Δδ_i at θ0 (δ_j = 0 there: the middle of the segment)
    ddelta = np.asarray(plus[0].delta - minus[0].delta)
    B0 = pt0.blocks()
    Hxt = np.asarray(B0.Hxt)
    predicted = np.einsum("nip,ni->p", Hxt, ddelta) / n
    if planted == "no_jump":
        predicted = np.zeros_like(predicted)
    k_h = adversarial.cached_ops("hessian", _LOSS, theta0, X[0], y[0]) + D + n
    pred_err = tolerance.gamma(k_h) * np.einsum("nip,ni->p", np.abs(Hxt), np.abs(ddelta)) / n
    # Richardson on J(t) = J0 + a t + b t² + …: J_R(t) = 2J(t) − J(2t) = J0 + O(t²)
    JR0 = 2.0 * J[0] - J[1]
    JR1 = 2.0 * J[1] - J[2]
    # |JR0 − J0| ≈ |JR1 − JR0|/3 (the O(t²) term), plus the rounding of the five gradients
    # in JR0 (weights 2,2,1,1 → 6 e_g)
    tol_jump = np.abs(JR1 - JR0) / 3.0 + 6.0 * e_g + pred_err
    jump_err = np.abs(JR0 - predicted)
    jump_ok = bool(np.all(jump_err <= tol_jump)) and residual == 0.0
    switched = int(np.sum(np.any(np.abs(ddelta) > 0, axis=1)))
    dd_norm = np.linalg.norm(ddelta, axis=1)
    dd_ok = bool(np.allclose(dd_norm[dd_norm > 0], 2 * EPS_LINF, rtol=tolerance.gamma(4), atol=0))
    exp_ok = fit.resolved and fit.agrees_with(-1.0)
    part_b = jump_ok and exp_ok and dd_ok and switched > 0
    if part_a and part_b:
        verdict, reason = "holds", None
    elif not fit.resolved:
        verdict, reason = (
            "undetermined",
            f"exponent fit not resolved (tolerance {fit.tolerance:.2g})",
        )
    else:
        verdict, reason = "fails", None
    figures = {
        "vertices": {
            **cmp,
            "cases": cases,
            "all_vertex": all_vertex,
            "naive_equals_total": naive_ok,
        },
        "switching": {
            "jump_norm": float(np.linalg.norm(JR0)),
            "predicted_norm": float(np.linalg.norm(predicted)),
            "max_abs_jump_error": float(jump_err.max()),
            "max_tolerance": float(tol_jump.max()),
            "jump_ok": jump_ok,
            "examples_switched": switched,
            "delta_jump_norms": dd_norm.tolist(),
            "two_eps": 2 * EPS_LINF,
            "exponent": fit.to_dict(),
            "max_attack_residual": residual,
        },
        "planted": planted,
    }
    return CheckResult(
        id="GEN-LINF-VERTEX",
        statement=statement,
        kind="witness",
        verdict=verdict,
        figure=(
            f"vertices: |∇²L−FD|/tol ≤ {cmp['total_vs_fd']['max_ratio']:.2g} (= naive); jump "
            f"‖ΔL'‖ = {np.linalg.norm(JR0):.3g} vs ‖H_θxΔδ‖ = {np.linalg.norm(predicted):.3g} "
            f"(err {jump_err.max():.1e} ≤ {tol_jump.max():.1e}); slope {fit.exponent:+.3f}"
        ),
        figures=figures,
        worst={"theta0": flat0.tolist(), "direction": e.tolist(), "t": ts.tolist()},
        reason=reason,
    )


# --------------------------------------------------------------------------- GEN-FLATNESS

#: The flatness family's settings: ‖w‖ = 1/4, c = 2 (so s(c) ≈ 0.105 and λ_max falls
#: until κ ≈ 9.5), inputs scaled to ‖x‖ ≲ 0.75, ε = 1.5: interior for every κ ≥ 1/2.
FLAT_W, FLAT_C, FLAT_X, FLAT_EPS = 0.25, 2.0, 0.5, 1.5


def check_gen_flatness(config: CheckConfig, *, planted: str | None = None) -> CheckResult:
    r"""Case G4 (flatness in x vs smoothness in θ; docs/theory/gen-flatness.md): on
    :math:`\ell_\kappa` (:class:`advlip.models.FlatnessLoss`) the top eigenvalue of the total
    Hessian, by Lanczos on implicit Hessian-vector products, equals
    :math:`\max(1/\kappa, s(c))` and falls as the input curvature κ grows; the naive
    Hessian's stays at :math:`s(c)`. Beside it: the interior-case (G1) bound
    :math:`s + 1/\kappa` and Liu et al.'s bound
    :math:`L_{\theta\theta}\|\Delta\theta\| + L_{\theta x}\,2\varepsilon`
    (:math:`L_{\theta\theta} = 1/4`, :math:`L_{\theta x} = 1`), evaluated on a pair at
    distance r = 0.01 — valid, but its effective constant :math:`L_{\theta\theta} + 2\varepsilon L_{\theta x}/r` ignores κ.

    Tolerance per κ: the Lanczos residual bound plus :math:`\gamma_k(1/\kappa + s)` (k: the
    ops of one example's HVP, the CG iterations and the mean); this family's Hessian
    does not depend on δ (its third derivatives in x vanish), so the attack's error
    does not enter. ``planted="naive"`` reports the naive eigenvalue as the total one.
    proofs/gen_flatness.py derives the closed form.

    Args:
      config: size (quick: 6 values of κ, full: 12) and seed.
      planted: None, or ``"naive"`` to report the naive eigenvalue.

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``identity``), one row per κ.

    Example:
        >>> from advlip import theorems
        >>> from advlip.theorems.general import FLAT_C
        >>> theorems.get("GEN-FLATNESS").bound()   # λ_max(∇²L), s(c) = σ(c)σ(−c)
        Max(s(c), 1/κ)
        >>> FLAT_C   # s(2) ≈ 0.105: λ_max falls until κ = 2 + 2cosh 2 ≈ 9.5
        2.0
    """
    kappas = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    if not config.quick:
        kappas = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0)
    n = _n(config)
    X, y = data.synthetic(jax.random.PRNGKey(config.seed), n=n, d=D)
    X = FLAT_X * X
    params = models.init_flatness(jax.random.PRNGKey(config.seed), D, w_norm=FLAT_W, c=FLAT_C)
    flat0, unravel = ravel_pytree(params)
    rng = np.random.default_rng([config.seed, 44])
    e = rng.standard_normal(flat0.size)
    e /= np.linalg.norm(e)
    r = 1e-2
    L_tt, L_tx = 0.25, 1.0
    liu_const = L_tt + L_tx * 2.0 * FLAT_EPS / r
    rows, statement = [], GEN_FLATNESS.statement
    for kappa in kappas:
        loss = models.FlatnessLoss(kappa)
        pt = adversarial.linearize(loss, params, X, y, eps=FLAT_EPS, p=2.0)
        if not pt.all_determined or set(pt.cases) != {"interior"}:
            return _undetermined(
                "GEN-FLATNESS",
                statement,
                "identity",
                f"κ={kappa}: not every maximiser is a determined interior one: "
                f"{pt.summary()['cases']}",
                {"rows": rows},
            )
        tot = pt.top_eigenvalue(hessian="total")
        nai = pt.top_eigenvalue(hessian="naive")
        formula = float(loss.lambda_max(params, y))
        s = float(loss.curvature_of_c(params, y))
        k = adversarial.cached_ops("hessian", loss, params, X[0], y[0]) + pt.cg_maxiter * 4 * D + n
        tol = float(tot.bound) + tolerance.gamma(k) * (1.0 / kappa + s)
        tol_n = float(nai.bound) + tolerance.gamma(k) * s
        measured = float(nai.value) if planted == "naive" else float(tot.value)
        g1 = s + 1.0 / kappa
        # Liu's bound on a pair at distance r (both gradients re-attacked)
        a2 = attacks.pgd(loss, unravel(flat0 + r * e), X, y, eps=FLAT_EPS, p=2.0)
        R = float(np.linalg.norm(_flat(a2.danskin_grad) - _flat(pt.grad())) / r)
        rows.append(
            {
                "kappa": kappa,
                "lambda_total": measured,
                "formula": formula,
                "tolerance": tol,
                "matches": abs(measured - formula) <= tol,
                "lambda_naive": float(nai.value),
                "naive_formula": s,
                "naive_matches": abs(float(nai.value) - s) <= tol_n,
                "lanczos_steps": tot.steps,
                "g1_bound": g1,
                "R_pair": R,
                "liu_effective_constant": liu_const,
                "liu_valid": R * r <= L_tt * r + L_tx * 2.0 * FLAT_EPS,
            }
        )
    lam = np.array([row["lambda_total"] for row in rows])
    tols = np.array([row["tolerance"] for row in rows])
    monotone = bool(np.all(lam[1:] <= lam[:-1] + tols[1:] + tols[:-1]))
    # power: where the formula falls, the measured values must fall by more than the noise
    form = np.array([row["formula"] for row in rows])
    falls = form[1:] < form[:-1]
    resolved = bool(np.all((lam[:-1] - lam[1:])[falls] > (tols[1:] + tols[:-1])[falls]))
    matches = all(row["matches"] and row["naive_matches"] for row in rows)
    bounds = all(
        row["liu_valid"] and row["lambda_total"] <= row["g1_bound"] + row["tolerance"]
        for row in rows
    )
    if matches and monotone and resolved and bounds:
        verdict, reason = "holds", None
    elif matches and monotone and not resolved:
        verdict, reason = "undetermined", "the fall of λ_max is within the tolerance"
    else:
        verdict, reason = "fails", None
    worst = max(rows, key=lambda row: abs(row["lambda_total"] - row["formula"]) / row["tolerance"])
    return CheckResult(
        id="GEN-FLATNESS",
        statement=statement,
        kind="identity",
        verdict=verdict,
        figure=(
            f"λ_max {rows[0]['lambda_total']:.3g} → {rows[-1]['lambda_total']:.3g} as κ "
            f"{kappas[0]:g} → {kappas[-1]:g} (= max(1/κ, s), max err "
            f"{max(abs(row['lambda_total'] - row['formula']) for row in rows):.1e}); naive "
            f"{rows[0]['lambda_naive']:.3g}; Liu constant {liu_const:.3g}"
        ),
        figures={
            "rows": rows,
            "monotone": monotone,
            "fall_resolved": resolved,
            "eps": FLAT_EPS,
            "c": FLAT_C,
            "w_norm": FLAT_W,
            "liu": {"L_theta_theta": L_tt, "L_theta_x": L_tx, "diam2": 2 * FLAT_EPS, "r": r},
            "planted": planted,
        },
        worst={
            "kappa": worst["kappa"],
            "lambda": worst["lambda_total"],
            "formula": worst["formula"],
        },
        reason=reason,
    )


# --------------------------------------------------------------------------- registry


def _sym(name: str):
    import sympy as sp

    return sp.Symbol(name, positive=True)


def _bound_g1():
    return _sym("‖H_θθ‖") + _sym("‖H_xθ‖") ** 2 / _sym("λ_min(-H_xx)")


def _bound_flatness():
    import sympy as sp

    return sp.Max(1 / _sym("κ"), _sym("s(c)"))


def _bound_jump():
    return 2 * _sym("ε") * _sym("‖H_θx e_j‖")


GEN_DANSKIN = register(
    Result(
        id="GEN-DANSKIN",
        title="Danskin: the gradient of the adversarial loss ignores how δ* moves",
        statement=(
            "∇L(θ) = mean_i ∇_θ ℓ(x_i + δ*_i(θ), θ) = central differences of L with δ* re-solved"
        ),
        hypotheses=("ℓ C¹", "unique maximiser δ*_i per example", "attack converged (KKT residual)"),
        kind="identity",
        check_fn=check_gen_danskin,
        family="general",
    )
)
GEN_INTERIOR = register(
    Result(
        id="GEN-INTERIOR",
        title="Interior maximiser: total Hessian H_θθ − H_θx H_xx⁻¹ H_xθ",
        statement=(
            "∇²L = H_θθ − H_θx H_xx⁻¹ H_xθ (= re-solved FD; the correction is PSD, the naive "
            "H_θθ misses it); ‖∇²L‖ ≤ ‖H_θθ‖ + ‖H_xθ‖²/λ_min(−H_xx)"
        ),
        hypotheses=("ℓ C²", "∇_xℓ = 0 at δ*, ‖δ*‖ < ε", "H_xx ≺ 0"),
        kind="identity",
        check_fn=check_gen_interior,
        family="general",
        bound=_bound_g1,
    )
)
GEN_L2_BOUNDARY = register(
    Result(
        id="GEN-L2-BOUNDARY",
        title="L2 boundary: total Hessian from the bordered KKT system",
        statement=(
            "∇²L = H_θθ − H_θx P(P(H_xx − μI)P)⁺P H_xθ, P = I − δ*δ*ᵀ/ε², μ = ‖∇_xℓ‖/ε "
            "(= re-solved FD; the naive H_θθ does not match)"
        ),
        hypotheses=("ℓ C²", "‖δ*‖₂ = ε, μ > 0", "P(μI − H_xx)P ≻ 0 on the tangent space"),
        kind="identity",
        check_fn=check_gen_l2_boundary,
        family="general",
    )
)
GEN_LINF_VERTEX = register(
    Result(
        id="GEN-LINF-VERTEX",
        title="L∞ vertex: ∇²L = H_θθ locally; ∇L jumps by H_θx Δδ across switching surfaces",
        statement=(
            "at a vertex δ* = ε sign(∇_xℓ): ∇²L = H_θθ (= re-solved FD); where ∂_{x_j}ℓ changes "
            "sign "
            "∇L jumps by H_θx Δδ, ‖Δδ‖ = 2ε per switched coordinate, R ~ 1/t"
        ),
        hypotheses=("ℓ C²", "p = ∞", "every ∂_{x_j}ℓ ≠ 0 at the vertex (away from the surface)"),
        kind="witness",
        check_fn=check_gen_linf_vertex,
        family="general",
        bound=_bound_jump,
    )
)
GEN_FLATNESS = register(
    Result(
        id="GEN-FLATNESS",
        title="Flatness in x vs smoothness in θ: λ_max(∇²L) falls as the input curvature κ grows",
        statement=(
            "on ℓ_κ = y w·x − κ‖x‖²/2 + softplus(−yc): λ_max(∇²L) = max(1/κ, s(c)) (Lanczos on "
            "implicit HVPs), falling in κ; naive λ_max = s(c); Liu's bound valid but κ-blind"
        ),
        hypotheses=("interior maximisers (‖yw/κ − x_i‖ < ε)", "H_xx = −κI"),
        kind="identity",
        check_fn=check_gen_flatness,
        family="general",
        bound=_bound_flatness,
    )
)
