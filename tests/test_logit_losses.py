"""Losses on logits (cross-entropy, CW, DLR), ClassifierLoss, and inputs of any shape.

Tolerances: each loss is a handful of float64 operations on O(1) logits; the
references below compute the same quantity by a different route (optax's
cross-entropy, NumPy sorting), so the two agree to a few units of roundoff of the
largest term. We allow ``64 u · (1 + max|z|)``: 64 ≥ the operation count of either
route (a K = 10 logsumexp is ~3K operations), u the float64 unit roundoff.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from advlip import adversarial, attacks, losses, models
from advlip.tolerance import unit_roundoff

U = unit_roundoff(np.float64)


def _tol(z):
    return 64 * U * (1.0 + float(np.max(np.abs(z))))


logits = st.lists(
    st.floats(-20, 20, allow_nan=False, allow_subnormal=False), min_size=3, max_size=10
)


@given(z=logits, data=st.data())
def test_cross_entropy_is_optax(z, data):
    y = data.draw(st.integers(0, len(z) - 1))
    z = jnp.asarray(z)
    ref = optax.softmax_cross_entropy_with_integer_labels(z[None], jnp.asarray([y]))[0]
    got = losses.get_logit_loss("cross_entropy")(z, y)
    assert abs(float(got) - float(ref)) <= _tol(z)


@given(z=logits, data=st.data())
def test_margins_against_numpy(z, data):
    y = data.draw(st.integers(0, len(z) - 1))
    zn = np.asarray(z)
    other = np.max(np.delete(zn, y))
    srt = np.sort(zn)[::-1]
    cw = other - zn[y]
    dlr = (other - zn[y]) / (srt[0] - srt[2] + 1e-12)
    assert abs(float(losses.get_logit_loss("cw")(jnp.asarray(z), y)) - cw) <= _tol(zn)
    # the ratio's relative error is that of its numerator and denominator
    got = float(losses.get_logit_loss("dlr")(jnp.asarray(z), y))
    assert abs(got - dlr) <= _tol(zn) * (1 + abs(dlr)) / max(srt[0] - srt[2], 1e-12)


@pytest.mark.parametrize("label", [-1.0, 1.0])
def test_binary_logit_is_the_margin_loss(label):
    # one logit with labels ±1: cross-entropy is softplus(-y f), CW is -y f
    f = jnp.asarray(0.7)
    ce = losses.get_logit_loss("cross_entropy")(f, label)
    assert float(ce) == float(losses.get_loss("softplus").value(label * f))
    assert float(losses.get_logit_loss("cw")(f[None], label)) == -label * 0.7
    # two-class cross-entropy on (0, f) equals the binary one with y = 2c - 1
    two = losses.get_logit_loss("cross_entropy")(jnp.stack([0.0 * f, f]), int(label > 0))
    assert abs(float(two) - float(ce)) <= _tol(np.asarray([0.7]))


def test_labels_are_checked_by_name():
    with pytest.raises(ValueError, match=r"y holds the label 3; allowed: integer classes 0\.\.2"):
        losses.check_labels([0, 1, 3], 3)
    with pytest.raises(ValueError, match=r"y holds the label 0\.5"):
        losses.check_labels([0, 0.5], 3)
    with pytest.raises(ValueError, match=r"allowed: -1 or \+1"):
        losses.check_labels([1.0, 0.0], 1)
    losses.check_labels([0, 2, 1], 3)
    losses.check_labels([1.0, -1.0], 1)
    with pytest.raises(ValueError, match=r"loss='hinge' is not a known loss on logits"):
        losses.get_logit_loss("hinge")


def _conv_net():
    def apply(params, x):  # x: (5, 5, 1)
        h = jax.lax.conv_general_dilated(
            x[None], params["k"], (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )[0]
        return params["W"] @ jnp.tanh(h).reshape(-1)

    rng = np.random.default_rng(0)
    params = {
        "k": jnp.asarray(rng.normal(size=(2, 2, 1, 2))),
        "W": jnp.asarray(rng.normal(size=(3, 32)) / 4),
    }
    X = jnp.asarray(rng.uniform(size=(4, 5, 5, 1)))
    y = jnp.asarray([0, 1, 2, 1])
    return apply, params, X, y


def test_images_are_flattened_row_major():
    # the engine on images must be the engine on the same images flattened row-major with
    # a loss that reshapes them back: the same programs, so bitwise the same results
    apply, params, X, y = _conv_net()
    shaped = models.ClassifierLoss(apply)
    flat = models.ClassifierLoss(lambda th, x: apply(th, x.reshape(5, 5, 1)))
    key = jax.random.PRNGKey(3)
    a = adversarial.linearize(shaped, params, X, y, eps=0.2, p=2, key=key)
    b = adversarial.linearize(flat, params, X.reshape(4, -1), y, eps=0.2, p=2, key=key)
    assert a.delta.shape == (4, 25)
    np.testing.assert_array_equal(np.asarray(a.delta), np.asarray(b.delta))
    v = jax.tree.map(jnp.ones_like, params)
    for h in ("total_hvp", "naive_hvp"):
        ga, gb = getattr(a, h)(v), getattr(b, h)(v)
        for la, lb in zip(jax.tree.leaves(ga), jax.tree.leaves(gb), strict=True):
            np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    # a wrong (column-major) flattening is a different problem: the test can fail
    c = adversarial.linearize(
        flat, params, jnp.transpose(X, (0, 2, 1, 3)).reshape(4, -1), y, eps=0.2, p=2, key=key
    )
    assert not np.array_equal(np.asarray(a.delta), np.asarray(c.delta))


def test_image_attack_warm_start_and_reuse():
    apply, params, X, y = _conv_net()
    loss_fn = models.ClassifierLoss(apply)
    att = attacks.pgd(loss_fn, params, X, y, eps=0.2, p=2, key=jax.random.PRNGKey(1))
    # a δ in the images' shape is a valid warm start; a δ of the flat shape reuses the attack
    again = attacks.pgd(loss_fn, params, X, y, eps=0.2, p=2, init=att.delta.reshape(X.shape))
    assert again.delta.shape == (4, 25)
    L1 = adversarial.adversarial_loss(loss_fn, params, X, y, eps=0.2, p=2, attack=att)
    assert float(L1) == float(jnp.mean(att.loss))
    with pytest.raises(ValueError, match=r"y holds the label 3"):
        adversarial.linearize(loss_fn, params, X, jnp.asarray([0, 1, 3, 1]), eps=0.2, p=2)
    with pytest.raises(ValueError, match=r"X must have shape \(n, d\) or \(n, \*input_shape\)"):
        attacks.pgd(loss_fn, params, X[0, 0, 0], y[:1], eps=0.2, p=2)


def test_classifier_loss_validates():
    with pytest.raises(ValueError, match="apply must be callable"):
        models.ClassifierLoss(3)
    with pytest.raises(ValueError, match="loss='nope'"):
        models.ClassifierLoss(lambda th, x: x, "nope")
    two = models.ClassifierLoss(lambda W, x: W @ x, "dlr")
    with pytest.raises(ValueError, match="loss='dlr' needs at least 3 classes"):
        two.check_labels(jnp.eye(2), jnp.ones(2), jnp.asarray([0, 1]))
