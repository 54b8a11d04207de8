"""How often the attack's certified maximiser is not the global one, before and after screening.

Not a speed benchmark: a measurement of the attack's honesty on random small tanh MLPs
(d = 4, width 5, ε = 0.6, the generator of tests/test_attack_global.py). For each norm it
counts, among the examples each attack calls certified, those below an independent SciPy
multi-start global search (plus, for L1/L∞, every vertex) by more than the float error of
the two values:

* ``local``: one start, no screening (``structured_starts=0``) — the attack before issue 9;
* ``default``: :func:`advlip.adversarial.linearize` with its defaults (structured starts,
  screening, and *undetermined* for an example another start beats).

    python benchmarks/bench_attack_global.py --models 60     # 300 examples per norm
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import common  # noqa: E402,F401  (float64 on)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from test_attack_global import EPS, LOSS, _gaps, _problem  # noqa: E402

from advlip import adversarial, attacks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=int, default=24, help="random models per norm (5 examples)")
    args = ap.parse_args()
    rows = []
    for p in (1.0, 2.0, math.inf):
        t0 = time.perf_counter()
        counts = {"local": [0, 0, 0.0], "default": [0, 0, 0.0]}  # certified, missed, worst gap
        for seed in range(100, 100 + args.models):
            X, y, _, params = _problem(seed)
            X, y = jnp.asarray(X), jnp.asarray(y)
            pt = adversarial.linearize(LOSS, params, X, y, eps=EPS, p=p)
            local = attacks.pgd(LOSS, params, X, y, eps=EPS, p=p, structured_starts=0)
            gaps = _gaps(seed, p, pt.attack, local)
            certified = (np.asarray(pt.determined), np.asarray(local.converged))
            for name, ok, (gap, tol) in zip(("default", "local"), certified, gaps, strict=True):
                miss = ok & (gap > tol)
                c = counts[name]
                c[0] += int(ok.sum())
                c[1] += int(miss.sum())
                c[2] = max(c[2], float(np.max(gap, where=miss, initial=0.0)))
        rows.append(
            {
                "p": p,
                "examples": 5 * args.models,
                **{f"{k}_certified": v[0] for k, v in counts.items()},
                **{f"{k}_non_global": v[1] for k, v in counts.items()},
                **{f"{k}_worst_gap": v[2] for k, v in counts.items()},
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
