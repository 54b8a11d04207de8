"""The README's examples run as written (a README example nobody runs goes stale).

Every ```python block runs here. Blocks fenced ```py are launch scripts for several
processes or hosts (they call ``jax.distributed.initialize``); what they do is run, with
two processes on localhost, by tests/test_multihost.py.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_readme_block_runs(i, capsys):
    namespace: dict = {}
    exec(compile(BLOCKS[i], f"README.md:block{i}", "exec"), namespace)
    # a block that defines Hypothesis tests: run them too
    for name, obj in list(namespace.items()):
        if name.startswith("test_") and callable(obj):
            obj()
    if i == 0:
        out = capsys.readouterr().out
        exponent = float(re.search(r"growth exponent ([+-][0-9.]+)", out).group(1))
        assert abs(exponent + 1.0) < 1e-3  # LIN-LINF: a jump
        assert "does not exist" in out
    if "falsify_smoothness(" in BLOCKS[i]:
        assert namespace["verdict"].refuted  # the README promises a refutation
