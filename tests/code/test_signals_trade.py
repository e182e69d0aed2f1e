"""Trade (invoice) and bill signals on hand-built monthly tables."""

from __future__ import annotations

import numpy as np
import pytest

from feature_fixtures import applications, assert_unchanged, build, concat, firms, monthly, snapshot

TRADE = ["sales_growth_yoy", "sales_momentum_3m", "customers_per_month", "customer_concentration", "purchase_to_sales", "zero_sales_months_12m", "coverage_invoices_share_12m"]
BILLS = ["bill_overdue_months_12m", "bill_overdue_count_max_12m", "bill_overdue_amount_share", "bill_max_days_overdue_12m", "coverage_bills_share_12m"]


@pytest.fixture()
def tables():
    inv_a = monthly(
        "invoices", "A", "2022-07-01",
        sales_amount=[100] * 12 + [120] * 9 + [60] * 3,
        purchase_amount=[50] * 24,
        n_customers=[3] * 12 + [4, 6] * 6,
        top_customer_share=[0.4] * 12 + [0.5] * 9 + [0.2] * 3,
    )
    inv_b = monthly(
        "invoices", "B", "2023-07-01",
        sales_amount=[10] * 10 + [0, 0],
        purchase_amount=[5] * 12,
        n_customers=[1] * 10 + [0, 0],
        top_customer_share=[0.9] * 10 + [np.nan, np.nan],
    )
    bills_a = monthly(
        "bills", "A", "2023-07-01",
        accepted_count=[2] * 12,
        accepted_amount=[40] * 12,
        outstanding_amount=[100] * 12,
        overdue_count=[0] * 8 + [1, 3, 0, 2],
        overdue_amount=[0] * 8 + [5, 15, 0, 10],
        max_days_overdue=[0] * 8 + [20, 50, 0, 35],
    )
    return {
        "firms": firms({"firm_id": "A"}, {"firm_id": "B"}),
        "applications": applications(
            {"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"},
            {"application_id": "b1", "firm_id": "B", "application_date": "2024-07-15"},
        ),
        "invoices": concat(inv_a, inv_b),
        "bills": bills_a,
    }


def test_trade_by_hand(tables):
    before = snapshot(tables)
    X = build(tables, TRADE)
    assert_unchanged(before, tables)
    a1 = X.loc["a1"]
    mean12 = (9 * 120 + 3 * 60) / 12
    assert a1["sales_growth_yoy"] == pytest.approx(mean12 / 100 - 1)
    assert a1["sales_momentum_3m"] == pytest.approx(60 / mean12 - 1)
    assert a1["customers_per_month"] == pytest.approx(5.0)
    assert a1["customer_concentration"] == pytest.approx((9 * 120 * 0.5 + 3 * 60 * 0.2) / (9 * 120 + 3 * 60))
    assert a1["purchase_to_sales"] == pytest.approx(12 * 50 / (9 * 120 + 3 * 60))
    assert a1["zero_sales_months_12m"] == 0
    assert a1["coverage_invoices_share_12m"] == 1.0  # all 12 months of the window on record

    b1 = X.loc["b1"]
    assert np.isnan(b1["sales_growth_yoy"])  # no previous year
    assert b1["sales_momentum_3m"] == pytest.approx((10 + 0 + 0) / 3 / (100 / 12) - 1)
    assert b1["customer_concentration"] == pytest.approx(0.9)  # months without sales carry no share
    assert b1["purchase_to_sales"] == pytest.approx(60 / 100)
    assert b1["zero_sales_months_12m"] == 2
    assert b1["coverage_invoices_share_12m"] == 1.0  # a year of filings fills the 12-month window too


def test_bills_by_hand(tables):
    X = build(tables, BILLS)
    assert X.loc["a1", "bill_overdue_months_12m"] == 3
    assert X.loc["a1", "bill_overdue_count_max_12m"] == 3
    assert X.loc["a1", "bill_overdue_amount_share"] == pytest.approx(10 / 110)
    assert X.loc["a1", "bill_max_days_overdue_12m"] == 50
    assert X.loc["a1", "coverage_bills_share_12m"] == 1.0
    assert X.loc["b1", BILLS[:4]].isna().all() and X.loc["b1", "coverage_bills_share_12m"] == 0
