"""The registry, the catalog generated from it, the docs page, grades and the features/catalog commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_fixtures import build, company_tables, write_dir
from features import privacy
from features.asof import AccessError, Applications, EventTable, EventWindow, FirmIndex
from features.build import _applications, _run
from features.catalog import DOCS_PATH, _dry_reads, catalog, catalog_markdown, column_grades
from features.contract import CATALOG_COLUMNS
from features.registry import FAMILIES, signal
from features.signals import load_all
from riskmodel import cli

HERE = Path(__file__).resolve().parent


def test_catalog_follows_the_contract():
    cat = catalog()
    assert list(cat.columns) == list(CATALOG_COLUMNS)
    assert cat["name"].is_unique
    assert (cat["kind"] == "signal").sum() >= 35
    assert set(cat.loc[cat["kind"] == "product", "name"]) == {"rnd_intensity_band", "tech_maturity_index", "growth_score", "innovation_points", "tech_sme_score"}
    assert set(cat["family"]) == set(FAMILIES)
    assert set(cat["grade"]) <= {"L1", "L2", "L3"}
    assert set(cat["direction"]) <= {-1, 0, 1} and cat["lookback_months"].dtype == np.int64
    for col in ("name_zh", "name_en", "unit", "description", "reason_en", "reason_zh", "tables"):
        assert (cat[col].str.len() > 0).all(), col
    assert cat["name_zh"].map(lambda s: bool(re.search(r"[\u4e00-\u9fff]", s))).all()
    assert cat["name"].map(lambda s: bool(re.fullmatch(r"[a-z][a-z0-9_]*", s))).all()
    # the financial-only baseline sees statements, collateral, age and size
    base = set(cat.loc[cat["family"].isin(["finance", "firm"]), "name"])
    assert {"leverage", "collateral_coverage", "firm_age_years", "firm_size_headcount"} <= base


def test_catalog_is_a_copy():
    cat = catalog()
    cat.loc[0, "grade"] = "L4"
    assert catalog().loc[0, "grade"] != "L4"


def test_grades_and_tables_come_from_the_columns_read():
    cat = catalog().set_index("name")
    assert cat.loc["invention_patent_stock", ["tables", "grade"]].tolist() == ["patents", "L1"]
    assert cat.loc["energy_yoy_12m", ["tables", "grade"]].tolist() == ["electricity", "L3"]
    assert cat.loc["bill_overdue_months_12m", "grade"] == "L2"
    # row presence in an internal feed plus the L1 founding date: declared L2, not derived as L1
    assert cat.loc["coverage_electricity_share_12m", ["tables", "grade", "unit"]].tolist() == ["electricity,firms", "L2", "share"]
    assert cat.loc["coverage_financials_share_24m", ["tables", "grade"]].tolist() == ["financials,firms", "L2"]
    assert cat.loc["senior_titles_per_100", "tables"] == "social_security,talent"  # through firm_size_headcount
    assert cat.loc["tech_sme_score", ["tables", "grade", "lookback_months"]].tolist() == ["financials,patents,rnd_deductions,social_security", "L3", 0]
    assert cat.loc["growth_score", "lookback_months"] == 36


#: features whose value can be negative: growth rates, margins, return on assets, an industry-relative change
SIGNED = {
    "rnd_growth", "energy_yoy_12m", "energy_momentum_3m", "energy_yoy_vs_industry", "headcount_growth_6m",
    "headcount_growth_12m", "sales_growth_yoy", "sales_momentum_3m", "net_margin", "return_on_assets", "gross_margin",
    "ocf_margin", "revenue_growth",
}


def test_lower_bounds_are_declared_on_the_signals():
    cat = catalog().set_index("name")
    assert cat["lower_bound"].dtype == np.float64
    assert set(cat.index[cat["lower_bound"].isna()]) == SIGNED
    assert (cat.loc[~cat.index.isin(SIGNED), "lower_bound"] == 0.0).all()
    # every count, amount, share, duration, score and flag is bounded, whatever its unit says
    assert cat.loc[["purchase_to_sales", "leverage", "rnd_intensity_band", "high_tech_valid", "firm_age_years"], "lower_bound"].tolist() == [0.0] * 5


def test_build_refuses_a_feature_below_its_declared_bound():
    from features.registry import Signal

    t = company_tables()
    frame = _applications(t, None, None)
    kw = dict(name_zh="测试", name_en="t", family="finance", kind="signal", lookback_months=0, direction=0, unit="", description="",
              reason_en="", reason_zh="", actionable=True, grade=None, params=("applications",), module=__name__)
    minus = Signal(name="minus_one", func=lambda applications: np.where(np.arange(applications.n) == 1, -1.0, 2.0), lower_bound=0.0, **kw)
    with pytest.raises(RuntimeError, match=r"feature minus_one returned -1\.0 for row 1, below its declared lower bound 0"):
        _run(t, frame, [minus], None)
    signed = Signal(name="minus_one", func=minus.func, lower_bound=None, **kw)
    results, *_ = _run(t, frame, [signed], None)
    assert results["minus_one"].min() == -1.0


def test_dry_run_reads_match_a_real_build():
    """Grades are derived from a run on empty tables; the same columns are read on real data."""
    t = company_tables()
    frame = _applications(t, None, None)
    _, reads, _, _, _ = _run(t, frame, list(load_all().values()), None)
    dry = _dry_reads()
    assert {k: frozenset(v) for k, v in reads.items()} == dry


def test_every_feature_has_a_hand_computed_test():
    text = "".join(p.read_text() for p in HERE.glob("test_signals_*.py") if p.name != Path(__file__).name)
    untested = [n for n in catalog()["name"] if f'"{n}"' not in text]
    assert not untested, f"features without a hand-computed test: {untested}"


def test_docs_page_is_generated_from_the_catalog():
    assert DOCS_PATH.read_text(encoding="utf-8") == catalog_markdown(), (
        "docs/features.md is stale: run `riskmodel catalog --format md --out docs/features.md`"
    )


def test_windows_refuse_restricted_and_unknown_columns():
    t = company_tables()
    index = FirmIndex(t["firms"]["firm_id"])
    apps = Applications(_applications(t, None, None), index)
    w = EventWindow(EventTable("firms", t["firms"], index), apps, 0)
    with pytest.raises(AccessError, match=r"firms\.registration_id is L4 \(restricted\)"):
        w["registration_id"]
    with pytest.raises(AccessError, match=r"firms\.legal_rep_id is L4"):
        w.latest("available_date")["legal_rep_id"]
    with pytest.raises(AccessError, match="table firms has no column 'revenue'"):
        w["revenue"]


def test_matrix_has_no_identifiers_and_release_follows_grades():
    t = company_tables()
    X = build(t).reset_index()
    raw_ids = set(t["firms"]["registration_id"]) | set(t["firms"]["legal_rep_id"])
    assert not raw_ids & set(X.astype(str).to_numpy().ravel())
    grades = column_grades()
    assert set(X.columns) <= set(grades)
    assert privacy.release(X, "L3", grades) is X
    with pytest.raises(privacy.ReleaseError, match=r"column\(s\) above grade L2: .*leverage \(L3\)"):
        privacy.release(X, "L2", grades)
    public = [c for c in X.columns if grades[c] in ("L1", "L2")]
    assert "invention_patent_stock" in public and "bill_overdue_months_12m" in public
    privacy.release(X[public], "L2", grades)


def test_registry_rejects_bad_declarations():
    kw = dict(name_zh="测试", name_en="t", lookback_months=1, unit="", description="", reason_en="", reason_zh="")
    with pytest.raises(ValueError, match="unknown family 'weather'"):
        signal(family="weather", direction=1, **kw)
    with pytest.raises(ValueError, match="direction must be -1, 0 or \\+1"):
        signal(family="energy", direction=2, **kw)
    with pytest.raises(ValueError, match="lookback_months must be a non-negative int"):
        signal(family="energy", direction=1, **{**kw, "lookback_months": -3})
    for bad in (float("nan"), float("inf"), "0", True):
        with pytest.raises(ValueError, match="lower_bound must be a finite number or None"):
            signal(family="energy", direction=1, lower_bound=bad, **kw)


def test_signal_outputs_are_float64_and_segments_are_strings():
    X = build(company_tables())
    feats = catalog()["name"].tolist()
    assert all(X[c].dtype == np.float64 for c in feats)
    assert not np.isinf(X[feats].to_numpy()).any()
    assert X["application_date"].dtype == "datetime64[ns]"
    assert list(X.columns[:7]) == ["firm_id", "application_date", "industry", "region", "lifecycle_stage", "size_band", "product"]


def test_cli_catalog_formats(tmp_path, monkeypatch, capsys):
    def run(*args):
        monkeypatch.setattr("sys.argv", ["riskmodel", "catalog", *args])
        try:
            cli.main()
        except SystemExit as e:
            assert e.code in (0, None)
        return capsys.readouterr().out

    text = run("--format", "json")
    records = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert len(records) == len(catalog()) and records[0]["name"] == catalog()["name"][0]
    bounds = {r["name"]: r["lower_bound"] for r in records}
    assert bounds["net_margin"] is None and bounds["leverage"] == 0.0
    csv = tmp_path / "c.csv"
    run("--format", "csv", "--out", str(csv))
    assert pd.read_csv(csv)["name"].tolist() == catalog()["name"].tolist()
    assert run("--format", "md").startswith("# Feature catalog")
    monkeypatch.setattr("sys.argv", ["riskmodel", "catalog", "--format", "xml"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2 and "--format must be md, json or csv" in capsys.readouterr().err


def test_cli_features_writes_the_matrix(tmp_path, monkeypatch, capsys):
    data = write_dir(tmp_path / "data", company_tables())
    out = tmp_path / "X.parquet"
    monkeypatch.setattr("sys.argv", ["riskmodel", "features", "--data", str(data), "--out", str(out), "--json"])
    try:
        cli.main()
    except SystemExit as e:
        assert e.code in (0, None)
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 3 and summary["features"] == len(catalog())
    assert "talent" in summary["missing_tables"]
    X = pd.read_parquet(out)
    assert X["application_id"].tolist() == ["a1", "a0", "b1"]
    assert X.loc[0, "tech_sme_score"] == 100

    monkeypatch.setattr("sys.argv", ["riskmodel", "features", "--data", str(data), "--out", str(out), "--as-of", "2024-07-15"])
    try:
        cli.main()
    except SystemExit as e:
        assert e.code in (0, None)
    assert "wrote" in capsys.readouterr().out
    assert pd.read_parquet(out)["application_id"].tolist() == ["A@2024-07-15", "B@2024-07-15"]


def test_feature_code_version_is_stable_and_tracks_the_code():
    from features.catalog import feature_code_version

    v = feature_code_version()
    assert v == feature_code_version() and re.fullmatch(r"[0-9a-f]{16}", v)
