"""The task guides (docs/guides/*.md) run as written, print what they show, and keep their word.

Every ```python block of a guide runs, in order, in one namespace per guide — as a reader
pastes them into one session. A ```text block that directly follows a python block is the
output the guide shows for it: the block must print exactly that. Then each guide's test
asserts the claims its prose makes, read from the namespace.

Blocks that import torch run in a test of their own, after the guide's first block (its
imports and data), and are skipped where torch is not installed: CI installs ``.[test]``,
which has flax and equinox but not torch (the skip is keyed on ``find_spec("torch")``).
No other block of a guide depends on a torch block.

The test process runs with float64 on and ``jax_numpy_rank_promotion="raise"``
(conftest.py); the guides enable float64 themselves and never rely on rank promotion.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

GUIDES = Path(__file__).resolve().parents[1] / "docs" / "guides"
THEORY = GUIDES.parent / "theory"
NAMES = ("curvature-of-your-model", "refute-a-claim", "property-tests", "entropy-sgd")
_FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_TORCH = re.compile(r"^\s*(import torch|from torch\b)", re.M)
NO_TORCH = importlib.util.find_spec("torch") is None


@dataclasses.dataclass
class Block:
    index: int
    code: str
    expected: str | None  # the ```text block right after it: what it must print
    torch: bool


def _blocks(name: str) -> list[Block]:
    """The python blocks of a guide, in order, each with the output shown after it."""
    text = (GUIDES / f"{name}.md").read_text()
    fences = list(_FENCE.finditer(text))
    out = []
    for k, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        expected = None
        nxt = fences[k + 1] if k + 1 < len(fences) else None
        if nxt is not None and nxt.group(1) == "text" and not text[m.end() : nxt.start()].strip():
            expected = nxt.group(2)
        code = m.group(2)
        out.append(Block(len(out), code, expected, bool(_TORCH.search(code))))
    return out


class Ran(dict):
    """A guide's namespace after its blocks ran, with what each block printed."""

    printed: dict[int, str]
    codes: dict[int, str]

    def output_of(self, snippet: str) -> str:
        """What the one block whose code contains ``snippet`` printed."""
        hits = [i for i, code in self.codes.items() if snippet in code]
        assert len(hits) == 1, f"{len(hits)} blocks contain {snippet!r}"
        return self.printed[hits[0]]


def _run(name: str, blocks: list[Block], capsys) -> Ran:
    """Execute ``blocks`` in one namespace; each block with a shown output must print it."""
    ns = Ran(__name__=f"guide_{name.replace('-', '_')}")
    ns.printed, ns.codes = {}, {}
    for b in blocks:
        capsys.readouterr()  # drop what earlier blocks printed
        exec(compile(b.code, f"docs/guides/{name}.md:block{b.index}", "exec"), ns)
        printed = capsys.readouterr().out
        ns.printed[b.index], ns.codes[b.index] = printed, b.code
        if b.expected is not None:
            assert printed.rstrip() == b.expected.rstrip(), (
                f"{name}.md block {b.index} prints\n{printed}\nbut the guide shows\n{b.expected}"
            )
    return ns


def run_guide(name: str, capsys) -> Ran:
    """Every non-torch block of the guide, in order, in one namespace."""
    return _run(name, [b for b in _blocks(name) if not b.torch], capsys)


def run_torch_blocks(name: str, capsys) -> Ran:
    """The guide's first block (imports, data), then its torch blocks; skipped without torch."""
    blocks = _blocks(name)
    torch_blocks = [b for b in blocks if b.torch]
    assert torch_blocks, f"{name}.md has no PyTorch block"
    if NO_TORCH:
        pytest.skip(f"torch is not installed: the PyTorch blocks of docs/guides/{name}.md")
    assert not blocks[0].torch
    return _run(name, [blocks[0], *torch_blocks], capsys)


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", NAMES)
def test_guide_has_code_and_links_existing_theory_pages(name):
    text = (GUIDES / f"{name}.md").read_text()
    assert _blocks(name), f"{name}.md has no python block"
    links = re.findall(r"\]\(\.\./theory/([\w.-]+\.md)\)", text)
    assert links, f"{name}.md links no theory page"
    missing = sorted({page for page in links if not (THEORY / page).is_file()})
    assert not missing, f"{name}.md links theory pages that do not exist: {missing}"


#: Guides whose test runs their ``advlip`` commands and compares the output they show.
CLI_CHECKED = ("refute-a-claim",)


@pytest.mark.parametrize("name", NAMES)
def test_every_output_shown_is_checked(name):
    # a ```text block is checked when it directly follows a python block (run_guide compares
    # it) or, in the guides of CLI_CHECKED, a bash block of advlip commands (their test runs
    # them); anywhere else it would be an output nobody checks
    text = (GUIDES / f"{name}.md").read_text()
    fences = list(_FENCE.finditer(text))
    assert fences and fences[0].group(1) != "text"
    for prev, m in zip(fences, fences[1:], strict=False):
        if m.group(1) != "text":
            continue
        assert not text[prev.end() : m.start()].strip(), f"{name}.md: output after prose"
        cli = prev.group(1) == "bash" and prev.group(2).lstrip().startswith("advlip ")
        assert prev.group(1) == "python" or (cli and name in CLI_CHECKED), (
            f"{name}.md: an unchecked output block follows a {prev.group(1)!r} block"
        )


# --------------------------------------------------------------------------- the guides


def _above(a, b) -> bool:
    """λ_max of ``a`` exceeds that of ``b`` beyond both error bounds (TopEigenvalues)."""
    return bool(a.values[0] - a.bounds[0] > b.values[0] + b.bounds[0])


def _not_below(a, b) -> bool:
    """Every eigenvalue of ``a`` is at least its counterpart in ``b``, within both bounds."""
    return bool(np.all(a.values + a.bounds >= b.values - b.bounds))


def test_curvature_guide(capsys):
    from advlip import adversarial, curvature

    ns = run_guide("curvature-of-your-model", capsys)

    # 1. equinox: every maximiser on the L2 sphere, all determined
    pt, total, naive = ns["pt"], ns["total"], ns["naive"]
    assert pt.all_determined and pt.summary()["cases"] == {"l2_boundary": 8}
    # under L2 at determined examples total = naive + a PSD term, so λ_j(total) ≥ λ_j(naive)
    # (Weyl), to within the eigenvalue bounds — the guide says no total eigenvalue falls below
    assert _not_below(total, naive)
    # ... and that the total λ_max exceeds the naive one beyond both bounds
    assert _above(total, naive)
    # the total trace exceeds the naive one by more than 3 standard errors (of each, summed:
    # the two estimates share their probes, so their errors are not independent)
    tr_t, tr_n = ns["tr_total"], ns["tr_naive"]
    assert tr_t.estimate - tr_n.estimate > 3 * (tr_t.standard_error + tr_n.standard_error)

    # undetermined: a pixel nobody reads, under L∞ — every example refused, for that reason
    pt_inf = ns["pt_inf"]
    assert np.all(np.asarray(pt_inf.status) == adversarial.Status.SECOND_ORDER_FAILS)
    with pytest.raises(adversarial.UndeterminedError):
        pt_inf.require_determined()
    assert ns["pt_l2"].all_determined  # the same network under L2

    # 2. flax nnx through curvature.measure: the same picture, total above naive
    res = ns["res"]
    assert isinstance(res, curvature.CurvatureResult)
    assert res.undetermined_fraction == 0.0 and res.dim == 64 * 16 + 16 + 16 * 10 + 10
    assert _not_below(res.total, res.naive) and _above(res.total, res.naive)
    tr = res.traces
    assert tr["total"].estimate - tr["naive"].estimate > 3 * (
        tr["total"].standard_error + tr["naive"].standard_error
    )
    assert ns.output_of("curvature.measure(").rstrip() == res.table()  # the table it shows

    # the factory of `advlip curvature --model mynets.py:make_mlp`: what the command does with
    # it (images channels-first for equinox, resolved to (params, loss_fn)) works
    import jax

    images = ns["images"][:2]  # NHWC, as `--data digits` loads them
    obj = ns["make_mlp"](key=jax.random.PRNGKey(0), input_shape=images.shape[1:], num_classes=10)
    assert curvature.channels_first(obj)  # so the command moves channels first
    first = images.transpose(0, 3, 1, 2)
    params, loss_fn = curvature.resolve_model(obj, first[0])
    assert math.isfinite(float(loss_fn(params, first[0], int(ns["labels"][0]))))


def test_curvature_guide_torch(capsys):
    ns = run_torch_blocks("curvature-of-your-model", capsys)
    pt_t, top_t, top_n = ns["pt_t"], ns["top_total"], ns["top_naive"]
    assert pt_t.all_determined
    assert float(top_t.value) - float(top_t.bound) > float(top_n.value) + float(top_n.bound)


def _cli_examples(name: str) -> list[tuple[list[str], str | None]]:
    """``advlip ...`` commands of a guide's ```bash blocks: (argv after ``advlip``, the
    ```text output shown right after the block, if any)."""
    import shlex

    text = (GUIDES / f"{name}.md").read_text()
    fences = list(_FENCE.finditer(text))
    out = []
    for k, m in enumerate(fences):
        if m.group(1) != "bash":
            continue
        nxt = fences[k + 1] if k + 1 < len(fences) else None
        shown = None
        if nxt is not None and nxt.group(1) == "text" and not text[m.end() : nxt.start()].strip():
            shown = nxt.group(2)
        for line in m.group(2).splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:1] == ["advlip"]:
                out.append((argv[1:], shown))
    return out


def test_refute_guide(capsys):
    from advlip import cli, tolerance

    ns = run_guide("refute-a-claim", capsys)
    prob, v = ns["prob"], ns["verdict"]

    # refuted, by a witness straddling w_1 = 0 and differing nowhere else (LIN-LINF's kink)
    assert v.refuted and v.excess > 1.0
    assert np.flatnonzero(np.sign(v.theta1) != np.sign(v.theta2)).tolist() == [0]
    assert np.array_equal(v.theta1[1:], v.theta2[1:])
    # the replayed ratio is the reported one, to the float64 rounding of R: each gradient off
    # by its closed-form error bound, γ_8·R for the norms and the division (ratio_error)
    dist = float(np.linalg.norm(v.theta1 - v.theta2))
    g_err = max(ns["grad_error"](v.theta1), ns["grad_error"](v.theta2))
    assert abs(ns["R"] - v.ratio) <= 2 * tolerance.ratio_error(g_err, dist, v.ratio)
    # LIN-LINF's jump 2ε|mean ℓ'(m̃)| at the hyperplane: on θ± = c ± t e_1 only sign(w_1)
    # flips, and the rest of Δg moves by at most curvature_bound·‖Δθ‖ (ℓ'' ≤ ℓ''_max times
    # margins that move by ≤ (‖x‖ + ε√d)·t, times ‖y x − ε u‖ ≤ ‖x‖ + ε√d), the margins at
    # θ− differ from those at c by as much again; plus the two gradients' rounding
    jump_tol = 2 * prob.curvature_bound() * dist + 2 * g_err
    assert abs(ns["jump"] - float(ns["predicted"])) <= jump_tol
    assert np.array_equal(ns["again"].theta1, v.theta1)  # same seed, same witness
    assert np.array_equal(ns["again"].theta2, v.theta2)
    fit = ns["fit"]
    assert fit.resolved and fit.agrees_with(-1.0)

    # a too-small constant for the smooth L2 loss: refuted, but R stays bounded as pairs shrink
    assert ns["small"].refuted and ns["small"].excess > 1.0
    assert ns["fit_l2"].bounded and ns["fit_l2"].exponent == 0.0

    # LIN-L2's constant on ‖θ‖ ≥ 1 survives, with room to spare
    holds = ns["holds"]
    assert not holds.refuted and holds.excess < 1.0

    # the command line: the output the guide shows, and the exit status it states
    commands = _cli_examples("refute-a-claim")
    assert len(commands) == 2
    (argv1, shown1), (argv2, _) = commands
    capsys.readouterr()
    assert cli.main(argv1) == 1  # refuted
    assert capsys.readouterr().out.rstrip() == shown1.rstrip()
    beta_cli = float(argv2[argv2.index("--beta") + 1])
    assert beta_cli >= ns["beta"]  # the rounded constant is still LIN-L2's bound (or above)
    assert cli.main(argv2) == 0  # not refuted


def test_property_guide(capsys, monkeypatch):
    from hypothesis import given, settings

    from advlip import strategies
    from advlip.linear import LinearProblem

    ns = run_guide("property-tests", capsys)  # calls its tests (its printed line is checked)

    # the conftest profiles the guide registers are usable by --hypothesis-profile
    assert settings.get_profile("my-ci").derandomize
    assert settings.get_profile("my-thorough").max_examples == 500

    # the property has power: the same test body, checked against the naive bound instead of
    # LIN-L2's, fails on the same strategies (a fresh run: no example database)
    body = ns["test_lin_l2_bound_holds"].hypothesis.inner_test
    rerun = given(ns["problems"], strategies.weight_pairs(3))(
        settings(database=None, deadline=None)(body)
    )
    monkeypatch.setattr(LinearProblem, "ratio_bound", lambda self, w1, w2: self.curvature_bound())
    with pytest.raises(AssertionError):
        rerun()


def test_entropy_sgd_guide(capsys):
    ns = run_guide("entropy-sgd", capsys)
    plain, esgd, long = ns["plain"], ns["esgd"], ns["long"]

    # both lower the adversarial loss; after 60 steps their robust accuracies are within two
    # examples of each other (accuracies are counts over n, exact for the closed-form attack)
    assert plain.loss[-1] < plain.loss[0] and esgd.loss[-1] < esgd.loss[0]
    n = ns["X"].shape[0]
    assert round(abs(esgd.robust_acc[-1] - plain.robust_acc[-1]) * n) <= 2
    # at equal gradient evaluations plain SGD is ahead in loss and robust accuracy
    assert ns["evals"] == 60 * 20 and long.steps == ns["evals"]
    assert long.loss[-1] < min(plain.loss[-1], esgd.loss[-1])
    assert long.robust_acc[-1] > max(plain.robust_acc[-1], esgd.robust_acc[-1])

    # F_γ: R ≤ γ at every distance up to its quadrature error, while R of L grows like 1/t
    assert np.all(ns["R_F"] - ns["err_F"] <= ns["gamma"])
    assert np.all(np.diff(ns["R_L"]) < 0) and ns["R_L"][0] > 1000 * ns["gamma"]
    assert ns["fit"].resolved and ns["fit"].agrees_with(-1.0)
    assert ns["inside"]  # 0 ⪯ ∇²F_γ ⪯ γI up to the quadrature error, on every point
