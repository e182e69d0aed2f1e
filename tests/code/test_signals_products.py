"""Data products: formulas checked by hand on the worked example and on their step tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_fixtures import build, company_tables
from features.products import rnd_threshold, tech_sme_score

PRODUCTS = ["rnd_intensity_band", "tech_maturity_index", "growth_score", "innovation_points", "tech_sme_score"]


def test_products_by_hand():
    X = build(company_tables(), PRODUCTS)
    a1 = X.loc["a1"]
    assert a1["rnd_intensity_band"] == 2  # 193 / 3700 = 5.2% >= 5% (revenue 1500 <= 5000)
    age = (pd.Timestamp("2024-07-15") - pd.Timestamp("2015-01-01")).days / 365.25
    # invention 2/10*30, class II 3/20*10, high-tech 15, no 专精特新/小巨人, high-tech revenue 66.7% (>=60%) 20, age
    assert a1["tech_maturity_index"] == pytest.approx(6 + 1.5 + 15 + 0 + 0 + 20 + 15 * age / 10)
    # revenue growth 25% -> 0.6875 (w 25), headcount flat -> 0.4 (w 20), R&D growth 55% -> 1 (w 15); no invoices/meter
    assert a1["growth_score"] == pytest.approx(100 * (25 * 0.6875 + 20 * 0.4 + 15 * 1.0) / 60)
    # 15 (R&D 6.2%) + 10 (R&D +55%) + 10 (2 inventions) + 0 (3 class II) + 5 (grants) + 10 (revenue +25%)
    # + 10 (high-tech revenue 67%) + 0 (ROA < 0) + 0 + 0 (no talent table) + 5 (a tender won)
    assert a1["innovation_points"] == 65
    assert a1["tech_sme_score"] == 20 + 50 + 30  # staff 30%, R&D 6.2%, an invention patent

    a0 = X.loc["a0"]  # FY2022: R&D 60/1200 = 5% -> 40; R&D/costs 60/1140 = 5.3% -> 0; staff 30% -> 20; IP 30
    assert a0["tech_sme_score"] == 90
    assert a0["rnd_intensity_band"] == 1  # 100 / 2200 = 4.5%: at least half of 5%, below it

    b1 = X.loc["b1"]
    assert np.isnan(b1["rnd_intensity_band"]) and np.isnan(b1["growth_score"])
    assert b1["tech_sme_score"] == 0  # no staff data, no R&D, no IP: zero points, not missing
    assert b1["tech_maturity_index"] == pytest.approx(5 + 5 + 15 * (pd.Timestamp("2024-07-15") - pd.Timestamp("2020-03-01")).days / 365.25 / 10)


def test_high_tech_threshold_bands():
    got = rnd_threshold(np.array([100.0, 5000.0, 5000.5, 20000.0, 20000.5, np.nan]))
    np.testing.assert_array_equal(got[:5], [0.05, 0.05, 0.04, 0.04, 0.03])
    assert np.isnan(got[5])


def test_tech_sme_tables():
    staff = np.array([0.31, 0.27, 0.22, 0.17, 0.12, 0.05])
    nan = np.full(6, np.nan)
    zero = np.zeros(6)
    np.testing.assert_array_equal(tech_sme_score(staff, nan, nan, zero, zero), [20, 16, 12, 8, 4, 0])
    rnd = np.array([0.065, 0.055, 0.045, 0.035, 0.025, 0.01])
    np.testing.assert_array_equal(tech_sme_score(nan, rnd, nan, zero, zero), [50, 40, 30, 20, 10, 0])
    cost = np.array([0.31, 0.27, 0.22, 0.17, 0.12, 0.05])
    np.testing.assert_array_equal(tech_sme_score(nan, nan, cost, zero, zero), [50, 40, 30, 20, 10, 0])
    # the better of the two R&D tests counts
    np.testing.assert_array_equal(tech_sme_score(nan, rnd[::-1], cost, zero, zero), [50, 40, 30, 30, 40, 50])
    class2 = np.array([0, 1, 2, 3, 4, 9.0])
    np.testing.assert_array_equal(tech_sme_score(nan, nan, nan, zero, class2), [0, 6, 12, 18, 24, 24])
    np.testing.assert_array_equal(tech_sme_score(nan, nan, nan, np.ones(6), class2), [30] * 6)
    assert np.isnan(tech_sme_score(nan, nan, nan, nan, nan)).all()
