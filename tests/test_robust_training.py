"""The EntropySGD-vs-SGD adversarial-training experiment (advlip.robust_training) at a tiny
size: the document's structure, claims that follow from the reported runs, intervals,
the PNG, and the t quantile against scipy."""

import dataclasses
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from advlip import experiments, plots, tolerance, training
from advlip import robust_training as rt

TINY = rt.Sizes(
    seeds=2,
    n_train=64,
    n_test=32,
    epochs=1,
    batch_size=32,
    attack_steps=1,
    sgld_steps=2,
    equal_gradients=True,
    eval_steps=3,
    eval_restarts=1,
    eval_pgd_steps=3,
    probe=0,
    curvature_checkpoints=2,
    curvature_seeds=0,
)


@dataclasses.dataclass(frozen=True)
class Ctx:
    """A stand-in for advlip.experiments' context: the attributes the experiment reads."""

    out_dir: Path
    name: str = "entropy-sgd-robust"
    quick: bool = True
    key: jax.Array = dataclasses.field(default_factory=lambda: jax.random.PRNGKey(0))
    options: dict = dataclasses.field(default_factory=dict)
    messages: list = dataclasses.field(default_factory=list)

    def progress(self, msg):
        self.messages.append(msg)

    def png(self, suffix=""):
        return self.out_dir / f"{self.name}{'-' + suffix if suffix else ''}.png"


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    ctx = Ctx(tmp_path_factory.mktemp("rt"))
    out = rt.experiment(ctx, sizes=TINY)
    out["_messages"] = ctx.messages
    return out


def test_structure(doc):
    arms = list(rt.OPTIMIZERS)
    assert {"runs", "summary", "claims", "pngs", "training", "evaluation", "curvature"} <= set(doc)
    runs = doc["runs"]
    assert len(runs) == TINY.seeds * len(arms) * 2
    for norm in ("linf", "l2"):
        for opt in arms:
            seeds = sorted(r["seed"] for r in runs if r["norm"] == norm and r["optimizer"] == opt)
            assert seeds == list(range(TINY.seeds))
    for r in runs:
        for k in ("clean_acc", "robust_acc", "apgd_acc", "pgd_acc"):
            assert 0.0 <= r[k] <= 1.0
        # the worst case over all attacks is at most each attack's, which is at most clean
        assert r["robust_acc"] <= min(r["apgd_acc"], r["pgd_acc"]) <= r["clean_acc"]
        assert set(r["per_attack"]) == {"apgd-ce", "apgd-dlr", "pgd-ce"}
        assert len(r["train_adversarial_loss"]) == r["epochs"]
        assert r["curvature"] == []  # probe=0: nothing measured, and the document says so
    assert doc["curvature"]["measured"] is False
    assert doc["_messages"], "progress was reported"


def test_epochs_and_gradient_counts(doc):
    runs = doc["runs"]
    nb = TINY.n_train // TINY.batch_size
    per_grad = TINY.attack_steps + 2  # PGD's k + 1 input gradients and one parameter gradient
    for r in runs:
        mult = TINY.sgld_steps if r["optimizer"] == "entropy-sgd" else 1
        epochs = TINY.epochs * (TINY.sgld_steps if r["optimizer"] == "sgd-equal-gradients" else 1)
        assert r["epochs"] == epochs
        assert r["gradient_evaluations"] == epochs * nb * TINY.batch_size * per_grad * mult
    by = {(r["norm"], r["optimizer"], r["seed"]): r for r in runs}
    for (norm, opt, seed), r in by.items():
        if opt == "entropy-sgd":  # equal epochs with sgd, equal gradients with the long arm
            assert r["epochs"] == by[(norm, "sgd", seed)]["epochs"]
            assert (
                r["gradient_evaluations"]
                == by[(norm, "sgd-equal-gradients", seed)]["gradient_evaluations"]
            )


def _t(q, df):
    stats = pytest.importorskip("scipy.stats")
    return float(stats.t.ppf(q, df))


def _t_error(q, df):
    """Error bound of rt.t_quantile (see test_t_quantile_matches_scipy): the tail's ~100
    roundings over the tail's slope 2 f(t), plus the bisection's relative width 1e-14."""
    stats = pytest.importorskip("scipy.stats")
    t = float(stats.t.ppf(q, df))
    return 200 * tolerance.UNIT_ROUNDOFF / (2 * float(stats.t.pdf(t, df))) + 2e-14 * t


def test_claims_follow_from_the_runs(doc):
    runs = doc["runs"]
    claims = doc["claims"]
    verdicts = [c for c in claims if c["claim"].startswith("EntropySGD improves")]
    assert len(verdicts) == 4  # two norms x two baselines
    for c in verdicts:
        e = sorted(
            (r for r in runs if r["norm"] == c["norm"] and r["optimizer"] == "entropy-sgd"),
            key=lambda r: r["seed"],
        )
        b = sorted(
            (r for r in runs if r["norm"] == c["norm"] and r["optimizer"] == c["baseline"]),
            key=lambda r: r["seed"],
        )
        diff = np.array([x["robust_acc"] - z["robust_acc"] for x, z in zip(e, b, strict=True)])
        n = diff.size
        half = _t(0.975, n - 1) * np.std(diff, ddof=1) / math.sqrt(n)
        mean_e = np.mean([x["robust_acc"] for x in e])
        mean_b = np.mean([z["robust_acc"] for z in b])
        # means and deviations of a few numbers in [-1, 1] (4n + 8 roundings, each relative to
        # values <= 1), plus the t quantile's error times s/sqrt(n) <= 1 (accuracies in [0, 1])
        tol = tolerance.gamma(4 * n + 8) * 4 * _t(0.975, n - 1) + _t_error(0.975, n - 1)
        assert abs(c["entropy_sgd_mean"] - mean_e) <= tol
        assert abs(c["baseline_mean"] - mean_b) <= tol
        assert abs(c["difference_low"] - (diff.mean() - half)) <= tol
        assert abs(c["difference_high"] - (diff.mean() + half)) <= tol
        low = diff.mean() - half
        if abs(low) > tol and abs(mean_e - mean_b) > tol:  # not on the decision boundary
            assert c["holds"] == bool(mean_e > mean_b and low > 0)
    strength = [c for c in claims if c["claim"].startswith("APGD")]
    assert len(strength) == 1
    assert strength[0]["holds"] == all(r["apgd_acc"] <= r["pgd_acc"] for r in runs)


def test_intervals_contain_their_means(doc):
    for norm in ("linf", "l2"):
        block = doc["summary"][norm]
        for opt in rt.OPTIMIZERS:
            for k in ("robust", "clean", "apgd", "pgd"):
                iv = block[opt][k]
                assert iv["low"] <= iv["mean"] <= iv["high"]
                assert iv["n"] == TINY.seeds
        for iv in block["paired_robust_difference"].values():
            assert iv["low"] <= iv["mean"] <= iv["high"]


def _figure(doc):
    (fig,) = experiments.figures(training.json_safe(doc), "entropy-sgd-robust").values()
    return fig


def test_png_is_the_figure_and_plots_every_run(doc, tmp_path):
    (png,) = doc["pngs"]
    fig = _figure(doc)
    assert plots.figure_problems(fig) == []
    plots._save(fig, tmp_path / "redrawn.png")  # redrawn from the JSON: the PNG itself
    assert (tmp_path / "redrawn.png").read_bytes() == Path(png).read_bytes()
    # a dot per run, at the run's held-out robust accuracy
    for k, r in enumerate(doc["runs"]):
        (dot,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == f"run:{k}"]
        assert list(dot.get_ydata()) == [r["robust_acc"]]
    # curvature not measured: no panel for it, and the JSON and the title say so
    assert len(fig.axes) == 1 and doc["curvature"]["measured"] is False
    assert "not drawn" in doc["curvature"]["how"] and "not measured" in fig.get_suptitle()


def test_measured_curvature_gets_a_panel_per_norm(doc):
    # the curvature of the first seed's runs, as a measured run reports it (numbers made
    # up here: the test is of the drawing)
    body = training.json_safe(doc)
    body["curvature"]["measured"] = True
    for r in body["runs"]:
        if r["seed"] == 0:
            r["curvature"] = [
                {"epoch": e, "lambda_total": 2.0 + e, "lambda_naive": 1.0 + e} for e in (0, 1)
            ]
    fig = _figure(body)
    assert len(fig.axes) == 3 and plots.figure_problems(fig) == []
    for ax, norm in zip(fig.axes[1:], ("linf", "l2"), strict=True):
        drawn = [r for r in body["runs"] if r["norm"] == norm and r["curvature"]]
        assert len(ax.lines) == 2 * len(drawn)  # total and naive per measured run


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 30, 200):
        for q in (0.6, 0.9, 0.975, 0.995):
            t = rt.t_quantile(q, df)
            ref = float(stats.t.ppf(q, df))
            # the tail's error (continued fraction, lgamma, exp: ~100 roundings) divided by
            # the tail's slope 2 f(t), plus the bisection's relative width 1e-14
            tol = 200 * tolerance.UNIT_ROUNDOFF / (2 * stats.t.pdf(ref, df)) + 2e-14 * ref
            assert abs(t - ref) <= tol, (q, df, t, ref)
    assert rt.t_quantile(0.5, 3) == 0.0
    for bad in (dict(q=0.975, df=0), dict(q=1.0, df=3), dict(q=0.4, df=3)):
        with pytest.raises(ValueError):
            rt.t_quantile(**bad)


def test_t_interval_known_values():
    # 95% interval of (1, 2, 3): mean 2, s = 1; for df = 2 the t CDF is 1/2 + t / (2 sqrt(2 + t^2)),
    # so t_{0.975, 2} = a sqrt(2 / (1 - a^2)) with a = 2 * 0.975 - 1 = 0.95 (closed form)
    iv = rt.t_interval([1.0, 2.0, 3.0])
    t = 0.95 * math.sqrt(2.0 / (1.0 - 0.95**2))
    # t_quantile's error: ~100 roundings of the tail over its slope 2 f(t), f(t) = (2 + t^2)^-1.5
    # for df = 2, plus the bisection's relative width; then / sqrt(3), and the closed form's and
    # the division's few roundings
    err_t = 200 * tolerance.UNIT_ROUNDOFF / (2 * (2 + t * t) ** -1.5) + 2e-14 * t
    assert abs(iv["half_width"] - t / math.sqrt(3)) <= err_t / math.sqrt(3) + tolerance.gamma(8) * t
    assert iv["mean"] == 2.0 and iv["sd"] == 1.0
    one = rt.t_interval([0.5])
    assert one["low"] == -math.inf and one["high"] == math.inf
    with pytest.raises(ValueError, match="values"):
        rt.t_interval([])


def test_bad_sizes_and_data(tmp_path):
    with pytest.raises(ValueError, match="sgld_steps"):
        rt.experiment(Ctx(tmp_path), sizes=dataclasses.replace(TINY, sgld_steps=1))
    with pytest.raises(ValueError, match="data"):
        rt.experiment(Ctx(tmp_path, options={"data": "svhn"}), sizes=TINY)
    with pytest.raises(ValueError, match="sizes"):
        rt.experiment(Ctx(tmp_path), sizes="tiny")
