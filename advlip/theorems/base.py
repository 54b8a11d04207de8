"""What a result is, what a check returns, and the registry that holds them.

A :class:`Result` is one SPEC id: its statement, its hypotheses, its bound (a SymPy
expression, for display) and a ``check`` that runs the numerics and returns a
plain :class:`CheckResult`. Nothing here prints; :mod:`advlip.report` renders.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

__all__ = ["CheckConfig", "CheckResult", "Result", "register", "get", "all_results", "ids"]

Verdict = Literal["holds", "fails", "undetermined"]
Kind = Literal["bound", "witness", "witness + bound", "exponents", "identity"]


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """How hard a check works, and the seed it replays from.

    ``quick`` sizes every check so that ``advlip verify --quick`` finishes in under a
    minute on 2 CPU cores; the full size samples ten times more pairs and searches longer.
    """

    seed: int = 0
    quick: bool = False

    @property
    def n_pairs(self) -> int:
        """Random pairs per bound check (SPEC §2 used 20 000)."""
        return 2_000 if self.quick else 20_000

    @property
    def search_starts(self) -> int:
        """Independent starts of the worst-pair gradient ascent."""
        return 8 if self.quick else 32

    @property
    def search_steps(self) -> int:
        return 150 if self.quick else 500


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check: verdict, the figure to show, and how to replay it.

    Attributes:
      id: the SPEC id (``LIN-L2``...).
      statement: one line, what was checked.
      kind: ``bound``, ``witness``, ``exponents``...
      verdict: ``holds`` (the statement survived every evaluation), ``fails`` (a
        counterexample/measurement contradicts it: a finding, see ``worst``),
        ``undetermined`` (the numerics could not decide; ``reason`` says why).
      figure: a short human-readable headline figure.
      figures: every number behind the verdict (JSON-serialisable).
      worst: the worst pair or witness found (lists of floats), if any.
      seed: the seed; ``replay`` the command that reproduces this result.
    """

    id: str
    statement: str
    kind: str
    verdict: Verdict
    figure: str
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    worst: dict[str, Any] | None = None
    seed: int = 0
    replay: str = ""
    reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict == "holds"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        return _jsonable(arr.tolist()) if arr.ndim else _jsonable(arr.item())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)  # JSON has no inf/nan: "inf", "nan"
    return x


@dataclasses.dataclass(frozen=True)
class Result:
    """One SPEC result: statement, hypotheses, bound and check."""

    id: str
    title: str
    statement: str
    hypotheses: tuple[str, ...]
    kind: Kind
    check_fn: Callable[[CheckConfig], CheckResult]
    family: str = "linear"
    bound: Callable[[], Any] | None = None  # returns a SymPy expression (lazy)

    def check(self, config: CheckConfig | None = None) -> CheckResult:
        """Run the check in float64; the elapsed time and replay command are filled in here.

        Every check's tolerance is derived for float64 rounding, so the check runs under
        ``jax.enable_x64(True)``, scoped to this call: the caller's JAX settings are
        unchanged afterwards.
        """
        import jax

        config = config or CheckConfig()
        start = time.perf_counter()
        with jax.enable_x64(True):
            result = self.check_fn(config)
        result.elapsed_s = time.perf_counter() - start
        result.seed = config.seed
        result.replay = f"advlip verify --only {self.id} --seed {config.seed}" + (
            " --quick" if config.quick else ""
        )
        return result


_REGISTRY: dict[str, Result] = {}


def register(result: Result) -> Result:
    if result.id in _REGISTRY:
        raise ValueError(f"result id {result.id!r} is registered twice")
    _REGISTRY[result.id] = result
    return result


def get(result_id: str) -> Result:
    _load_all()
    try:
        return _REGISTRY[result_id]
    except KeyError:
        raise ValueError(f"unknown result id {result_id!r}; allowed: {ids()}") from None


def all_results() -> list[Result]:
    _load_all()
    return list(_REGISTRY.values())


def ids() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def _load_all() -> None:
    # Each family module registers its results on import.
    import importlib

    for family in ("linear", "general", "smoothing"):
        try:
            importlib.import_module(f"advlip.theorems.{family}")
        except ModuleNotFoundError as err:
            if err.name != f"advlip.theorems.{family}":
                raise
