"""Certification and bid signals on the worked example of feature_fixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_fixtures import assert_unchanged, build, company_tables, snapshot

CERT = ["high_tech_valid", "high_tech_months_to_expiry", "tech_sme_valid", "specialized_valid", "little_giant_valid"]


def test_certifications_by_hand():
    t = company_tables()
    before = snapshot(t)
    X = build(t, CERT)
    assert_unchanged(before, t)
    assert X.loc["a1", ["high_tech_valid", "tech_sme_valid", "specialized_valid", "little_giant_valid"]].tolist() == [1, 1, 0, 0]
    days = (pd.Timestamp("2025-10-31") - pd.Timestamp("2024-07-15")).days
    assert X.loc["a1", "high_tech_months_to_expiry"] == pytest.approx(days / 30.4375)
    # on 2024-05-15 the tech-SME listing (published 2024-05-20) is not yet known
    assert X.loc["a0", "tech_sme_valid"] == 0
    # B: little giant (counts as 专精特新 too); its high-tech certificate is published after b1
    assert X.loc["b1", ["high_tech_valid", "tech_sme_valid", "specialized_valid", "little_giant_valid"]].tolist() == [0, 0, 1, 1]
    assert np.isnan(X.loc["b1", "high_tech_months_to_expiry"])


def test_expired_certificate_is_not_valid():
    t = company_tables()
    t["applications"].loc[0, "application_date"] = np.datetime64("2025-11-01")  # high-tech expired 2025-10-31
    X = build(t, ["high_tech_valid", "high_tech_months_to_expiry"])
    assert X.loc["a1", "high_tech_valid"] == 0 and np.isnan(X.loc["a1", "high_tech_months_to_expiry"])


def test_bids_by_hand():
    t = company_tables()
    X = build(t, ["bids_won_24m", "bid_amount_24m"])
    assert X.loc["a1"].tolist() == [1, 200]  # T0 (2021) is outside the 24 months
    assert X.loc["b1"].tolist() == [0, 0]
    t["bids"].loc[0, "available_date"] = pd.Timestamp("2024-07-15")  # published on the application day: not known
    X = build(t, ["bids_won_24m", "bid_amount_24m"])
    assert X.loc["a1"].tolist() == [0, 0]
