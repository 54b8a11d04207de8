"""Bad input raises a ValueError that names the argument; non-differentiable points are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from advlip import linear, norms, strategies
from advlip.linear import LinearProblem, NonDifferentiableError

W = np.array([1.0, -2.0, 0.5])
X = np.array([[0.5, 1.0, -1.0], [1.0, -1.0, 2.0]])
Y = np.array([1.0, -1.0])
GOOD = dict(w=W, X=X, y=Y, eps=0.1, p=2.0, loss="softplus", delta=np.array([3.0, 1.0, -2.0]))


def with_nan(a: np.ndarray, value: float = math.nan) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.flat[-1] = value
    return a


# Each bad input: (id, overrides of GOOD, the arguments a function must take for it to apply,
# a regex the message must match — it names the argument).
BAD_INPUTS = [
    ("p<1", dict(p=0.5), {"p"}, r"p=0\.5 is not a valid norm exponent"),
    ("p=0", dict(p=0), {"p"}, r"p=0(\.0)? is not a valid norm exponent"),
    ("p=nan", dict(p=math.nan), {"p"}, r"p=nan is not a valid norm exponent"),
    ("p='two'", dict(p="two"), {"p"}, r"p='two' is not a number"),
    ("p=None", dict(p=None), {"p"}, r"p=None is not a number"),
    ("eps<0", dict(eps=-0.1), {"eps"}, r"eps=-0\.1 is not allowed"),
    ("eps=nan", dict(eps=math.nan), {"eps"}, r"eps=nan is not allowed"),
    ("eps=inf", dict(eps=math.inf), {"eps"}, r"eps=inf is not allowed"),
    ("eps-array", dict(eps=np.array([0.1, 0.2])), {"eps"}, r"eps must be a scalar"),
    ("eps-string", dict(eps="0.1"), {"eps"}, r"eps='0\.1' is not a real number"),
    ("w-nan", dict(w=with_nan(W)), {"w"}, r"^w contains 1 non-finite"),
    ("w-inf", dict(w=with_nan(W, math.inf)), {"w"}, r"^w contains 1 non-finite"),
    ("w-rank-2", dict(w=W[None, :]), {"w"}, r"^w must be a 1-D weight vector"),
    ("w-empty", dict(w=np.zeros(0)), {"w"}, r"^w must have at least one entry"),
    ("X-nan", dict(X=with_nan(X)), {"X"}, r"^X contains 1 non-finite"),
    ("X-inf", dict(X=with_nan(X, -math.inf)), {"X"}, r"^X contains 1 non-finite"),
    ("y-nan", dict(y=with_nan(Y)), {"y"}, r"^y contains 1 non-finite"),
    ("y-inf", dict(y=with_nan(Y, math.inf)), {"y"}, r"^y contains 1 non-finite"),
    ("y-0/1-labels", dict(y=np.array([0.0, 1.0])), {"y"}, r"^y must hold labels -1 or \+1"),
    ("y-label-2", dict(y=np.array([1.0, 2.0])), {"y"}, r"^y must hold labels -1 or \+1"),
    (
        "w-vs-X-shape",
        dict(w=np.ones(2)),
        {"w", "X"},
        r"w has shape \(2,\) but X has shape \(2, 3\)",
    ),
    (
        "X-vs-y-shape",
        dict(y=np.ones(3)),
        {"X", "y"},
        r"X has shape \(2, 3\) but y has shape \(3,\)",
    ),
    ("X-rank-3", dict(X=X[:, :, None]), {"X"}, r"^X must have shape \(n, d\) or \(d,\)"),
    ("X-empty", dict(X=np.zeros((0, 3)), y=np.zeros(0)), {"X"}, r"^X must hold at least one"),
    ("loss-unknown", dict(loss="nope"), {"loss"}, r"^loss='nope' is not a known margin loss"),
]


def _call_with(takes):
    def decorator(f):
        f.takes = takes
        return f

    return decorator


@_call_with({"w", "X", "y", "eps", "p", "loss"})
def call_adversarial_loss(a):
    return linear.adversarial_loss(a["w"], a["X"], a["y"], eps=a["eps"], p=a["p"], loss=a["loss"])


@_call_with({"w", "X", "y", "eps", "p", "loss"})
def call_adversarial_grad(a):
    return linear.adversarial_grad(a["w"], a["X"], a["y"], eps=a["eps"], p=a["p"], loss=a["loss"])


@_call_with({"w", "y", "eps", "p"})
def call_optimal_perturbation(a):
    return linear.optimal_perturbation(a["w"], a["y"], eps=a["eps"], p=a["p"])


@_call_with({"X", "y", "eps", "p", "loss"})
def call_linear_problem(a):
    return LinearProblem(X=a["X"], y=a["y"], eps=a["eps"], p=a["p"], loss=a["loss"])


@_call_with({"p"})
def call_dual_exponent(a):
    return norms.dual_exponent(a["p"])


@_call_with({"delta", "eps", "p"})
def call_project_ball(a):
    return norms.project_ball(a["delta"], eps=a["eps"], p=a["p"])


FUNCTIONS = [
    call_adversarial_loss,
    call_adversarial_grad,
    call_optimal_perturbation,
    call_linear_problem,
    call_dual_exponent,
    call_project_ball,
]

TABLE = [
    pytest.param(f, overrides, match, id=f"{f.__name__.removeprefix('call_')}-{bad_id}")
    for f in FUNCTIONS
    for bad_id, overrides, needs, match in BAD_INPUTS
    if needs <= f.takes
] + [
    pytest.param(
        call_project_ball,
        dict(p=3.0),
        r"p=3(\.0)? is not supported; allowed: 1, 2, inf",
        id="project_ball-p=3-unsupported",
    ),
    pytest.param(
        call_linear_problem,
        dict(X=np.zeros(0), y=np.zeros(0)),
        r"\bX\b",
        id="linear_problem-X-empty-1d",
    ),
]


def test_every_function_meets_bad_input():
    for f in FUNCTIONS:
        assert any(param.values[0] is f for param in TABLE), f.__name__
        f(GOOD)  # and accepts the good input


@pytest.mark.parametrize(("call", "overrides", "match"), TABLE)
def test_bad_input_raises_value_error_naming_the_argument(call, overrides, match):
    with pytest.raises(ValueError, match=match):
        call({**GOOD, **overrides})


def test_p_inf_as_string_is_accepted():
    assert norms.dual_exponent("inf") == 1.0
    assert float(linear.adversarial_loss(W, X, Y, eps=0.1, p="inf")) > 0


# --------------------------------------------------------------------------- differentiability


def test_zero_weights_are_not_differentiable():
    with pytest.raises(NonDifferentiableError, match="w = 0"):
        linear.check_differentiable(np.zeros(3), eps=0.1, p=2)
    assert issubclass(NonDifferentiableError, ValueError)


def test_scalar_zero_weight_is_not_differentiable():
    with pytest.raises(NonDifferentiableError, match="w = 0"):
        linear.check_differentiable(w=0, eps=0.1, p=2)


P_VALUES = st.sampled_from([1.0, 1.5, 2.0, 3.0, math.inf])
POSITIVE_EPS = strategies.epsilons(allow_zero=False)


@given(w=strategies.weights(st.integers(2, 4), kind="exact_kink"), eps=POSITIVE_EPS, p=P_VALUES)
def test_zero_coordinate_is_a_kink_only_for_p_inf(w, eps, p):
    if math.isinf(p):
        with pytest.raises(NonDifferentiableError, match=r"zero coordinate"):
            linear.check_differentiable(w, eps=eps, p=p)
    else:
        linear.check_differentiable(w, eps=eps, p=p)


@given(w=strategies.weights(st.integers(2, 4), kind="exact_tie"), eps=POSITIVE_EPS, p=P_VALUES)
def test_tie_is_a_kink_only_for_p_1(w, eps, p):
    if p == 1.0:
        with pytest.raises(NonDifferentiableError, match=r"largest \|w_i\|"):
            linear.check_differentiable(w, eps=eps, p=p)
    else:
        linear.check_differentiable(w, eps=eps, p=p)


@given(w=strategies.weights(st.integers(1, 4)), eps=POSITIVE_EPS, p=P_VALUES)
def test_generic_weights_are_differentiable(w, eps, p):
    linear.check_differentiable(w, eps=eps, p=p)
    assert linear.nondifferentiable_reason(w, eps=eps, p=p) is None


ANY_WEIGHTS = st.one_of(
    st.just(np.zeros(3)),
    *(strategies.weights(st.integers(2, 4), kind=k) for k in strategies.WEIGHT_KINDS),
)


@given(w=ANY_WEIGHTS, p=P_VALUES)
def test_no_attack_is_always_differentiable(w, p):
    linear.check_differentiable(w, eps=0.0, p=p)


@pytest.mark.parametrize(
    ("w", "p"),
    [
        pytest.param(np.zeros(3), 2.0, id="w=0-p=2"),
        pytest.param(np.zeros(3), 1.0, id="w=0-p=1"),
        pytest.param(np.array([0.0, 1.0, -2.0]), math.inf, id="zero-coordinate-p=inf"),
        pytest.param(np.array([2.0, 1.0, -2.0]), 1.0, id="tie-p=1"),
    ],
)
def test_adversarial_hessian_refuses_kinks(w, p):
    with pytest.raises(NonDifferentiableError):
        linear.adversarial_hessian(w, X, Y, eps=0.1, p=p)


# --------------------------------------------------------------------------- LinearProblem θ


@pytest.mark.parametrize("fit_bias", [False, True], ids=["weights", "weights+bias"])
@pytest.mark.parametrize("method", ["grad", "loss_value", "hessian", "margins", "grad_error_bound"])
def test_linear_problem_names_a_wrong_length_theta(method, fit_bias):
    # was a raw XLA shape error from inside the matrix product
    prob = LinearProblem(X=X, y=Y, eps=0.1, p=2.0, fit_bias=fit_bias)
    dim = 3 + fit_bias
    getattr(prob, method)(np.ones(dim))  # the right length works
    for wrong in (np.ones(dim - 1), np.ones(dim + 1)):
        with pytest.raises(
            ValueError, match=rf"^theta must have length {dim} .* got length {wrong.size}$"
        ):
            getattr(prob, method)(wrong)
    with pytest.raises(
        ValueError, match=rf"theta must have length {dim} .* got shape \(2, {dim}\)"
    ):
        getattr(prob, method)(np.ones((2, dim)))


def test_linear_problem_theta_check_runs_under_jit():
    import jax

    prob = LinearProblem(X=X, y=Y, eps=0.1, p=2.0)
    with pytest.raises(ValueError, match=r"theta must have length 3 .* got length 2"):
        jax.jit(LinearProblem.grad)(prob, np.ones(2))


@pytest.mark.parametrize(
    ("y", "fix"),
    [
        (np.array([0.0, 1.0]), r"convert \{0, 1\} labels with y = 2\*y - 1"),
        (np.array([False, True]), r"convert \{0, 1\} labels with y = 2\*y - 1"),
        (
            np.array([1.0, 2.0]),
            r"map the two classes to -1 and \+1, e.g\. y = np\.where\(y == 2\.0",
        ),
        (
            np.array([0.0, 1.0, 2.0]),
            r"binary classification takes two classes, labelled -1 and \+1; got 3 distinct values",
        ),
    ],
    ids=["0/1", "bool", "1/2", "three-classes"],
)
def test_label_errors_suggest_the_fix_that_fits(y, fix):
    with pytest.raises(ValueError, match=r"^y must hold labels -1 or \+1 only, got .*; " + fix):
        linear.adversarial_loss(W, np.ones((y.size, 3)), y, eps=0.1, p=2)
