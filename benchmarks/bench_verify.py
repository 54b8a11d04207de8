"""``advlip verify --quick`` end to end, with XLA compile time shown apart from run time.

Compile time is the sum of JAX's ``/jax/core/compile/*`` duration events (tracing,
lowering and XLA compilation) recorded while the checks run; run time is the rest.
The persistent compilation cache is off, so this is a cold start; XLA's code
generation is set as ``advlip verify`` sets it (``ADVLIP_FAST_COMPILE``).

    python benchmarks/bench_verify.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["ADVLIP_CACHE_DIR"] = "off"

# the same XLA setting `advlip verify` uses (advlip.cli._fast_compile), set before JAX starts;
# advlip itself is imported inside run(), so its import time is measured
if os.environ.get(
    "ADVLIP_FAST_COMPILE", "1"
) != "0" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import common  # noqa: E402
from common import entry  # noqa: E402

TARGET_S = 60.0


def run(quick: bool = True) -> list[dict]:
    start = time.perf_counter()
    import jax.monitoring

    compile_s = {"total": 0.0}

    def listener(event: str, duration: float, **_: object) -> None:
        if event.startswith("/jax/core/compile/"):
            compile_s["total"] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    import advlip  # noqa: F401
    from advlip import theorems

    import_s = time.perf_counter() - start
    per_check = []
    verdicts = []
    for res in theorems.all_results():
        before, t0 = compile_s["total"], time.perf_counter()
        r = res.check(theorems.CheckConfig(seed=0, quick=True))
        wall = time.perf_counter() - t0
        comp = compile_s["total"] - before
        per_check.append(
            {
                "id": res.id,
                "wall_s": wall,
                "compile_s": comp,
                "run_s": wall - comp,
                "verdict": r.verdict,
            }
        )
        verdicts.append(r.verdict)
        print(f"{res.id:<18} {wall:6.2f} s (compile {comp:5.2f} s) {r.verdict}", file=sys.stderr)
    total = time.perf_counter() - start
    comp = compile_s["total"]
    return [
        entry(
            "advlip verify --quick end to end (cold, s)",
            ratio=total / TARGET_S,
            target=1.0,
            met=total < TARGET_S,
            goal="<",
            total_s=total,
            import_s=import_s,
            compile_s=comp,
            run_s=total - comp - import_s,
            all_hold=all(v == "holds" for v in verdicts),
            checks=per_check,
            notes=f"{total:.1f} s total = {import_s:.1f} import + {comp:.1f} compile + "
            f"{total - comp - import_s:.1f} run; ratio = total / 60 s",
        )
    ]


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
