"""Innovation signals (R&D, claims, patents) on the worked example of feature_fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from feature_fixtures import assert_unchanged, build, company_tables, snapshot

RND = ["rnd_intensity_1y", "rnd_intensity_3y", "rnd_growth", "rnd_claim_gap", "high_tech_revenue_share", "rnd_staff_share", "rnd_to_total_cost"]
IP = ["invention_patent_stock", "class2_ip_stock", "patent_grants_24m", "patent_lapse_rate_36m", "software_copyrights", "pledged_patents", "invention_share"]


def test_rnd_signals_by_hand():
    t = company_tables()
    before = snapshot(t)
    X = build(t, RND + ["coverage_financials_share_24m", "coverage_rnd_deductions_share_24m"])
    assert_unchanged(before, t)
    a1 = X.loc["a1"]
    assert a1["rnd_intensity_1y"] == pytest.approx(93 / 1500)
    assert a1["rnd_intensity_3y"] == pytest.approx((40 + 60 + 93) / (1000 + 1200 + 1500))
    assert a1["rnd_growth"] == pytest.approx(93 / 60 - 1)
    assert a1["rnd_claim_gap"] == pytest.approx((93 - 81) / 93)
    assert a1["high_tech_revenue_share"] == pytest.approx(1000 / 1500)
    assert a1["rnd_staff_share"] == pytest.approx(15 / 50)
    assert a1["rnd_to_total_cost"] == pytest.approx(93 / (1500 + 30))
    # fiscal years ending in the 24 months before 2024-07-15: FY2022 and FY2023, both on file; claims for 2022 and 2023
    assert a1["coverage_financials_share_24m"] == 1.0
    assert a1["coverage_rnd_deductions_share_24m"] == 1.0

    # On 2024-05-15 the FY2023 statement (filed 2024-05-31) is unknown; the 2023 R&D claim (2024-05-10) is known.
    a0 = X.loc["a0"]
    assert a0["rnd_intensity_1y"] == pytest.approx(60 / 1200)
    assert a0["rnd_intensity_3y"] == pytest.approx((40 + 60) / (1000 + 1200))
    assert a0["rnd_growth"] == pytest.approx(60 / 40 - 1)
    assert np.isnan(a0["rnd_claim_gap"])  # the claim's year has no statement yet
    assert a0["rnd_staff_share"] == pytest.approx(15 / 50)
    assert a0["coverage_financials_share_24m"] == 1.0  # FY2023 filed by nobody yet: only FY2022 is observable

    assert X.loc["b1", RND].isna().all()  # B files nothing
    assert X.loc["b1", "coverage_financials_share_24m"] == 0  # FY2022 and FY2023 were observable, none on file
    assert X.loc["b1", "coverage_rnd_deductions_share_24m"] == 0


def test_claim_gap_matches_same_year():
    t = company_tables()
    fin = t["financials"]
    t["rnd_deductions"] = t["rnd_deductions"].iloc[:1]  # only the 2022 claim (55 vs 60 reported)
    X = build(t, ["rnd_claim_gap"])
    assert X.loc["a1", "rnd_claim_gap"] == pytest.approx((60 - 55) / 60)
    assert len(fin) == 3


def test_stale_statement_is_not_used():
    t = company_tables()
    t["applications"].loc[0, "application_date"] = np.datetime64("2026-03-01")
    X = build(t, ["rnd_intensity_1y", "rnd_intensity_3y", "revenue_growth"])
    # FY2023 ended 2023-12-31, more than 24 months before 2026-03-01: too old for the 1-year signal
    assert np.isnan(X.loc["a1", "rnd_intensity_1y"])
    assert np.isnan(X.loc["a1", "revenue_growth"])  # 36-month window holds FY2023 only
    assert X.loc["a1", "rnd_intensity_3y"] == pytest.approx((60 + 93) / (1200 + 1500))  # 48 months: FY2022, FY2023


def test_patent_signals_by_hand():
    t = company_tables()
    X = build(t, IP)
    a1 = X.loc["a1"]
    assert a1["invention_patent_stock"] == 2  # P1, P2 (P3 lapsed)
    assert a1["class2_ip_stock"] == 3  # P4, S1, S2 (P5 lapsed, P6 not yet published)
    assert a1["patent_grants_24m"] == 2  # P3 2022-08, P4 2023-01
    assert a1["patent_lapse_rate_36m"] == pytest.approx(1 / 5)  # P3 lapse; grants P1-P5
    assert a1["software_copyrights"] == 2
    assert a1["pledged_patents"] == 1  # P2 (P1 released)
    assert a1["invention_share"] == pytest.approx(2 / 3)
    # On 2024-05-15: P3's lapse (2024-02-01, published 2024-03-02) is known as well
    assert X.loc["a0", "invention_patent_stock"] == 2
    assert X.loc["b1", ["invention_patent_stock", "class2_ip_stock", "patent_grants_24m", "software_copyrights", "pledged_patents"]].tolist() == [0, 0, 0, 0, 0]
    assert np.isnan(X.loc["b1", "patent_lapse_rate_36m"]) and np.isnan(X.loc["b1", "invention_share"])
