"""What to generate: :class:`GeneratorParams`, validated when it is made.

A bad value raises :class:`features.errors.UserError` naming the option (``--firms``, ``--start``, ...)
and what to change, so the command line prints it on one line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from features.errors import UserError
from synthetic.world import APPROVAL_POLICIES, DEFAULT_APPROVAL_POLICY, Calendar

CHUNK_SIZE = 50_000  # fixed: the output depends on it, so it is part of the format, not an option
MIN_MONTH, MAX_MONTH = "2010-01", "2035-12"
MIN_WINDOW_MONTHS = 24
DEFAULT_RATE_RANGE = (0.01, 0.08)
MAX_FIRMS = 10_000_000
_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class GeneratorParams:
    """What to generate. Validated in ``__post_init__``; a bad value raises ``UserError`` saying what to change."""

    firms: int
    seed: int = 0
    start: str = "2021-01"
    end: str = "2025-12"
    default_rate: float = 0.03
    approval_policy: str = DEFAULT_APPROVAL_POLICY

    def __post_init__(self) -> None:
        if isinstance(self.firms, bool) or not isinstance(self.firms, (int, np.integer)):
            raise UserError(f"--firms must be a whole number, got {self.firms!r}")
        if self.firms < 1:
            raise UserError(f"--firms must be at least 1, got {self.firms}")
        if self.firms > MAX_FIRMS:
            raise UserError(f"--firms must be at most {MAX_FIRMS:,}, got {self.firms:,}; generate several datasets instead")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise UserError(f"--seed must be a non-negative whole number, got {self.seed!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _MONTH_RE.match(value):
                raise UserError(f"--{name} must be a month written YYYY-MM (e.g. 2021-01), got {value!r}")
            if not (MIN_MONTH <= value <= MAX_MONTH):
                raise UserError(f"--{name} must lie between {MIN_MONTH} and {MAX_MONTH}, got {value}")
        s, e = np.datetime64(self.start, "M"), np.datetime64(self.end, "M")
        if e < s:
            raise UserError(f"--end ({self.end}) is before --start ({self.start}); give an end month after the start month")
        span = int((e - s).astype(int)) + 1
        if span < MIN_WINDOW_MONTHS:
            raise UserError(
                f"--start {self.start} to --end {self.end} spans {span} months; give at least {MIN_WINDOW_MONTHS} "
                "(a year of history before the first application and a year of outcomes)"
            )
        try:
            rate = float(self.default_rate)
        except (TypeError, ValueError):
            raise UserError(f"--default-rate must be a number, got {self.default_rate!r}") from None
        lo, hi = DEFAULT_RATE_RANGE
        if not (lo <= rate <= hi):
            raise UserError(f"--default-rate must be between {lo} and {hi} (a share, e.g. 0.03 for 3%), got {self.default_rate}")
        if not isinstance(self.approval_policy, str) or self.approval_policy not in APPROVAL_POLICIES:
            raise UserError(f"--approval-policy must be one of {', '.join(APPROVAL_POLICIES)}, got {self.approval_policy!r}")

    @property
    def calendar(self) -> Calendar:
        return Calendar(np.datetime64(self.start, "M"), np.datetime64(self.end, "M"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["firms"] = int(d["firms"])
        d["seed"] = int(d["seed"])
        d["default_rate"] = float(d["default_rate"])
        d["chunk_size"] = CHUNK_SIZE
        return d
