"""Point-in-time views of the source tables: what the hub knew strictly before each application date.

Every signal reads its tables through one of these views, which ``features.build`` constructs and
injects; there is no other path from a table to a feature. A row is visible to an application if and
only if

    row.available_date < application_date          (known strictly before the application), and
    the row's event time lies inside the signal's lookback.

Two vectorised shapes:

``MonthlyWindow`` (electricity, social_security, invoices, bills)
    For each application, the ``L`` calendar months before the application month as an
    ``(n_applications, L)`` float array per value column, oldest month first (column ``-1`` is the
    month just before the application month). A cell is NaN when the firm has no row for that month or
    the row's ``available_date`` is on or after the application date. Built by fancy indexing into a
    dense firm x month table of row positions; no per-application loop.

``EventWindow`` (financials, rnd_deductions, certifications, patents, bids, talent, firms)
    A long frame: every (application, row) pair of the same firm with ``available_date`` before the
    application date and the row's event date no earlier than ``L`` months before it (``L = 0``: the
    whole record). Helpers aggregate per application (count, sum, max, latest row ...) and return one
    value per application, filled as the signal needs.

Coverage (``coverage_share`` on both): the share of the months, or periods such as fiscal years,
that a firm could have on record and does. A period is observable when the hub held it at the
application date (rows of any firm known strictly before that date, at least half as many as for the
period before: so not before the source's first period, and not while most rows of the latest one are
still to come) and the firm had been founded by its end. Counting months since the hub began instead
would make every firm's coverage grow with the hub's age.

What "held" means, and the industry norms of ``MonthlyWindow.peer_median``, depend on every firm's
rows, not the application's firm alone: the windows read them from the build's
``features.hubstats.HubStats`` (``table.hub``), computed before any signal runs, so a build over one
partition of firms gives the same values as over the whole hub. A window built without one (a unit
test) computes them from its own table.

Both record which columns a signal reads, so the catalog derives each feature's sensitivity grade from
the columns it actually uses, and both refuse L4 (restricted) columns outright.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.hubstats import NEVER, MonthlyCounts, PeerKey, PeerNorm, PeerValues, PeriodCounts, stat_name
from features.tables import SCHEMAS, add_months, by_date

MONTHLY_TABLES: tuple[str, ...] = ("electricity", "social_security", "invoices", "bills")
EVENT_TABLES: tuple[str, ...] = ("firms", "financials", "rnd_deductions", "certifications", "patents", "bids", "talent")
# Columns that locate a row rather than describe it; reading them does not set a feature's grade.
_LOCATORS = ("firm_id", "available_date", "month")
_NEVER = NEVER  # "day index" of a missing date: never available


class AccessError(KeyError):
    """A signal asked a window for a column it may not read (unknown, or L4 restricted)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


# ------------------------------------------------------------------------------------------------
# Date helpers (all vectorised; dates as int64 day or month numbers since 1970-01-01)
# ------------------------------------------------------------------------------------------------


def _datetimes(values) -> np.ndarray:
    """Any date-like input as a numpy datetime64 array (no copy when it already is one)."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return values
    if isinstance(values, (pd.Series, pd.Index)) and pd.api.types.is_datetime64_any_dtype(values.dtype) and getattr(values.dtype, "tz", None) is None:
        return values.to_numpy()
    return np.asarray(pd.to_datetime(pd.Series(values)).to_numpy(), dtype="datetime64[ns]")


def day_index(values) -> np.ndarray:
    """Days since 1970-01-01 as int64; missing dates become a value larger than any date."""
    arr = _datetimes(values)
    out = arr.astype("datetime64[D]").astype(np.int64)
    out[np.isnat(arr)] = _NEVER
    return out


def month_index(values) -> np.ndarray:
    """Months since 1970-01 as int64 (calendar month of each date)."""
    return by_date(lambda d: d.astype("datetime64[M]").astype(np.int64), _datetimes(values))


def year_of(values) -> np.ndarray:
    """Calendar year of each date as float64; NaN for a missing date."""
    arr = _datetimes(values)
    years = arr.astype("datetime64[Y]").astype(np.int64).astype(np.float64) + 1970.0
    return np.where(np.isnat(arr), np.nan, years)


def months_back(dates: np.ndarray, months: int) -> np.ndarray:
    """Day index of each date moved back ``months`` calendar months (day clipped to month end)."""
    return day_index(add_months(_datetimes(dates), -months))


# ------------------------------------------------------------------------------------------------
# Row-wise numeric helpers for (n, L) arrays with NaN = missing
# ------------------------------------------------------------------------------------------------


def row_count(a: np.ndarray) -> np.ndarray:
    """Number of non-missing cells per row."""
    return (~np.isnan(a)).sum(axis=1).astype(np.float64)


def row_sum(a: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Sum per row ignoring NaN; NaN when fewer than ``min_count`` cells are present."""
    n = row_count(a)
    s = np.where(np.isnan(a), 0.0, a).sum(axis=1)
    return np.where(n >= min_count, s, np.nan)


def row_mean(a: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Mean per row ignoring NaN; NaN when fewer than ``min_count`` cells are present."""
    n = row_count(a)
    s = np.where(np.isnan(a), 0.0, a).sum(axis=1)
    return np.where(n >= max(min_count, 1), s / np.maximum(n, 1), np.nan)


def row_std(a: np.ndarray, min_count: int = 2) -> np.ndarray:
    """Population standard deviation per row ignoring NaN; NaN below ``min_count`` cells."""
    n = row_count(a)
    m = row_mean(a, max(min_count, 1))
    d = np.where(np.isnan(a), 0.0, a - m[:, None])
    v = (d * d).sum(axis=1) / np.maximum(n, 1)
    return np.where(n >= max(min_count, 1), np.sqrt(v), np.nan)


def row_max(a: np.ndarray) -> np.ndarray:
    """Maximum per row ignoring NaN; NaN for an all-missing row."""
    present = ~np.isnan(a)
    out = np.where(present, a, -np.inf).max(axis=1, initial=-np.inf)
    return np.where(present.any(axis=1), out, np.nan)


def last_valid(a: np.ndarray) -> np.ndarray:
    """The most recent (right-most) non-missing value per row; NaN if none."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    present = ~np.isnan(a)
    last = a.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    out = a[np.arange(a.shape[0]), last]
    return np.where(present.any(axis=1), out, np.nan)


def ratio(num, den) -> np.ndarray:
    """``num / den`` where the denominator is positive and finite, else NaN (no inf, no warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    ok = np.isfinite(den) & (den > 0)
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def growth(new, old) -> np.ndarray:
    """Relative change ``new / old - 1`` where ``old`` is positive, else NaN."""
    return ratio(new, old) - 1.0


# ------------------------------------------------------------------------------------------------
# Index of firms and applications
# ------------------------------------------------------------------------------------------------


def _arrow_strings(values) -> pa.Array | pa.ChunkedArray:
    """Firm ids as an Arrow string array (zero-copy for Arrow-backed pandas strings)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        arr = pa.array(values)
    else:
        arr = pa.array(pd.Series(values).astype("string").to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


class FirmIndex:
    """Integer codes for firm ids (all firms in the firms table and the applications), plus each firm's
    industry code and registry availability, used for peer (industry) norms."""

    def __init__(self, firm_ids):
        self._ids = pc.unique(pc.drop_null(_arrow_strings(firm_ids)))
        if isinstance(self._ids, pa.ChunkedArray):
            self._ids = self._ids.combine_chunks()
        self.ids = pd.Index(self._ids.to_numpy(zero_copy_only=False), dtype=object)
        n = len(self.ids)
        self.industry_code = np.full(n, -1, dtype=np.int64)
        self.available_day = np.full(n, _NEVER, dtype=np.int64)
        self.industries: tuple[str, ...] = ()

    def set_industry(self, firms: pd.DataFrame, categories: tuple[str, ...]) -> None:
        """Record each firm's industry and the day its registry row became known (for peer norms)."""
        self.industries = tuple(categories)
        if not len(firms):
            return
        codes = self.codes(firms["firm_id"])
        ok = codes >= 0
        ind = pd.Categorical(firms["industry"].astype("string").to_numpy(dtype=object), categories=list(categories)).codes.astype(np.int64)
        self.industry_code[codes[ok]] = ind[ok]
        self.available_day[codes[ok]] = day_index(firms["available_date"])[ok]

    def __len__(self) -> int:
        return len(self.ids)

    def codes(self, firm_ids) -> np.ndarray:
        """Code of each firm id (-1 for an id not in the index), hashed in Arrow (about 15x faster than
        a pandas object index on millions of rows)."""
        idx = pc.index_in(_arrow_strings(firm_ids), value_set=self._ids)
        return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


class Applications:
    """The applications being scored (one row each), in output order.

    A signal that takes a parameter named ``applications`` receives this object; ``apps["amount"]``
    gives one float per application. It is the loan request itself, known on the application date.
    """

    def __init__(self, frame: pd.DataFrame, firms: FirmIndex):
        self.frame = frame
        self.n = len(frame)
        self.dates = np.asarray(frame["application_date"].to_numpy(), dtype="datetime64[ns]")
        self.day = day_index(self.dates)
        self.month = month_index(self.dates)
        self.firm = firms.codes(frame["firm_id"])
        self.reads: set[str] = set()
        self._cutoffs: dict[int, np.ndarray] = {}

    def lookback_start(self, months: int) -> np.ndarray:
        """Day index of each application date moved back ``months`` calendar months (cached)."""
        if months not in self._cutoffs:
            self._cutoffs[months] = months_back(self.dates, months)
        return self._cutoffs[months]

    def view(self) -> Applications:
        v = object.__new__(Applications)
        v.__dict__.update(self.__dict__)
        v.reads = set()
        return v

    def __getitem__(self, column: str) -> np.ndarray:
        schema = SCHEMAS["applications"]
        if column not in schema.column_names:
            raise AccessError(f"applications has no column {column!r}")
        if schema.grade_of(column) == "L4":
            raise AccessError(f"applications.{column} is L4 (restricted) and may not be read by a signal")
        if column not in self.frame.columns:
            self.reads.add(f"applications.{column}")
            return np.full(self.n, np.nan)
        self.reads.add(f"applications.{column}")
        col = self.frame[column]
        if pd.api.types.is_numeric_dtype(col):
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        return col.to_numpy()


def _check_column(table: str, column: str) -> None:
    schema = SCHEMAS[table]
    if column not in schema.column_names:
        raise AccessError(f"table {table} has no column {column!r} (columns: {', '.join(schema.column_names)})")
    if schema.grade_of(column) == "L4":
        raise AccessError(f"{table}.{column} is L4 (restricted): signals may not read it")


def _to_float(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


# ------------------------------------------------------------------------------------------------
# Monthly tables
# ------------------------------------------------------------------------------------------------


class MonthlyTable:
    """A monthly table as a dense (firm x month) matrix of row positions (-1 = no row), built once."""

    def __init__(self, name: str, df: pd.DataFrame, firms: FirmIndex):
        self.name = name
        self.firms = firms
        codes = firms.codes(df["firm_id"]) if len(df) else np.zeros(0, dtype=np.int64)
        keep = codes >= 0
        self.df = df
        self._rows = np.flatnonzero(keep)  # positions in df of the rows kept
        codes = codes[keep]
        months = month_index(df["month"])[keep] if len(df) else np.zeros(0, dtype=np.int64)
        self.available = day_index(df["available_date"])[keep] if len(df) else np.zeros(0, dtype=np.int64)
        self._available_ext = np.append(self.available, _NEVER)  # position -1 is never available
        if len(codes):
            self.m0 = int(months.min())
            self.n_months = int(months.max()) - self.m0 + 1
        else:
            self.m0, self.n_months = 0, 0
        self.pos = np.full((len(firms), self.n_months), -1, dtype=np.int64)
        if len(codes):
            self.pos[codes, months - self.m0] = np.arange(len(codes), dtype=np.int64)
            n_cells = int((self.pos >= 0).sum())
            if n_cells != len(codes):
                from features.tables import TableError, Violation

                dup = pd.DataFrame({"f": codes, "m": months}).duplicated().to_numpy()
                rows = tuple(int(r) for r in self._rows[np.flatnonzero(dup)[:5]])
                raise TableError([Violation(name, f"{name}.parquet", "firm_id,month", "duplicate key (firm_id, month)", int(dup.sum()), rows)])
        self._cols: dict = {}
        self.hub = None  # the build's HubStats (features.hubstats); None: this table's own rows are the hub

    def column(self, column: str) -> np.ndarray:
        """The column as float64 for the kept rows, with one trailing NaN (position -1 reads NaN)."""
        if column not in self._cols:
            if column in self.df.columns and len(self.df):
                vals = _to_float(self.df[column])[self._rows]
            else:
                vals = np.zeros(0)
            self._cols[column] = np.append(vals, np.nan)
        return self._cols[column]

    def gather(self, firm: np.ndarray, end_month: np.ndarray, cutoff_day: np.ndarray, length: int) -> np.ndarray:
        """Row positions (n, length) for months ``end_month - length .. end_month - 1`` of each firm,
        -1 where there is no row or the row is not available before ``cutoff_day``."""
        n = len(firm)
        if self.n_months == 0 or length == 0 or n == 0:
            return np.full((n, length), -1, dtype=np.int64)
        cols = end_month[:, None] - length + np.arange(length)[None, :] - self.m0
        inside = (cols >= 0) & (cols < self.n_months) & (firm[:, None] >= 0)
        p = self.pos[np.clip(firm, 0, None)[:, None], np.clip(cols, 0, self.n_months - 1)]
        p = np.where(inside, p, -1)
        avail = self._available_ext[p]
        return np.where(avail < cutoff_day[:, None], p, -1)


    def dense(self, column: str) -> np.ndarray:
        """(firms, months) float64 array of ``column`` (NaN where there is no row), built once."""
        key = ("dense", column)
        if key not in self._cols:
            self._cols[key] = self.column(column)[self.pos]
        return self._cols[key]

    def usable_month(self) -> np.ndarray:
        """(firms, months) month index from which each row counts for a monthly norm: the month after
        the one it became available in (a row is known before the 1st of month m iff that month <= m)."""
        key = ("usable", "")
        if key not in self._cols:
            never = np.iinfo(np.int64).max
            months = np.append(month_index(np.asarray(self._available_ext[:-1], dtype="datetime64[D]")) + 1, never)
            self._cols[key] = months[self.pos]
        return self._cols[key]

    def counts(self) -> MonthlyCounts:
        """This table's rows per (month, availability day): its part of the monthly publication."""
        key = ("month_code", "")
        if key not in self._cols:
            self._cols[key] = month_index(self.df["month"])[self._rows] if len(self._rows) else np.zeros(0, dtype=np.int64)
        return MonthlyCounts.of_rows(self._cols[key], self.available)

    def peer_values(self, column: str, stat: Callable[[np.ndarray], np.ndarray], length: int, months: np.ndarray) -> PeerValues:
        """This table's part of a peer norm: for each application month ``m`` of ``months``, ``stat``
        of every peer firm over the ``length`` months before ``m``, counting only rows known before
        the first day of ``m``; NaN where the firm is not a peer then (registered on or after that
        day, or ``stat`` is NaN). Peers are the firms with an industry and a row in the table."""
        firms = self.firms
        months = np.asarray(months, dtype=np.int64)
        if self.n_months == 0 or not len(firms.industries):
            return PeerValues(months, np.zeros(0, dtype=np.int64), np.zeros((len(months), 0)))
        peers = np.flatnonzero((firms.industry_code >= 0) & (self.pos >= 0).any(axis=1))
        values, usable = self.dense(column)[peers], self.usable_month()[peers]
        peer_avail = firms.available_day[peers]
        out = np.full((len(months), len(peers)), np.nan)
        for i, m in enumerate(months):
            m = int(m)
            start_day = np.int64(np.datetime64(m, "M").astype("datetime64[D]").astype(np.int64))
            lo = m - length - self.m0
            a, b = max(lo, 0), min(lo + length, self.n_months)
            block = np.full((len(peers), length), np.nan)
            if a < b:
                # a row counts for the norm of month m if it was known before the first day of m
                block[:, a - lo : b - lo] = np.where(usable[:, a:b] <= m, values[:, a:b], np.nan)
            s = np.asarray(stat(block), dtype=np.float64)
            out[i] = np.where((peer_avail < start_day) & ~np.isnan(s), s, np.nan)
        return PeerValues(months, firms.industry_code[peers], out)


class _OwnStats:
    """The cross-firm quantities of a window's own tables, for a window built without a build's
    HubStats (the one-partition case, computed with the same functions)."""

    def __init__(self, table, apps: Applications):
        self.table = table
        self.apps = apps

    def monthly(self, table: str) -> MonthlyCounts:
        return MonthlyCounts.combine([self.table.counts()])

    def periods(self, table: str, column: str) -> PeriodCounts:
        return PeriodCounts.combine([self.table.period_counts(column)])

    def peer(self, key: PeerKey, stat: Callable) -> PeerNorm:
        part = self.table.peer_values(key.column, stat, key.length, np.unique(self.apps.month))
        return PeerNorm.combine([part], len(self.table.firms.industries))


class MonthlyWindow:
    """The last ``length`` calendar months before each application's month, as known before its date.

    ``window.values("kwh")`` -> ``(n_applications, length)`` float64, oldest month first, NaN where the
    month is missing or was not yet known. ``window.present`` says which cells hold a known row.
    """

    def __init__(self, table: MonthlyTable, apps: Applications, length: int, positions: np.ndarray | None = None):
        self.table = table
        self.apps = apps
        self.length = length
        self.positions = positions if positions is not None else table.gather(apps.firm, apps.month, apps.day, length)
        self.reads: set[str] = set()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def n(self) -> int:
        return self.positions.shape[0]

    def restrict(self, length: int) -> MonthlyWindow:
        """A view of the last ``length`` months (a signal's own lookback), with its own read log."""
        if length > self.length:
            raise ValueError(f"{self.name}: window of {self.length} months cannot serve a lookback of {length}")
        return MonthlyWindow(self.table, self.apps, length, self.positions[:, self.length - length :])

    @property
    def present(self) -> np.ndarray:
        """Boolean (n, length): a row is known for that month."""
        return self.positions >= 0

    def months_known(self) -> np.ndarray:
        """Number of months with a known row, per application (the coverage of this source)."""
        return self.present.sum(axis=1).astype(np.float64)

    def held(self) -> np.ndarray:
        """Boolean (n, length): the hub held that month of this source at the application date: rows
        of any firm known strictly before it, at least half as many as for the month before
        (:func:`features.hubstats.publication`). No month before the source's first is held, nor a month whose rows are
        only starting to arrive."""
        apps, n, length = self.apps, self.n, self.length
        hub = self._stats().monthly(self.name)
        if hub.n_months == 0 or length == 0 or n == 0:
            return np.zeros((n, length), dtype=bool)
        days, inverse = np.unique(apps.day, return_inverse=True)
        published = hub.published(days)
        cols = apps.month[:, None] - length + np.arange(length)[None, :] - hub.m0
        inside = (cols >= 0) & (cols < hub.n_months)
        return inside & published[inverse[:, None], np.clip(cols, 0, hub.n_months - 1)]

    def _stats(self):
        return self.table.hub if self.table.hub is not None else _OwnStats(self.table, self.apps)

    def observable(self, founded) -> np.ndarray:
        """Boolean (n, length): months the firm could have a row for: held by the hub (:meth:`held`)
        and not before the month of ``founded`` (the firm's registration date per application; NaT =
        no bound, e.g. founded before the window)."""
        f = _datetimes(founded)
        if f.shape != (self.n,):
            raise ValueError(f"{self.name}: founded has shape {f.shape}, expected ({self.n},)")
        first = np.where(np.isnat(f), np.iinfo(np.int64).min, month_index(f))
        months = self.apps.month[:, None] - self.length + np.arange(self.length)[None, :]
        return self.held() & (months >= first[:, None])

    def coverage_share(self, founded, from_first_row: bool = False) -> np.ndarray:
        """Share of the observable months (:meth:`observable`) with a known row of the firm, per
        application; 0 when no month is observable (nothing could be held, and nothing is).

        Unlike :meth:`months_known` it does not grow with the age of the hub: a firm with every
        observable month on record has share 1 whether the source started 6 or 36 months ago.

        ``from_first_row``: the span starts with the firm's first known row in an observable month of
        the window, for a source whose rows exist only once the firm takes part (a bill acceptor
        discloses from its first acceptance); 0 without such a row."""
        obs = self.observable(founded)
        if from_first_row:
            obs &= np.logical_or.accumulate(self.present & obs, axis=1)
        n_obs = obs.sum(axis=1)
        n_known = (self.present & obs).sum(axis=1)
        return np.where(n_obs > 0, n_known / np.maximum(n_obs, 1), 0.0)

    def values(self, column: str) -> np.ndarray:
        """(n, length) float64 array of ``column``; NaN where unknown."""
        _check_column(self.name, column)
        self.reads.add(f"{self.name}.{column}")
        return self.table.column(column)[self.positions]

    def peer_median(self, column: str, stat: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Median of ``stat`` over all firms of the application's industry, as known on the first day
        of the application month (so every application of that month shares one norm and no row known
        later can enter it). ``stat`` maps an (m, length) array of ``column`` to m values."""
        _check_column(self.name, column)
        self.reads.add(f"{self.name}.{column}")
        norm = self._stats().peer(PeerKey(self.name, column, stat_name(stat), self.length), stat)
        firms, apps = self.table.firms, self.apps
        if self.n == 0:
            return np.full(0, np.nan)
        app_ind = np.where(apps.firm >= 0, firms.industry_code[np.clip(apps.firm, 0, None)], -1)
        return norm.lookup(app_ind, apps.month)


# ------------------------------------------------------------------------------------------------
# Event and annual tables
# ------------------------------------------------------------------------------------------------


class EventTable:
    """An event/annual table with firm codes, availability and event day per row (built once)."""

    def __init__(self, name: str, df: pd.DataFrame, firms: FirmIndex):
        self.name = name
        self.schema = SCHEMAS[name]
        self.df = df
        codes = firms.codes(df["firm_id"]) if len(df) else np.zeros(0, dtype=np.int64)
        self._rows = np.flatnonzero(codes >= 0)
        self.firm = codes[self._rows]
        self.available = day_index(df["available_date"])[self._rows] if len(df) else np.zeros(0, dtype=np.int64)
        self.event = day_index(df[self.schema.event])[self._rows] if len(df) else np.zeros(0, dtype=np.int64)
        self._cols: dict[str, object] = {}
        self._ext: dict[str, np.ndarray] = {}
        self._latest: dict[tuple, np.ndarray] = {}  # (lookback, order_by, k) -> chosen rows, one build
        self.hub = None  # the build's HubStats (features.hubstats); None: this table's own rows are the hub

    def period_counts(self, column: str) -> PeriodCounts:
        """This table's rows with a period key (``fiscal_year``) per (period, availability day), with
        their earliest event: its part of the period publication."""
        raw = self.column(column)
        if isinstance(raw, pd.Categorical) or np.asarray(raw).dtype.kind not in "fiub":
            raise ValueError(f"{self.name}: the period key {column!r} must be numeric (a year)")
        keys = np.asarray(raw, dtype=np.float64)
        ok = ~np.isnan(keys)
        return PeriodCounts.of_rows(keys[ok], self.available[ok], self.event[ok])

    def column_ext(self, column: str) -> np.ndarray:
        """``column`` as a plain numpy array with one trailing missing value (position -1 reads NaN/NaT/None)."""
        if column not in self._ext:
            vals = self.column(column)
            if isinstance(vals, pd.Categorical):
                vals = np.asarray(vals.astype(object))
            vals = np.asarray(vals)
            if np.issubdtype(vals.dtype, np.datetime64):
                self._ext[column] = np.append(vals, np.datetime64("NaT", "ns"))
            elif vals.dtype == object:
                self._ext[column] = np.append(vals, None)
            else:
                self._ext[column] = np.append(vals.astype(np.float64), np.nan)
        return self._ext[column]

    def __len__(self) -> int:
        return len(self._rows)

    def column(self, column: str):
        """Column values for the kept rows: float64 for numbers, datetime64[ns] for dates,
        ``pd.Categorical`` for categories, object array for text."""
        if column not in self._cols:
            dtype = self.schema.column(column).dtype
            if column not in self.df.columns or not len(self.df):
                raw = pd.Series([], dtype="float64")
            else:
                raw = self.df[column].iloc[self._rows] if len(self._rows) != len(self.df) else self.df[column]
            if dtype in ("int", "float", "bool"):
                vals = _to_float(raw.astype("float64") if dtype == "bool" else raw)
            elif dtype == "date":
                vals = np.asarray(pd.to_datetime(raw).to_numpy(), dtype="datetime64[ns]")
            elif dtype == "category":
                cats = list(self.schema.column(column).categories)
                if isinstance(raw.dtype, pd.CategoricalDtype) and list(raw.dtype.categories) == cats:
                    vals = raw.array
                else:
                    vals = pd.Categorical(raw.astype("string").to_numpy(dtype=object) if len(raw) else [], categories=cats)
            else:
                vals = raw.astype("string").to_numpy(dtype=object)
            self._cols[column] = vals
        return self._cols[column]


def _expand(table_firm: np.ndarray, app_firm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (row, application) pairs with the same firm code, vectorised (no per-firm loop)."""
    if len(table_firm) == 0 or len(app_firm) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(app_firm, kind="stable")
    sorted_firm = app_firm[order]
    start = np.searchsorted(sorted_firm, table_firm, side="left")
    stop = np.searchsorted(sorted_firm, table_firm, side="right")
    counts = stop - start
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(table_firm), dtype=np.int64), counts)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    apps = order[np.repeat(start, counts) + offsets]
    return rows, apps


class EventWindow:
    """(application, row) pairs of one event table: rows known before the application date, with their
    event no earlier than ``lookback`` months before it (0 = the whole record).

    ``w["revenue"]`` gives the column per pair, ``w.app`` the application position of each pair, and
    the aggregation helpers return one value per application (all applications, in order).
    """

    def __init__(self, table: EventTable, apps: Applications, lookback: int, pairs: tuple[np.ndarray, np.ndarray] | None = None):
        self.table = table
        self.apps = apps
        self.lookback = lookback
        if pairs is None:
            rows, app = _expand(table.firm, apps.firm)
            keep = table.available[rows] < apps.day[app]
            if lookback:
                keep &= table.event[rows] >= apps.lookback_start(lookback)[app]
            rows, app = rows[keep], app[keep]
        else:
            rows, app = pairs
        self.rows = rows
        self.app = app
        self.reads: set[str] = set()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def n(self) -> int:
        return self.apps.n

    def __len__(self) -> int:
        return len(self.rows)

    def restrict(self, lookback: int) -> EventWindow:
        """A view limited to a signal's own lookback, with its own read log."""
        if self.lookback and (lookback == 0 or lookback > self.lookback):
            raise ValueError(f"{self.name}: window of {self.lookback} months cannot serve a lookback of {lookback or 'all history'}")
        if lookback and lookback != self.lookback:
            keep = self.table.event[self.rows] >= self.apps.lookback_start(lookback)[self.app]
            return EventWindow(self.table, self.apps, lookback, (self.rows[keep], self.app[keep]))
        return EventWindow(self.table, self.apps, lookback, (self.rows, self.app))

    def __getitem__(self, column: str):
        _check_column(self.name, column)
        if column not in _LOCATORS:
            self.reads.add(f"{self.name}.{column}")
        vals = self.table.column(column)
        if isinstance(vals, pd.Categorical):
            return vals.take(self.rows) if len(self.rows) else vals[:0]
        return vals[self.rows]

    @property
    def app_date(self) -> np.ndarray:
        """Application date of each pair (datetime64[ns])."""
        return self.apps.dates[self.app]

    def months_before(self, dates: np.ndarray) -> np.ndarray:
        """Months (days / 30.4375) from each pair's ``dates`` to its application date."""
        d = (self.apps.dates[self.app] - np.asarray(dates, dtype="datetime64[ns]")).astype("timedelta64[D]").astype(np.float64)
        return d / 30.4375

    def _mask(self, mask) -> np.ndarray:
        if mask is None:
            return np.ones(len(self.rows), dtype=bool)
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(self.rows),):
            raise ValueError(f"{self.name}: mask has shape {m.shape}, expected ({len(self.rows)},)")
        return m

    def count(self, mask=None) -> np.ndarray:
        """Number of pairs per application (0 where none)."""
        m = self._mask(mask)
        return np.bincount(self.app[m], minlength=self.n).astype(np.float64)

    def sum(self, values, mask=None) -> np.ndarray:
        """Sum of ``values`` per application (0 where none)."""
        m = self._mask(mask)
        return np.bincount(self.app[m], weights=np.asarray(values, dtype=np.float64)[m], minlength=self.n)

    def max(self, values, mask=None) -> np.ndarray:
        """Maximum of ``values`` per application (NaN where none)."""
        m = self._mask(mask) & ~np.isnan(np.asarray(values, dtype=np.float64))
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.app[m], np.asarray(values, dtype=np.float64)[m])
        return np.where(np.isneginf(out), np.nan, out)

    def nunique(self, values, mask=None) -> np.ndarray:
        """Distinct values per application (0 where none)."""
        m = self._mask(mask)
        pairs = pd.DataFrame({"a": self.app[m], "v": np.asarray(values)[m]}).drop_duplicates()
        return np.bincount(pairs["a"].to_numpy(dtype=np.int64), minlength=self.n).astype(np.float64)

    def periods_held(self, column: str, since=None) -> np.ndarray:
        """Per application, how many periods (distinct values of ``column``, a key with few values such
        as a fiscal year) the hub held at the application date under this window's rules: rows of any
        firm known strictly before it, at least half as many as for the period before
        (:func:`features.hubstats.publication`), the earliest of them with its event inside the lookback. Periods below
        ``since`` (one number per application, e.g. the founding year; NaN = no bound) do not count."""
        return self._held_periods(column, since)[1].sum(axis=1).astype(np.float64)

    def coverage_share(self, column: str, since=None) -> np.ndarray:
        """Share of the periods the hub held (:meth:`periods_held`) for which the firm has a row known
        before the application, per application; 0 when the hub held none (nothing could be on record)."""
        values, held = self._held_periods(column, since)
        n_held = held.sum(axis=1)
        keys = np.asarray(self[column], dtype=np.float64)
        j = np.clip(np.searchsorted(values, keys), 0, max(len(values) - 1, 0))
        mine = np.zeros(len(keys), dtype=bool)
        if len(values):
            mine = (values[j] == keys) & held[self.app, j]
        own = self.nunique(keys, mask=mine)
        return np.where(n_held > 0, own / np.maximum(n_held, 1), 0.0)

    def _held_periods(self, column: str, since) -> tuple[np.ndarray, np.ndarray]:
        """The distinct values of ``column`` in the table (sorted) and, per application, which of them
        the hub held (n, n_values) as :meth:`periods_held` defines it."""
        _check_column(self.name, column)
        if column not in _LOCATORS:
            self.reads.add(f"{self.name}.{column}")
        raw = self.table.column(column)
        if isinstance(raw, pd.Categorical) or np.asarray(raw).dtype.kind not in "fiub":
            raise ValueError(f"{self.name}: the period key {column!r} must be numeric (a year)")
        hub = self.table.hub if self.table.hub is not None else _OwnStats(self.table, self.apps)
        counts = hub.periods(self.name, column)
        days, inverse = np.unique(self.apps.day, return_inverse=True)
        start = months_back(days.astype("datetime64[D]"), self.lookback) if self.lookback else None
        values, published = counts.held(days, start)
        held = published[inverse] & (values[None, :] >= self._since(since)[:, None])
        return values, held

    def _since(self, since) -> np.ndarray:
        if since is None:
            return np.full(self.n, -np.inf)
        s = np.asarray(since, dtype=np.float64)
        if s.shape != (self.n,):
            raise ValueError(f"{self.name}: since has shape {s.shape}, expected ({self.n},)")
        return np.where(np.isnan(s), -np.inf, s)

    def rank(self, order_by: str) -> np.ndarray:
        """Per pair, its rank among the application's pairs by descending ``order_by`` (0 = latest)."""
        key = self._key(order_by)[self.rows]
        order = np.lexsort((-key, self.app))
        sorted_app = self.app[order]
        first = np.searchsorted(sorted_app, sorted_app, side="left")
        out = np.empty(len(self.rows), dtype=np.int64)
        out[order] = np.arange(len(order)) - first
        return out

    def _key(self, order_by: str) -> np.ndarray:
        _check_column(self.name, order_by)
        if order_by not in _LOCATORS:
            self.reads.add(f"{self.name}.{order_by}")
        key = self.table.column(order_by)
        if isinstance(key, pd.Categorical):
            raise ValueError(f"{self.name}: cannot order by the category column {order_by!r}")
        key = np.asarray(key)
        if np.issubdtype(key.dtype, np.datetime64):
            return key.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
        return key.astype(np.float64)

    def latest(self, order_by: str, k: int = 0, mask=None) -> LatestRows:
        """Per application, the row with the ``k``-th largest ``order_by`` (0 = the latest)."""
        cache_key = (self.lookback, order_by, k)
        key = self._key(order_by)
        if mask is None and cache_key in self.table._latest:
            return LatestRows(self, self.table._latest[cache_key])
        m = self._mask(mask)
        idx = np.flatnonzero(m)
        k_of = key[self.rows[idx]]
        order = np.lexsort((-k_of, self.app[idx]))
        sorted_app = self.app[idx][order]
        first = np.searchsorted(sorted_app, sorted_app, side="left")
        rank = np.arange(len(order)) - first
        chosen = order[rank == k]
        out = np.full(self.n, -1, dtype=np.int64)
        out[self.app[idx][chosen]] = self.rows[idx][chosen]
        if mask is None:
            self.table._latest[cache_key] = out
        return LatestRows(self, out)


class LatestRows:
    """One chosen row per application (or none): ``rows["revenue"]`` gives an (n,) array with NaN/NaT
    where the application has no such row."""

    def __init__(self, window: EventWindow, rows: np.ndarray):
        self.window = window
        self.rows = rows

    @property
    def found(self) -> np.ndarray:
        return self.rows >= 0

    def __getitem__(self, column: str) -> np.ndarray:
        w = self.window
        _check_column(w.name, column)
        if column not in _LOCATORS:
            w.reads.add(f"{w.name}.{column}")
        return w.table.column_ext(column)[self.rows]


def empty_table(name: str) -> pd.DataFrame:
    """A zero-row frame with the declared columns of ``name`` (used for absent optional tables)."""
    schema = SCHEMAS[name]
    cols = {}
    for c in schema.columns:
        if c.dtype == "date":
            cols[c.name] = pd.Series([], dtype="datetime64[ns]")
        elif c.dtype in ("int", "float"):
            cols[c.name] = pd.Series([], dtype="float64")
        elif c.dtype == "bool":
            cols[c.name] = pd.Series([], dtype="bool")
        else:
            cols[c.name] = pd.Series([], dtype="string")
    return pd.DataFrame(cols)
