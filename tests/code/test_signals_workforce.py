"""Workforce, talent and firm signals (and segment columns) on hand-built tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_fixtures import applications, assert_unchanged, build, firms, monthly, rows, snapshot

HEADCOUNT = [40, 40, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 60, 60, 55, 50, 45]  # 2023-01 .. 2024-06


def _talent(person, credential, event, day, available=None):
    return {"firm_id": "A", "person_id": person, "credential": credential, "event": event,
            "event_date": pd.Timestamp(day), "available_date": pd.Timestamp(available or day) + pd.Timedelta(days=20)}


@pytest.fixture()
def tables():
    return {
        "firms": firms(
            {"firm_id": "A", "founding_date": "2015-01-01", "registered_capital": 1234.0},
            {"firm_id": "B", "founding_date": "2023-01-10", "industry": "software", "region": "greater_bay"},
        ),
        "applications": applications(
            {"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"},
            {"application_id": "b1", "firm_id": "B", "application_date": "2024-07-15", "product": "talent_loan"},
        ),
        "social_security": monthly("social_security", "A", "2023-01-01", headcount=HEADCOUNT),
        "talent": rows(
            "talent",
            _talent("p1", "national_programme", "join", "2018-05-01"),
            _talent("p2", "provincial_programme", "join", "2020-01-01"),
            _talent("p2", "provincial_programme", "leave", "2023-03-01"),
            _talent("p3", "senior_title", "join", "2019-02-01"),
            _talent("p4", "senior_title", "join", "2021-09-01"),
            _talent("p5", "doctorate", "join", "2022-04-01"),
            _talent("p6", "senior_title", "join", "2024-07-01"),  # published 2024-07-21: after the application
            _talent("p7", "doctorate", "join", "2010-01-01"),  # outside the 120-month lookback
        ),
    }


def test_workforce_by_hand(tables):
    before = snapshot(tables)
    X = build(tables, ["headcount_growth_6m", "headcount_growth_12m", "headcount_drawdown_12m", "firm_size_headcount", "coverage_social_security_share_12m"])
    assert_unchanged(before, tables)
    last3 = (55 + 50 + 45) / 3
    assert X.loc["a1", "headcount_growth_6m"] == pytest.approx(last3 / ((54 + 56 + 58) / 3) - 1)
    assert X.loc["a1", "headcount_growth_12m"] == pytest.approx(last3 / ((42 + 44 + 46) / 3) - 1)
    assert X.loc["a1", "headcount_drawdown_12m"] == pytest.approx(1 - 45 / 60)
    assert X.loc["a1", "firm_size_headcount"] == 45
    assert X.loc["a1", "coverage_social_security_share_12m"] == 1.0
    assert X.loc["b1", ["headcount_growth_6m", "headcount_growth_12m", "headcount_drawdown_12m", "firm_size_headcount"]].isna().all()
    assert X.loc["b1", "coverage_social_security_share_12m"] == 0


def test_talent_by_hand(tables):
    X = build(tables, ["high_level_talent", "senior_titles_per_100", "doctorates", "talent_departure_rate_24m"])
    assert X.loc["a1", "high_level_talent"] == 1  # p1; p2 joined and left
    assert X.loc["a1", "senior_titles_per_100"] == pytest.approx(100 * 2 / 45)  # p3, p4 (p6 not yet published)
    assert X.loc["a1", "doctorates"] == 1  # p5 (p7 joined before the lookback)
    # p2 left in 2023-03; p1, p3, p4, p5 are still on the books
    assert X.loc["a1", "talent_departure_rate_24m"] == pytest.approx(1 / (1 + 4))
    assert X.loc["b1", ["high_level_talent", "doctorates"]].tolist() == [0, 0]
    assert np.isnan(X.loc["b1", "senior_titles_per_100"])  # no headcount
    assert np.isnan(X.loc["b1", "talent_departure_rate_24m"])  # no credentialed staff


def test_firm_signals_and_segments(tables):
    X = build(tables)
    days_a = (pd.Timestamp("2024-07-15") - pd.Timestamp("2015-01-01")).days
    assert X.loc["a1", "firm_age_years"] == pytest.approx(days_a / 365.25)
    assert X.loc["b1", "firm_age_years"] == pytest.approx((pd.Timestamp("2024-07-15") - pd.Timestamp("2023-01-10")).days / 365.25)
    assert X.loc["a1", "registered_capital"] == 1234.0
    assert X.loc["a1", ["industry", "region", "lifecycle_stage", "size_band", "product"]].tolist() == ["ai", "central", "mature", "small", "rnd_loan"]
    assert X.loc["b1", ["industry", "region", "lifecycle_stage", "size_band", "product"]].tolist() == ["software", "greater_bay", "startup", "unknown", "talent_loan"]


def test_firm_not_yet_registered_has_no_segment():
    t = {
        "firms": firms({"firm_id": "A", "founding_date": "2024-08-01"}),
        "applications": applications({"application_id": "a", "firm_id": "A", "application_date": "2024-07-15"}),
    }
    X = build(t)
    assert pd.isna(X.loc["a", "industry"]) and np.isnan(X.loc["a", "firm_age_years"])
    assert X.loc["a", "lifecycle_stage"] == "unknown"
