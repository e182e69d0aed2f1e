"""Stress scenarios: shocks on source tables, point-in-time rebuild, rescoring with monotone models.

gbm_monotone and scorecard are trained once on a copy of the session's small hub (1,500 firms), each
in a private MLflow store (the ``trained_model`` fixture); the scenario tests reuse the loaded
models and tables.
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from riskmodel import cli
from riskmodel.errors import UserError
from riskmodel.stress import MANUFACTURING, SCENARIO_DIR, apply_shocks, load_scenario, parse_scenario, stress_book

MONOTONE = ("gbm_monotone", "scorecard")


@pytest.fixture(scope="module")
def trained(trained_model):
    """(hub dir, tables, {model: (TrainedModel, CreditModel)}), each model in a private store."""
    from features.tables import load_tables
    from riskmodel import tracking

    mp = pytest.MonkeyPatch()
    models = {}
    for m in MONOTONE:
        t = trained_model(m, experiment="stress", promote=False)
        mp.setenv("MLFLOW_TRACKING_URI", t.store)
        models[m] = (t, tracking.load_credit_model(t.uri)[0])
    mp.undo()
    hub = models[MONOTONE[0]][0].hub
    tables, _ = load_tables(hub)
    return hub, tables, models


AS_OF = pd.Timestamp("2026-01-01")  # the day after the small hub's snapshot (end 2025-12)


def _scenario(shocks, **kw):
    return parse_scenario({"name": "t", "lgd": 0.4, "shock": shocks, **kw}, "test.toml")


BILLS_WORSE = [{"table": "bills", "columns": ["overdue_count", "overdue_amount"], "factor": 3.0, "months": 12}]
DOWNTURN = [
    {"table": "electricity", "columns": ["kwh"], "factor": 0.7, "months": 6},
    {"table": "social_security", "columns": ["headcount"], "factor": 0.85, "months": 6},
    {"table": "invoices", "columns": ["sales_amount"], "factor": 0.8, "months": 6},
    *BILLS_WORSE,
]


@pytest.mark.slow
@pytest.mark.parametrize("model", MONOTONE)
def test_worsening_every_affected_signal_never_lowers_pd(trained, model):
    """Bills overdue tripled moves every bills signal towards risk (or leaves it): no PD may fall."""
    _, tables, models = trained
    cm = models[model][1]
    r = stress_book(cm, tables, _scenario(BILLS_WORSE), AS_OF)
    fx = r.features.set_index("feature")
    assert (fx["favourable"] == 0).all() and fx["adverse"].sum() > 0  # the precondition: signals only got worse
    assert set(fx.index) <= {"bill_overdue_count_max_12m", "bill_overdue_amount_share", "bill_overdue_months_12m", "bill_max_days_overdue_12m"}
    assert (r.rows["pd_stress"] >= r.rows["pd_base"] - 1e-12).all()
    moved = set(fx.index) & set(cm.features)
    assert moved, "the model must use a shocked feature, else the test proves nothing"
    assert r.summary["el_stress"] >= r.summary["el_base"]


@pytest.mark.slow
@pytest.mark.parametrize("model", MONOTONE)
def test_downturn_rows_with_only_adverse_moves_never_improve(trained, model):
    """A broad downturn also moves ratio signals the favourable way (staff cut raises the R&D staff
    share); on every row where all model features moved towards risk or stayed, PD must not fall."""
    _, tables, models = trained
    cm = models[model][1]
    r = stress_book(cm, tables, _scenario(DOWNTURN), AS_OF)
    dirs = dict(zip(cm.catalog["name"], cm.catalog["direction"].astype(int)))
    base, stress = r.base_features, r.stress_features
    clean = np.ones(len(base), dtype=bool)
    for f in cm.features:
        a = base[f].to_numpy(dtype="float64", na_value=np.nan)
        b = stress[f].to_numpy(dtype="float64", na_value=np.nan)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        d = dirs.get(f, 0)
        ok = same | ((d != 0) & np.isfinite(a) & np.isfinite(b) & (d * (b - a) > 0))
        clean &= ok
    changed = clean & (r.rows["pd_stress"].to_numpy() != r.rows["pd_base"].to_numpy())
    assert changed.sum() >= 20, f"only {changed.sum()} rows moved with adverse-only feature changes"
    assert (r.rows["pd_stress"].to_numpy()[clean] >= r.rows["pd_base"].to_numpy()[clean] - 1e-12).all()
    assert r.summary["mean_pd_stress"] > r.summary["mean_pd_base"]


@pytest.mark.slow
def test_power_cut_hits_only_manufacturing_and_el_adds_up(trained):
    _, tables, models = trained
    cm = models["gbm_monotone"][1]
    sc = load_scenario(SCENARIO_DIR / "power_cut_manufacturing.toml")
    r = stress_book(cm, tables, sc, AS_OF)
    rows = r.rows
    other = ~rows["industry"].isin(MANUFACTURING)
    assert other.any() and (~other).any()
    assert (rows.loc[other, "pd_stress"] == rows.loc[other, "pd_base"]).all()  # AI and software untouched
    assert (rows.loc[~other, "pd_stress"] != rows.loc[~other, "pd_base"]).any()
    # EL = PD x LGD x EAD, summed; segment "all" agrees with the summary
    assert r.summary["el_base"] == pytest.approx((rows["pd_base"] * sc.lgd * rows["ead"]).sum())
    assert r.summary["el_stress"] == pytest.approx((rows["pd_stress"] * sc.lgd * rows["ead"]).sum())
    allrow = r.segments[r.segments["segment"] == "all"].iloc[0]
    assert allrow["el_change"] == pytest.approx(r.summary["el_change"])
    ind = r.segments[r.segments["segment"] == "industry"]
    assert ind["n"].sum() == len(rows) and ind["el_change"].sum() == pytest.approx(r.summary["el_change"])
    assert r.migration.to_numpy().sum() == len(rows)
    json.dumps(r.to_dict())  # JSON-able


def test_shocks_touch_only_the_window_and_firms(small_hub):
    from features.tables import load_tables

    tables, _ = load_tables(small_hub, ["firms", "electricity", "certifications"])
    sc = load_scenario("power_cut_manufacturing")  # a shipped scenario by name
    shocked, counts = apply_shocks(tables, sc, AS_OF)
    old, new = tables["electricity"], shocked["electricity"]
    assert old is not new and tables["electricity"]["kwh"].equals(old["kwh"])  # the input is not modified
    changed = (old["kwh"] != new["kwh"]).to_numpy()
    assert counts[0]["rows_changed"] >= changed.sum() > 0
    months = pd.to_datetime(old.loc[changed, "month"])
    assert (months >= pd.Timestamp("2025-07-01")).all() and (months < AS_OF).all()
    ind = old.merge(tables["firms"][["firm_id", "industry"]], on="firm_id", how="left")["industry"]
    assert ind[changed].isin(MANUFACTURING).all()
    assert np.allclose(new.loc[changed, "kwh"], old.loc[changed, "kwh"] * 0.8)
    lapse = load_scenario(SCENARIO_DIR / "certification_lapse.toml")
    shocked, counts = apply_shocks(tables, lapse, AS_OF)
    c_old, c_new = tables["certifications"], shocked["certifications"]
    hit = (c_old["expiry_date"] != c_new["expiry_date"]).to_numpy()
    assert hit.any() and (c_old.loc[hit, "cert_type"] == "high_tech").all()
    assert (pd.to_datetime(c_new.loc[hit, "expiry_date"]) < AS_OF).all() and (pd.to_datetime(c_old.loc[hit, "expiry_date"]) >= AS_OF).all()
    valid = (c_old["cert_type"] == "high_tech") & (pd.to_datetime(c_old["issue_date"]) < AS_OF) & (pd.to_datetime(c_old["expiry_date"]) >= AS_OF)
    assert 0.3 < hit.sum() / valid.sum() < 0.7  # share = 0.5 of firms


def test_shipped_scenarios_parse():
    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml") if p.stem != "npl_tolerance")
    assert names == ["certification_lapse", "power_cut_manufacturing", "sector_downturn"]
    for n in names:
        sc = load_scenario(SCENARIO_DIR / f"{n}.toml")
        assert sc.name == n and 0 < sc.lgd <= 1 and sc.shocks


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"lgd": 0.4, "shock": BILLS_WORSE}, r"missing required key 'name'"),
        ({"name": "x", "shock": BILLS_WORSE}, r"missing required key 'lgd'"),
        ({"name": "x", "lgd": "45%", "shock": BILLS_WORSE}, r"lgd must be a number in \(0, 1\]"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "weather", "columns": ["x"], "factor": 1, "months": 1}]}, r"shock #1: table must be one of"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "columns": ["watts"], "factor": 1, "months": 1}]}, r"column\(s\) \['watts'\] are not numeric value columns of electricity"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "columns": ["kwh"], "factor": -1, "months": 1}]}, r"factor must be a number from 0 to 100"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "columns": ["kwh"], "factor": 1e300, "months": 1}]}, r"factor must be a number from 0 to 100 .*got 1e\+300"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "columns": ["kwh"], "factor": 0.8, "months": "6"}]}, r"months must be a whole number"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "columns": ["kwh"], "factor": 0.8, "months": 6, "regions": ["mars"]}]}, r"unknown name\(s\) \['mars'\]; known: jingjinji"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "columns": ["kwh"], "factor": 0.8, "months": 6, "industries": "farming"}]}, r"unknown name\(s\) \['farming'\]"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "bills", "lapse": ["high_tech"]}]}, r"'lapse' applies to table certifications only"),
        ({"name": "x", "lgd": 0.4, "shock": [{"table": "electricity", "factor": 0.8, "months": 6}]}, r"shock #1: missing required key 'columns'"),
        ({"name": "x", "lgd": 0.4, "shock": BILLS_WORSE, "severity": "high"}, r"unknown key\(s\) \['severity'\]"),
        ({"name": "x", "lgd": 0.4, "shock": []}, r"'shock' must be one or more \[\[shock\]\] tables"),
    ],
)
def test_bad_scenario_is_one_clear_error(raw, message):
    with pytest.raises(UserError, match=message) as err:
        parse_scenario(raw, "s.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("s.toml: ")


def test_cli_bad_scenario_one_line_exit_2(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nlgd = 0.4\n[[shock]]\ntable = "electricity"\ncolumns = ["kwh"]\nfactor = 0.8\nmonths = 6\nregions = ["atlantis"]\n')
    monkeypatch.setattr(sys, "argv", ["riskmodel", "stress", "--model", "models:/none/1", "--data", str(tmp_path), "--scenario", str(bad)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert re.search(r"shock #1.regions: unknown name\(s\) \['atlantis'\]", err) and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_stress_prints_and_writes(trained, tmp_path, monkeypatch, capsys):
    hub, _, models = trained
    model = models["gbm_monotone"][0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    out = tmp_path / "stressed.parquet"
    monkeypatch.setattr(sys, "argv", ["riskmodel", "stress", "--model", model.uri, "--data", str(hub), "--scenario", "sector_downturn", "--out", str(out), "--json"])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    assert code == 0, captured.err
    r = json.loads(captured.out)
    assert r["scenario"]["name"] == "sector_downturn" and r["summary"]["el_change"] > 0
    assert r["model"]["uri"] == model.uri
    rows = pd.read_parquet(out)
    assert {"application_id", "region", "industry", "amount", "pd", "pd_base", "grade_stress"} <= set(rows.columns)
    assert len(rows) == r["summary"]["n"]
