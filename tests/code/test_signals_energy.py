"""Energy signals on hand-built electricity tables; expected values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from feature_fixtures import applications, assert_unchanged, build, concat, firms, monthly, snapshot

NAMES = ["energy_yoy_12m", "energy_momentum_3m", "energy_volatility_12m", "energy_zero_months_12m", "energy_yoy_vs_industry", "coverage_electricity_share_12m"]


@pytest.fixture()
def tables():
    # A: 12 months at 100 kWh, then 9 at 80 and 3 at 50 (2022-07 .. 2024-06)
    a = monthly("electricity", "A", "2022-07-01", kwh=[100] * 12 + [80] * 9 + [50] * 3)
    # B: 12 months at 200, then alternating 0 / 100 (2023-07 = 0 ... 2024-06 = 100)
    b = monthly("electricity", "B", "2022-07-01", kwh=[200] * 12 + [0, 100] * 6)
    # C (another industry): flat 30
    c = monthly("electricity", "C", "2022-07-01", kwh=[30] * 24)
    return {
        "firms": firms({"firm_id": "A"}, {"firm_id": "B"}, {"firm_id": "C", "industry": "software"}, {"firm_id": "E"}),
        "applications": applications(
            {"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"},
            {"application_id": "b1", "firm_id": "B", "application_date": "2024-07-15"},
            {"application_id": "c1", "firm_id": "C", "application_date": "2024-07-15"},
            {"application_id": "e1", "firm_id": "E", "application_date": "2024-07-15"},
            # June 2024 is billed on 2024-07-11: unknown to an application on 2024-07-05
            {"application_id": "a0", "firm_id": "A", "application_date": "2024-07-05"},
        ),
        "electricity": concat(a, b, c),
    }


def test_energy_signals_by_hand(tables):
    before = snapshot(tables)
    X = build(tables, NAMES)
    assert_unchanged(before, tables)

    mean_a = (9 * 80 + 3 * 50) / 12  # 72.5
    assert X.loc["a1", "energy_yoy_12m"] == pytest.approx(mean_a / 100 - 1)
    assert X.loc["a1", "energy_momentum_3m"] == pytest.approx(50 / mean_a - 1)
    # seasonally adjusted: std of log(kWh / same month a year earlier) = 9 x log(0.8), 3 x log(0.5)
    assert X.loc["a1", "energy_volatility_12m"] == pytest.approx(np.std([np.log(0.8)] * 9 + [np.log(0.5)] * 3))
    assert X.loc["a1", "energy_zero_months_12m"] == 0

    assert X.loc["b1", "energy_yoy_12m"] == pytest.approx(50 / 200 - 1)
    assert X.loc["b1", "energy_momentum_3m"] == pytest.approx((100 + 0 + 100) / 3 / 50 - 1)
    assert X.loc["b1", "energy_volatility_12m"] == 0.0  # the six non-zero months are all half of a year before
    assert X.loc["b1", "energy_zero_months_12m"] == 6

    assert X.loc["c1", ["energy_yoy_12m", "energy_momentum_3m", "energy_volatility_12m"]].tolist() == [0.0, 0.0, 0.0]

    # Firm without a meter: NaN, and coverage 0 (not an error)
    assert X.loc["e1", NAMES[:5]].isna().all()
    assert X.loc["e1", "coverage_electricity_share_12m"] == 0


def test_energy_respects_available_date(tables):
    X = build(tables, NAMES)
    mean_11 = (9 * 80 + 2 * 50) / 11  # June 2024 not known on 2024-07-05
    assert X.loc["a0", "energy_yoy_12m"] == pytest.approx(mean_11 / 100 - 1)
    assert X.loc["a0", "energy_momentum_3m"] == pytest.approx(50 / mean_11 - 1)
    # June 2024 is billed to nobody before 2024-07-11: on 2024-07-05 it is not observable, so 11 of 11 months
    assert X.loc["a0", "coverage_electricity_share_12m"] == 1.0
    assert X.loc["a1", "coverage_electricity_share_12m"] == 1.0


def test_energy_relative_to_industry(tables):
    X = build(tables, NAMES)
    # The ai norm for July 2024 uses rows known on 2024-07-01 (June not yet billed): A and B (E has no data).
    norm_a = (9 * 80 + 2 * 50) / 11 / 100 - 1
    norm_b = (5 * 100) / 11 / 200 - 1
    norm = (norm_a + norm_b) / 2  # median of two
    assert X.loc["a1", "energy_yoy_vs_industry"] == pytest.approx((mean := (9 * 80 + 3 * 50) / 12) / 100 - 1 - norm)
    assert X.loc["b1", "energy_yoy_vs_industry"] == pytest.approx(-0.75 - norm)
    assert X.loc["a0", "energy_yoy_vs_industry"] == pytest.approx(norm_a - norm)
    assert X.loc["c1", "energy_yoy_vs_industry"] == pytest.approx(0.0)  # alone in software
    assert mean == 72.5


def test_short_history_gives_nan():
    t = {
        "firms": firms({"firm_id": "A"}),
        "applications": applications({"application_id": "a", "firm_id": "A", "application_date": "2024-07-15"}),
        # only 8 months: too few for a year-on-year comparison (9 of 12 needed in each half)
        "electricity": monthly("electricity", "A", "2023-11-01", kwh=[10] * 8),
    }
    X = build(t, NAMES)
    assert np.isnan(X.loc["a", "energy_yoy_12m"])
    assert np.isnan(X.loc["a", "energy_momentum_3m"])
    assert np.isnan(X.loc["a", "energy_volatility_12m"])  # no month has its year-earlier twin
    assert X.loc["a", "coverage_electricity_share_12m"] == 1.0  # the hub holds only these 8 months
