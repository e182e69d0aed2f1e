"""Regional NPL tolerance: expected NPL of a scored portfolio against a differentiated tolerance band.

Regulators let banks tolerate a higher non-performing-loan ratio on loans to small and micro
sci-tech firms, at most 3 percentage points above the bank's overall NPL ratio, differentiated by
region and industry. This module turns that rule into a transparent, auditable formula.

Expected NPL of a group of loans (region, industry, or region x industry) is the exposure-weighted
PD::

    expected_npl(g) = sum_i(PD_i * EAD_i) / sum_i(EAD_i)        over loans i in g

Tolerance band of region r (and industry j)::

    s_k(r)   = min(x_k(r) / full_k, 1)                  each structural indicator scaled to [0, 1]
    S(r)     = sum_k w_k * s_k(r)                       weights w_k >= 0, sum_k w_k = 1
    uplift   = max_uplift * S(r) * f_j                  industry factor f_j in [0, 1] (default 1)
    band     = overall_npl_ratio + uplift               max_uplift <= 0.03 (3 percentage points)

The indicators ``x_k`` are per-region figures from the config: ``tech_share`` (share of
sci-tech firms among the region's enterprises), ``pilot_coverage`` (share of the region's districts
covered by sci-tech finance pilot programmes) and ``ip_pledge`` (IP-pledge financing volume, CNY
100m). ``full_k`` is the level at which an indicator earns its full weight. Properties the tests
check: the band never exceeds ``overall + 3pp`` (nor ``overall + max_uplift``); it never falls below
``overall``; it is non-decreasing in every indicator and in the industry factor; a region with all
indicators at zero gets exactly the overall ratio. docs/monitoring.md gives the rationale.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from features.files import atomic_output, check_outputs
from features.tables import hub_paths
from riskmodel.errors import UserError
from riskmodel.usertables import read_frame

log = logging.getLogger(__name__)

REGULATORY_CAP = 0.03  # +3 percentage points above the overall NPL ratio (small and micro sci-tech firms)
INDICATORS: tuple[str, ...] = ("tech_share", "pilot_coverage", "ip_pledge")
DEFAULT_WEIGHTS = {"tech_share": 0.4, "pilot_coverage": 0.3, "ip_pledge": 0.3}
DEFAULT_FULL = {"tech_share": 0.25, "pilot_coverage": 1.0, "ip_pledge": 500.0}
OUTPUT_SUFFIXES = ("parquet", "csv", "png")  # the files npl-tolerance --out DIR writes
TOP_KEYS = ("overall_npl_ratio", "max_uplift", "pd_column", "exposure_column", "weights", "full", "regions", "industries")
TABLE_COLUMNS = (
    "level", "region", "industry", "n", "exposure", "expected_npl", "band", "uplift", "headroom", "flag",
)


@dataclass(frozen=True)
class ToleranceConfig:
    """Validated tolerance configuration (see :func:`load_config` for the file format)."""

    overall_npl_ratio: float
    regions: Mapping[str, Mapping[str, float]]
    max_uplift: float = REGULATORY_CAP
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    full: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FULL))
    industries: Mapping[str, float] = field(default_factory=dict)
    pd_column: str = "pd"
    exposure_column: str = "amount"
    source: str = "config"

    def to_dict(self) -> dict:
        return {
            "overall_npl_ratio": self.overall_npl_ratio, "max_uplift": self.max_uplift,
            "weights": dict(self.weights), "full": dict(self.full),
            "regions": {r: dict(v) for r, v in self.regions.items()}, "industries": dict(self.industries),
            "pd_column": self.pd_column, "exposure_column": self.exposure_column,
        }


# --------------------------------------------------------------------------------------------
# The formula (scalar and vectorised; pure functions, property-tested)
# --------------------------------------------------------------------------------------------


def structural_score(indicators: Mapping[str, float], weights: Mapping[str, float], full: Mapping[str, float]) -> float:
    """``S = sum_k w_k * min(x_k / full_k, 1)`` in [0, 1] (missing indicators count as 0)."""
    total = 0.0
    for k in INDICATORS:
        x = max(float(indicators.get(k, 0.0)), 0.0)
        total += float(weights.get(k, 0.0)) * min(x / float(full[k]), 1.0)
    return min(max(total, 0.0), 1.0)


def tolerance_band(
    overall: float,
    indicators: Mapping[str, float],
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    full: Mapping[str, float] = DEFAULT_FULL,
    max_uplift: float = REGULATORY_CAP,
    industry_factor: float = 1.0,
) -> float:
    """NPL tolerance band: ``overall + min(max_uplift, 3pp) * S * industry_factor``."""
    cap = min(float(max_uplift), REGULATORY_CAP)
    f = min(max(float(industry_factor), 0.0), 1.0)
    return float(overall) + cap * structural_score(indicators, weights, full) * f


def expected_npl(pd_values, exposure) -> float:
    """Exposure-weighted PD ``sum(PD * EAD) / sum(EAD)`` (NaN for zero exposure)."""
    p = np.asarray(pd_values, dtype="float64")
    e = np.asarray(exposure, dtype="float64")
    total = e.sum()
    return float((p * e).sum() / total) if total > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def _number(value: Any, where: str, lo: float | None = None, hi: float | None = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise UserError(f"{where} must be finite, got {value!r}")
    if positive and v <= 0:
        raise UserError(f"{where} must be greater than 0, got {value!r}")
    if lo is not None and v < lo:
        raise UserError(f"{where} must be at least {lo}, got {value!r}")
    if hi is not None and v > hi:
        raise UserError(f"{where} must be at most {hi}, got {value!r}")
    return v


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a table ([{where.split(': ')[-1]}] section), got {type(value).__name__}")
    return value


def parse_config(raw: Mapping[str, Any], source: str = "config") -> ToleranceConfig:
    """Validate a parsed TOML mapping; every problem is one UserError line naming file and key."""
    from features.tables import INDUSTRIES, REGIONS

    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown key(s) {unknown}; allowed: {', '.join(TOP_KEYS)}")
    for key in ("overall_npl_ratio", "regions"):
        if key not in raw:
            raise UserError(f"{source}: missing required key {key!r} (see docs/monitoring.md for an example config)")
    overall = _number(raw["overall_npl_ratio"], f"{source}: overall_npl_ratio", lo=0.0, hi=1.0)
    max_uplift = _number(raw.get("max_uplift", REGULATORY_CAP), f"{source}: max_uplift", lo=0.0, hi=REGULATORY_CAP)
    weights = dict(DEFAULT_WEIGHTS)
    if "weights" in raw:
        given = _table(raw["weights"], f"{source}: weights")
        bad = sorted(set(given) - set(INDICATORS))
        if bad:
            raise UserError(f"{source}: unknown indicator(s) {bad} in [weights]; allowed: {', '.join(INDICATORS)}")
        weights = {k: _number(given.get(k, 0.0), f"{source}: weights.{k}", lo=0.0) for k in INDICATORS}
        if abs(sum(weights.values()) - 1.0) > 1e-6:
            raise UserError(f"{source}: [weights] must sum to 1, got {sum(weights.values()):.6g} ({weights})")
    full = dict(DEFAULT_FULL)
    if "full" in raw:
        given = _table(raw["full"], f"{source}: full")
        bad = sorted(set(given) - set(INDICATORS))
        if bad:
            raise UserError(f"{source}: unknown indicator(s) {bad} in [full]; allowed: {', '.join(INDICATORS)}")
        full.update({k: _number(v, f"{source}: full.{k}", positive=True) for k, v in given.items()})
    regions_raw = _table(raw["regions"], f"{source}: regions")
    if not regions_raw:
        raise UserError(f"{source}: [regions] is empty; add one [regions.NAME] table per region ({', '.join(REGIONS)})")
    regions: dict[str, dict[str, float]] = {}
    for name, ind in regions_raw.items():
        if name not in REGIONS:
            raise UserError(f"{source}: unknown region {name!r} in [regions]; known regions: {', '.join(REGIONS)}")
        ind = _table(ind, f"{source}: regions.{name}")
        bad = sorted(set(ind) - set(INDICATORS))
        if bad:
            raise UserError(f"{source}: unknown indicator(s) {bad} in [regions.{name}]; allowed: {', '.join(INDICATORS)}")
        missing = [k for k in INDICATORS if k not in ind]
        if missing:
            raise UserError(f"{source}: [regions.{name}] is missing {missing}; give all of {', '.join(INDICATORS)}")
        vals = {k: _number(ind[k], f"{source}: regions.{name}.{k}", lo=0.0) for k in INDICATORS}
        for k in ("tech_share", "pilot_coverage"):
            if vals[k] > 1.0:
                raise UserError(f"{source}: regions.{name}.{k} is a share and must be at most 1, got {vals[k]}")
        regions[name] = vals
    industries: dict[str, float] = {}
    if "industries" in raw:
        given = _table(raw["industries"], f"{source}: industries")
        for name, v in given.items():
            if name not in INDUSTRIES:
                raise UserError(f"{source}: unknown industry {name!r} in [industries]; known industries: {', '.join(INDUSTRIES)}")
            industries[name] = _number(v, f"{source}: industries.{name}", lo=0.0, hi=1.0)
    cols = {}
    for key, default in (("pd_column", "pd"), ("exposure_column", "amount")):
        v = raw.get(key, default)
        if not isinstance(v, str) or not v:
            raise UserError(f"{source}: {key} must be a column name (text), got {v!r}")
        cols[key] = v
    return ToleranceConfig(overall, regions, max_uplift, weights, full, industries, cols["pd_column"], cols["exposure_column"], source)


def load_config(path: str | Path) -> ToleranceConfig:
    """Read and validate a tolerance config TOML (format: docs/monitoring.md, example:
    ``riskmodel/scenarios/npl_tolerance.toml``)."""
    from riskmodel.stress import read_toml

    return parse_config(read_toml(path), str(path))


# --------------------------------------------------------------------------------------------
# The portfolio table
# --------------------------------------------------------------------------------------------


def _portfolio(scores: pd.DataFrame, cfg: ToleranceConfig, data: str | Path | None, source: str) -> pd.DataFrame:
    """Scores with pd, exposure, region and industry columns (joined from ``data`` when missing)."""
    frame = scores.copy()
    need_seg = [c for c in ("region", "industry") if c not in frame.columns]
    need_exp = cfg.exposure_column not in frame.columns
    if (need_seg or need_exp) and data is not None:
        from features.tables import read_hub_table

        data = Path(data)
        if need_seg:
            if "firm_id" not in frame.columns:
                raise UserError(f"{source}: has no region/industry and no firm_id to look them up in {data}/firms.parquet")
            firms = read_hub_table(data, "firms")[["firm_id", "region", "industry"]]
            firms = firms.assign(firm_id=firms["firm_id"].astype("string"), region=firms["region"].astype("string"), industry=firms["industry"].astype("string"))
            frame = frame.assign(firm_id=frame["firm_id"].astype("string")).merge(firms[["firm_id", *need_seg]], on="firm_id", how="left")
        if need_exp:
            if "application_id" not in frame.columns:
                raise UserError(f"{source}: has no {cfg.exposure_column!r} column and no application_id to look it up in {data}/applications.parquet")
            apps = read_hub_table(data, "applications")[["application_id", "amount"]]
            apps = apps.rename(columns={"amount": cfg.exposure_column}).assign(application_id=apps["application_id"].astype("string"))
            frame = frame.assign(application_id=frame["application_id"].astype("string")).merge(apps, on="application_id", how="left")
    for col in (cfg.pd_column, cfg.exposure_column, "region", "industry"):
        if col not in frame.columns:
            hint = " (pass --data DIR to join region, industry and the application amount from the data hub)" if data is None else ""
            raise UserError(f"{source}: required column {col!r} is missing{hint}")
    p = pd.to_numeric(frame[cfg.pd_column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    e = pd.to_numeric(frame[cfg.exposure_column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad_p = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad_p.any():
        rows = np.flatnonzero(bad_p)[:5].tolist()
        raise UserError(f"{source}: column {cfg.pd_column!r} must hold PDs in [0, 1]; {int(bad_p.sum())} row(s) do not (first rows {rows})")
    bad_e = ~np.isfinite(e) | (e < 0)
    if bad_e.any():
        rows = np.flatnonzero(bad_e)[:5].tolist()
        raise UserError(f"{source}: column {cfg.exposure_column!r} must hold non-negative exposures; {int(bad_e.sum())} row(s) do not (first rows {rows})")
    region = frame["region"].astype("string")
    if region.isna().any():
        rows = np.flatnonzero(region.isna().to_numpy())[:5].tolist()
        raise UserError(f"{source}: {int(region.isna().sum())} row(s) have no region (first rows {rows})")
    unknown = sorted(set(region.unique()) - set(cfg.regions))
    if unknown:
        raise UserError(f"{cfg.source}: no [regions.X] entry for region(s) {unknown} found in {source}; add their indicators")
    return pd.DataFrame({"pd": p, "exposure": e, "region": region.to_numpy(), "industry": frame["industry"].astype("string").fillna("unknown").to_numpy()})


def check_one_row_per_loan(scores: pd.DataFrame, source: str) -> None:
    """Each loan once: a scores file that holds an ``application_id`` twice would count its exposure
    twice, so it is refused (a scores file from ``riskmodel score`` never does: it rejects repeats)."""
    if "application_id" not in scores.columns:
        return
    ids = scores["application_id"].astype("string")
    dup = ids.duplicated(keep="first") & ids.notna()
    if dup.any():
        first = ids[dup].drop_duplicates().head(3).tolist()
        raise UserError(f"{source}: {int(dup.sum())} row(s) repeat an application_id already in the file (first: {first}); each loan must appear once, or its exposure counts twice: drop the repeats")


def tolerance_table(scores: pd.DataFrame, cfg: ToleranceConfig, data: str | Path | None = None, source: str = "scores") -> pd.DataFrame:
    """One row per group (``level`` = overall, region, industry, region_industry): count, exposure,
    expected NPL, band, uplift, headroom (band - expected) and ``flag`` (expected NPL above band).

    A region's band uses its indicators; a region x industry cell also the industry factor; an
    industry row (all regions) compares with the exposure-weighted band of its cells; the overall
    row with the exposure-weighted band of all regions."""
    port = _portfolio(scores, cfg, data, source)
    port["pe"] = port["pd"] * port["exposure"]
    region_uplift = {r: tolerance_band(0.0, ind, cfg.weights, cfg.full, cfg.max_uplift) for r, ind in cfg.regions.items()}
    port["uplift"] = port["region"].map(region_uplift).to_numpy(dtype="float64") * port["industry"].map(lambda j: cfg.industries.get(j, 1.0)).to_numpy(dtype="float64")
    port["ue"] = port["uplift"] * port["exposure"]
    parts = []
    for level, keys in (("overall", []), ("region", ["region"]), ("industry", ["industry"]), ("region_industry", ["region", "industry"])):
        g = port.groupby(keys, observed=True, sort=True) if keys else port.assign(_all=0).groupby("_all")
        agg = g.agg(n=("pd", "size"), exposure=("exposure", "sum"), pe=("pe", "sum"), ue=("ue", "sum")).reset_index()
        agg["level"] = level
        for c in ("region", "industry"):
            if c not in agg.columns:
                agg[c] = "all"
        parts.append(agg)
    t = pd.concat(parts, ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["expected_npl"] = np.where(t["exposure"] > 0, t["pe"] / t["exposure"], np.nan)
        t["uplift"] = np.where(t["exposure"] > 0, t["ue"] / t["exposure"], 0.0)
    t["band"] = cfg.overall_npl_ratio + t["uplift"]
    t["headroom"] = t["band"] - t["expected_npl"]
    t["flag"] = (t["expected_npl"] > t["band"]).astype(bool)
    t["n"] = t["n"].astype("int64")
    return t[list(TABLE_COLUMNS)].reset_index(drop=True)


def plot_tolerance(table: pd.DataFrame, overall: float, path: str | Path) -> Path:
    """Bar chart: expected NPL per region against its band (and the overall ratio); PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    t = table[table["level"] == "region"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(t))
    colors = ["#c0392b" if f else "#2e86c1" for f in t["flag"]]
    ax.bar(x, t["expected_npl"] * 100, color=colors, width=0.6, label="expected NPL (exposure-weighted PD)")
    ax.hlines(t["band"] * 100, x - 0.35, x + 0.35, colors="black", lw=2, label="tolerance band")
    ax.axhline(overall * 100, color="grey", ls="--", lw=0.8, label=f"overall NPL ratio {overall:.2%}")
    ax.axhline((overall + REGULATORY_CAP) * 100, color="grey", ls=":", lw=0.8, label="overall + 3pp (cap)")
    ax.set_xticks(x, t["region"], rotation=20)
    ax.set_ylabel("% of exposure")
    ax.set_title("Expected NPL vs regional tolerance band (red: above band)")
    top = max(float(np.nanmax(t["expected_npl"])) if len(t) else 0.0, overall + REGULATORY_CAP) * 100
    ax.set_ylim(0, top * 1.35)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.18, top=0.9)
    path = Path(path)
    fig.savefig(path, dpi=90, format="png")  # the format from here, not from the suffix (a temporary name)
    plt.close(fig)
    return path


def run_tolerance(scores_path: str | Path, config_path: str | Path, out: str | Path | None = None, data: str | Path | None = None) -> dict:
    """``riskmodel npl-tolerance``: read scores and config, build the table, write table and plot.

    ``out`` is a folder; its three files (``npl_tolerance.parquet``, ``.csv``, ``.png``) are checked
    against the inputs before any work and each is written atomically."""
    scores_path = Path(scores_path)
    if out is not None:
        out = Path(out)
        inputs = [scores_path, config_path, *(hub_paths(data) if data is not None else ())]
        check_outputs({"--out": out}, inputs, directories=("--out",))
        check_outputs({f"--out ({k})": out / f"npl_tolerance.{k}" for k in OUTPUT_SUFFIXES}, inputs)
    cfg = load_config(config_path)
    scores, _ = read_frame(scores_path, "--scores")
    if scores.empty:
        raise UserError(f"--scores {scores_path} has no rows")
    check_one_row_per_loan(scores, f"--scores {scores_path}")
    table = tolerance_table(scores, cfg, data, str(scores_path))
    result: dict[str, Any] = {
        "scores": str(scores_path),
        "config": str(config_path),
        "formula": "band = overall_npl_ratio + min(max_uplift, 0.03) * sum_k w_k * min(x_k / full_k, 1) * industry_factor",
        "overall_npl_ratio": cfg.overall_npl_ratio,
        "max_uplift": cfg.max_uplift,
        "flagged": table.loc[table["flag"] & (table["level"] == "region"), "region"].tolist(),
        "flagged_cells": table.loc[table["flag"] & (table["level"] == "region_industry"), ["region", "industry"]].to_dict("records"),
        "table": table.to_dict("records"),
    }
    if out is not None:
        with atomic_output(out / "npl_tolerance.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_output(out / "npl_tolerance.csv") as tmp:
            table.to_csv(tmp, index=False)
        with atomic_output(out / "npl_tolerance.png") as tmp:
            plot_tolerance(table, cfg.overall_npl_ratio, tmp)
        result["outputs"] = {k: str(out / f"npl_tolerance.{k}") for k in OUTPUT_SUFFIXES}
    return result
