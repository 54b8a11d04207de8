"""What a result is, what a check returns, and the registry that holds them.

A :class:`Result` is one check id (``LIN-L2``, ``GEN-INTERIOR``...; the list of results is
in docs/theory/index.md, one page per id): its statement, its hypotheses, its bound (a
SymPy expression, for display) and a ``check`` that runs the numerics and returns a
plain :class:`CheckResult`. Nothing here prints; :mod:`advlip.report` renders.

Example:
    >>> from advlip.theorems import base
    >>> base.get("LIN-L2").kind
    'bound'
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

    Example:
        >>> from advlip.theorems import CheckConfig
        >>> quick = CheckConfig(seed=3, quick=True)
        >>> quick.n_pairs, quick.search_starts, quick.search_steps
        (2000, 8, 150)
        >>> CheckConfig().n_pairs   # the full size
        20000
    """

    seed: int = 0
    quick: bool = False

    @property
    def n_pairs(self) -> int:
        """Random pairs per bound check: 2 000 quick, 20 000 full.

        Example:
            >>> from advlip.theorems import CheckConfig
            >>> CheckConfig(quick=True).n_pairs
            2000
        """
        return 2_000 if self.quick else 20_000

    @property
    def search_starts(self) -> int:
        """Independent starts of the worst-pair gradient ascent.

        Example:
            >>> from advlip.theorems import CheckConfig
            >>> CheckConfig().search_starts
            32
        """
        return 8 if self.quick else 32

    @property
    def search_steps(self) -> int:
        """Gradient-ascent steps of each worst-pair search start.

        Example:
            >>> from advlip.theorems import CheckConfig
            >>> CheckConfig(quick=True).search_steps
            150
        """
        return 150 if self.quick else 500


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check: verdict, the figure to show, and how to replay it.

    Attributes:
      id: the check id (``LIN-L2``...; its theory page is docs/theory/<id in lower case>.md).
      statement: one line, what was checked.
      kind: ``bound``, ``witness``, ``exponents``...
      verdict: ``holds`` (the statement survived every evaluation), ``fails`` (a
        counterexample/measurement contradicts it: a finding, see ``worst``),
        ``undetermined`` (the numerics could not decide; ``reason`` says why).
      figure: a short human-readable headline figure.
      figures: every number behind the verdict (JSON-serialisable).
      worst: the worst pair or witness found (lists of floats), if any.
      seed: the seed the check ran from.
      replay: the command that reproduces this result.
      reason: why the verdict is ``undetermined`` (or what failed), else None.
      elapsed_s: the wall time of the check, in seconds.

    Example:
        >>> import math
        >>> from advlip.theorems import CheckResult
        >>> r = CheckResult("LIN-L2", "R ≤ β", "bound", "holds", "max R/β = 0.76",
        ...                 figures={"max_R_over_bound": 0.76, "limit": math.inf})
        >>> r.ok
        True
        >>> r.to_dict()["figures"]   # JSON has no inf: it becomes a string
        {'max_R_over_bound': 0.76, 'limit': 'inf'}
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
        """True when the verdict is ``holds``.

        Example:
            >>> from advlip.theorems import CheckResult
            >>> CheckResult("LIU", "s", "bound", "undetermined", "-").ok
            False
        """
        return self.verdict == "holds"

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values: arrays as lists, numpy scalars as floats,
        non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"``.

        Example:
            >>> import json
            >>> import numpy as np
            >>> from advlip.theorems import CheckResult
            >>> r = CheckResult("LIU", "s", "bound", "holds", "-", worst={"theta1": np.ones(2)})
            >>> json.dumps(r.to_dict()["worst"])
            '{"theta1": [1.0, 1.0]}'
        """
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
    """One result: its id, statement, hypotheses, bound and check.

    Attributes:
      id: the check id, e.g. ``LIN-L2``; its page is docs/theory/<id in lower case>.md.
      title: a one-line title.
      statement: the statement checked, in one line.
      hypotheses: the assumptions it rests on.
      kind: ``bound``, ``witness``, ``witness + bound``, ``exponents`` or ``identity``.
      check_fn: ``check_fn(config)`` runs the numerics and returns a :class:`CheckResult`.
      family: ``linear``, ``general`` or ``smoothing`` (the module that registers it).
      bound: returns the bound as a SymPy expression, for display (None if there is none).

    Example:
        >>> from advlip import theorems
        >>> r = theorems.get("LIN-L2")
        >>> r.family, r.kind, r.hypotheses[0]
        ('linear', 'bound', 'p = 2')
        >>> print(r.statement)
        R(w1,w2) ≤ ℓ''max((‖x‖+ε)²+[bias]) + ε|ℓ'|max/√(‖w1‖‖w2‖) for all w1,w2 ≠ 0
    """

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

        Args:
          config: size and seed (default: the full size, seed 0).

        Returns:
          The check's :class:`CheckResult`, with ``seed``, ``replay`` and ``elapsed_s`` set.

        Example:
            A registered check takes seconds to minutes (``advlip verify --quick`` runs them
            all); a toy result shows what ``check`` adds:

            >>> from advlip.theorems import CheckConfig, CheckResult, Result
            >>> def check_fn(config):
            ...     return CheckResult("TOY", "1 ≤ 2", "bound", "holds", "1/2 = 0.5")
            >>> toy = Result("TOY", "toy", "1 ≤ 2", (), "bound", check_fn)  # not registered
            >>> r = toy.check(CheckConfig(seed=7, quick=True))
            >>> r.replay, r.seed, r.elapsed_s >= 0
            ('advlip verify --only TOY --seed 7 --quick', 7, True)
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
    """Add ``result`` to the registry (each family module registers its results on import).

    Args:
      result: the result; its id must be new.

    Returns:
      ``result`` itself, so that ``NAME = register(Result(...))`` keeps a handle.

    Raises:
      ValueError: if a result with the same id is registered already.

    Example:
        >>> from advlip import theorems
        >>> theorems.register(theorems.get("LIN-L2"))
        Traceback (most recent call last):
            ...
        ValueError: result id 'LIN-L2' is registered twice
    """
    if result.id in _REGISTRY:
        raise ValueError(f"result id {result.id!r} is registered twice")
    _REGISTRY[result.id] = result
    return result


def get(result_id: str) -> Result:
    """The registered result with id ``result_id`` (every family is loaded first).

    Args:
      result_id: a check id, as ``advlip verify --list`` prints them.

    Returns:
      The :class:`Result`.

    Raises:
      ValueError: for an unknown id; the message lists the allowed ids.

    Example:
        >>> from advlip import theorems
        >>> theorems.get("GEN-FLATNESS").family
        'general'
        >>> theorems.get("LIN-L3")
        Traceback (most recent call last):
            ...
        ValueError: unknown result id 'LIN-L3'; allowed: [...]
    """
    _load_all()
    try:
        return _REGISTRY[result_id]
    except KeyError:
        raise ValueError(f"unknown result id {result_id!r}; allowed: {ids()}") from None


def all_results() -> list[Result]:
    """Every registered result, family by family (:data:`FAMILIES`; within a family in
    registration order): what ``advlip verify`` runs, in the same order whichever family
    module was imported first.

    Example:
        >>> from advlip import theorems
        >>> sorted({r.family for r in theorems.all_results()})
        ['general', 'linear', 'smoothing']
    """
    _load_all()
    return _ordered()


def ids() -> list[str]:
    """The ids of every registered result, in the order of :func:`all_results`.

    Example:
        >>> from advlip import theorems
        >>> print(*sorted(theorems.ids())[:3])
        ENTROPY-SMOOTH GEN-DANSKIN GEN-FLATNESS
        >>> "LIN-L2" in theorems.ids()
        True
    """
    _load_all()
    return [r.id for r in _ordered()]


#: The families, in the order results are listed and run (within a family: the order the
#: module registers them), whichever module a program happened to import first.
FAMILIES = ("linear", "general", "smoothing")


def _ordered() -> list[Result]:
    rank = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(_REGISTRY.values(), key=lambda r: rank.get(r.family, len(FAMILIES)))


def _load_all() -> None:
    # Each family module registers its results on import.
    import importlib

    for family in FAMILIES:
        try:
            importlib.import_module(f"advlip.theorems.{family}")
        except ModuleNotFoundError as err:
            if err.name != f"advlip.theorems.{family}":
                raise
