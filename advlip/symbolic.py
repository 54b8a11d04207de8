r"""The linear model's closed form in SymPy, its derivatives, and the bounds as expressions.

For a linear model :math:`f(x) = w\cdot x + b` under an :math:`L_p` attack of radius
:math:`\varepsilon`, Hölder's inequality gives the per-example adversarial loss in
closed form (docs/theory/closed-form.md),

.. math:: \ell\big(\tilde m\big), \qquad
          \tilde m = y\,(w\cdot x + b) - \varepsilon\,\|w\|_q, \qquad 1/p + 1/q = 1,

with :math:`\|w\|_\infty = \max_i |w_i|` (p = 1), :math:`\|w\|_2 = \sqrt{\sum_i w_i^2}` (p = 2),
:math:`\|w\|_1 = \sum_i |w_i|` (p = ∞) and :math:`(\sum_i |w_i|^q)^{1/q}` with an exact
rational ``q`` otherwise. :func:`gradient_expr` and :func:`hessian_expr` differentiate it
over :math:`\theta = (w_1, \dots, w_d, b)`; :func:`lambdify_jax` turns any of them into a
JAX function ``f(w, x, y, b, eps)`` that is an independent route to the numbers of
:mod:`advlip.linear`. The bounds (LIN-L2, LIN-LINF, LIU: docs/theory/lin-l2.md,
docs/theory/lin-linf.md, docs/theory/liu.md) and the witness asymptotics (LIN-L2-ZERO,
LIN-LINF, LIN-L1, LIN-LP: docs/theory/lin-l2-zero.md, docs/theory/lin-l1.md,
docs/theory/lin-lp.md) are SymPy expressions over the
plain symbols of :func:`bound_symbols`, which :func:`evaluate` fills in by name and
:func:`pretty` prints on one line. The derivations live in ``proofs/``.

Expressions hold away from the kinks of :math:`\|w\|_q` (``w = 0``; ``w_i = 0`` for p = ∞;
ties of the largest :math:`|w_i|` for p = 1) and, for the squared hinge, away from
:math:`\tilde m = 1`: there SymPy's ``Heaviside``/``sign`` take one-sided values, and
:func:`hessian_expr` drops the ``DiracDelta`` terms that live only on those sets.

Examples:
    >>> import jax.numpy as jnp
    >>> from advlip import symbolic
    >>> sym = symbolic.symbols(2)
    >>> symbolic.adversarial_loss_expr(2, p=2)
    log(exp(eps*sqrt(w1**2 + w2**2) - y*(b + w1*x1 + w2*x2)) + 1)
    >>> f = symbolic.lambdify_jax(symbolic.gradient_expr(2, p=2), sym)
    >>> f(jnp.array([1.0, -2.0]), jnp.array([0.5, 1.0]), 1.0, 0.0, 0.1).shape
    (3,)
    >>> symbolic.pretty(symbolic.lin_l2_bound())
    "|ℓ'|max·ε/(√(‖w₁‖)·√(‖w₂‖)) + ℓ''max·(bias + (X + ε)^2)"
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
import sympy as sp
from sympy.printing.numpy import JaxPrinter
from sympy.printing.str import StrPrinter

from advlip._validate import check_p, check_positive_int
from advlip.losses import MarginLoss, get_loss

__all__ = [
    "Symbols",
    "symbols",
    "exact_dual_exponent",
    "lp_norm_expr",
    "dual_norm_expr",
    "dual_direction_expr",
    "norm_hessian_expr",
    "adversarial_margin_expr",
    "adversarial_loss_expr",
    "gradient_expr",
    "hessian_expr",
    "lambdify_jax",
    "BoundSymbols",
    "bound_symbols",
    "lin_l2_bound",
    "lin_l2_beta",
    "lin_linf_bound",
    "l2_diameter",
    "liu_bound",
    "witness_ratio_zero",
    "witness_ratio_linf",
    "witness_ratio_l1",
    "witness_ratio_lp",
    "witness_remainder_bound",
    "expected_exponent",
    "slope_error_bound",
    "is_identity",
    "evaluate",
    "pretty",
]

# ----------------------------------------------------------------------------- symbols


@dataclasses.dataclass(frozen=True)
class Symbols:
    """The symbols of one example in dimension ``d``.

    Attributes:
      d: the dimension.
      w: weights ``w1..wd`` (real).
      x: the example ``x1..xd`` (real).
      y: the label (real; ±1 in use).
      b: the bias (real).
      eps: the attack radius ε (positive; substituting 0 is fine).
      m: a margin (real), the argument of the loss ℓ(m).

    Examples:
        >>> from advlip.symbolic import symbols
        >>> s = symbols(2)
        >>> s.w, s.theta, s.eps.is_positive
        ((w1, w2), (w1, w2, b), True)
    """

    d: int
    w: tuple[sp.Symbol, ...]
    x: tuple[sp.Symbol, ...]
    y: sp.Symbol
    b: sp.Symbol
    eps: sp.Symbol
    m: sp.Symbol

    @property
    def theta(self) -> tuple[sp.Symbol, ...]:
        """The parameters in the documented order: ``w1..wd`` then ``b``."""
        return (*self.w, self.b)


def symbols(d: int) -> Symbols:
    """SymPy symbols ``w1..wd``, ``x1..xd``, ``y``, ``b``, ``eps`` (> 0), ``m`` for dimension d.

    Examples:
        >>> from advlip.symbolic import symbols
        >>> s = symbols(3)
        >>> s.x, s.y, s.m
        ((x1, x2, x3), y, m)
    """
    d = check_positive_int("d", d)
    return Symbols(
        d=d,
        w=tuple(sp.Symbol(f"w{i}", real=True) for i in range(1, d + 1)),
        x=tuple(sp.Symbol(f"x{i}", real=True) for i in range(1, d + 1)),
        y=sp.Symbol("y", real=True),
        b=sp.Symbol("b", real=True),
        eps=sp.Symbol("eps", positive=True),
        m=sp.Symbol("m", real=True),
    )


# ----------------------------------------------------------------------------- closed form


def exact_dual_exponent(p: float) -> sp.Expr:
    r"""The Hölder conjugate :math:`q = p/(p-1)`, exact: ``oo`` for p = 1, 1 for p = ∞.

    A finite ``p`` is read as the rational it looks like (``sympy.nsimplify``): 1.5 → 3/2, so q = 3.

    Examples:
        >>> from advlip.symbolic import exact_dual_exponent
        >>> [exact_dual_exponent(p) for p in (1.0, 1.5, 2.0, 4.0, float("inf"))]
        [oo, 3, 2, 4/3, 1]
    """
    p = check_p(p)
    if p == 1.0:
        return sp.oo
    if math.isinf(p):
        return sp.Integer(1)
    pr = sp.nsimplify(p, rational=True)
    return pr / (pr - 1)


def _as_exprs(w: Sequence[Any], name: str = "w") -> tuple[sp.Expr, ...]:
    w = tuple(sp.sympify(wi) for wi in w)
    if not w:
        raise ValueError(f"{name} must hold at least one entry (d >= 1), got an empty sequence")
    return w


def _exact_p(p: float) -> sp.Expr:
    p = check_p(p)
    return sp.oo if math.isinf(p) else sp.nsimplify(p, rational=True)


def _lp(v: tuple[sp.Expr, ...], P: sp.Expr) -> sp.Expr:
    if P == 1:
        return sum(sp.Abs(vi) for vi in v)
    if P == 2:
        return sp.sqrt(sum(vi**2 for vi in v))
    if P == sp.oo:
        return sp.Max(*[sp.Abs(vi) for vi in v])
    return sum(sp.Abs(vi) ** P for vi in v) ** (1 / P)


def lp_norm_expr(v: Sequence[Any], *, p: float) -> sp.Expr:
    r""":math:`\|v\|_p`: sum of ``Abs`` (p = 1), ``sqrt`` of squares (p = 2), ``Max`` of ``Abs``
    (p = ∞), :math:`(\sum_i |v_i|^p)^{1/p}` with ``p`` read as an exact rational otherwise.

    Examples:
        >>> from advlip.symbolic import lp_norm_expr, symbols
        >>> lp_norm_expr([3, -4], p=2), lp_norm_expr([3, -4], p=3)
        (5, 91**(1/3))
        >>> lp_norm_expr(symbols(2).w, p=1)
        Abs(w1) + Abs(w2)
    """
    return _lp(_as_exprs(v, "v"), _exact_p(p))


def dual_norm_expr(w: Sequence[Any], *, p: float) -> sp.Expr:
    r""":math:`\|w\|_q`, :math:`1/p + 1/q = 1`: ``Max`` of ``Abs`` (p = 1), ``sqrt`` of
    squares (p = 2), sum of ``Abs`` (p = ∞), :math:`(\sum_i |w_i|^q)^{1/q}` with exact
    rational ``q`` otherwise.

    Examples:
        >>> from advlip.symbolic import dual_norm_expr
        >>> dual_norm_expr([3, -4], p=1), dual_norm_expr([3, -4], p=float("inf"))   # ‖w‖∞, ‖w‖₁
        (4, 7)
    """
    return _lp(_as_exprs(w), exact_dual_exponent(p))


def dual_direction_expr(w: Sequence[Any], *, p: float, k: int | None = None) -> tuple[sp.Expr, ...]:
    r"""The dual direction :math:`u(w) \in \partial\|w\|_q`, entry by entry (docs/theory/closed-form.md).

    * :math:`1 < q < \infty`: :math:`u_i = \operatorname{sign}(w_i)\,|w_i|^{q-1} / \|w\|_q^{q-1}`;
    * :math:`q = 1` (p = ∞): :math:`u_i = \operatorname{sign}(w_i)`;
    * :math:`q = \infty` (p = 1): :math:`u = \operatorname{sign}(w_k)\, e_k` for the index ``k``
      (0-based) of the largest :math:`|w_i|`, which must be given: a symbol has no argmax.

    Examples:
        >>> from advlip.symbolic import dual_direction_expr, symbols
        >>> dual_direction_expr([3, -4], p=2)          # w / ‖w‖₂
        (3/5, -4/5)
        >>> dual_direction_expr([3, -4], p=1, k=1)     # the largest |w_i| is w_2 (index 1)
        (0, -1)
        >>> dual_direction_expr(symbols(2).w, p=float("inf"))
        (sign(w1), sign(w2))
    """
    w = _as_exprs(w)
    p = check_p(p)
    if math.isinf(p):
        return tuple(sp.sign(wi) for wi in w)
    if p == 1.0:
        if k is None or not isinstance(k, int) or not 0 <= k < len(w):
            raise ValueError(
                f"k={k!r} is not allowed: for p=1 the dual direction is sign(w_k) e_k with k the "
                f"index of the largest |w_i|; pass k as an int in [0, {len(w) - 1}]"
            )
        return tuple(sp.sign(wi) if i == k else sp.Integer(0) for i, wi in enumerate(w))
    q = exact_dual_exponent(p)
    n = dual_norm_expr(w, p=p)
    return tuple(sp.sign(wi) * sp.Abs(wi) ** (q - 1) / n ** (q - 1) for wi in w)


def norm_hessian_expr(w: Sequence[Any], *, p: float) -> sp.ImmutableMatrix:
    r"""The Hessian of :math:`\|w\|_q` (docs/theory/closed-form.md), where it exists.

    .. math:: \nabla^2\|w\|_q = \frac{q-1}{N}
              \big[\operatorname{diag}((|w_i|/N)^{q-2}) - u u^\top\big], \qquad N = \|w\|_q;

    the zero matrix for :math:`q \in \{1, \infty\}` (p = ∞, 1), where :math:`u` is locally
    constant.

    Examples:
        At :math:`w = (3, 4)`, :math:`(I - \hat w \hat w^\top)/\|w\|_2` with :math:`\hat w = (3, 4)/5`:

        >>> from advlip.symbolic import norm_hessian_expr
        >>> norm_hessian_expr([3, 4], p=2).tolist()
        [[16/125, -12/125], [-12/125, 9/125]]
    """
    w = _as_exprs(w)
    p = check_p(p)
    d = len(w)
    if p == 1.0 or math.isinf(p):
        return sp.ImmutableMatrix.zeros(d, d)
    q = exact_dual_exponent(p)
    n = dual_norm_expr(w, p=p)
    u = sp.Matrix(dual_direction_expr(w, p=p))
    diag = sp.diag(*[(sp.Abs(wi) / n) ** (q - 2) for wi in w])
    return sp.ImmutableMatrix((q - 1) / n * (diag - u * u.T))


def adversarial_margin_expr(d: int, *, p: float) -> sp.Expr:
    r"""Worst-case margin :math:`\tilde m = y(w\cdot x + b) - \varepsilon\|w\|_q` (symbols(d)).

    Examples:
        >>> from advlip.symbolic import adversarial_margin_expr
        >>> adversarial_margin_expr(1, p=2)     # in one dimension ‖w‖₂ = |w1|
        -eps*Abs(w1) + y*(b + w1*x1)
    """
    s = symbols(d)
    return s.y * (sum(wi * xi for wi, xi in zip(s.w, s.x, strict=True)) + s.b) - s.eps * (
        dual_norm_expr(s.w, p=p)
    )


@functools.lru_cache(maxsize=128)
def _loss_expr(d: int, p: float, loss: MarginLoss) -> sp.Expr:
    s = symbols(d)
    return loss.sympy(s.m).subs(s.m, adversarial_margin_expr(d, p=p))


def adversarial_loss_expr(d: int, *, p: float, loss: str | MarginLoss = "softplus") -> sp.Expr:
    r"""Closed-form adversarial loss of one example (docs/theory/closed-form.md),

    .. math:: \ell\big(y(w\cdot x+b) - \varepsilon\|w\|_q\big),

    over :func:`symbols` ``(d)``, with ℓ from ``advlip.losses.get_loss(loss).sympy``.

    Examples:
        >>> from advlip.symbolic import adversarial_loss_expr
        >>> adversarial_loss_expr(2, p=float("inf"), loss="exponential")   # q = 1: ‖w‖₁
        exp(eps*(Abs(w1) + Abs(w2)) - y*(b + w1*x1 + w2*x2))
    """
    d = check_positive_int("d", d)
    return _loss_expr(d, check_p(p), get_loss(loss))


@functools.lru_cache(maxsize=128)
def _gradient(d: int, p: float, loss: MarginLoss) -> sp.ImmutableMatrix:
    s = symbols(d)
    L = _loss_expr(d, p, loss)
    return sp.ImmutableMatrix([sp.diff(L, v) for v in s.theta])


def gradient_expr(d: int, *, p: float, loss: str | MarginLoss = "softplus") -> sp.ImmutableMatrix:
    r"""Gradient of :func:`adversarial_loss_expr` over :math:`\theta = (w_1..w_d, b)`, (d+1)×1.

    Equals the Danskin gradient :math:`\ell'(\tilde m)\,(y x - \varepsilon u(w),\ y)` where
    :math:`\|w\|_q` is differentiable (``proofs/closed_form.py``).

    Examples:
        Without attack (ε = 0) the exponential loss at :math:`w x + b = 1`, y = 1, x = 1 has
        gradient :math:`-e^{-1}(x, y)`:

        >>> from advlip.symbolic import gradient_expr, symbols
        >>> s = symbols(1)
        >>> g = gradient_expr(1, p=2, loss="exponential")
        >>> g.shape, list(g.subs({s.w[0]: 1, s.x[0]: 1, s.y: 1, s.b: 0, s.eps: 0}))
        ((2, 1), [-exp(-1), -exp(-1)])
    """
    d = check_positive_int("d", d)
    return _gradient(d, check_p(p), get_loss(loss))


def _drop_dirac(expr: sp.Expr) -> sp.Expr:
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


@functools.lru_cache(maxsize=128)
def _hessian(d: int, p: float, loss: MarginLoss) -> sp.ImmutableMatrix:
    s = symbols(d)
    H = sp.hessian(_loss_expr(d, p, loss), s.theta)
    return sp.ImmutableMatrix(H.applyfunc(_drop_dirac))


def hessian_expr(d: int, *, p: float, loss: str | MarginLoss = "softplus") -> sp.ImmutableMatrix:
    r"""Hessian of :func:`adversarial_loss_expr` over :math:`\theta = (w_1..w_d, b)`, (d+1)×(d+1).

    Where it exists it equals :math:`\ell''(\tilde m)\, a a^\top - \varepsilon\,\ell'(\tilde m)\,
    \nabla^2\|w\|_q` on the w-block with :math:`a = y x - \varepsilon u(w)`, and
    :math:`\ell''(\tilde m)\, y\,(a, y)` on the bias row (docs/theory/closed-form.md). ``DiracDelta``
    terms, supported only on the kinks where no Hessian exists, are dropped.

    Examples:
        Same point as :func:`gradient_expr`: :math:`\ell'' = e^{-1}` times :math:`(x, y)(x, y)^\top`:

        >>> from advlip.symbolic import hessian_expr, symbols
        >>> s = symbols(1)
        >>> H = hessian_expr(1, p=2, loss="exponential")
        >>> H.subs({s.w[0]: 1, s.x[0]: 1, s.y: 1, s.b: 0, s.eps: 0}).tolist()
        [[exp(-1), exp(-1)], [exp(-1), exp(-1)]]
    """
    d = check_positive_int("d", d)
    return _hessian(d, check_p(p), get_loss(loss))


class _JaxPrinter(JaxPrinter):
    """SymPy's JAX printer, with ``Heaviside`` as ``jax.numpy.heaviside``.

    The stock printer rewrites ``Heaviside`` as a ``Piecewise`` and simplifies its
    conditions, which takes seconds per entry of a Hessian.
    """

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        fn = self._module_format(self._module + ".heaviside")
        return f"{fn}({self._print(expr.args[0])}, {self._print(h0)})"


def lambdify_jax(expr: sp.Expr | sp.MatrixBase, sym: Symbols) -> Callable[..., jax.Array]:
    """Compile ``expr`` into a JAX function ``f(w, x, y, b, eps)``.

    ``w`` and ``x`` have shape (d,); ``y``, ``b``, ``eps`` are scalars. A scalar
    expression gives a 0-d array, a (n, 1) matrix (a gradient) an array of shape (n,),
    any other matrix its own shape. Pure ``jax.numpy``: works under ``jax.jit`` and
    ``jax.vmap`` (e.g. ``jax.vmap(f, in_axes=(None, 0, 0, None, None))`` over a dataset).
    Raises ``ValueError`` if ``expr`` has symbols other than those of ``sym``.

    Examples:
        An independent route to :func:`advlip.linear.adversarial_loss`:

        >>> import jax.numpy as jnp
        >>> from advlip import linear
        >>> from advlip.symbolic import adversarial_loss_expr, lambdify_jax, symbols
        >>> f = lambdify_jax(adversarial_loss_expr(2, p=2), symbols(2))
        >>> w, x = jnp.array([3.0, 4.0]), jnp.array([1.0, 0.0])
        >>> round(float(f(w, x, 1.0, 0.0, 0.1)), 4)    # softplus(-(3 - 0.1 · 5))
        0.0789
        >>> round(float(linear.adversarial_loss(w, x, 1.0, eps=0.1, p=2.0)), 4)
        0.0789
    """
    if not isinstance(sym, Symbols):
        raise ValueError(f"sym must be the Symbols of advlip.symbolic.symbols(d), got {sym!r}")
    known = {*sym.w, *sym.x, sym.y, sym.b, sym.eps}
    extra = sp.sympify(expr).free_symbols - known
    if extra:
        raise ValueError(
            f"expr has symbols {sorted(map(str, extra))} that f(w, x, y, b, eps) cannot take; "
            f"allowed: {sorted(map(str, known))} (did the expression come from symbols({sym.d})?)"
        )
    shape: tuple[int, ...] = ()
    body: Any = expr
    if isinstance(expr, sp.MatrixBase):
        shape = (expr.shape[0],) if expr.shape[1] == 1 else tuple(expr.shape)
        body = expr.tolist()
    args = [list(sym.w), list(sym.x), sym.y, sym.b, sym.eps]
    printer = _JaxPrinter(
        {"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True}
    )
    fn = sp.lambdify(args, body, "jax", printer=printer, cse=True)
    d = sym.d
    dtype = jnp.result_type(float)

    def f(w, x, y, b, eps):
        w, x = jnp.asarray(w, dtype=dtype), jnp.asarray(x, dtype=dtype)
        if w.shape != (d,) or x.shape != (d,):
            raise ValueError(
                f"Shape mismatch: f expects w and x of shape ({d},), got {w.shape} and {x.shape}"
            )
        out = jnp.asarray(fn(w, x, y, b, eps), dtype=dtype)
        return out.reshape(shape)

    f.__doc__ = f"JAX function of (w, x, y, b, eps) for {sp.sstr(expr)[:200]}"
    return f


# ----------------------------------------------------------------------------- bounds


@dataclasses.dataclass(frozen=True)
class BoundSymbols:
    r"""The plain symbols the bound expressions are written in.

    =========== ======================================================
    ``X``       :math:`\max_i \|x_i\|_2`
    ``eps``     ε (the same symbol as ``symbols(d).eps``)
    ``d``       the dimension
    ``p, q``    the attack norm and its dual exponent
    ``n1, n2``  :math:`\|w_1\|, \|w_2\|`
    ``r``       a radius: the set :math:`\{\|w\| \ge r\}`
    ``L2max``   :math:`\sup \ell''`
    ``L1max``   :math:`\sup |\ell'|`
    ``dtheta``  :math:`\|\theta_1 - \theta_2\|`
    ``bias``    1 if the bias is a parameter, else 0
    ``Ltt``     Liu's :math:`L_{\theta\theta}`; ``Ltx`` Liu's :math:`L_{\theta x}`
    ``t``       the witness distance
    ``mean_l1`` :math:`\operatorname{mean}_i \ell'(\tilde m_i)` at the kink
    ``N``       :math:`\|w\|_q` at the kink
    =========== ======================================================

    Examples:
        >>> from advlip.symbolic import bound_symbols, symbols
        >>> B = bound_symbols()
        >>> B.L2max, B.dtheta, B.eps == symbols(3).eps
        (L2max, dtheta, True)
    """

    X: sp.Symbol
    eps: sp.Symbol
    d: sp.Symbol
    p: sp.Symbol
    q: sp.Symbol
    n1: sp.Symbol
    n2: sp.Symbol
    r: sp.Symbol
    L2max: sp.Symbol
    L1max: sp.Symbol
    dtheta: sp.Symbol
    bias: sp.Symbol
    Ltt: sp.Symbol
    Ltx: sp.Symbol
    t: sp.Symbol
    mean_l1: sp.Symbol
    N: sp.Symbol


_B = BoundSymbols(
    X=sp.Symbol("X", nonnegative=True),
    eps=sp.Symbol("eps", positive=True),  # the same symbol as symbols(d).eps
    d=sp.Symbol("d", positive=True, integer=True),
    p=sp.Symbol("p", positive=True),
    q=sp.Symbol("q", positive=True),
    n1=sp.Symbol("n1", positive=True),
    n2=sp.Symbol("n2", positive=True),
    r=sp.Symbol("r", positive=True),
    L2max=sp.Symbol("L2max", nonnegative=True),
    L1max=sp.Symbol("L1max", nonnegative=True),
    dtheta=sp.Symbol("dtheta", nonnegative=True),
    bias=sp.Symbol("bias", nonnegative=True),
    Ltt=sp.Symbol("Ltt", nonnegative=True),
    Ltx=sp.Symbol("Ltx", nonnegative=True),
    t=sp.Symbol("t", positive=True),
    mean_l1=sp.Symbol("mean_l1", real=True),
    N=sp.Symbol("N", positive=True),
)


def bound_symbols() -> BoundSymbols:
    """The symbols of the bound expressions (see :class:`BoundSymbols`).

    Examples:
        >>> from advlip.symbolic import bound_symbols, lin_l2_bound
        >>> B = bound_symbols()
        >>> sorted(s.name for s in lin_l2_bound().free_symbols) == sorted(
        ...     s.name for s in (B.L1max, B.L2max, B.X, B.bias, B.eps, B.n1, B.n2))
        True
    """
    return _B


def lin_l2_bound() -> sp.Expr:
    r"""LIN-L2: :math:`R(w_1, w_2) \le \ell''_{\max}\big((X+\varepsilon)^2 + \mathrm{bias}\big)
    + \varepsilon\,|\ell'|_{\max} / \sqrt{\|w_1\|\,\|w_2\|}` (p = 2, ``proofs/lin_l2.py``).

    See docs/theory/lin-l2.md.

    Examples:
        Softplus (:math:`\ell''_{\max} = 1/4`, :math:`|\ell'|_{\max} = 1`), :math:`\max\|x\| = 1`,
        ε = 0.1, no bias, unit weights: :math:`0.25 \cdot 1.1^2 + 0.1 = 0.4025`:

        >>> from advlip.symbolic import evaluate, lin_l2_bound
        >>> round(evaluate(lin_l2_bound(), X=1, eps=0.1, n1=1, n2=1, L2max=0.25, L1max=1, bias=0), 4)
        0.4025
    """
    B = _B
    return B.L2max * ((B.X + B.eps) ** 2 + B.bias) + B.eps * B.L1max / sp.sqrt(B.n1 * B.n2)


def lin_l2_beta() -> sp.Expr:
    r"""LIN-L2 on :math:`\{\|w\| \ge r\}`: the smoothness constant

    .. math:: \beta = \ell''_{\max}((X+\varepsilon)^2 + \mathrm{bias})
              + \varepsilon\,|\ell'|_{\max}/r

    (:func:`lin_l2_bound` with :math:`\sqrt{\|w_1\|\|w_2\|} \ge r`).

    Examples:
        >>> from advlip.symbolic import evaluate, lin_l2_beta, pretty
        >>> pretty(lin_l2_beta())
        "|ℓ'|max·ε/r + ℓ''max·(bias + (X + ε)^2)"
        >>> round(evaluate(lin_l2_beta(), X=1, eps=0.1, r=0.5, L2max=0.25, L1max=1, bias=0), 4)
        0.5025
    """
    B = _B
    return B.L2max * ((B.X + B.eps) ** 2 + B.bias) + B.eps * B.L1max / B.r


def lin_linf_bound() -> sp.Expr:
    r"""LIN-LINF additive bound:

    .. math:: \|\nabla L(w_1) - \nabla L(w_2)\| \le \ell''_{\max}
              \big((X + \varepsilon\sqrt d)^2 + \mathrm{bias}\big)\,\|\theta_1-\theta_2\|
              + 2\varepsilon\sqrt d\,|\ell'|_{\max}.

    See docs/theory/lin-linf.md.

    Examples:
        The additive term :math:`2\varepsilon\sqrt d\,|\ell'|_{\max}` does not vanish as
        :math:`\|\theta_1 - \theta_2\| \to 0`: no smoothness constant follows from it.

        >>> from advlip.symbolic import evaluate, lin_linf_bound
        >>> kw = dict(X=1, eps=0.1, d=4, L2max=0.25, L1max=1, bias=0)
        >>> round(evaluate(lin_linf_bound(), dtheta=1, **kw), 4), round(evaluate(lin_linf_bound(), dtheta=0, **kw), 4)
        (0.76, 0.4)
    """
    B = _B
    return (
        B.L2max * ((B.X + B.eps * sp.sqrt(B.d)) ** 2 + B.bias) * B.dtheta
        + 2 * B.eps * sp.sqrt(B.d) * B.L1max
    )


def l2_diameter() -> sp.Expr:
    r"""The L2 diameter of the threat model (docs/theory/liu.md):

    .. math:: \operatorname{diam}_2 B_p(\varepsilon) = 2\varepsilon\, d^{\max(0,\,1/2 - 1/p)}.

    Examples:
        >>> import math
        >>> from advlip.symbolic import evaluate, l2_diameter
        >>> [round(evaluate(l2_diameter(), eps=0.1, d=4, p=p), 4) for p in (1, 2, math.inf)]
        [0.2, 0.2, 0.4]
    """
    B = _B
    return 2 * B.eps * B.d ** sp.Max(0, sp.Rational(1, 2) - 1 / B.p)


def liu_bound() -> sp.Expr:
    r"""LIU (Liu et al. 2020):

    .. math:: \|\nabla L(\theta_1) - \nabla L(\theta_2)\| \le L_{\theta\theta}\|\theta_1-\theta_2\|
              + L_{\theta x}\cdot 2\varepsilon\, d^{\max(0,\,1/2-1/p)}.

    See docs/theory/liu.md.

    Examples:
        At :math:`\theta_1 = \theta_2` it is still :math:`2\varepsilon\sqrt d\,L_{\theta x}` under an
        L∞ attack:

        >>> import math
        >>> from advlip.symbolic import evaluate, liu_bound
        >>> round(evaluate(liu_bound(), Ltt=1, Ltx=1, dtheta=0, eps=0.1, d=4, p=math.inf), 4)
        0.4
    """
    B = _B
    return B.Ltt * B.dtheta + B.Ltx * l2_diameter()


def witness_ratio_zero() -> sp.Expr:
    r"""LIN-L2-ZERO: on :math:`w_\pm = \pm t v` (‖v‖ = 1, p = 2),
    :math:`R \approx \varepsilon\,|\operatorname{mean}_i \ell'(y_i b)| / t`.

    See docs/theory/lin-l2-zero.md.

    Examples:
        >>> from advlip.symbolic import evaluate, witness_ratio_zero
        >>> [round(evaluate(witness_ratio_zero(), eps=0.1, mean_l1=-0.5, t=t), 4) for t in (1e-2, 1e-3)]
        [5.0, 50.0]
    """
    B = _B
    return B.eps * sp.Abs(B.mean_l1) / B.t


def witness_ratio_linf() -> sp.Expr:
    r"""LIN-LINF: on :math:`w \pm t e_i` with :math:`w_i = 0` (p = ∞),
    :math:`R = \varepsilon\,|\operatorname{mean}\,\ell'(\tilde m)| / t + O(1)`.

    See docs/theory/lin-linf.md.

    Examples:
        >>> from advlip.symbolic import pretty, witness_ratio_linf
        >>> pretty(witness_ratio_linf())
        "ε·|mean ℓ'|/t"
    """
    B = _B
    return B.eps * sp.Abs(B.mean_l1) / B.t


def witness_ratio_l1() -> sp.Expr:
    r"""LIN-L1: on :math:`w + t s_i e_i`, :math:`w + t s_j e_j` with
    :math:`|w_i| = |w_j| = \|w\|_\infty` (p = 1),
    :math:`R = \varepsilon\,|\operatorname{mean}\,\ell'(\tilde m)| / t + O(1)`.

    See docs/theory/lin-l1.md.

    Examples:
        >>> from advlip.symbolic import is_identity, witness_ratio_l1, witness_ratio_linf
        >>> is_identity(witness_ratio_l1(), witness_ratio_linf())   # the same 1/t law
        True
    """
    B = _B
    return B.eps * sp.Abs(B.mean_l1) / B.t


def witness_ratio_lp() -> sp.Expr:
    r"""LIN-LP: on :math:`w \pm t e_i` with :math:`w_i = 0`, :math:`N = \|w\|_q`,
    :math:`R = \varepsilon\,|\operatorname{mean}\,\ell'(\tilde m)|\, t^{q-2} / N^{q-1} + O(1)`:
    log-slope :math:`q - 2` (−1 at q = 1, where it is :func:`witness_ratio_linf`).

    See docs/theory/lin-lp.md.

    Examples:
        >>> from sympy import Rational
        >>> from advlip.symbolic import bound_symbols, is_identity, witness_ratio_linf, witness_ratio_lp
        >>> q = bound_symbols().q
        >>> is_identity(witness_ratio_lp().subs(q, 1), witness_ratio_linf())
        True
        >>> witness_ratio_lp().subs(q, Rational(3, 2)).as_coeff_exponent(bound_symbols().t)[1]
        -1/2
    """
    B = _B
    return B.eps * sp.Abs(B.mean_l1) * B.t ** (B.q - 2) / B.N ** (B.q - 1)


def witness_remainder_bound() -> sp.Expr:
    r"""The O(1) of the witness asymptotics: :math:`|R - J| \le \ell''_{\max}\,K^2`,
    :math:`K = X + \varepsilon\, d^{\max(0, 1/2-1/p)}`, where :math:`J = \varepsilon\,
    |\operatorname{mean}\ell'(\tilde m(w_2))|\,\|u(w_1)-u(w_2)\|/\|w_1-w_2\|` is the jump part.

    ``K`` is the Lipschitz constant of :math:`\tilde m` in w (:math:`\|x\| + \varepsilon\,
    \sup_{\|u\|_p \le 1}\|u\|_2`) and bounds :math:`\|a\|`; the gradient difference is
    :math:`\operatorname{mean}(\ell'(\tilde m_1)-\ell'(\tilde m_2))a_1 - \varepsilon\,
    \operatorname{mean}\ell'(\tilde m_2)\,(u_1-u_2)` (``proofs/lin_lp.py``).

    Examples:
        :math:`K = 1 + 0.1 \cdot \sqrt 4 = 1.2` under an L∞ attack in 4 dimensions, so
        :math:`\ell''_{\max} K^2 = 0.25 \cdot 1.44`:

        >>> import math
        >>> from advlip.symbolic import evaluate, witness_remainder_bound
        >>> round(evaluate(witness_remainder_bound(), L2max=0.25, X=1, eps=0.1, d=4, p=math.inf), 4)
        0.36
    """
    B = _B
    return B.L2max * (B.X + B.eps * B.d ** sp.Max(0, sp.Rational(1, 2) - 1 / B.p)) ** 2


def expected_exponent(p: float) -> sp.Expr:
    r"""LIN-LP: the growth exponent of R on witness pairs, :math:`R \sim t^{s}`.

    :math:`s = 0` for :math:`1 < p \le 2` (smooth), :math:`q - 2` for :math:`2 < p < \infty`
    (Hölder), :math:`-1` for :math:`p = \infty` (jump at :math:`w_i = 0`) and :math:`p = 1`
    (jump at ties).

    See docs/theory/lin-lp.md.

    Examples:
        >>> from advlip.symbolic import expected_exponent
        >>> [expected_exponent(p) for p in (1.0, 1.5, 2.0, 3.0, 4.0, float("inf"))]
        [-1, 0, 0, -1/2, -2/3, -1]
    """
    p = check_p(p)
    if p == 1.0 or math.isinf(p):
        return sp.Integer(-1)
    if p <= 2.0:
        return sp.Integer(0)
    return exact_dual_exponent(p) - 2


def slope_error_bound(log_t: Any, log_dev: Any) -> float:
    r"""How far a least-squares slope can be from :math:`s` given a deviation bound.

    If :math:`|\log R_k - (s \log t_k + c)| \le \Delta_k` for all k, the slope of
    ``numpy.polyfit(log_t, log R, 1)`` is within

    .. math:: \frac{\sum_k |x_k - \bar x|\,\Delta_k}{\sum_k (x_k - \bar x)^2},
              \qquad x_k = \log t_k,

    of :math:`s` (the slope is :math:`\sum_k (x_k-\bar x) z_k / \sum_k (x_k-\bar x)^2`,
    linear in the data :math:`z_k`, and :math:`\sum_k (x_k-\bar x) = 0` removes ``c``).

    Examples:
        Four points :math:`t = 1, 2, 4, 8` with :math:`\Delta_k = 0.01`:
        :math:`0.01 \cdot 4\log 2 / (5 \log^2 2) = 0.008/\log 2`:

        >>> import numpy as np
        >>> from advlip.symbolic import slope_error_bound
        >>> round(slope_error_bound(np.log([1.0, 2.0, 4.0, 8.0]), 0.01), 4)
        0.0115
    """
    x = np.asarray(log_t, dtype=float)
    dev = np.broadcast_to(np.asarray(log_dev, dtype=float), x.shape)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"log_t must be 1-D with at least 2 points, got shape {x.shape}")
    if not (np.all(np.isfinite(dev)) and np.all(dev >= 0)):
        raise ValueError("log_dev must be finite and >= 0 (a deviation bound)")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        raise ValueError("log_t must not be constant")
    return float(np.abs(xc) @ dev) / sxx


def is_identity(lhs: Any, rhs: Any = 0) -> bool:
    """True when SymPy shows ``lhs - rhs`` is identically zero (scalars or matrices).

    Tries ``expand`` first (fast, enough for polynomial and exp identities), then
    ``simplify``. ``False`` means SymPy could not show it, not that it is false.

    Examples:
        >>> import sympy as sp
        >>> from advlip.symbolic import dual_norm_expr, is_identity, symbols
        >>> w1 = symbols(1).w[0]
        >>> is_identity(dual_norm_expr([w1], p=2), sp.Abs(w1))     # sqrt(w1²) = |w1| for real w1
        True
        >>> is_identity(dual_norm_expr([w1], p=2), w1)
        False
    """
    lhs, rhs = sp.sympify(lhs), sp.sympify(rhs)
    if isinstance(lhs, sp.MatrixBase) and not isinstance(rhs, sp.MatrixBase) and rhs == 0:
        rhs = sp.zeros(*lhs.shape)
    diff = lhs - rhs
    if isinstance(diff, sp.MatrixBase):
        return all(is_identity(e) for e in diff)
    if sp.expand(diff) == 0:
        return True
    return sp.simplify(diff) == 0


@functools.lru_cache(maxsize=256)
def _numpy_fn(expr: sp.Expr, names: tuple[str, ...]) -> Callable[..., Any]:
    by_name = {s.name: s for s in expr.free_symbols}
    maxmin = {
        "Max": lambda *a: functools.reduce(np.maximum, a),
        "Min": lambda *a: functools.reduce(np.minimum, a),
    }
    return sp.lambdify([by_name[n] for n in names], expr, [maxmin, "numpy"])


def evaluate(expr: sp.Expr, **values: Any) -> Any:
    """Evaluate ``expr`` with every free symbol given by name (numbers or numpy arrays).

    ``evaluate(lin_l2_bound(), X=1, eps=0.1, n1=1, n2=2, L2max=0.25, L1max=1, bias=0)``.
    ``math.inf`` is fine for ``p``. Returns a float, or an array if any value is one.
    Raises ``ValueError`` naming missing or unknown symbols.

    Examples:
        >>> import numpy as np
        >>> from advlip.symbolic import evaluate, lin_l2_bound
        >>> values = dict(X=1, eps=0.1, n1=1, L2max=0.25, L1max=1, bias=0)
        >>> [round(float(v), 4) for v in evaluate(lin_l2_bound(), n2=np.array([1.0, 4.0]), **values)]
        [0.4025, 0.3525]
        >>> evaluate(lin_l2_bound(), n2=1, X=1)
        Traceback (most recent call last):
            ...
        ValueError: evaluate: missing values for ['L1max', 'L2max', 'bias', 'eps', 'n1'], unknown names []; ...
    """
    expr = sp.sympify(expr)
    names = tuple(sorted(s.name for s in expr.free_symbols))
    missing = sorted(set(names) - set(values))
    unknown = sorted(set(values) - set(names))
    if missing or unknown:
        raise ValueError(
            f"evaluate: missing values for {missing}, unknown names {unknown}; "
            f"the expression's symbols are {list(names)}"
        )
    out = _numpy_fn(expr, names)(*(np.asarray(values[n], dtype=float) for n in names))
    out = np.asarray(out, dtype=float)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------- printing

_DISPLAY = {
    "eps": "ε",
    "L2max": "ℓ''max",
    "L1max": "|ℓ'|max",
    "dtheta": "‖Δθ‖",
    "n1": "‖w₁‖",
    "n2": "‖w₂‖",
    "Ltt": "L_θθ",
    "Ltx": "L_θx",
    "mean_l1": "mean ℓ'",
}


class _OneLinePrinter(StrPrinter):
    def _print_Symbol(self, expr):
        return _DISPLAY.get(expr.name, expr.name)

    def _print_Abs(self, expr):
        return f"|{self._print(expr.args[0])}|"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"


def pretty(expr: sp.Expr) -> str:
    """``expr`` on one line for a terminal table: ε, ℓ''max, ‖w₁‖, √, ^, · instead of code names.

    Examples:
        >>> from advlip.symbolic import liu_bound, pretty
        >>> pretty(liu_bound())
        'L_θθ·‖Δθ‖ + 2·L_θx·d^max(0, 1/2 - 1/p)·ε'
    """
    s = _OneLinePrinter().doprint(sp.sympify(expr))
    return s.replace("sqrt(", "√(").replace("**", "^").replace("*", "·")
