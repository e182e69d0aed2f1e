"""Finance and loan-level signals on the worked example of feature_fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from feature_fixtures import assert_unchanged, build, company_tables, snapshot

FIN = ["leverage", "net_margin", "return_on_assets", "gross_margin", "ocf_margin", "revenue_growth", "current_ratio", "revenue_latest", "collateral_coverage", "loan_to_revenue"]


def test_finance_by_hand():
    t = company_tables()
    before = snapshot(t)
    X = build(t, FIN)
    assert_unchanged(before, t)
    a1 = X.loc["a1"]
    assert a1["leverage"] == pytest.approx(1500 / 2500)
    assert a1["net_margin"] == pytest.approx(-30 / 1500)
    assert a1["return_on_assets"] == pytest.approx(-30 / 2500)
    assert a1["gross_margin"] == pytest.approx((1500 - 800) / 1500)
    assert a1["ocf_margin"] == pytest.approx(-50 / 1500)
    assert a1["revenue_growth"] == pytest.approx(1500 / 1200 - 1)
    assert a1["current_ratio"] == pytest.approx(1000 / 800)
    assert a1["revenue_latest"] == 1500
    assert a1["collateral_coverage"] == pytest.approx(150 / 300)
    assert a1["loan_to_revenue"] == pytest.approx(300 / 1500)

    a0 = X.loc["a0"]  # FY2022 is the latest statement known on 2024-05-15
    assert a0["leverage"] == pytest.approx(1100 / 2200)
    assert a0["revenue_growth"] == pytest.approx(1200 / 1000 - 1)
    assert a0["collateral_coverage"] == 0
    assert a0["loan_to_revenue"] == pytest.approx(240 / 1200)

    b1 = X.loc["b1"]
    assert b1["collateral_coverage"] == pytest.approx(100 / 80)
    assert b1[[c for c in FIN if c != "collateral_coverage"]].isna().all()


def test_revenue_growth_needs_consecutive_years():
    t = company_tables()
    t["financials"] = t["financials"][t["financials"]["fiscal_year"] != 2022].reset_index(drop=True)
    X = build(t, ["revenue_growth", "rnd_growth"])
    assert np.isnan(X.loc["a1", "revenue_growth"]) and np.isnan(X.loc["a1", "rnd_growth"])


def test_zero_denominators_give_nan_not_inf():
    t = company_tables()
    t["financials"].loc[:, "total_assets"] = 0.0
    t["applications"].loc[:, "amount"] = 0.0
    X = build(t, ["leverage", "return_on_assets", "collateral_coverage"])
    assert X.isna().all().all()
