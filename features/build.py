"""Build the feature matrix (one row per application) and the catalog, both from the signal registry.

``build_features(tables, applications)`` constructs one point-in-time window per source table
(``features.asof``), calls every registered signal with the windows it names, then every product with
the signals it names, and returns

    application_id, firm_id, application_date,            identifiers (pseudonymous firm id)
    industry, region, lifecycle_stage, size_band, product  segment columns
    <one float64 column per signal and product>            NaN allowed

Raw registration ids and L4 columns cannot reach the matrix: the windows refuse to read them.
An absent optional table is not an error: its signals are NaN and its coverage signals 0.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

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
from features.registry import Signal, load_all
from features.tables import INDUSTRIES, SCHEMAS, TableError, Violation
from features.errors import UserError

log = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("application_id", "firm_id", "application_date")
SEGMENT_COLUMNS: tuple[str, ...] = ("industry", "region", "lifecycle_stage", "size_band", "product")
CATALOG_COLUMNS: tuple[str, ...] = (
    "name", "name_zh", "name_en", "family", "kind", "tables", "lookback_months", "direction", "grade",
    "unit", "description", "reason_en", "reason_zh", "actionable",
)
FINANCIAL_BASELINE_FAMILIES = frozenset({"finance", "firm"})
_GRADE_ORDER = {"L1": 1, "L2": 2, "L3": 3, "L4": 4}
_ID_GRADES = {
    "application_id": "L2", "firm_id": "L2", "application_date": "L2", "industry": "L1", "region": "L1",
    "lifecycle_stage": "L1", "size_band": "L2", "product": "L2",
}
_APPLICATION_COLUMNS = ("application_id", "firm_id", "application_date", "amount", "term_months", "product", "collateral_value")


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
                "application_id": (ids + "@" + day.strftime("%Y-%m-%d")).astype("string"),
                "firm_id": ids,
                "application_date": pd.Series(np.full(len(ids), day.to_datetime64()), dtype="datetime64[ns]"),
                "amount": np.nan,
                "term_months": np.nan,
                "product": pd.Series(["none"] * len(ids), dtype="string"),
                "collateral_value": np.nan,
            }
        )
    if applications is None:
        if "applications" not in tables:
            raise FileNotFoundError("required table 'applications' is missing: pass applications=... or as_of=... to build one row per firm")
        applications = tables["applications"]
    _check_columns("applications", applications, ("application_id", "firm_id", "application_date"))
    frame = pd.DataFrame(
        {
            "application_id": applications["application_id"].astype("string").to_numpy(),
            "firm_id": applications["firm_id"].astype("string").to_numpy(),
            "application_date": pd.to_datetime(applications["application_date"]).to_numpy(dtype="datetime64[ns]"),
        }
    )
    bad = frame["application_date"].isna().to_numpy()
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


def _run(
    tables: Mapping[str, pd.DataFrame],
    apps_frame: pd.DataFrame,
    signals: list[Signal],
    timings: dict | None,
) -> tuple[dict[str, np.ndarray], dict[str, set[str]], Applications, dict[str, MonthlyWindow | EventWindow], set[str]]:
    t0 = time.perf_counter()
    missing = {t for t in (*MONTHLY_TABLES, *EVENT_TABLES) if t not in tables or tables[t] is None}
    firms_df = tables["firms"]
    _check_columns("firms", firms_df, ["firm_id", "industry", "region", "founding_date", "available_date"])
    index = FirmIndex(pd.concat([firms_df["firm_id"].astype("string"), apps_frame["firm_id"]], ignore_index=True))
    index.set_industry(firms_df, INDUSTRIES)
    apps = Applications(apps_frame, index)
    need = _lookbacks(signals)
    need["firms"] = 0  # the whole registry: segments need every firm, not only those founded inside a lookback
    windows: dict[str, MonthlyWindow | EventWindow] = {}
    for name, length in need.items():
        df = tables.get(name)
        if df is None:
            df = empty_table(name)
        cols = [c for c in SCHEMAS[name].column_names if SCHEMAS[name].grade_of(c) != "L4"]
        _check_columns(name, df, [c for c in cols if c not in ("cert_no", "bid_id", "patent_id", "person_id")] if len(df) else [])
        if name in MONTHLY_TABLES:
            windows[name] = MonthlyWindow(MonthlyTable(name, df, index), apps, length)
        else:
            windows[name] = EventWindow(EventTable(name, df, index), apps, length)
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
) -> pd.DataFrame:
    """The feature matrix: one row per application, in the order given.

    ``tables`` maps table name to a validated frame (``features.tables.load_tables``). ``applications``
    defaults to ``tables["applications"]``. With ``as_of`` (a date) and no applications, one row per firm
    known before that date: ``application_id`` is ``firm_id@YYYY-MM-DD`` and ``product`` is ``"none"``.
    ``features`` limits the build to those features (and what they depend on). Nothing in ``tables`` is
    modified.
    """
    if "firms" not in tables or tables["firms"] is None:
        raise FileNotFoundError("required table 'firms' is missing: the registry gives every firm its industry, region and age")
    reg = load_all()
    signals = _resolve(features, reg)
    apps_frame = _applications(tables, applications, as_of)
    absent = sorted(t for t in {p for s in signals for p in s.params if p in (*MONTHLY_TABLES, *EVENT_TABLES)} if t not in tables or tables[t] is None)
    for t in absent:
        log.warning("table %s is absent: its signals are NaN and its coverage is 0", t)
    t0 = time.perf_counter()
    results, _, apps, windows, _ = _run(tables, apps_frame, signals, timings)

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
            "application_id": apps_frame["application_id"].astype("string").to_numpy(),
            "firm_id": apps_frame["firm_id"].astype("string").to_numpy(),
            "application_date": apps_frame["application_date"].to_numpy(dtype="datetime64[ns]"),
            "industry": pd.array(firm_rows["industry"], dtype="string"),
            "region": pd.array(firm_rows["region"], dtype="string"),
            "lifecycle_stage": lifecycle_stage(age),
            "size_band": size_band(headcount),
            "product": apps_frame["product"].astype("string").to_numpy(),
        }
    )
    for c in ("application_id", "firm_id", "industry", "region", "lifecycle_stage", "size_band", "product"):
        out[c] = out[c].astype("string")
    feats = pd.DataFrame({s.name: results[s.name] for s in signals}, index=out.index)
    out = pd.concat([out, feats], axis=1)
    if timings is not None:
        timings["total_s"] = time.perf_counter() - t0
    return out


def lifecycle_stage(age_years) -> np.ndarray:
    """"startup" under 3 years, "growth" 3 to under 8, "mature" 8 or more, "unknown" without a date."""
    a = np.asarray(age_years, dtype=np.float64)
    return np.where(np.isnan(a), "unknown", np.where(a < 3, "startup", np.where(a < 8, "growth", "mature"))).astype(object)


def size_band(headcount) -> np.ndarray:
    """"micro" under 20 staff, "small" 20-99, "medium" 100 or more, "unknown" without a headcount."""
    h = np.asarray(headcount, dtype=np.float64)
    return np.where(np.isnan(h), "unknown", np.where(h < 20, "micro", np.where(h < 100, "small", "medium"))).astype(object)


# ------------------------------------------------------------------------------------------------
# Catalog
# ------------------------------------------------------------------------------------------------


@functools.cache
def _dry_reads() -> dict[str, frozenset[str]]:
    """Columns each feature reads, recorded by running every feature once on empty tables."""
    empty = {name: empty_table(name) for name in (*MONTHLY_TABLES, *EVENT_TABLES)}
    apps = empty_table("applications")
    reg = load_all()
    frame = _applications(empty, apps, None)
    _, reads, _, _, _ = _run(empty, frame, list(reg.values()), None)
    return {k: frozenset(v) for k, v in reads.items()}


def source_columns(name: str) -> list[str]:
    """``table.column`` names a feature reads (products: the union over their inputs)."""
    reg = load_all()
    reads = _dry_reads()
    s = reg[name]
    cols = set(reads.get(name, ()))
    for p in s.params:
        if p in reg:
            cols |= set(source_columns(p))
    return sorted(cols)


def _tables_of(s: Signal, reg: dict[str, Signal]) -> list[str]:
    out: set[str] = set()
    for p in s.params:
        if p in reg:
            out |= set(_tables_of(reg[p], reg))
        else:
            out.add(p)
    return sorted(out)


def _lookback_of(s: Signal, reg: dict[str, Signal]) -> int:
    """The longest history a feature reads, through the features it builds on (0 = whole record)."""
    lbs = [s.lookback_months] if any(p not in reg for p in s.params) else []
    lbs += [_lookback_of(reg[p], reg) for p in s.params if p in reg]
    return 0 if 0 in lbs else max(lbs)


def _grade_of(s: Signal, reg: dict[str, Signal]) -> str:
    if s.grade is not None:
        return s.grade
    grades = []
    for col in source_columns(s.name):
        table, column = col.split(".", 1)
        grades.append(SCHEMAS[table].grade_of(column))
    # A feature that reads no value column (a coverage count) only says that rows exist: internal (L2).
    return max(grades, key=_GRADE_ORDER.get) if grades else "L2"


@functools.cache
def _catalog() -> pd.DataFrame:
    reg = load_all()
    rows = []
    for s in reg.values():
        rows.append(
            {
                "name": s.name,
                "name_zh": s.name_zh,
                "name_en": s.name_en,
                "family": s.family,
                "kind": s.kind,
                "tables": ",".join(_tables_of(s, reg)),
                "lookback_months": int(_lookback_of(s, reg)),
                "direction": int(s.direction),
                "grade": _grade_of(s, reg),
                "unit": s.unit,
                "description": s.description,
                "reason_en": s.reason_en,
                "reason_zh": s.reason_zh,
                "actionable": bool(s.actionable),
            }
        )
    df = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    df["lookback_months"] = df["lookback_months"].astype("int64")
    df["direction"] = df["direction"].astype("int64")
    df["actionable"] = df["actionable"].astype(bool)
    return df


def catalog() -> pd.DataFrame:
    """One row per feature (signals, then products) with the columns of contract 3 (a copy)."""
    return _catalog().copy()


def column_grades() -> dict[str, str]:
    """Sensitivity grade of every column a feature matrix can hold (for ``features.privacy.release``)."""
    cat = _catalog()
    return {**_ID_GRADES, **dict(zip(cat["name"], cat["grade"]))}


def feature_code_version() -> str:
    """Hash of everything that determines feature values: the catalog and the source of the feature
    layer (windows, signals, products, build). Use it to key caches of built feature matrices: it
    changes when a formula changes even if no catalog text does."""
    import hashlib

    root = Path(__file__).resolve().parent
    h = hashlib.sha256(_catalog().to_csv(index=False).encode("utf-8"))
    for path in sorted([root / "asof.py", root / "build.py", root / "products.py", root / "registry.py", *(root / "signals").glob("*.py")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def feature_directions() -> dict[str, int]:
    """Expected direction of each feature on the PD (+1, -1, 0), as models take it."""
    cat = _catalog()
    return dict(zip(cat["name"], cat["direction"].astype(int)))


# ------------------------------------------------------------------------------------------------
# Documentation generated from the catalog
# ------------------------------------------------------------------------------------------------

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "features.md"


def _direction(d: int) -> str:
    return "+1" if d > 0 else ("-1" if d < 0 else "0")


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def catalog_markdown() -> str:
    """docs/features.md: the catalog as Markdown, grouped by family. Regenerate with
    ``riskmodel catalog --format md --out docs/features.md`` (a test fails when the file is stale)."""
    cat = _catalog()
    lines = [
        "# Feature catalog",
        "",
        "<!-- Generated from the signal registry by `riskmodel catalog --format md --out docs/features.md`. Do not edit. -->",
        "",
        f"{len(cat)} features: {int((cat['kind'] == 'signal').sum())} signals and {int((cat['kind'] == 'product').sum())} "
        "data products. Every feature reads its tables through the point-in-time view of `features/asof.py`: "
        "only rows whose `available_date` is strictly before the application date, inside the lookback "
        "(0 = the whole record known by then).",
        "",
        "Direction is the expected effect on the probability of default (+1 raises it, -1 lowers it, 0 unknown). "
        "Grade is the sensitivity of the most sensitive source column read (L1 public, L2 internal, L3 "
        "confidential; L4 restricted columns are never read). The financial-only baseline uses the families "
        "`finance` and `firm`.",
        "",
    ]
    for family in dict.fromkeys(cat["family"]):
        sub = cat[cat["family"] == family]
        lines += [f"## {family}", ""]
        lines += ["| name | 中文名 | tables | lookback (months) | direction | grade | unit | description | reason (risk up) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sub.itertuples(index=False):
            lines.append(
                f"| `{r.name}` | {_md_escape(r.name_zh)} | {_md_escape(r.tables)} | {r.lookback_months} | {_direction(r.direction)} | {r.grade} | "
                f"{_md_escape(r.unit)} | {_md_escape(r.name_en)}: {_md_escape(r.description)} | {_md_escape(r.reason_en)} / {_md_escape(r.reason_zh)} |"
            )
        lines.append("")
    lines += ["## Source columns read", "", "| feature | columns |", "|---|---|"]
    for name in cat["name"]:
        lines.append(f"| `{name}` | {', '.join(source_columns(name)) or '(row presence only)'} |")
    lines.append("")
    return "\n".join(lines)


def write_docs(path: str | Path = DOCS_PATH) -> Path:
    """Write the generated catalog page (docs/features.md by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(catalog_markdown(), encoding="utf-8")
    return path
