"""Build the feature matrix (one row per application) from the signal registry.

``build_features(tables, applications)`` constructs one point-in-time window per source table
(``features.asof``), calls every registered signal with the windows it names, then every product with
the signals it names, and returns

    application_id, firm_id, application_date,            identifiers (pseudonymous firm id)
    industry, region, lifecycle_stage, size_band, product  segment columns
    <one float64 column per signal and product>            NaN allowed

(``features.contract.ID_COLUMNS`` and ``SEGMENT_COLUMNS``). Raw registration ids and L4 columns cannot
reach the matrix: the windows refuse to read them. An absent optional table is not an error: its
signals are NaN and its coverage signals 0. The catalog describing the columns is ``features.catalog``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.asof import (
    EVENT_TABLES,
    MONTHLY_TABLES,
    Applications,
    EventTable,
    EventWindow,
    FirmIndex,
    MonthlyTable,
    MonthlyWindow,
    empty_table,
)
from features.contract import DATE, FIRM, ID_COLUMNS, KEY, SEGMENT_COLUMNS, STARTUP
from features.errors import UserError
from features.hubstats import HubStats, PartStats, StatRecorder, StatRequests
from features.registry import Signal
from features.signals import load_all
from features.tables import INDUSTRIES, SCHEMAS, TableError, Violation

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _check_columns(name: str, df: pd.DataFrame, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TableError([Violation(name, f"{name}.parquet", c, "required column is missing (add it or check the file)", len(df)) for c in missing])


def _applications(tables: Mapping[str, pd.DataFrame], applications: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """The rows to build: given applications, the applications table, or one row per firm as of a date."""
    if applications is not None and as_of is not None:
        raise UserError("give either applications or as_of, not both (as_of builds one row per firm on that date)")
    if as_of is not None:
        try:
            day = pd.Timestamp(as_of).normalize()
        except (ValueError, TypeError):
            raise UserError(f"as_of {as_of!r} is not a date; use YYYY-MM-DD") from None
        firms = tables["firms"]
        known = firms.loc[pd.to_datetime(firms["available_date"]) < day, "firm_id"].astype("string")
        ids = pd.Series(pd.unique(known.to_numpy(dtype=object)), dtype="string")
        return pd.DataFrame(
            {
                KEY: (ids + "@" + day.strftime("%Y-%m-%d")).astype("string"),
                FIRM: ids,
                DATE: pd.Series(np.full(len(ids), day.to_datetime64()), dtype="datetime64[ns]"),
                "amount": np.nan,
                "term_months": np.nan,
                "product": pd.Series(["none"] * len(ids), dtype="string"),
                "collateral_value": np.nan,
            }
        )
    if applications is None:
        if "applications" not in tables:
            raise UserError("required table 'applications' is missing: pass applications=... or as_of=... to build one row per firm")
        applications = tables["applications"]
    _check_columns("applications", applications, ID_COLUMNS)
    frame = pd.DataFrame(
        {
            KEY: applications[KEY].astype("string").to_numpy(),
            FIRM: applications[FIRM].astype("string").to_numpy(),
            DATE: pd.to_datetime(applications[DATE]).to_numpy(dtype="datetime64[ns]"),
        }
    )
    bad = frame[DATE].isna().to_numpy()
    if bad.any():
        rows = tuple(int(i) for i in np.flatnonzero(bad)[:5])
        raise TableError([Violation("applications", "applications", "application_date", "missing application date", int(bad.sum()), rows)])
    for c in ("amount", "term_months", "collateral_value"):
        frame[c] = applications[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in applications.columns else np.nan
    frame["product"] = applications["product"].astype("string").to_numpy() if "product" in applications.columns else pd.NA
    frame["product"] = frame["product"].astype("string")
    return frame


def _lookbacks(signals: Sequence[Signal]) -> dict[str, int]:
    """Window length each table must be built with: the longest lookback of its signals (0 = all)."""
    need: dict[str, int] = {}
    for s in signals:
        for p in s.params:
            if p in MONTHLY_TABLES:
                need[p] = max(need.get(p, 0), s.lookback_months)
            elif p in EVENT_TABLES:
                prev = need.get(p)
                need[p] = 0 if (prev == 0 or s.lookback_months == 0) else max(prev or 0, s.lookback_months)
    return need


def _dependency_order(signals: Sequence[Signal]) -> list[Signal]:
    """Signals ordered so that every feature comes after the features it takes as parameters."""
    by_name = {s.name: s for s in signals}
    ordered: list[Signal] = []
    state: dict[str, int] = {}

    def visit(s: Signal) -> None:
        if state.get(s.name) == 2:
            return
        if state.get(s.name) == 1:
            raise RuntimeError(f"feature {s.name} depends on itself through its parameters")
        state[s.name] = 1
        for p in s.params:
            if p in by_name:
                visit(by_name[p])
        state[s.name] = 2
        ordered.append(s)

    for s in signals:
        visit(s)
    return ordered


def _resolve(names: Sequence[str] | None, reg: dict[str, Signal]) -> list[Signal]:
    """Registered features to compute: all, or ``names`` plus the features they depend on."""
    if names is None:
        return list(reg.values())
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise UserError(f"unknown feature(s) {unknown}; see `riskmodel catalog`")
    wanted: set[str] = set()

    def add(n: str) -> None:
        if n in wanted:
            return
        wanted.add(n)
        for p in reg[n].params:
            if p in reg:
                add(p)

    for n in names:
        add(n)
    return [s for s in reg.values() if s.name in wanted]


# ------------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------------


def _firm_index(tables: Mapping[str, pd.DataFrame], apps_frame: pd.DataFrame) -> FirmIndex:
    """Codes for every firm of the registry and of the applications, with their industries."""
    firms_df = tables["firms"]
    _check_columns("firms", firms_df, ["firm_id", "industry", "region", "founding_date", "available_date"])
    index = FirmIndex(pd.concat([firms_df["firm_id"].astype("string"), apps_frame["firm_id"]], ignore_index=True))
    index.set_industry(firms_df, INDUSTRIES)
    return index


def _table(tables: Mapping[str, pd.DataFrame], name: str, index: FirmIndex, required: Sequence[str] | None = None) -> MonthlyTable | EventTable:
    """The table object of ``name`` (an empty one when absent); ``required``: the columns it must have
    (default: every column a signal may read)."""
    df = tables.get(name)
    if df is None:
        df = empty_table(name)
    if required is None:
        cols = [c for c in SCHEMAS[name].column_names if SCHEMAS[name].grade_of(c) != "L4"]
        required = [c for c in cols if c not in ("cert_no", "bid_id", "patent_id", "person_id")]
    _check_columns(name, df, list(required) if len(df) else [])
    return MonthlyTable(name, df, index) if name in MONTHLY_TABLES else EventTable(name, df, index)


def _part(tables: Mapping[str, MonthlyTable | EventTable], index: FirmIndex, requests: StatRequests, months: np.ndarray) -> PartStats:
    """The cross-firm quantities of the rows in ``tables`` (one partition, or the whole hub)."""
    part = PartStats(n_industries=len(index.industries))
    for name in sorted(requests.monthly):
        part.monthly[name] = tables[name].counts()
    for name, column in sorted(requests.periods):
        part.periods[(name, column)] = tables[name].period_counts(column)
    for key, stat in sorted(requests.peers.items()):
        part.peers[key] = tables[key.table].peer_values(key.column, stat, key.length, months)
    return part


def part_stats(
    tables: Mapping[str, pd.DataFrame],
    requests: StatRequests,
    months,
    applications: pd.DataFrame | None = None,
    as_of=None,
) -> PartStats:
    """Pass 1 of a partitioned build, one partition: the cross-firm quantities of ``tables`` (validated
    frames of one partition of firms: a firm's rows never split) that ``requests`` names
    (:func:`stat_requests`), with peer statistics for every application month of the whole build
    (``months``, month indexes since 1970-01). Only the columns ``requests.columns(table)`` and the
    firms and applications tables are read. Combine the parts with ``HubStats.combine``."""
    if "firms" not in tables or tables["firms"] is None:
        raise UserError("required table 'firms' is missing: the registry gives every firm its industry, region and age")
    apps_frame = _applications(tables, applications, as_of)
    index = _firm_index(tables, apps_frame)
    objs = {name: _table(tables, name, index, sorted(requests.columns(name))) for name in requests.tables()}
    return _part(objs, index, requests, np.unique(np.asarray(months, dtype=np.int64)))


_REQUESTS: dict[tuple, StatRequests] = {}


def stat_requests(signals: Sequence[Signal] | None = None) -> StatRequests:
    """The cross-firm quantities ``signals`` (default: every registered feature) read, found by
    running them once on empty tables with a :class:`features.hubstats.StatRecorder` (cached)."""
    if signals is None:
        signals = list(load_all().values())
    key = tuple((s.name, s.func) for s in signals)
    if key not in _REQUESTS:
        empty = {name: empty_table(name) for name in (*MONTHLY_TABLES, *EVENT_TABLES)}
        recorder = StatRecorder()
        _run(empty, _applications(empty, empty_table("applications"), None), list(signals), None, stats=recorder)
        _REQUESTS[key] = recorder.requests
    return _REQUESTS[key]


def _run(
    tables: Mapping[str, pd.DataFrame],
    apps_frame: pd.DataFrame,
    signals: list[Signal],
    timings: dict | None,
    stats: HubStats | StatRecorder | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, set[str]], Applications, dict[str, MonthlyWindow | EventWindow], set[str]]:
    """Compute ``signals`` for the applications of ``apps_frame``. The cross-firm quantities come from
    ``stats``; None computes them from ``tables`` first (the one-partition case of a partitioned build)."""
    t0 = time.perf_counter()
    missing = {t for t in (*MONTHLY_TABLES, *EVENT_TABLES) if t not in tables or tables[t] is None}
    index = _firm_index(tables, apps_frame)
    apps = Applications(apps_frame, index)
    need = _lookbacks(signals)
    need["firms"] = 0  # the whole registry: segments need every firm, not only those founded inside a lookback
    windows: dict[str, MonthlyWindow | EventWindow] = {}
    for name, length in need.items():
        table = _table(tables, name, index)
        windows[name] = MonthlyWindow(table, apps, length) if name in MONTHLY_TABLES else EventWindow(table, apps, length)
    if stats is None:
        requests = stat_requests(signals)
        objs = {name: w.table for name, w in windows.items()}
        objs.update({name: _table(tables, name, index) for name in requests.tables() - set(objs)})
        stats = HubStats.combine([_part(objs, index, requests, np.unique(apps.month))])
    for w in windows.values():
        w.table.hub = stats
    if timings is not None:
        timings["windows_s"] = time.perf_counter() - t0

    results: dict[str, np.ndarray] = {}
    reads: dict[str, set[str]] = {}
    for s in _dependency_order(signals):
        t1 = time.perf_counter()
        kwargs: dict[str, object] = {}
        views = []
        for p in s.params:
            if p in windows:
                v = windows[p].restrict(s.lookback_months)
                kwargs[p] = v
                views.append(v)
            elif p == "applications":
                v = apps.view()
                kwargs[p] = v
                views.append(v)
            elif p in results:
                kwargs[p] = results[p]
            else:
                raise RuntimeError(f"feature {s.name}: parameter {p!r} is neither a source table, 'applications' nor an earlier feature")
        out = np.asarray(s.func(**kwargs), dtype=np.float64)
        if out.shape != (apps.n,):
            raise RuntimeError(f"feature {s.name} returned shape {out.shape}, expected ({apps.n},)")
        out = np.where(np.isfinite(out), out, np.nan)
        below = out < s.lower_bound if s.lower_bound is not None else None
        if below is not None and below.any():
            i = int(np.flatnonzero(below)[0])
            raise RuntimeError(f"feature {s.name} returned {float(out[i])!r} for row {i}, below its declared lower bound {s.lower_bound:g}: fix the formula or the declaration")
        if s.kind == "signal" and s.family != "coverage" and any(p in missing for p in s.params):
            out = np.full(apps.n, np.nan)
        results[s.name] = out
        reads[s.name] = set().union(*(v.reads for v in views)) if views else set()
        if timings is not None:
            timings.setdefault("signals_s", {})[s.name] = time.perf_counter() - t1
    return results, reads, apps, windows, missing


def build_features(
    tables: Mapping[str, pd.DataFrame],
    applications: pd.DataFrame | None = None,
    as_of=None,
    *,
    features: Sequence[str] | None = None,
    timings: dict | None = None,
    stats: HubStats | None = None,
) -> pd.DataFrame:
    """The feature matrix: one row per application, in the order given.

    ``tables`` maps table name to a validated frame (``features.tables.load_tables``). ``applications``
    defaults to ``tables["applications"]``. With ``as_of`` (a date) and no applications, one row per firm
    known before that date: ``application_id`` is ``firm_id@YYYY-MM-DD`` and ``product`` is ``"none"``.
    ``features`` limits the build to those features (and what they depend on). Nothing in ``tables`` is
    modified.

    ``stats`` are the cross-firm quantities (:class:`features.hubstats.HubStats`). By default they
    are computed from ``tables`` first, so the tables are the whole hub. Pass 2 of a partitioned build
    calls this function on one partition of firms (validated frames holding every row of those
    firms) with the ``HubStats`` of the whole hub from pass 1 (:func:`part_stats`, combined); the
    result is then exactly that partition's rows of the whole hub's matrix.
    """
    if "firms" not in tables or tables["firms"] is None:
        raise UserError("required table 'firms' is missing: the registry gives every firm its industry, region and age")
    reg = load_all()
    signals = _resolve(features, reg)
    apps_frame = _applications(tables, applications, as_of)
    absent = sorted(t for t in {p for s in signals for p in s.params if p in (*MONTHLY_TABLES, *EVENT_TABLES)} if t not in tables or tables[t] is None)
    for t in absent:
        log.warning("table %s is absent: its signals are NaN and its coverage is 0", t)
    t0 = time.perf_counter()
    results, _, apps, windows, _ = _run(tables, apps_frame, signals, timings, stats)

    firm_rows = windows["firms"].restrict(0).latest("available_date")
    age = results.get("firm_age_years")
    if age is None:
        founded = firm_rows["founding_date"]
        age = np.where(np.isnat(founded), np.nan, (apps.dates - founded).astype("timedelta64[D]").astype(np.float64) / 365.25)
    headcount = results.get("firm_size_headcount")
    if headcount is None:
        headcount = np.full(apps.n, np.nan)
    out = pd.DataFrame(
        {
            KEY: apps_frame[KEY].astype("string").to_numpy(),
            FIRM: apps_frame[FIRM].astype("string").to_numpy(),
            DATE: apps_frame[DATE].to_numpy(dtype="datetime64[ns]"),
            "industry": pd.array(firm_rows["industry"], dtype="string"),
            "region": pd.array(firm_rows["region"], dtype="string"),
            "lifecycle_stage": lifecycle_stage(age),
            "size_band": size_band(headcount),
            "product": apps_frame["product"].astype("string").to_numpy(),
        }
    )
    for c in (KEY, FIRM, *SEGMENT_COLUMNS):
        out[c] = out[c].astype("string")
    feats = pd.DataFrame({s.name: results[s.name] for s in signals}, index=out.index)
    out = pd.concat([out, feats], axis=1)
    if timings is not None:
        timings["total_s"] = time.perf_counter() - t0
    return out


def lifecycle_stage(age_years) -> np.ndarray:
    """``STARTUP`` ("startup") under 3 years, "growth" 3 to under 8, "mature" 8 or more, "unknown" without a date."""
    a = np.asarray(age_years, dtype=np.float64)
    return np.where(np.isnan(a), "unknown", np.where(a < 3, STARTUP, np.where(a < 8, "growth", "mature"))).astype(object)


def size_band(headcount) -> np.ndarray:
    """"micro" under 20 staff, "small" 20-99, "medium" 100 or more, "unknown" without a headcount."""
    h = np.asarray(headcount, dtype=np.float64)
    return np.where(np.isnan(h), "unknown", np.where(h < 20, "micro", np.where(h < 100, "small", "medium"))).astype(object)
