"""The falsifier at the sizes users run: wall time and peak memory of one search per d.

Not a ratio benchmark: it records what a user waits for and how much memory the search
holds (issue 9 target: d = 10⁶, n = 64 answers within the default budget in minutes on
2 cores, memory O(P) per probe pair). Run one size per process, so peak RSS is its own::

    python benchmarks/bench_falsify_scale.py --dim 1000000 --p inf --beta 10     # refuted
    python benchmarks/bench_falsify_scale.py --dim 1000000 --p 2 --beta lin-l2   # not refuted
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import common  # noqa: E402,F401  (float64 on)
from test_falsify_scale import _lin_l2_beta, _problem  # noqa: E402

from advlip import falsify_smoothness, regions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dim", type=int, default=10**6)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--p", default="inf")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--beta", default="10", help="a number, or lin-l2 (LIN-L2's β, r = 1)")
    ap.add_argument("--budget", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    prob = _problem(float(args.p), dim=args.dim, n=args.n, eps=args.eps)
    beta = _lin_l2_beta(prob, 1.0) if args.beta == "lin-l2" else float(args.beta)
    t = time.perf_counter()
    v = falsify_smoothness(
        prob.grad,
        beta=beta,
        region=regions.NormAtLeast(1.0, args.dim),
        budget=args.budget,
        seed=args.seed,
    )
    doc = dict(
        dim=args.dim,
        p=args.p,
        beta=beta,
        refuted=v.refuted,
        strategy=v.strategy,
        evaluations=v.evaluations,
        excess=v.excess,
        wall_s=round(time.perf_counter() - t, 1),
        per_strategy={
            k: (int(f["evaluations"]), round(f["seconds"], 1)) for k, f in v.per_strategy.items()
        },
        peak_rss_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    )
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
