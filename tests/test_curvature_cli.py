"""``advlip curvature`` and :mod:`advlip.curvature`: total vs naive curvature of a network.

The figures are checked against the dense Hessians of a model small enough to form
them (P = 3·8 + 3K ≤ 54): every reported eigenvalue must lie within its own reported bound of
``numpy.linalg.eigvalsh`` of the dense matrix (the bound is the quantity the tool
promises, so no extra tolerance is added), and the total and naive operators must
differ where the attack moves (L2 ball).
"""

from __future__ import annotations

import json
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import adversarial, cli, curvature, data, models

TINY = textwrap.dedent(
    """
    import jax.numpy as jnp
    import numpy as np
    from advlip import models

    def _apply(params, x):  # x: one (8, 8, 1) image; K classes
        h = jnp.tanh(params["A"] @ x.reshape(-1)[::8])  # 8 pixels -> 3 units
        return params["B"] @ h

    def make(key, input_shape, num_classes):
        assert tuple(input_shape) == (8, 8, 1)
        rng = np.random.default_rng(0)
        params = {"A": jnp.asarray(rng.normal(size=(3, 8))),
                  "B": jnp.asarray(rng.normal(size=(num_classes, 3)))}
        return params, models.ClassifierLoss(_apply, "cross_entropy")

    def flat(key):  # the loss does not depend on x: no unique maximiser anywhere
        params = {"b": jnp.arange(10.0) / 10}
        return params, models.ClassifierLoss(lambda th, x: th["b"] + 0.0 * jnp.sum(x))
    """
)


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    # main() would otherwise turn on XLA's persistent cache under ~/.cache for the rest of
    # this worker's tests (entries written by other runs, other flags): tests write only in
    # tmp_path
    monkeypatch.setenv("ADVLIP_CACHE_DIR", "off")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny_models.py"
    path.write_text(TINY)
    return str(path)


def _digits(n, seed):
    X, y, _ = data.images("digits", split="test", n=n, key=jax.random.PRNGKey(seed))
    return X, y


def test_command_matches_the_dense_hessians(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "c.json"
    argv = [
        "curvature", "--model", f"{tiny}:make", "--data", "digits", "--n", "5",
        "--p", "2", "--eps", "0.3", "--k", "2", "--trace", "--num-samples", "12",
        "--json", str(out), "--seed", "4",
    ]  # fmt: skip
    monkeypatch.setenv("COLUMNS", "100")
    code = cli.main(argv)
    stdout = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert code == (0 if doc["undetermined_fraction"] == 0 else 1)
    assert "λ_max" in stdout and "naive" in stdout and "undetermined" in stdout
    # the same problem, by hand: the data the command drew, the dense Hessians
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_models", tiny)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    X, y = _digits(5, 4)  # the command's draw: --data digits --n 5 --seed 4
    params, loss_fn = mod.make(None, (8, 8, 1), int(np.max(y)) + 1)
    with jax.enable_x64(True):
        pt = adversarial.linearize(
            loss_fn, params, X, y, eps=0.3, p=2, key=jax.random.split(jax.random.PRNGKey(4), 4)[0]
        )
        dense = {
            "total": np.linalg.eigvalsh(np.asarray(pt.total_hessian()))[::-1],
            "naive": np.linalg.eigvalsh(np.asarray(pt.naive_hessian()))[::-1],
        }
    for h in ("total", "naive"):
        vals = np.asarray(doc[h]["values"])
        bounds = np.asarray(doc[h]["bounds"])
        assert np.all(np.abs(vals - dense[h][:2]) <= bounds), (h, vals, dense[h][:2], bounds)
        # Hutch++ on a ≤ 54-dim operator with 12 probes: within 5 standard errors
        tr = doc["trace"][h]
        assert abs(tr["estimate"] - dense[h].sum()) <= 5 * tr["standard_error"] + 1e-9
    # on the L2 sphere the maximiser moves with θ: total and naive differ beyond both bounds
    gap = abs(doc["total"]["values"][0] - doc["naive"]["values"][0])
    assert gap > doc["total"]["bounds"][0] + doc["naive"]["bounds"][0]
    assert doc["replay"].startswith("advlip curvature --model") and "--seed 4" in doc["replay"]
    # the replay line fits the terminal: continued with " \\" (one shell command)
    assert all(len(line) <= 100 for line in stdout.splitlines()), stdout
    assert f"replay: {doc['replay']}" in stdout.replace(" \\\n    ", " ")


def test_undetermined_examples_exit_1_with_reasons(tiny, capsys):
    code = cli.main(
        ["curvature", "--model", f"{tiny}:flat", "--n", "3", "--p", "2", "--eps", "0.1"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "undetermined: 100.0% of examples" in out


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--model", "nocolon"], "--model"),
        (["--model", "no_such_module_xyz:f"], "--model"),
        (["--model", "advlip.networks:no_such_factory"], "--model"),
        (["--p", "3"], "--p"),
        (["--eps", "-1"], "--eps"),
        (["--k", "0"], "--k"),
        (["--data", "no-such-set"], "--data"),
        (["--loss", "hinge"], "--loss"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_input_exits_2_naming_the_argument(args, flag, capsys):
    base = {"--model": "advlip.networks:cnn", "--p": "2", "--eps": "0.1", "--n": "2"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["curvature", *[x for kv in base.items() for x in kv]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err, err


def test_measure_streams_in_batches_like_one_batch():
    # the streamed point is the one-batch point up to the order of sums: its top
    # eigenvalue agrees within the two reported bounds
    X, y = _digits(6, 1)
    W = jnp.asarray(np.random.default_rng(2).normal(size=(10, 64)) / 8)
    loss_fn = models.ClassifierLoss(lambda W, x: W @ jnp.tanh(x.reshape(-1)))
    with jax.enable_x64(True):
        one = curvature.measure(loss_fn, W, X, y, eps=0.2, p=2, progress=False)
        many = curvature.measure(loss_fn, W, X, y, eps=0.2, p=2, batch_size=4, progress=False)
    assert many.n == one.n == 6
    for h in ("total", "naive"):
        a, b = getattr(one, h), getattr(many, h)
        assert abs(a.values[0] - b.values[0]) <= a.bounds[0] + b.bounds[0]
    assert "λ_max" in one.table() and json.dumps(one.to_json())


def test_resolve_model_refuses_what_it_cannot_take():
    with pytest.raises(ValueError, match="allowed: \\(params, loss_fn\\)"):
        curvature.resolve_model(object(), np.zeros(3))
