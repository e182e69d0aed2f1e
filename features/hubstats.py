"""The cross-firm quantities of a feature build, in one object: :class:`HubStats`.

Almost every signal reads one firm's own rows. Three things read every firm's rows:

* **monthly publication** (``MonthlyWindow.held``, the monthly coverage signals): a month of a
  monthly table counts as held on a day when rows of any firm for it were known strictly before the
  day, at least half as many as for the month before (:func:`publication`). Needs, per month, how
  many rows became available on each day: :class:`MonthlyCounts`.
* **period publication** (``EventWindow.periods_held`` and ``coverage_share``: fiscal years, tax
  years): the same rule per period key, plus the earliest event among the rows counted (for a
  lookback): :class:`PeriodCounts`.
* **peer norms** (``MonthlyWindow.peer_median``, e.g. ``energy_yoy_vs_industry``): the median of a
  per-firm statistic over all firms of an industry as known on the first day of a month. Needs every
  firm's statistic for every application month: :class:`PeerValues`, reduced to :class:`PeerNorm`.

A build computes these first and the windows read them from here, so the full build and a
firm-partitioned build share one implementation: the in-memory build is the one-partition case.
``features.build.part_stats`` computes a :class:`PartStats` from one partition's tables;
:meth:`HubStats.combine` merges any number of them. Counts add and earliest events take the
minimum, so those merge exactly; a median needs every value, so each part keeps its peers' values
(an ``(application months, peers)`` float array, which the partitioned build spills to disk) and
:meth:`PeerNorm.combine` takes exact medians (pandas' group median: order-independent, so a
partitioned build gives the very same floats as an in-memory one).

What a set of signals asks for (:class:`StatRequests`) is found by running them once on empty
tables with a :class:`StatRecorder` as their statistics (``features.build.stat_requests``), the way
the catalog finds the columns each signal reads. A :class:`HubStats` refuses a request it was not
built for, so a signal cannot silently read a partition-local value.

Everything here is plain numpy and picklable (peer statistics are named by module and qualified
name, not held as functions), so a Spark task can compute a :class:`PartStats` and the driver can
combine them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from features.tables import SCHEMAS

NEVER = np.iinfo(np.int64).max  # "day index" of a missing date: never available


class PeerKey(NamedTuple):
    """One peer norm: ``stat`` (module.qualname of a function of an (n, length) array) of ``column``
    of a monthly ``table`` over a window of ``length`` months."""

    table: str
    column: str
    stat: str
    length: int


def stat_name(stat: Callable) -> str:
    return f"{getattr(stat, '__module__', '?')}.{getattr(stat, '__qualname__', repr(stat))}"


# ------------------------------------------------------------------------------------------------
# Publication: which periods count as held on a day
# ------------------------------------------------------------------------------------------------


def publication(keys, available, n_keys: int, days: np.ndarray, event=None, weights=None):
    """Which periods of a source count as published on each of ``days`` (sorted day indexes).

    ``keys`` numbers each row's period 0 .. n_keys - 1 in time order (a month, a fiscal year);
    ``available`` is its availability day; ``weights`` how many rows it stands for (default one
    each, so aggregated counts give the same answer as the rows). Period k is published on day d
    when rows of any firm for it known strictly before d number at least one and at least half as
    many as for period k - 1. A source's first period is published with its first row; a later one
    once most firms' rows for it have arrived, so a firm whose row comes late in a publication
    season is not counted as missing it meanwhile. Returns ``published`` (len(days), n_keys) and,
    when ``event`` (day index per row, the earliest of the rows it stands for) is given, the earliest
    event among the rows counted (``NEVER`` where none), else None.
    """
    n_days = len(days)
    # each row is known from the first of ``days`` strictly after its available day (n_days: never)
    cell = np.asarray(keys, dtype=np.int64) * (n_days + 1) + np.searchsorted(days, available, side="right")
    size = n_keys * (n_days + 1)
    if weights is None:
        grid = np.bincount(cell, minlength=size)
    else:  # counts are whole numbers far below 2**53: the float sum is exact
        grid = np.rint(np.bincount(cell, weights=np.asarray(weights, dtype=np.float64), minlength=size)).astype(np.int64)
    counts = np.cumsum(grid.reshape(n_keys, n_days + 1)[:, :n_days], axis=1).T
    earliest = None
    if event is not None:
        first = np.full(size, NEVER, dtype=np.int64)
        np.minimum.at(first, cell, np.asarray(event, dtype=np.int64))
        earliest = np.minimum.accumulate(first.reshape(n_keys, n_days + 1)[:, :n_days], axis=1).T
    before = np.concatenate([np.zeros((len(days), 1), dtype=np.int64), counts[:, :-1]], axis=1)
    return (counts >= 1) & (2 * counts >= before), earliest


def _runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order of the rows by ``keys`` (first key most significant) and the start of each run of
    equal keys in that order."""
    order = np.lexsort(keys[::-1])
    sk = [k[order] for k in keys]
    change = np.zeros(len(order), dtype=bool)
    if len(order):
        change[0] = True
        for k in sk:
            change[1:] |= k[1:] != k[:-1]
    return order, np.flatnonzero(change)


@dataclass
class MonthlyCounts:
    """Rows of a monthly table kept by a build (their firm is known) per (month, availability day).

    ``month`` is the month index since 1970-01, ``available`` the day index since 1970-01-01."""

    month: np.ndarray
    available: np.ndarray
    count: np.ndarray

    @classmethod
    def of_rows(cls, month: np.ndarray, available: np.ndarray) -> MonthlyCounts:
        month = np.asarray(month, dtype=np.int64)
        return cls._count(month, np.asarray(available, dtype=np.int64), np.ones(len(month), dtype=np.int64))

    @classmethod
    def combine(cls, parts: Iterable[MonthlyCounts]) -> MonthlyCounts:
        parts = list(parts)
        z = np.zeros(0, dtype=np.int64)
        return cls._count(*(np.concatenate([z, *(getattr(p, a) for p in parts)]).astype(np.int64) for a in ("month", "available", "count")))

    @classmethod
    def _count(cls, month: np.ndarray, avail: np.ndarray, count: np.ndarray) -> MonthlyCounts:
        if not len(month):
            return cls(month, avail, count)
        m_lo, a_lo = int(month.min()), int(avail.min())
        m_span, a_span = int(month.max()) - m_lo + 1, int(avail.max()) - a_lo + 1
        if m_span * a_span <= 1 << 26:  # a few years of months x days: count in a dense grid
            grid = np.bincount((month - m_lo) * a_span + (avail - a_lo), weights=count, minlength=m_span * a_span)
            cells = np.flatnonzero(grid)
            return cls(cells // a_span + m_lo, cells % a_span + a_lo, np.rint(grid[cells]).astype(np.int64))
        order, start = _runs(month, avail)
        return cls(month[order][start], avail[order][start], np.add.reduceat(count[order], start))

    @property
    def m0(self) -> int:
        """First month of the table (0 when it has no row)."""
        return int(self.month.min()) if len(self.month) else 0

    @property
    def n_months(self) -> int:
        """Months from the first to the last month of the table (0 when it has no row)."""
        return int(self.month.max()) - self.m0 + 1 if len(self.month) else 0

    def published(self, days: np.ndarray) -> np.ndarray:
        """(len(days), n_months) bool: which months count as published on each day (:func:`publication`)."""
        if self.n_months == 0:
            return np.zeros((len(days), 0), dtype=bool)
        return publication(self.month - self.m0, self.available, self.n_months, days, weights=self.count)[0]


@dataclass
class PeriodCounts:
    """Rows of an event table with a period key (``fiscal_year``) per (period, availability day),
    with the earliest event day among them."""

    value: np.ndarray  # float64 period key
    available: np.ndarray
    event: np.ndarray  # earliest event day index of the rows
    count: np.ndarray

    @classmethod
    def of_rows(cls, value, available, event) -> PeriodCounts:
        return cls.combine([cls(np.asarray(value, dtype=np.float64), np.asarray(available, dtype=np.int64),
                                np.asarray(event, dtype=np.int64), np.ones(len(value), dtype=np.int64))])

    @classmethod
    def combine(cls, parts: Iterable[PeriodCounts]) -> PeriodCounts:
        parts = list(parts)

        def cat(name: str, dtype) -> np.ndarray:
            return np.concatenate([np.zeros(0, dtype=dtype), *(getattr(p, name) for p in parts)]).astype(dtype)

        value, avail, event, count = cat("value", np.float64), cat("available", np.int64), cat("event", np.int64), cat("count", np.int64)
        if not len(value):
            return cls(value, avail, event, count)
        order, start = _runs(value, avail)
        return cls(value[order][start], avail[order][start], np.minimum.reduceat(event[order], start), np.add.reduceat(count[order], start))

    def held(self, days: np.ndarray, lookback_start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The distinct period values (sorted) and (len(days), n_values) bool: published on each day
        (:func:`publication`) and, with ``lookback_start`` (a day index per day), the earliest row
        counted no earlier than it."""
        values, codes = np.unique(self.value, return_inverse=True)
        published, earliest = publication(codes.reshape(-1), self.available, len(values), days, self.event, weights=self.count)
        if lookback_start is not None:
            published &= earliest >= lookback_start[:, None]
        return values, published


@dataclass
class PeerValues:
    """One partition's contribution to a peer norm: for each application month (``months``, month
    indexes), the statistic of every peer firm (``values``: (months, peers), NaN where the firm is
    not a peer that month) and the peers' industry codes."""

    months: np.ndarray
    industry: np.ndarray
    values: np.ndarray


@dataclass
class PeerNorm:
    """A peer norm: its median per (industry, application month): ``norm`` (industries, months)."""

    months: np.ndarray
    norm: np.ndarray

    @classmethod
    def combine(cls, parts: Sequence[PeerValues], n_industries: int) -> PeerNorm:
        """Exact medians over every part's peers, one application month at a time (parts may be
        memory-mapped arrays on disk: only one month's values of every part are in memory at once)."""
        months = parts[0].months if parts else np.zeros(0, dtype=np.int64)
        for p in parts[1:]:
            if not np.array_equal(p.months, months):
                raise ValueError("peer values of different application months cannot be combined")
        norm = np.full((n_industries, len(months)), np.nan)
        industry = np.concatenate([np.asarray(p.industry, dtype=np.int64) for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        for i in range(len(months)):
            s = np.concatenate([np.asarray(p.values[i], dtype=np.float64) for p in parts])
            ok = ~np.isnan(s)
            if not ok.any():
                continue
            med = pd.Series(s[ok]).groupby(industry[ok]).median()
            norm[med.index.to_numpy(), i] = med.to_numpy()
        return cls(np.asarray(months, dtype=np.int64), norm)

    def lookup(self, industry: np.ndarray, month: np.ndarray) -> np.ndarray:
        """The norm of each (industry code, month index); NaN for industry -1."""
        out = np.full(len(industry), np.nan)
        if not len(industry):
            return out
        month = np.asarray(month, dtype=np.int64)
        j = np.clip(np.searchsorted(self.months, month), 0, max(len(self.months) - 1, 0))
        found = self.months[j] == month if len(self.months) else np.zeros(len(month), dtype=bool)
        if not found.all():
            m = np.datetime64(int(month[~found][0]), "M")
            raise RuntimeError(f"peer norm asked for application month {m}, which the first pass did not compute")
        ok = industry >= 0
        out[ok] = self.norm[industry[ok], j[ok]]
        return out


# ------------------------------------------------------------------------------------------------
# What a build needs, one partition's part, and the whole
# ------------------------------------------------------------------------------------------------


@dataclass
class StatRequests:
    """The cross-firm quantities a set of signals reads: monthly tables whose publication they use,
    (event table, period column) pairs, and peer norms (with the statistic's function)."""

    monthly: set[str] = field(default_factory=set)
    periods: set[tuple[str, str]] = field(default_factory=set)
    peers: dict[PeerKey, Callable] = field(default_factory=dict)

    def tables(self) -> set[str]:
        """Source tables pass 1 must read (besides firms and applications)."""
        return {*self.monthly, *(t for t, _ in self.periods), *(k.table for k in self.peers)}

    def columns(self, table: str) -> set[str]:
        """Columns of ``table`` pass 1 must read (locators included)."""
        cols = {"firm_id", "available_date"}
        if table in self.monthly or any(k.table == table for k in self.peers):
            cols.add("month")
        periods = {c for t, c in self.periods if t == table}
        if periods:
            cols |= periods | {SCHEMAS[table].event}
        cols |= {k.column for k in self.peers if k.table == table}
        return cols


@dataclass
class PartStats:
    """The cross-firm quantities of one partition (one firm's rows are never split across parts)."""

    monthly: dict[str, MonthlyCounts] = field(default_factory=dict)
    periods: dict[tuple[str, str], PeriodCounts] = field(default_factory=dict)
    peers: dict[PeerKey, PeerValues] = field(default_factory=dict)
    n_industries: int = 0


class HubStats:
    """The cross-firm quantities of a whole hub, combined from its partitions' :class:`PartStats`."""

    def __init__(self, monthly: dict[str, MonthlyCounts], periods: dict[tuple[str, str], PeriodCounts], peers: dict[PeerKey, PeerNorm]):
        self._monthly = monthly
        self._periods = periods
        self._peers = peers

    @classmethod
    def combine(cls, parts: Sequence[PartStats]) -> HubStats:
        monthly = {name: MonthlyCounts.combine(p.monthly[name] for p in parts) for name in (parts[0].monthly if parts else {})}
        periods = {key: PeriodCounts.combine(p.periods[key] for p in parts) for key in (parts[0].periods if parts else {})}
        n_ind = max((p.n_industries for p in parts), default=0)
        peers = {key: PeerNorm.combine([p.peers[key] for p in parts], n_ind) for key in (parts[0].peers if parts else {})}
        for p in parts[1:]:
            if set(p.monthly) != set(monthly) or set(p.periods) != set(periods) or set(p.peers) != set(peers):
                raise ValueError("partition statistics of different requests cannot be combined")
        return cls(monthly, periods, peers)

    def _missing(self, what: str) -> RuntimeError:
        return RuntimeError(f"{what} was not computed by the first pass (the statistics were built for other signals)")

    def monthly(self, table: str) -> MonthlyCounts:
        if table not in self._monthly:
            raise self._missing(f"the publication of {table}")
        return self._monthly[table]

    def periods(self, table: str, column: str) -> PeriodCounts:
        if (table, column) not in self._periods:
            raise self._missing(f"the publication of {table} by {column}")
        return self._periods[(table, column)]

    def peer(self, key: PeerKey, stat: Callable | None = None) -> PeerNorm:
        if key not in self._peers:
            raise self._missing(f"the peer norm {key.stat} of {key.table}.{key.column} over {key.length} months")
        return self._peers[key]


class StatRecorder:
    """Statistics that answer every request with nothing and record it (the dry run of
    ``features.build.stat_requests``)."""

    def __init__(self) -> None:
        self.requests = StatRequests()

    def monthly(self, table: str) -> MonthlyCounts:
        self.requests.monthly.add(table)
        z = np.zeros(0, dtype=np.int64)
        return MonthlyCounts(z, z, z)

    def periods(self, table: str, column: str) -> PeriodCounts:
        self.requests.periods.add((table, column))
        z = np.zeros(0, dtype=np.int64)
        return PeriodCounts(np.zeros(0), z, z, z)

    def peer(self, key: PeerKey, stat: Callable | None = None) -> PeerNorm:
        if stat is not None:
            self.requests.peers[key] = stat
        return PeerNorm(np.zeros(0, dtype=np.int64), np.zeros((0, 0)))
