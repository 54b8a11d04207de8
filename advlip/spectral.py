r"""Matrix-free linear algebra on any symmetric operator: CG, Lanczos, power iteration
(docs/theory/measuring.md).

Everything here takes a ``matvec`` mapping a flat vector of shape (n,) to ``A v``
(a Hessian-vector product, usually) and knows nothing of the theory. All loops
have a static length, so the functions work under ``jit`` and ``vmap``.

* :func:`cg` — conjugate gradients for ``A x = b`` with ``A`` symmetric positive
  definite; reports the smallest curvature :math:`p^\top A p / p^\top p` it met, so a
  caller can tell when ``A`` was not positive definite after all.
* :func:`lanczos` — ``k`` steps with full reorthogonalisation; the extreme Ritz
  values come with the a-posteriori bound :math:`|\beta_k s_{kj}|` on their distance
  to an eigenvalue of ``A`` (Parlett, *The Symmetric Eigenvalue Problem*, Thm 13.1.1),
  and the iteration stops cleanly when the Krylov space is invariant, so with
  ``k ≥ n`` the extreme eigenvalues are exact to rounding.
* :func:`power_iteration` — the eigenvalue of largest magnitude, with the residual
  :math:`\|Av - \lambda v\|` that bounds its distance to an eigenvalue.
* :func:`dense_matrix` — ``A`` itself, column by column (small ``n`` only).

**Rounding.** The a-posteriori bounds above hold in exact arithmetic for the operator
as the ``matvec`` computes it. Two more errors are reported separately: the rounding
of the algorithm itself (``rounding``: the recurrence and the small eigensolver, in the
unit roundoff of the dtype of ``v0``), and the error of the ``matvec`` (the caller's:
a Hessian-vector product of a network is not exact either). A bound of 0 — which the
residual bound reaches when the Krylov space is invariant — is never the whole error.
Every threshold (CG's stop, Lanczos' breakdown test) uses the dtype's unit roundoff.

Examples:
    Rounded: the last digits depend on the dtype and the compiler.

    >>> import jax.numpy as jnp
    >>> from advlip import spectral
    >>> A = jnp.diag(jnp.array([1.0, 2.0, 5.0]))
    >>> res = spectral.lanczos(lambda v: A @ v, jnp.ones(3), num_steps=3)
    >>> round(float(res.largest), 4), round(float(res.smallest), 4)
    (5.0, 1.0)
    >>> bool(abs(float(res.largest) - 5.0) <= float(res.largest_bound + res.rounding))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from advlip import tolerance

__all__ = [
    "CGInfo",
    "cg",
    "LanczosResult",
    "lanczos",
    "PowerResult",
    "power_iteration",
    "dense_matrix",
]

Matvec = Callable[[jax.Array], jax.Array]


class CGInfo(NamedTuple):
    r"""Diagnostics of :func:`cg`: iterations used, final residual ``‖b - A x‖`` (recursive),
    and the smallest curvature :math:`p^\top A p / p^\top p` met (``inf`` if none).

    Examples:
        A direction of zero curvature shows that ``A`` is not positive definite:

        >>> import jax.numpy as jnp
        >>> from advlip.spectral import cg
        >>> x, info = cg(lambda v: jnp.array([1.0, -1.0]) * v, jnp.ones(2), maxiter=10)
        >>> int(info.iterations), float(info.min_curvature)   # pᵀAp = 1 - 1 = 0 for p = b
        (1, 0.0)
    """

    iterations: jax.Array
    residual: jax.Array
    min_curvature: jax.Array


def cg(matvec: Matvec, b: jax.Array, *, maxiter: int, rtol: float | None = None):
    r"""Conjugate gradients for :math:`A x = b`, ``A`` symmetric positive definite.

    Stops after ``maxiter`` iterations, when :math:`\|r\| \le` ``rtol``:math:`\|b\|`, or
    when a direction of non-positive curvature appears (then ``min_curvature ≤ 0``
    and ``x`` is the last iterate, which is not a solution). The default ``rtol`` is
    :math:`\gamma_{2n+4}` in the unit roundoff of ``b``'s dtype (:mod:`advlip.tolerance`):
    the residual of the exact solution computed in that dtype is about that large, so
    iterating further gains nothing.

    Returns ``(x, CGInfo)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.spectral import cg
        >>> A = jnp.array([[4.0, 1.0], [1.0, 3.0]])          # A⁻¹ = [[3, -1], [-1, 4]] / 11
        >>> x, info = cg(lambda v: A @ v, jnp.array([1.0, 2.0]), maxiter=10)
        >>> [round(float(v), 4) for v in x], int(info.iterations)   # (1/11, 7/11) in n = 2 steps
        ([0.0909, 0.6364], 2)
    """
    n = b.shape[0]
    if rtol is None:
        # k = 2n + 4: a matvec row (n products, n sums) and the update, in b's dtype.
        rtol = tolerance.gamma(2 * n + 4, b.dtype)
    bnorm = jnp.linalg.norm(b)
    thresh = rtol * bnorm
    x0 = jnp.zeros_like(b)
    init = (
        x0,
        b,
        b,
        b @ b,
        jnp.asarray(0),
        jnp.asarray(jnp.inf, dtype=b.dtype),
        jnp.asarray(False),
    )

    def cond(state):
        _, _, _, rs, i, _, broke = state
        return (i < maxiter) & (jnp.sqrt(rs) > thresh) & ~broke

    def body(state):
        x, r, p, rs, i, curv, _ = state
        Ap = matvec(p)
        pAp = p @ Ap
        pp = p @ p
        curv = jnp.minimum(curv, pAp / pp)
        broke = pAp <= 0
        alpha = jnp.where(broke, 0.0, rs / jnp.where(broke, 1.0, pAp))
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = r @ r
        beta = rs_new / jnp.where(rs > 0, rs, 1.0)
        p = r + beta * p
        return x, r, p, rs_new, i + 1, curv, broke

    x, _, _, rs, it, curv, _ = lax.while_loop(cond, body, init)
    return x, CGInfo(iterations=it, residual=jnp.sqrt(rs), min_curvature=curv)


class LanczosResult(NamedTuple):
    """Ritz values of ``k`` Lanczos steps and their error bounds.

    Attributes:
      ritz_values: eigenvalues of the tridiagonal ``T`` (ascending), shape (k,);
        after an early breakdown the unused slots repeat ``alphas[0]``, a Rayleigh
        quotient that lies inside the spectrum, so the extremes are unaffected.
      residual_bounds: :math:`|\\beta s_{\\text{last}, j}|` for each Ritz value: some
        eigenvalue of ``A`` lies within that distance.
      ritz_vectors: the Ritz vectors in the original space, shape (k, n), row j for
        ``ritz_values[j]``.
      steps: Lanczos steps actually taken (< k after an invariant subspace was found).
      rounding: bound on what the rounding of the algorithm adds to every Ritz value's
        distance to an eigenvalue of the (computed) operator: the recurrence and the
        reorthogonalisation, :math:`\\sqrt{\\text{steps}}\\,\\gamma_{4n+8}\\|A\\|` (the
        2-norm of the matrix of the steps' errors, each :math:`\\gamma_{4n+8}\\|A\\|`), and the
        tridiagonal eigensolver, :math:`\\gamma_{k^2+8}\\|T\\|`, in the unit roundoff of
        the dtype, with :math:`\\|A\\|` estimated by :math:`\\max_j(|\\alpha_j|, \\beta_j)`.
      aux: with ``has_aux``, the sum over the Krylov basis vectors of the matvec's
        auxiliary output (``None`` otherwise).

    Examples:
        On :math:`A = \\operatorname{diag}(-4, 1, 2)` the Krylov space of ``(1, 1, 1)`` is the
        whole space after 3 steps; the other 2 are no-ops:

        >>> import jax.numpy as jnp
        >>> from advlip.spectral import lanczos
        >>> res = lanczos(lambda v: jnp.array([-4.0, 1.0, 2.0]) * v, jnp.ones(3), num_steps=5)
        >>> int(res.steps), res.ritz_values.shape
        (3, (5,))
        >>> [round(float(v), 4) for v in (res.smallest, res.largest, res.spectral_norm)]
        [-4.0, 2.0, 4.0]
    """

    ritz_values: jax.Array
    residual_bounds: jax.Array
    ritz_vectors: jax.Array
    alphas: jax.Array
    betas: jax.Array
    steps: jax.Array
    rounding: Any = 0.0
    aux: Any = None

    @property
    def largest(self) -> jax.Array:
        return self.ritz_values[-1]

    @property
    def smallest(self) -> jax.Array:
        return self.ritz_values[0]

    @property
    def largest_bound(self) -> jax.Array:
        return self.residual_bounds[-1]

    @property
    def smallest_bound(self) -> jax.Array:
        return self.residual_bounds[0]

    @property
    def spectral_norm(self) -> jax.Array:
        r"""The local constant :math:`\lambda_{\max}(|A|)`, the largest :math:`|\lambda|`."""
        return jnp.maximum(jnp.abs(self.smallest), jnp.abs(self.largest))


def lanczos(
    matvec: Matvec,
    v0: jax.Array,
    *,
    num_steps: int,
    max_steps: Any = None,
    has_aux: bool = False,
    project: Matvec | None = None,
) -> LanczosResult:
    r"""``num_steps`` Lanczos steps on a symmetric ``matvec`` from ``v0``, fully reorthogonalised.

    The Krylov space stops growing when the new residual :math:`\beta_j` falls to the
    rounding noise of the reorthogonalised vector in ``v0``'s dtype,
    :math:`\gamma_{4n+8}\,\|A\|_{\rm est}`
    (k = 4n + 8: two Gram–Schmidt passes of n-term dot products), with
    :math:`\|A\|_{\rm est} = \max_j(|\alpha_j|, \beta_j)`; the remaining steps are
    no-ops. With ``num_steps ≥`` the dimension of the smallest invariant subspace
    containing ``v0`` the extreme Ritz values are eigenvalues of ``A`` to rounding.
    ``max_steps`` (may be traced, ≤ ``num_steps``) stops it earlier: when the caller
    knows the dimension of the invariant subspace (a tangent space, say), the steps
    past it would only add rounding noise, and a spurious Ritz value near 0.

    ``project``: an orthogonal projector onto a subspace that ``matvec`` leaves invariant
    (a tangent space, say), applied to every new Lanczos vector. Without it, the rounding
    components along eigenvectors *outside* the subspace (a zero eigenvalue on its
    complement, far from the spectrum on it) grow like the Lanczos polynomial at that
    eigenvalue — by |α/β| per step — and after a few dozen steps the Krylov basis holds
    one of them: a spurious Ritz value (0 for a tangent operator) that full
    reorthogonalisation against the basis cannot remove.

    With ``has_aux`` the matvec returns ``(A v, aux)`` (``aux`` an array or pytree) and
    the result's ``aux`` is the sum of ``aux`` over the orthonormal Krylov basis vectors
    — e.g. per-term squared norms :math:`\|A_i q_j\|^2`, whose sum over a basis of the
    whole space is :math:`\|A_i\|_F^2`.

    Examples:
        The 1-D Laplacian ``tridiag(-1, 2, -1)`` of size 3 has eigenvalues
        :math:`2 - \sqrt 2, 2, 2 + \sqrt 2`:

        >>> import jax.numpy as jnp
        >>> from advlip.spectral import lanczos
        >>> A = jnp.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]])
        >>> res = lanczos(lambda v: A @ v, jnp.array([1.0, 0.0, 0.0]), num_steps=3)
        >>> [round(float(v), 4) for v in res.ritz_values]
        [0.5858, 2.0, 3.4142]
        >>> err = abs(float(res.largest) - (2 + 2**0.5))   # within the reported bounds
        >>> err <= float(res.largest_bound + res.rounding)
        True
    """
    n = v0.shape[0]
    k = int(num_steps)
    if k < 1:
        raise ValueError(f"num_steps={num_steps!r} is not allowed; allowed: an integer >= 1")
    dtype = v0.dtype
    q0 = v0 / jnp.linalg.norm(v0)
    # two Gram–Schmidt passes of n-term dot products (4n + 8 ops per entry), plus a
    # projection's two n-term passes when one is given
    k_ops = 4 * n + 8 + (2 * n + 4 if project is not None else 0)
    thresh_k = tolerance.gamma(k_ops, dtype)
    limit = k if max_steps is None else jnp.minimum(max_steps, k)
    mv = matvec if has_aux else (lambda v: (matvec(v), None))
    aux0 = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(mv, q0)[1])

    def step(carry, j):
        Q, q, alive, scale, alpha0, aux_sum = carry
        Q = Q.at[j].set(jnp.where(alive, q, 0.0))
        w, aux = mv(q)
        aux_sum = jax.tree.map(lambda s, a: s + jnp.where(alive, a, 0.0), aux_sum, aux)
        a = q @ w
        w = w - a * q
        if project is not None:
            w = project(w)
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(a), b))
        alpha0 = jnp.where(j == 0, a, alpha0)
        next_alive = alive & (b > thresh_k * scale) & (j + 1 < limit)
        q_next = jnp.where(next_alive, w / jnp.where(b > 0, b, 1.0), 0.0)
        a_out = jnp.where(alive, a, alpha0)
        b_out = jnp.where(alive, b, 0.0)
        return (Q, q_next, next_alive, scale, alpha0, aux_sum), (a_out, b_out, alive)

    Q0 = jnp.zeros((k, n), dtype=dtype)
    zero = jnp.asarray(0.0, dtype=dtype)
    init = (Q0, q0, jnp.asarray(True), zero, zero, aux0)
    (Q, _, _, scale, _, aux_sum), (alphas, betas, alive) = lax.scan(step, init, jnp.arange(k))
    steps = jnp.sum(alive)
    # T: diagonal alphas, off-diagonal betas of every step but the last; a dead step's
    # beta is 0 and its alpha the Rayleigh quotient alphas[0], which decouples it.
    off = jnp.where(alive[1:], betas[:-1], 0.0)
    T = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
    vals, S = jnp.linalg.eigh(T)
    last = jnp.maximum(steps - 1, 0)
    b_last = betas[last]
    bounds = jnp.abs(b_last * S[last, :])
    # Ritz values living on dead slots repeat alphas[0]; by Cauchy interlacing they lie
    # between the extreme Ritz values of the live block, so they never are the extremes.
    vecs = S.T @ Q
    # rounding of the algorithm (Paige): A Q_k = Q_k T_k + β q e_kᵀ + F_k, each column of F_k
    # the rounding of one step — the matvec's result minus αq and two Gram–Schmidt passes
    # of n-term dot products, γ_{4n+8}‖A‖ — so ‖F_k‖₂ ≤ ‖F_k‖_F ≤ √k γ_{4n+8}‖A‖; the
    # eigensolver of the k×k T is backward stable, γ_{k²+8}‖T‖ with a generous count
    # (‖T‖ ≤ ‖A‖ to rounding); ‖A‖ is estimated by max_j(|α_j|, β_j)
    rounding = (
        jnp.sqrt(steps.astype(dtype)) * tolerance.gamma(k_ops, dtype)
        + tolerance.gamma(k * k + 8, dtype)
    ) * scale
    return LanczosResult(
        ritz_values=vals,
        residual_bounds=bounds,
        ritz_vectors=vecs,
        alphas=alphas,
        betas=betas,
        steps=steps,
        rounding=rounding,
        aux=aux_sum if has_aux else None,
    )


class PowerResult(NamedTuple):
    r"""The dominant eigenpair estimate and its residual ``‖A v - λ v‖`` (an eigenvalue of
    ``A`` lies within that distance of ``eigenvalue``, in exact arithmetic); ``rounding``
    bounds what the rounding of the residual and of the Rayleigh quotient add to it,
    :math:`\gamma_{2n+8}(2\|Av\|)` in the unit roundoff of the dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.spectral import power_iteration
        >>> r = power_iteration(lambda v: jnp.array([1.0, -3.0]) * v, jnp.ones(2), num_steps=30)
        >>> round(float(r.eigenvalue), 4), r.steps   # the largest |λ|, with its sign
        (-3.0, 30)
        >>> bool(abs(r.eigenvalue + 3.0) <= r.residual + r.rounding)
        True
    """

    eigenvalue: jax.Array
    vector: jax.Array
    residual: jax.Array
    steps: int
    rounding: Any = 0.0


def power_iteration(matvec: Matvec, v0: jax.Array, *, num_steps: int) -> PowerResult:
    r"""``num_steps`` power iterations: the eigenvalue of largest :math:`|\lambda|` (with its sign).

    Convergence is linear with rate :math:`|\lambda_2/\lambda_1|`; the returned
    ``residual`` says how far it got. Prefer :func:`lanczos` when the gap is small.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.spectral import power_iteration
        >>> A = jnp.array([[2.0, 1.0], [1.0, 2.0]])   # eigenvalues 3 and 1: rate 1/3 per step
        >>> r = power_iteration(lambda v: A @ v, jnp.array([1.0, 0.0]), num_steps=40)
        >>> round(float(r.eigenvalue), 4), [round(abs(float(x)), 4) for x in r.vector]
        (3.0, [0.7071, 0.7071])
    """
    k = int(num_steps)
    if k < 1:
        raise ValueError(f"num_steps={num_steps!r} is not allowed; allowed: an integer >= 1")
    v = v0 / jnp.linalg.norm(v0)

    def body(_, v):
        w = matvec(v)
        nw = jnp.linalg.norm(w)
        return jnp.where(nw > 0, w / jnp.where(nw > 0, nw, 1.0), v)

    v = lax.fori_loop(0, k, body, v)
    w = matvec(v)
    lam = v @ w
    n = v.shape[0]
    # v·w (n terms), w − λv and its norm (n terms each), ‖v‖ = 1 to rounding: γ_{2n+8}
    # on ‖w‖ for λ and again for the residual
    rounding = 2.0 * tolerance.gamma(2 * n + 8, v.dtype) * jnp.linalg.norm(w)
    return PowerResult(
        eigenvalue=lam,
        vector=v,
        residual=jnp.linalg.norm(w - lam * v),
        steps=k,
        rounding=rounding,
    )


def dense_matrix(matvec: Matvec, n: int, dtype=None) -> jax.Array:
    """The matrix of a linear ``matvec`` on R^n, built from its columns (vmapped).

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.spectral import dense_matrix
        >>> dense_matrix(jnp.cumsum, 3).tolist()   # running sums: the lower triangle of ones
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    """
    eye = jnp.eye(n, dtype=dtype or jnp.result_type(float))
    return jax.vmap(matvec)(eye).T
