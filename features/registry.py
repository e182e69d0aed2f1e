"""The signal registry: one decorated function per feature, its metadata next to its code.

A signal is a small typed function whose name is the feature column and whose parameters name what it
reads. ``features.build`` injects each parameter by name:

* a source table name (``electricity``, ``financials``, ...) -> that table's point-in-time window
  (``features.asof.MonthlyWindow`` for monthly tables, ``features.asof.EventWindow`` otherwise),
  already restricted to rows known strictly before each application date and inside the signal's
  lookback;
* ``applications`` -> ``features.asof.Applications`` (the loan request itself: amount, collateral);
* the name of another registered feature -> its computed column (products are built this way).

No signal sees a table any other way, so no signal can look past the application date.

This module only records what the feature modules register; it imports none of them.
``features.signals.load_all()`` imports every feature module and returns the complete registry, and
the catalog (``features.catalog.catalog()``) is generated from it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

#: the signal families, one module ``features.signals.<family>`` each, in catalog order
SIGNAL_FAMILIES: tuple[str, ...] = (
    "innovation",
    "certification",
    "energy",
    "workforce",
    "trade",
    "bills",
    "bids",
    "talent",
    "finance",
    "firm",
    "coverage",
)
#: every family a feature can belong to: the signal families, then the data products
FAMILIES: tuple[str, ...] = (*SIGNAL_FAMILIES, "product")
KINDS = ("signal", "product")
GRADES = ("L1", "L2", "L3", "L4")


@dataclass(frozen=True)
class Signal:
    """Metadata and code of one registered feature."""

    name: str
    func: Callable = field(repr=False, compare=False)
    name_zh: str
    name_en: str
    family: str
    kind: str
    lookback_months: int
    direction: int
    unit: str
    description: str
    reason_en: str
    reason_zh: str
    actionable: bool
    grade: str | None  # declared grade; None means "max grade of the source columns read"
    lower_bound: float | None  # the value can never fall below it; None = no bound (signed quantities)
    params: tuple[str, ...]
    module: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.params


_REGISTRY: dict[str, Signal] = {}


def signal(
    *,
    name_zh: str,
    name_en: str,
    family: str,
    lookback_months: int,
    direction: int,
    unit: str,
    description: str,
    reason_en: str,
    reason_zh: str,
    actionable: bool = True,
    grade: str | None = None,
    lower_bound: float | None = None,
    kind: str = "signal",
) -> Callable[[Callable], Callable]:
    """Register a feature function. The function's ``__name__`` is the feature's column name.

    ``lookback_months`` is the window of history the signal may read (0 = the whole record, used for
    static registry rows and stocks such as granted patents, which still only see rows known before
    the application date). ``direction`` is the expected effect on the probability of default:
    +1 raises it, -1 lowers it, 0 unknown. ``reason_en``/``reason_zh`` are what a credit officer
    reads when this feature pushes the risk up. ``lower_bound`` is the smallest value the feature can
    take by construction (0.0 for counts, amounts, shares, durations, scores and flags; None for signed
    quantities such as growth rates and margins): the catalog publishes it and scoring refuses an input
    below it.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if direction not in (-1, 0, 1):
        raise ValueError(f"direction must be -1, 0 or +1, got {direction!r}")
    if grade is not None and grade not in GRADES:
        raise ValueError(f"unknown grade {grade!r}; use one of {', '.join(GRADES)}")
    if not isinstance(lookback_months, int) or lookback_months < 0:
        raise ValueError(f"lookback_months must be a non-negative int, got {lookback_months!r}")
    if lower_bound is not None and (isinstance(lower_bound, bool) or not isinstance(lower_bound, (int, float)) or not math.isfinite(lower_bound)):
        raise ValueError(f"lower_bound must be a finite number or None, got {lower_bound!r}")

    def decorate(func: Callable) -> Callable:
        name = func.__name__
        if name in _REGISTRY and _REGISTRY[name].module != func.__module__:
            raise ValueError(f"feature {name!r} is registered twice ({_REGISTRY[name].module} and {func.__module__})")
        params = tuple(inspect.signature(func).parameters)
        if not params:
            raise ValueError(f"feature {name!r} reads nothing: give it at least one table or feature parameter")
        _REGISTRY[name] = Signal(
            name=name,
            func=func,
            name_zh=name_zh,
            name_en=name_en,
            family=family,
            kind=kind,
            lookback_months=lookback_months,
            direction=direction,
            unit=unit,
            description=" ".join(description.split()),
            reason_en=reason_en,
            reason_zh=reason_zh,
            actionable=actionable,
            grade=grade,
            lower_bound=None if lower_bound is None else float(lower_bound),
            params=params,
            module=func.__module__,
        )
        return func

    return decorate


def product(**kwargs) -> Callable[[Callable], Callable]:
    """Register a labelled data product: a documented formula over other features (kind="product")."""
    kwargs.setdefault("family", "product")
    kwargs.setdefault("lookback_months", 0)  # the catalog reports the longest lookback of its inputs
    return signal(kind="product", **kwargs)


def registry() -> dict[str, Signal]:
    """Registered features in catalog order: signals by family (``SIGNAL_FAMILIES``), then products;
    within a family, in registration order. The order does not depend on which module was imported
    first."""
    ordered = sorted(_REGISTRY.values(), key=lambda s: (s.kind == "product", FAMILIES.index(s.family)))
    return {s.name: s for s in ordered}
