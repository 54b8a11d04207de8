"""advlip.strategies draws what it promises, and rejects invalid arguments by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import find as _find
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from advlip import strategies
from advlip.linear import LinearProblem
from advlip.losses import LOSSES
from advlip.tolerance import gamma

SMALL_DIMS = st.integers(1, 5)


def find(strategy: st.SearchStrategy, condition):
    """The first drawn example satisfying ``condition`` (no shrinking: only existence matters)."""
    return _find(
        strategy,
        condition,
        settings=settings(phases=[Phase.generate], database=None, max_examples=1000),
    )


def draw_once(strategy: st.SearchStrategy) -> None:
    """Draw one example (through @given: .example() is for interactive use only)."""

    @settings(max_examples=1, database=None)
    @given(strategy)
    def inner(_):
        pass

    inner()


def sorted_abs(w: np.ndarray) -> np.ndarray:
    return np.sort(np.abs(w))[::-1]


# --------------------------------------------------------------------------- scalars


@given(strategies.p_values())
def test_p_values_are_valid_exponents(p):
    assert isinstance(p, float)
    assert p >= 1.0


@given(
    st.tuples(st.floats(1, 20), st.floats(1, 20))
    .map(sorted)
    .flatmap(lambda r: st.tuples(st.just(r), strategies.p_values(min_p=r[0], max_p=r[1])))
)
def test_p_values_respect_their_range(bounds_and_p):
    (lo, hi), p = bounds_and_p
    assert lo <= p <= hi


@given(strategies.p_values(include_special=False))
def test_p_values_without_specials(p):
    assert p not in (1.0, 2.0, math.inf)


@pytest.mark.parametrize("special", [1.0, 2.0, math.inf], ids=["p=1", "p=2", "p=inf"])
def test_p_values_draw_the_standard_threat_models(special):
    assert find(strategies.p_values(), lambda p: p == special) == special


def test_p_values_draw_non_special_exponents():
    p = find(strategies.p_values(), lambda p: p not in (1.0, 2.0, math.inf))
    assert 1.0 < p < math.inf


@given(strategies.epsilons(min_eps=0.25, max_eps=0.5))
def test_epsilons_respect_their_range(eps):
    assert 0.25 <= eps <= 0.5


@given(strategies.epsilons(allow_zero=False))
def test_epsilons_without_zero(eps):
    assert 0.0 < eps <= 1.0
    assert eps >= np.finfo(np.float64).tiny  # never subnormal


def test_epsilons_draw_zero_when_allowed():
    assert find(strategies.epsilons(), lambda e: e == 0.0) == 0.0


@given(strategies.margin_losses())
def test_margin_losses_are_registered_names(name):
    assert name in LOSSES


# --------------------------------------------------------------------------- weights

# numpy's norm of a vector of d entries: d products, d - 1 sums, the sqrt: gamma(d + 1)
# relative error; the guarantees below are stated for numpy.linalg.norm, so no slack there.


def check_weight_vector(w: np.ndarray, d: int, lo: float, hi: float) -> None:
    assert isinstance(w, np.ndarray)
    assert w.dtype == np.float64
    assert w.shape == (d,)
    assert np.all(np.isfinite(w))
    assert lo <= np.linalg.norm(w) <= hi


def check_generic(w: np.ndarray) -> None:
    a = sorted_abs(w)
    s = strategies.GENERIC_SEPARATION
    assert a[-1] >= s * a[0], "a coordinate is too close to 0"
    if len(a) > 1:
        assert a[0] - a[1] >= s * a[0], "the largest |w_i| is (nearly) tied"


def check_gap(t: float, exact: bool) -> None:
    """A relative gap t is 0 (exact kinds) or 0 or within NEAR_GAP (near kinds).

    The gap is measured on the returned vector: each entry was formed (1 rounding), scaled
    to its norm (1) and nudged into the norm range (at most 8 times, 1 each), and the gap
    takes a difference and a division (2): gamma(19) relative to the entries, i.e. absolute
    on a gap relative to the largest entry.
    """
    lo, hi = strategies.NEAR_GAP
    slack = gamma(19)
    if exact:
        assert t == 0.0
    else:
        assert t == 0.0 or lo * (1 - slack) - slack <= t <= hi * (1 + slack) + slack


@pytest.mark.parametrize("kind", strategies.WEIGHT_KINDS)
@given(data=st.data())
def test_weights_have_their_kind(kind, data):
    min_dim = 1 if kind in ("generic", "near_zero") else 2
    d = data.draw(st.integers(min_dim, 5), label="d")
    w = data.draw(strategies.weights(d, kind=kind), label="w")
    lo, hi = (1e-8, 1e-3) if kind == "near_zero" else (0.1, 10.0)
    check_weight_vector(w, d, lo, hi)
    a = sorted_abs(w)
    if kind in ("generic", "near_zero"):
        check_generic(w)
    elif kind.endswith("kink"):
        # exactly one coordinate is (near) 0; the others are generic among themselves
        check_gap(a[-1] / a[0], exact=kind == "exact_kink")
        check_generic(a[:-1])
    else:
        # the two largest tie (nearly); the others sit clearly below and away from 0
        check_gap((a[0] - a[1]) / a[0], exact=kind == "exact_tie")
        assert np.all(a[2:] <= 0.98 * a[0] * (1 + gamma(19)))
        assert np.all(a[2:] >= strategies.GENERIC_SEPARATION * a[0])


@pytest.mark.parametrize("kind", ["exact_kink", "exact_tie", "near_kink", "near_tie"])
def test_weights_reach_exact_kinks(kind):
    if kind.endswith("kink"):
        w = find(strategies.weights(3, kind=kind), lambda w: np.any(w == 0.0))
        assert np.count_nonzero(w == 0.0) == 1
    else:
        w = find(strategies.weights(3, kind=kind), lambda w: sorted_abs(w)[0] == sorted_abs(w)[1])
        assert sorted_abs(w)[0] == sorted_abs(w)[1]


@given(strategies.weights(4, kind="generic", min_norm=2.0, max_norm=3.0))
def test_weights_respect_the_norm_range(w):
    check_weight_vector(w, 4, 2.0, 3.0)


@given(strategies.weights(st.sampled_from([2, 5])))
def test_weights_dim_may_be_a_strategy(w):
    assert w.shape in ((2,), (5,))


@given(strategies.weights(3, min_norm=1.5, max_norm=1.5))
def test_weights_with_a_fixed_norm(w):
    assert np.linalg.norm(w) == 1.5


@given(strategies.weight_pairs(SMALL_DIMS, min_norm=0.5, max_norm=2.0))
def test_weight_pairs(pair):
    w1, w2 = pair
    d = w1.shape[0]
    check_weight_vector(w1, d, 0.5, 2.0)
    check_generic(w1)
    assert w2.shape == (d,) and w2.dtype == np.float64 and np.all(np.isfinite(w2))
    assert np.linalg.norm(w2) >= 0.5
    assert np.linalg.norm(w2) <= (1 + 2.0) * 2.0
    rel = np.linalg.norm(w1 - w2) / np.linalg.norm(w1)
    # w2 - w1 = r ||w1|| v/||v||: the scaling (3 roundings on the step, d + 1 for the norms)
    # and the addition and subtraction cancel to a relative error gamma(d + 6) / r of r.
    slack = gamma(d + 6) * (1 + 1 / rel)
    assert 1e-6 * (1 - slack) <= rel <= 2.0 * (1 + slack)


def test_weight_pairs_span_tiny_to_large_distances():
    pairs = strategies.weight_pairs(3)

    def rel(pair):
        return np.linalg.norm(pair[0] - pair[1]) / np.linalg.norm(pair[0])

    assert rel(find(pairs, lambda pair: rel(pair) < 1e-5)) < 1e-5
    assert rel(find(pairs, lambda pair: rel(pair) > 1.0)) > 1.0


# --------------------------------------------------------------------------- data and problems


@given(strategies.datasets(n=SMALL_DIMS, d=SMALL_DIMS, x_scale=3.0))
def test_datasets(Xy):
    X, y = Xy
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert X.ndim == 2 and y.shape == (X.shape[0],)
    assert 1 <= X.shape[0] <= 5 and 1 <= X.shape[1] <= 5
    assert np.all(np.isfinite(X)) and np.all(np.abs(X) <= 3.0)
    assert set(np.unique(y)) <= {-1.0, 1.0}


def test_datasets_draw_both_labels():
    X, y = find(strategies.datasets(n=4, d=2), lambda Xy: len(set(Xy[1])) == 2)
    assert set(y) == {-1.0, 1.0}


@given(strategies.datasets(n=3, d=2))
def test_datasets_with_fixed_sizes(Xy):
    assert Xy[0].shape == (3, 2)


@given(strategies.linear_problems(n=2, d=3))
def test_linear_problems(prob):
    assert isinstance(prob, LinearProblem)
    assert prob.X.shape == (2, 3) and prob.y.shape == (2,)
    assert prob.loss in LOSSES
    assert prob.p >= 1.0 and 0.0 <= float(prob.eps) <= 1.0
    assert isinstance(prob.fit_bias, bool)


@given(
    strategies.linear_problems(
        n=1, d=2, eps=0.5, p=math.inf, loss="exponential", b=-0.25, fit_bias=st.just(True)
    )
)
def test_linear_problems_with_fixed_arguments(prob):
    assert (float(prob.eps), prob.p, prob.loss, float(prob.b), prob.fit_bias) == (
        0.5,
        math.inf,
        "exponential",
        -0.25,
        True,
    )
    assert prob.dim == 3


# --------------------------------------------------------------------------- invalid arguments

INVALID = [
    # (id, factory, kwargs)
    ("p_values-min_p<1", strategies.p_values, dict(min_p=0.5)),
    ("p_values-min_p=nan", strategies.p_values, dict(min_p=math.nan)),
    ("p_values-min_p=inf", strategies.p_values, dict(min_p=math.inf)),
    ("p_values-min_p-str", strategies.p_values, dict(min_p="1")),
    ("p_values-max_p<min_p", strategies.p_values, dict(min_p=3.0, max_p=2.0)),
    ("p_values-max_p=nan", strategies.p_values, dict(max_p=math.nan)),
    ("p_values-include_special-not-bool", strategies.p_values, dict(include_special=1)),
    (
        "p_values-only-excluded-special",
        strategies.p_values,
        dict(min_p=2.0, max_p=2.0, include_special=False),
    ),
    ("epsilons-min_eps<0", strategies.epsilons, dict(min_eps=-0.1)),
    ("epsilons-max_eps<min_eps", strategies.epsilons, dict(min_eps=0.5, max_eps=0.1)),
    ("epsilons-max_eps=inf", strategies.epsilons, dict(max_eps=math.inf)),
    ("epsilons-max_eps=nan", strategies.epsilons, dict(max_eps=math.nan)),
    ("epsilons-only-zero-excluded", strategies.epsilons, dict(max_eps=0.0, allow_zero=False)),
    ("epsilons-allow_zero-not-bool", strategies.epsilons, dict(allow_zero="yes")),
    ("weights-dim=0", strategies.weights, dict(dim=0)),
    ("weights-dim=-1", strategies.weights, dict(dim=-1)),
    ("weights-dim-float", strategies.weights, dict(dim=3.0)),
    ("weights-dim-bool", strategies.weights, dict(dim=True)),
    ("weights-kink-dim=1", strategies.weights, dict(dim=1, kind="near_kink")),
    ("weights-tie-dim=1", strategies.weights, dict(dim=1, kind="exact_tie")),
    ("weights-kind-unknown", strategies.weights, dict(dim=3, kind="kinky")),
    ("weights-min_norm=0", strategies.weights, dict(dim=3, min_norm=0.0)),
    ("weights-min_norm<0", strategies.weights, dict(dim=3, min_norm=-1.0)),
    ("weights-max_norm<min_norm", strategies.weights, dict(dim=3, min_norm=2.0, max_norm=1.0)),
    ("weights-max_norm=inf", strategies.weights, dict(dim=3, max_norm=math.inf)),
    ("weights-min_norm=nan", strategies.weights, dict(dim=3, min_norm=math.nan)),
    ("weight_pairs-dim=0", strategies.weight_pairs, dict(dim=0)),
    ("weight_pairs-min_rel_dist=0", strategies.weight_pairs, dict(dim=2, min_rel_dist=0.0)),
    (
        "weight_pairs-max_rel_dist<min_rel_dist",
        strategies.weight_pairs,
        dict(dim=2, min_rel_dist=0.5, max_rel_dist=0.1),
    ),
    ("weight_pairs-min_norm=0", strategies.weight_pairs, dict(dim=2, min_norm=0.0)),
    ("datasets-n=0", strategies.datasets, dict(n=0)),
    ("datasets-d=0", strategies.datasets, dict(d=0)),
    ("datasets-n-float", strategies.datasets, dict(n=2.5)),
    ("datasets-x_scale=0", strategies.datasets, dict(x_scale=0.0)),
    ("datasets-x_scale=inf", strategies.datasets, dict(x_scale=math.inf)),
    ("linear_problems-eps<0", strategies.linear_problems, dict(eps=-0.1)),
    ("linear_problems-p<1", strategies.linear_problems, dict(p=0.5)),
    ("linear_problems-loss-unknown", strategies.linear_problems, dict(loss="hinge")),
    ("linear_problems-b=nan", strategies.linear_problems, dict(b=math.nan)),
    ("linear_problems-fit_bias-not-bool", strategies.linear_problems, dict(fit_bias="no")),
    ("linear_problems-n=0", strategies.linear_problems, dict(n=0)),
]


def _argument_names(kwargs: dict) -> str:
    return "|".join(kwargs)


@pytest.mark.parametrize(
    ("factory", "kwargs"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_arguments_raise_when_the_strategy_is_created(factory, kwargs):
    # the message names (one of) the offending argument(s)
    with pytest.raises(InvalidArgument, match=_argument_names(kwargs)):
        factory(**kwargs)


INVALID_DRAWN = [
    ("weights-dim-strategy-drawing-0", lambda: strategies.weights(st.just(0)), "dim"),
    (
        "weights-kink-dim-strategy-drawing-1",
        lambda: strategies.weights(st.just(1), kind="exact_kink"),
        "dim",
    ),
    ("weight_pairs-dim-strategy-drawing-0", lambda: strategies.weight_pairs(st.just(0)), "dim"),
    ("datasets-n-strategy-drawing-0", lambda: strategies.datasets(n=st.just(0)), "n"),
    ("datasets-d-strategy-drawing-float", lambda: strategies.datasets(d=st.just(2.0)), "d"),
]


@pytest.mark.parametrize(
    ("make", "name"), [case[1:] for case in INVALID_DRAWN], ids=[case[0] for case in INVALID_DRAWN]
)
def test_invalid_drawn_values_raise_when_drawn(make, name):
    strategy = make()  # a strategy-valued argument can only be checked on its values
    with pytest.raises(InvalidArgument, match=name):
        draw_once(strategy)


# --------------------------------------------------------------------------- module surface


def test_public_names():
    for name in strategies.__all__:
        assert hasattr(strategies, name)
    assert set(strategies.WEIGHT_KINDS) == {
        "generic",
        "near_zero",
        "near_kink",
        "near_tie",
        "exact_kink",
        "exact_tie",
    }
