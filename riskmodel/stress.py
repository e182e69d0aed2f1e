"""Stress scenarios: shock the source tables, rebuild features point-in-time, rescore with the same model.

A scenario is a TOML file (examples in ``riskmodel/scenarios/``)::

    name = "power_cut_manufacturing"
    description = "Electricity use of manufacturing firms falls 20% over the last six months"
    lgd = 0.45              # loss given default for the expected loss (EL = PD x LGD x EAD)
    book_months = 12        # optional: applications in the last 12 months before the stress date form the book
    as_of = "2026-01-01"    # optional: stress date; default the day after the data snapshot

    [[shock]]
    table = "electricity"   # a monthly or event source table
    columns = ["kwh"]       # numeric columns to multiply
    factor = 0.8            # new value = old value x factor (rounded for whole-number columns, clipped to the schema range)
    months = 6              # rows whose month (event date) lies in the last 6 months before the stress date
    industries = "manufacturing"   # optional: a list of industries or "manufacturing"; regions = [...] likewise

    [[shock]]
    table = "certifications"
    lapse = ["high_tech"]   # certificates of these types valid on the stress date expire the day before it
    share = 1.0             # optional: share of affected firms (chosen by a stable hash of firm_id)

The book is the applications received in the ``book_months`` before the stress date; their EAD is the
application amount. Baseline and stressed features are both built as of the stress date (one
``build_features`` call each, same rows), so every difference comes from the shock alone.
"""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from features.contract import FIRM, KEY, SEGMENT_COLUMNS
from riskmodel.errors import UserError

log = logging.getLogger(__name__)

#: Industries that run production lines (their output and energy use move together); AI and software
#: firms are mostly offices and data-centre tenants, so an electricity shock says little about them.
MANUFACTURING: tuple[str, ...] = ("integrated_circuits", "new_energy", "new_materials", "high_end_equipment", "biomedicine")
SCENARIO_KEYS = ("name", "description", "lgd", "book_months", "as_of", "shock")
SHOCK_KEYS = ("table", "columns", "factor", "months", "industries", "regions", "lapse", "share")
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
#: The largest shock factor a scenario may use. A hundredfold change of a firm's electricity use or
#: sales is already far outside any stress a risk committee discusses; larger factors push values
#: past the schema's range (where they are clipped) or past float range (infinities), and the model
#: then extrapolates from nothing.
MAX_FACTOR = 100.0


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; a missing file or a syntax error is one UserError line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


@dataclass(frozen=True)
class Shock:
    """One shock: multiply ``columns`` of ``table`` by ``factor`` over the last ``months``, or lapse certificates."""

    table: str
    columns: tuple[str, ...] = ()
    factor: float = 1.0
    months: int = 6
    industries: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    lapse: tuple[str, ...] = ()
    share: float = 1.0

    def describe(self) -> str:
        who = []
        if self.industries:
            who.append("industries " + ",".join(self.industries))
        if self.regions:
            who.append("regions " + ",".join(self.regions))
        scope = f" ({'; '.join(who)})" if who else ""
        if self.lapse:
            return f"{self.table}: {','.join(self.lapse)} certificates valid on the stress date lapse for {self.share:.0%} of firms{scope}"
        return f"{self.table}.{','.join(self.columns)} x {self.factor:g} over the last {self.months} months{scope}"


@dataclass(frozen=True)
class Scenario:
    name: str
    shocks: tuple[Shock, ...]
    lgd: float = 0.45
    description: str = ""
    book_months: int = 12
    as_of: pd.Timestamp | None = None
    source: str = "scenario"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "lgd": self.lgd, "book_months": self.book_months,
            "as_of": None if self.as_of is None else str(self.as_of.date()),
            "shocks": [s.describe() for s in self.shocks],
        }


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


def _names(value: Any, where: str, known: tuple[str, ...], group: Mapping[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        if group and value in group:
            return group[value]
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where} must be a non-empty list of names, got {value!r}")
    bad = [v for v in value if v not in known]
    if bad:
        extra = f" (or {', '.join(repr(g) for g in group)})" if group else ""
        raise UserError(f"{where}: unknown name(s) {bad}; known: {', '.join(known)}{extra}")
    return tuple(value)


def _parse_shock(raw: Any, i: int, source: str) -> Shock:
    from features.tables import CERT_TYPES, INDUSTRIES, REGIONS, SCHEMAS

    where = f"{source}: shock #{i + 1}"
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a table ([[shock]]), got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SHOCK_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(SHOCK_KEYS)}")
    if "table" not in raw:
        raise UserError(f"{where}: missing required key 'table'")
    table = raw["table"]
    if not isinstance(table, str) or table not in SCHEMAS or table in ("firms", "applications", "outcomes"):
        allowed = [t for t in SCHEMAS if t not in ("firms", "applications", "outcomes")]
        raise UserError(f"{where}: table must be one of {', '.join(allowed)}, got {table!r}")
    schema = SCHEMAS[table]
    industries = _names(raw["industries"], f"{where}.industries", INDUSTRIES, {"manufacturing": MANUFACTURING}) if "industries" in raw else None
    regions = _names(raw["regions"], f"{where}.regions", REGIONS) if "regions" in raw else None
    share = raw.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < float(share) <= 1:
        raise UserError(f"{where}.share must be a number in (0, 1], got {share!r}")
    if "lapse" in raw:
        if table != "certifications":
            raise UserError(f"{where}: 'lapse' applies to table certifications only, not {table!r}")
        if any(k in raw for k in ("columns", "factor", "months")):
            raise UserError(f"{where}: a lapse shock takes no columns/factor/months; write a separate [[shock]]")
        return Shock(table, lapse=_names(raw["lapse"], f"{where}.lapse", CERT_TYPES), industries=industries, regions=regions, share=float(share))
    for key in ("columns", "factor", "months"):
        if key not in raw:
            raise UserError(f"{where}: missing required key {key!r} (or 'lapse' for certifications)")
    numeric = {c.name: c for c in schema.columns if c.dtype in ("int", "float") and c.name not in schema.key}
    cols = raw["columns"]
    cols = [cols] if isinstance(cols, str) else cols
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
        raise UserError(f"{where}.columns must be a list of column names, got {raw['columns']!r}")
    bad = [c for c in cols if c not in numeric]
    if bad:
        raise UserError(f"{where}: column(s) {bad} are not numeric value columns of {table}; choose from {', '.join(numeric)}")
    factor = raw["factor"]
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(float(factor)) or not 0 <= float(factor) <= MAX_FACTOR:
        raise UserError(f"{where}.factor must be a number from 0 to {MAX_FACTOR:g} (0.8 = -20%, 2 = doubled), got {factor!r}")
    months = raw["months"]
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
        raise UserError(f"{where}.months must be a whole number from 1 to 120, got {months!r}")
    return Shock(table, tuple(cols), float(factor), int(months), industries, regions, share=float(share))


def parse_scenario(raw: Mapping[str, Any], source: str = "scenario") -> Scenario:
    """Validate a parsed scenario mapping; problems are one-line UserErrors naming the file and key."""
    unknown = sorted(set(raw) - set(SCENARIO_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown key(s) {unknown}; allowed: {', '.join(SCENARIO_KEYS)}")
    for key in ("name", "lgd", "shock"):
        if key not in raw:
            raise UserError(f"{source}: missing required key {key!r} (see riskmodel/scenarios/*.toml for examples)")
    if not isinstance(raw["name"], str) or not raw["name"].strip():
        raise UserError(f"{source}: name must be a non-empty text, got {raw['name']!r}")
    lgd = raw["lgd"]
    if isinstance(lgd, bool) or not isinstance(lgd, (int, float)) or not 0 < float(lgd) <= 1:
        raise UserError(f"{source}: lgd must be a number in (0, 1] (e.g. 0.45 for 45% loss given default), got {lgd!r}")
    book = raw.get("book_months", 12)
    if isinstance(book, bool) or not isinstance(book, int) or not 1 <= book <= 120:
        raise UserError(f"{source}: book_months must be a whole number from 1 to 120, got {book!r}")
    as_of = raw.get("as_of")
    if as_of is not None:
        try:
            as_of = pd.Timestamp(str(as_of)).normalize()
        except (ValueError, TypeError):
            raise UserError(f"{source}: as_of must be a date YYYY-MM-DD, got {raw['as_of']!r}") from None
    shocks = raw["shock"]
    if not isinstance(shocks, list) or not shocks:
        raise UserError(f"{source}: 'shock' must be one or more [[shock]] tables")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{source}: description must be text, got {description!r}")
    return Scenario(
        raw["name"].strip(), tuple(_parse_shock(s, i, source) for i, s in enumerate(shocks)), float(lgd), description, int(book), as_of, source
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML; a bare name like ``power_cut_manufacturing`` finds a shipped example."""
    p = Path(path)
    if not p.is_file() and p.suffix == "" and (SCENARIO_DIR / f"{p.name}.toml").is_file():
        p = SCENARIO_DIR / f"{p.name}.toml"
    return parse_scenario(read_toml(p), str(path))


# --------------------------------------------------------------------------------------------
# Applying shocks
# --------------------------------------------------------------------------------------------


def _firm_mask(firm_ids: pd.Series, firms: pd.DataFrame, shock: Shock) -> np.ndarray:
    """Rows whose firm is in the shock's industries/regions and in the hashed ``share`` of firms."""
    keep = pd.Series(True, index=firms.index)
    if shock.industries is not None:
        keep &= firms["industry"].astype("string").isin(shock.industries).fillna(False)
    if shock.regions is not None:
        keep &= firms["region"].astype("string").isin(shock.regions).fillna(False)
    if shock.share < 1.0:
        h = pd.util.hash_array(firms["firm_id"].astype("string").to_numpy(dtype=object), categorize=False)
        keep &= pd.Series((h % 1_000_000) / 1_000_000 < shock.share, index=firms.index)
    chosen = set(firms.loc[keep.to_numpy(), "firm_id"].astype("string"))
    return firm_ids.astype("string").isin(chosen).fillna(False).to_numpy()


def apply_shocks(tables: Mapping[str, pd.DataFrame], scenario: Scenario, as_of: pd.Timestamp) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """Shocked copies of the affected tables (others shared, never modified) and per-shock row counts."""
    from features.tables import SCHEMAS

    out = dict(tables)
    counts = []
    firms = tables["firms"]
    for shock in scenario.shocks:
        if shock.table not in tables or tables[shock.table] is None:
            raise UserError(f"{scenario.source}: shock on table {shock.table!r}, but the data directory has no {shock.table}.parquet")
        df = out[shock.table].copy()
        who = _firm_mask(df["firm_id"], firms, shock)
        clipped = 0
        if shock.lapse:
            issue = pd.to_datetime(df["issue_date"])
            expiry = pd.to_datetime(df["expiry_date"])
            hit = who & df["cert_type"].astype("string").isin(shock.lapse).fillna(False).to_numpy() & (issue < as_of).to_numpy() & (expiry >= as_of).to_numpy()
            df.loc[hit, "expiry_date"] = (as_of - pd.Timedelta(days=1)).to_datetime64()
            df["expiry_date"] = df["expiry_date"].astype(tables[shock.table]["expiry_date"].dtype)
        else:
            schema = SCHEMAS[shock.table]
            date_col = "month" if "month" in df.columns else schema.event
            when = pd.to_datetime(df[date_col])
            start = as_of - pd.DateOffset(months=shock.months)
            hit = who & ((when >= start) & (when < as_of)).to_numpy()
            cols = {c.name: c for c in schema.columns}
            for name in shock.columns:
                col = cols[name]
                v = df[name].to_numpy(dtype="float64", na_value=np.nan).copy()
                v[hit] = v[hit] * shock.factor
                if col.dtype == "int":
                    v[hit] = np.round(v[hit])
                lo = -np.inf if col.min is None else col.min
                hi = np.inf if col.max is None else col.max
                outside = hit & np.isfinite(v) & ((v < lo) | (v > hi))
                clipped += int(outside.sum())
                v[hit] = np.clip(v[hit], lo, hi)
                df[name] = pd.array(v, dtype=df[name].dtype) if col.dtype == "int" else v.astype(df[name].dtype)
        out[shock.table] = df
        counts.append({"shock": shock.describe(), "rows_changed": int(hit.sum()), "firms_affected": int(df.loc[hit, "firm_id"].nunique()), "values_clipped": clipped})
        if clipped:
            log.warning("%s: shock %s pushed %d value(s) outside the schema range of %s; they were clipped to it", scenario.source, shock.describe(), clipped, shock.table)
    return out, counts


# --------------------------------------------------------------------------------------------
# Running a scenario
# --------------------------------------------------------------------------------------------


def default_as_of(data_dir: str | Path, tables: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    """The day after the data snapshot (manifest end month), else the day after the last application."""
    from features.tables import dataset_end

    end = dataset_end(Path(data_dir))
    if end is None:
        end = pd.to_datetime(tables["applications"]["application_date"]).max()
    return (pd.Timestamp(end) + pd.Timedelta(days=1)).normalize()


def book(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, months: int) -> pd.DataFrame:
    """Applications received in the ``months`` before ``as_of``, re-dated to ``as_of`` (the portfolio)."""
    apps = tables["applications"]
    date = pd.to_datetime(apps["application_date"])
    rows = apps.loc[((date >= as_of - pd.DateOffset(months=months)) & (date < as_of)).to_numpy()].copy()
    if rows.empty:
        raise UserError(f"no application in the {months} months before {as_of.date()}: the book is empty; set as_of or book_months in the scenario")
    rows["application_date"] = as_of
    return rows.reset_index(drop=True)


def _predict(credit_model, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    pred = credit_model.predict_grades(X)
    return pred["pd"].to_numpy(), pred["grade"].to_numpy(dtype=object)


def _segment_table(frame: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for seg in ["all", *SEGMENT_COLUMNS]:
        if seg != "all" and seg not in frame.columns:
            continue
        g = frame.assign(all="all").groupby(seg, observed=True, sort=True)
        agg = g.agg(
            n=("pd_base", "size"), ead=("ead", "sum"), pd_base=("pd_base", "mean"), pd_stress=("pd_stress", "mean"),
            el_base=("el_base", "sum"), el_stress=("el_stress", "sum"), downgraded=("downgraded", "mean"), pd_up=("pd_up", "mean"),
        ).reset_index().rename(columns={seg: "value"})
        agg.insert(0, "segment", seg)
        parts.append(agg)
    t = pd.concat(parts, ignore_index=True)
    t["value"] = t["value"].astype(str)
    t["pd_shift_pp"] = (t["pd_stress"] - t["pd_base"]) * 100
    t["el_change"] = t["el_stress"] - t["el_base"]
    with np.errstate(divide="ignore", invalid="ignore"):
        t["el_change_pct"] = np.where(t["el_base"] > 0, t["el_change"] / t["el_base"] * 100, np.nan)
    cols = ["segment", "value", "n", "ead", "pd_base", "pd_stress", "pd_shift_pp", "downgraded", "pd_up", "el_base", "el_stress", "el_change", "el_change_pct"]
    return t[cols]


def migration_matrix(before, after, labels) -> pd.DataFrame:
    """Counts of rows from grade ``before`` (rows) to grade ``after`` (columns), in master-scale order."""
    b = pd.Categorical(pd.Series(before, dtype=object), categories=list(labels))
    a = pd.Categorical(pd.Series(after, dtype=object), categories=list(labels))
    m = pd.crosstab(b, a, dropna=False).reindex(index=list(labels), columns=list(labels), fill_value=0)
    m.index.name, m.columns.name = "from", "to"
    return m.astype("int64")


@dataclass
class StressResult:
    scenario: dict
    as_of: str
    model: dict
    shocks: list[dict]
    summary: dict
    segments: pd.DataFrame
    migration: pd.DataFrame
    features: pd.DataFrame
    rows: pd.DataFrame = field(repr=False)
    base_features: pd.DataFrame | None = field(default=None, repr=False)
    stress_features: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        seg = self.segments.astype(object).where(self.segments.notna(), None)
        feats = self.features.astype(object).where(self.features.notna(), None)
        return {
            "scenario": self.scenario, "as_of": self.as_of, "model": self.model, "shocks": self.shocks,
            "summary": self.summary, "segments": seg.to_dict("records"),
            "migration": {"labels": list(self.migration.index), "counts": self.migration.to_numpy().tolist()},
            "features": feats.to_dict("records"),
        }


def feature_shift_table(base: pd.DataFrame, stressed: pd.DataFrame, features: list[str], directions: Mapping[str, int]) -> pd.DataFrame:
    """Per model feature: rows changed, mean change, and rows moved towards higher risk
    (``adverse``) or lower risk (``favourable``) by the feature's catalog direction."""
    rows = []
    for f in features:
        a = pd.to_numeric(base[f], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        b = pd.to_numeric(stressed[f], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        d = int(directions.get(f, 0))
        delta = b - a
        rows.append({
            "feature": f, "direction": d, "changed": int((~same).sum()),
            "mean_change": float(np.nanmean(delta[~same])) if (~same & np.isfinite(delta)).any() else 0.0,
            "adverse": int(((d * delta) > 0).sum()) if d else 0,
            "favourable": int(((d * delta) < 0).sum()) if d else 0,
        })
    t = pd.DataFrame(rows, columns=["feature", "direction", "changed", "mean_change", "adverse", "favourable"])
    return t[t["changed"] > 0].sort_values("changed", ascending=False, kind="mergesort").reset_index(drop=True)


def run_stress(model_uri: str, data: str | Path, scenario: str | Path | Scenario) -> StressResult:
    """Shock the tables of ``data`` by ``scenario``, rebuild features as of the stress date, rescore the
    book with ``model_uri`` and compare with the unshocked book."""
    from features.tables import load_tables
    from riskmodel import tracking

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    data = Path(data)
    if not data.is_dir():
        raise UserError(f"--data {data}: no such directory")
    credit_model, name, version = tracking.load_credit_model(model_uri)
    tables, _ = load_tables(data)
    result = stress_book(credit_model, tables, sc, default_as_of(data, tables) if sc.as_of is None else sc.as_of)
    result.model = {"uri": model_uri, "name": name, "version": version}
    return result


def stress_book(credit_model, tables: Mapping[str, pd.DataFrame], sc: Scenario, as_of: pd.Timestamp) -> StressResult:
    """The scenario on loaded tables with a loaded ``CreditModel`` (what :func:`run_stress` calls)."""
    from features.build import build_features

    if "applications" not in tables:
        raise UserError("applications.parquet is missing; the stress book is built from the applications")
    apps = book(tables, as_of, sc.book_months)
    shocked, counts = apply_shocks(tables, sc, as_of)
    base = build_features(tables, apps)
    stress = build_features(shocked, apps)
    pd_b, g_b = _predict(credit_model, base)
    pd_s, g_s = _predict(credit_model, stress)
    labels = list(credit_model.master_scale.labels)
    rank = {g: i for i, g in enumerate(labels)}
    ead = apps["amount"].to_numpy(dtype="float64", na_value=0.0)
    rows = base[[KEY, FIRM, *[c for c in SEGMENT_COLUMNS if c in base.columns]]].copy()
    rows["ead"] = ead
    rows["pd_base"], rows["pd_stress"] = pd_b, pd_s
    rows["grade_base"], rows["grade_stress"] = g_b, g_s
    rows["el_base"] = pd_b * sc.lgd * ead
    rows["el_stress"] = pd_s * sc.lgd * ead
    r_b = pd.Series(g_b).map(rank).to_numpy(dtype="float64")
    r_s = pd.Series(g_s).map(rank).to_numpy(dtype="float64")
    rows["downgraded"] = r_s > r_b
    rows["pd_up"] = pd_s > pd_b + 1e-12
    directions = {}
    if credit_model.catalog is not None and "direction" in credit_model.catalog.columns:
        directions = dict(zip(credit_model.catalog["name"], credit_model.catalog["direction"].astype(int)))
    feats = feature_shift_table(base, stress, list(credit_model.features), directions)
    el_b, el_s = float(rows["el_base"].sum()), float(rows["el_stress"].sum())
    summary = {
        "n": len(rows), "ead": float(ead.sum()), "lgd": sc.lgd,
        "mean_pd_base": float(pd_b.mean()), "mean_pd_stress": float(pd_s.mean()),
        "ew_pd_base": float((pd_b * ead).sum() / ead.sum()) if ead.sum() > 0 else None,
        "ew_pd_stress": float((pd_s * ead).sum() / ead.sum()) if ead.sum() > 0 else None,
        "el_base": el_b, "el_stress": el_s, "el_change": el_s - el_b,
        "el_change_pct": (el_s - el_b) / el_b * 100 if el_b > 0 else None,
        "share_pd_up": float(rows["pd_up"].mean()), "share_pd_down": float((pd_s < pd_b - 1e-12).mean()),
        "share_downgraded": float(rows["downgraded"].mean()),
        "share_upgraded": float((r_s < r_b).mean()),
    }
    return StressResult(
        scenario=sc.to_dict(), as_of=str(as_of.date()),
        model={"name": credit_model.name, "version": credit_model.version},
        shocks=counts, summary=summary, segments=_segment_table(rows),
        migration=migration_matrix(g_b, g_s, labels), features=feats, rows=rows,
        base_features=base, stress_features=stress,
    )
