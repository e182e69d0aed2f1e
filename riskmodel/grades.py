"""Score scaling (points to double the odds) and the master scale that maps PD to rating grades.

PDO scaling
    ``score = offset + factor * ln(odds_good)`` with ``odds_good = (1 - pd) / pd`` (good:bad odds),
    ``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``. With the defaults
    (600, 50, 20) a firm whose good:bad odds are 50:1 (PD = 1/51 = 1.96%) scores 600 points, and
    every doubling of the good:bad odds adds 20 points (halving them removes 20). Higher score =
    lower risk. Equivalently ``score = offset - factor * logit(pd)``.

Master scale
    Ten grades ``R1`` (best) .. ``R10`` (worst) with fixed PD boundaries on a doubling ladder:
    0.1%, 0.2%, 0.4%, ..., 25.6%. Grade ``Rk`` holds ``bounds[k-2] <= pd < bounds[k-1]``. Doubling
    the PD per grade makes each grade about ``pdo`` points wide on the default scaling, and fixed
    boundaries (not quantiles of one portfolio) keep a grade's meaning stable across models and
    over time, which is what a rating system's master scale is for. The scale is stored with the
    model (``to_dict`` / ``from_dict``) so scoring never re-derives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from riskmodel.errors import UserError

_EPS = 1e-15


@dataclass(frozen=True)
class PDOScaling:
    """Points-to-double-the-odds scaling: ``base_score`` points at good:bad odds ``base_odds``."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def __post_init__(self):
        if not (self.pdo > 0 and self.base_odds > 0 and math.isfinite(self.base_score)):
            raise UserError(
                f"PDO scaling needs pdo > 0 and base_odds > 0, got pdo={self.pdo}, base_odds={self.base_odds}"
            )

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score_from_logit(self, logit_bad) -> np.ndarray:
        """Score from the log-odds of default (bad:good)."""
        return self.offset - self.factor * np.asarray(logit_bad, dtype="float64")

    def score(self, pd_) -> np.ndarray:
        """Score from PD (clipped to [1e-15, 1 - 1e-15])."""
        p = np.clip(np.asarray(pd_, dtype="float64"), _EPS, 1 - _EPS)
        return self.score_from_logit(np.log(p) - np.log1p(-p))

    def pd(self, score) -> np.ndarray:
        """PD from score (inverse of ``score``)."""
        logit = (self.offset - np.asarray(score, dtype="float64")) / self.factor
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict:
        return {"base_score": self.base_score, "base_odds": self.base_odds, "pdo": self.pdo}


def doubling_ladder(first: float = 0.001, n_grades: int = 10) -> tuple[float, ...]:
    """``n_grades - 1`` PD boundaries starting at ``first``, each twice the previous one."""
    return tuple(float(first * 2.0**k) for k in range(n_grades - 1))


@dataclass(frozen=True)
class MasterScale:
    """PD -> grade. ``bounds`` are the n-1 increasing PD boundaries between n grades ``labels``."""

    bounds: tuple[float, ...] = field(default_factory=doubling_ladder)
    labels: tuple[str, ...] = tuple(f"R{k}" for k in range(1, 11))

    def __post_init__(self):
        b = np.asarray(self.bounds, dtype="float64")
        if len(self.labels) != len(b) + 1:
            raise UserError(f"a master scale with {len(b)} boundaries needs {len(b) + 1} labels, got {len(self.labels)}")
        if len(b) and (not np.all(np.diff(b) > 0) or b[0] <= 0 or b[-1] >= 1):
            raise UserError(f"master scale boundaries must increase strictly inside (0, 1), got {list(self.bounds)}")
        if len(set(self.labels)) != len(self.labels):
            raise UserError(f"master scale labels must be unique, got {list(self.labels)}")

    def grade_index(self, pd_) -> np.ndarray:
        """0-based grade number of each PD (0 = best); NaN PD gives -1."""
        p = np.asarray(pd_, dtype="float64")
        idx = np.searchsorted(np.asarray(self.bounds), p, side="right")
        return np.where(np.isnan(p), -1, idx)

    def grade(self, pd_) -> np.ndarray:
        """Grade label of each PD (object array; None for NaN PD). Vectorised."""
        idx = self.grade_index(pd_)
        labels = np.asarray([*self.labels, None], dtype=object)
        return labels[idx]  # -1 picks the trailing None

    def table(self, scaling: PDOScaling | None = None):
        """Grades with their PD range (and score range if a scaling is given)."""
        import pandas as pd

        lo = np.r_[0.0, self.bounds]
        hi = np.r_[self.bounds, 1.0]
        out = pd.DataFrame({"grade": list(self.labels), "pd_min": lo, "pd_max": hi})
        if scaling is not None:
            with np.errstate(divide="ignore"):
                out["score_max"] = scaling.score(lo)
                out["score_min"] = scaling.score(hi)
        return out

    def to_dict(self) -> dict:
        return {"bounds": list(self.bounds), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: dict) -> "MasterScale":
        return cls(bounds=tuple(float(x) for x in d["bounds"]), labels=tuple(str(x) for x in d["labels"]))
