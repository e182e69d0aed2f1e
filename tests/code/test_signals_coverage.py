"""Coverage signals on hand-built hubs: shares of the observable months (years), computed by hand.

Observable = the hub held the period at the application date (rows of any firm known strictly before
it, at least half as many as for the period before) and the firm was founded by the period's end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_fixtures import D, applications, assert_unchanged, build, concat, firms, monthly, rows, snapshot
from features.asof import Applications, EventTable, EventWindow, FirmIndex
from features.build import _applications

MONTHLY = ["coverage_electricity_share_12m", "coverage_social_security_share_12m", "coverage_invoices_share_12m", "coverage_bills_share_12m"]
ANNUAL = ["coverage_financials_share_24m", "coverage_rnd_deductions_share_24m"]


def _available(df: pd.DataFrame, month: str, day: str) -> pd.DataFrame:
    """The same rows with the row for ``month`` published on ``day`` instead."""
    df = df.copy()
    df.loc[df["month"] == D(month), "available_date"] = D(day)
    return df


@pytest.fixture()
def hub():
    """Electricity from 2023-09 (the hub's first month); rows published on the 11th of the next month.

    A: founded 2015, older than the hub, a reading every month, but June 2024 published only on
       2024-07-15 (the day of application a1).
    B: founded 2024-02-10, inside the window; readings from 2024-03 (one month after founding).
    C: founded 2015, no reading for 2024-01 and 2024-04.
    D: founded 2015, no meter.
    """
    months = 10  # 2023-09 .. 2024-06
    a = _available(monthly("electricity", "A", "2023-09-01", kwh=[10] * months), "2024-06-01", "2024-07-15")
    b = monthly("electricity", "B", "2024-03-01", kwh=[10] * 4)
    c = monthly("electricity", "C", "2023-09-01", kwh=[10] * months)
    c = c[~c["month"].isin([D("2024-01-01"), D("2024-04-01")])]
    return {
        "firms": firms(
            {"firm_id": "A"}, {"firm_id": "B", "founding_date": "2024-02-10"}, {"firm_id": "C"}, {"firm_id": "D"}
        ),
        "applications": applications(
            {"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"},
            {"application_id": "a2", "firm_id": "A", "application_date": "2024-07-16"},
            {"application_id": "a3", "firm_id": "A", "application_date": "2024-07-11"},
            {"application_id": "b1", "firm_id": "B", "application_date": "2024-07-15"},
            {"application_id": "c1", "firm_id": "C", "application_date": "2024-07-15"},
            {"application_id": "d1", "firm_id": "D", "application_date": "2024-07-15"},
            # before the hub's first month is published (2023-09 rows arrive on 2023-10-11)
            {"application_id": "a0", "firm_id": "A", "application_date": "2023-10-05"},
        ),
        "electricity": concat(a, b, c),
    }


def test_monthly_share_by_hand(hub):
    before = snapshot(hub)
    X = build(hub, ["coverage_electricity_share_12m"])["coverage_electricity_share_12m"]
    assert_unchanged(before, hub)
    # Window of a July 2024 application: 2023-07 .. 2024-06. The hub holds 2023-09 .. 2024-06 (10 months):
    # 2023-07 and 2023-08 precede the source, so a firm older than the hub is not marked as missing them.
    # June: B and C published on 07-11, 2 of 3 firms >= half of May's 3: observable on 07-15.
    # a1: A's June row arrives on 07-15, the application date itself: not known, so 9 of 10.
    assert X["a1"] == pytest.approx(9 / 10)
    assert X["a2"] == 1.0  # a day later it is known: 10 of 10
    # On 07-11 the June rows of B and C arrive that very day: no June row is known, June is not observable
    assert X["a3"] == 1.0
    # B founded 2024-02-10: observable 2024-02 .. 2024-06 (5 months); readings from March
    assert X["b1"] == pytest.approx(4 / 5)
    assert X["c1"] == pytest.approx(8 / 10)  # two gaps
    assert X["d1"] == 0.0  # no meter: observable months, none on record
    assert X["a0"] == 0.0  # nothing observable yet: 0, not NaN


def test_a_month_counts_once_most_firms_rows_are_in():
    """June 2024 of four firms, published on different days: it is observable only once at least
    half as many firms' June rows are known as May rows, and a firm's own early June row does not
    count before that (its share cannot exceed 1, and a late firm is not marked as missing it)."""
    days = {"A": "2024-07-03", "B": "2024-07-08", "C": "2024-07-12", "E": "2024-07-25"}
    elec = concat(*[_available(monthly("electricity", f, "2023-07-01", kwh=[10] * 12), "2024-06-01", d) for f, d in days.items()])
    t = {
        "firms": firms(*[{"firm_id": f} for f in days]),
        "applications": applications(
            *[{"application_id": f"{f.lower()}{k}", "firm_id": f, "application_date": d} for f in ("A", "E") for k, d in enumerate(("2024-07-05", "2024-07-10", "2024-07-20"))]
        ),
        "electricity": elec,
    }
    X = build(t, ["coverage_electricity_share_12m"])["coverage_electricity_share_12m"]
    # 07-05: 1 of 4 June rows known (< 2): June not observable; A's early June row is not counted: 11 of 11
    assert X["a0"] == 1.0 and X["e0"] == 1.0
    # 07-10: 2 of 4 (>= 4 / 2): June observable; A has it, E does not yet
    assert X["a1"] == 1.0 and X["e1"] == pytest.approx(11 / 12)
    assert X["e2"] == pytest.approx(11 / 12)  # E's June arrives on 07-25


def test_bill_share_counts_from_the_first_disclosure():
    """A firm discloses bills only once it accepts them, so the bill share counts the observable months
    from the firm's first known disclosure in the window; payroll counts from the window (or founding).

    Window of a 2024-07-15 application: 2023-07 .. 2024-06, all held (X discloses every month).
    A: first disclosure 2024-01, then every month but 2024-03.   B: founded 2023-02, first bill 2024-02
    (about a year old), every month since.   D: disclosed 2023-07 .. 2023-12, then stopped.
    E: its only disclosure (2024-06) arrives on 2024-07-20, after the application.   C: none."""
    a = monthly("bills", "A", "2024-01-01", accepted_count=[1] * 6)
    a = a[a["month"] != D("2024-03-01")]
    e = monthly("bills", "E", "2024-06-01", accepted_count=[1])
    e["available_date"] = D("2024-07-20")
    t = {
        "firms": firms(*[{"firm_id": f} for f in "XACDE"], {"firm_id": "B", "founding_date": "2023-02-01"}),
        "applications": applications(*[{"application_id": f.lower(), "firm_id": f, "application_date": "2024-07-15"} for f in "XABCDE"]),
        "bills": concat(monthly("bills", "X", "2023-07-01", accepted_count=[1] * 12), a, monthly("bills", "B", "2024-02-01", accepted_count=[1] * 5),
                        monthly("bills", "D", "2023-07-01", accepted_count=[1] * 6), e),
    }
    # A's payroll on the same months as its bills; X's every month
    ss_a = monthly("social_security", "A", "2024-01-01", headcount=[10] * 6)
    t["social_security"] = concat(monthly("social_security", "X", "2023-07-01", headcount=[10] * 12), ss_a[ss_a["month"] != D("2024-03-01")])
    X = build(t, ["coverage_bills_share_12m", "coverage_social_security_share_12m"])
    share = X["coverage_bills_share_12m"]
    assert share["x"] == 1.0
    assert share["a"] == pytest.approx(5 / 6)  # 2024-01 .. 06, March missing
    assert share["b"] == 1.0  # from founding it would be 5 of 12: a year-old firm had no bills to disclose
    assert share["d"] == pytest.approx(6 / 12)  # stopped disclosing
    assert share["e"] == 0.0 and share["c"] == 0.0  # nothing known before the application
    # the same rows as payroll count from the window's start: A is missing 2023-07 .. 2023-12 and March
    assert X.loc["a", "coverage_social_security_share_12m"] == pytest.approx(5 / 12)


def test_absent_feed_and_no_founding_record_give_zero_not_nan():
    t = {
        "firms": firms({"firm_id": "A"}),
        "applications": applications({"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"}),
        "electricity": monthly("electricity", "A", "2023-07-01", kwh=[10] * 12),
    }
    X = build(t, MONTHLY + ANNUAL)
    assert X.loc["a1", "coverage_electricity_share_12m"] == 1.0
    # social security, invoices, bills, financials and R&D claims are absent tables: coverage 0
    assert (X.loc["a1", MONTHLY[1:] + ANNUAL] == 0.0).all()


def test_a_firm_registered_after_the_application_is_bounded_by_the_window_only():
    """Without a known registry row (published after the application date) the founding date is
    unknown: the observable months are those the hub held in the window, as for an old firm."""
    t = {
        "firms": firms({"firm_id": "A", "founding_date": "2024-03-01", "available_date": "2024-08-01"}, {"firm_id": "B"}),
        "applications": applications({"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"}),
        "electricity": concat(monthly("electricity", "A", "2024-03-01", kwh=[10] * 4), monthly("electricity", "B", "2023-07-01", kwh=[10] * 12)),
    }
    X = build(t, ["coverage_electricity_share_12m"])
    assert X.loc["a1", "coverage_electricity_share_12m"] == pytest.approx(4 / 12)


def _fin(firm: str, year: int, available: str) -> dict:
    rec = {c: 100.0 for c in ("revenue", "high_tech_revenue", "cost_of_sales", "rnd_expense", "net_profit", "total_assets",
                              "total_liabilities", "current_assets", "current_liabilities", "operating_cash_flow")}
    return {"firm_id": firm, "fiscal_year": year, "period_end": D(f"{year}-12-31"), "available_date": D(available), **rec}


def _claim(firm: str, year: int, filed: str) -> dict:
    return {"firm_id": firm, "tax_year": year, "filing_date": D(filed), "rnd_expense_claimed": 10.0, "super_deduction": 10.0,
            "rnd_staff": 3, "available_date": D(filed)}


@pytest.fixture()
def annual():
    """Statements from FY2021 (the hub's first fiscal year), filed on 31 May of the next year unless said.

    A: FY2021-2023, FY2023 filed early (2024-04-20).   C: FY2021 and FY2023 (no FY2022).
    D: FY2021-2023.   E: FY2021 and FY2022, then stops.   B: founded 2023-03-01, FY2023 only.
    """
    fin = [_fin("A", 2021, "2022-05-31"), _fin("A", 2022, "2023-05-31"), _fin("A", 2023, "2024-04-20"),
           _fin("C", 2021, "2022-05-31"), _fin("C", 2023, "2024-05-31"),
           _fin("D", 2021, "2022-05-31"), _fin("D", 2022, "2023-05-31"), _fin("D", 2023, "2024-05-31"),
           _fin("E", 2021, "2022-05-31"), _fin("E", 2022, "2023-05-31"),
           _fin("B", 2023, "2024-05-31")]
    claims = [_claim("A", 2022, "2023-03-10"), _claim("A", 2023, "2024-03-15"),
              _claim("D", 2022, "2023-05-20"), _claim("D", 2023, "2024-05-20")]
    apps = [{"application_id": f"{f.lower()}{k}", "firm_id": f, "application_date": d}
            for f in ("A", "B", "C", "D", "E") for k, d in enumerate(("2024-05-15", "2024-07-15"))]
    apps.append({"application_id": "x", "firm_id": "A", "application_date": "2022-03-01"})
    apps.append({"application_id": "late", "firm_id": "D", "application_date": "2025-04-01"})
    return {
        "firms": firms(*[{"firm_id": f} for f in "ACDE"], {"firm_id": "B", "founding_date": "2023-03-01"}),
        "applications": applications(*apps),
        "financials": rows("financials", *fin),
        "rnd_deductions": rows("rnd_deductions", *claims),
    }


def test_statement_share_by_hand(annual):
    X = build(annual, ANNUAL)["coverage_financials_share_24m"]
    # 2024-07-15: fiscal years ending after 2022-07-15 are FY2022 and FY2023, both held (FY2023 by 4 firms)
    assert X["a1"] == 1.0 and X["d1"] == 1.0
    assert X["c1"] == pytest.approx(1 / 2)  # FY2022 missing
    assert X["e1"] == pytest.approx(1 / 2)  # FY2023 missing
    assert X["b1"] == 1.0  # founded 2023: only FY2023 is observable, and it is on file
    # 2024-05-15: only A has filed FY2023 (1 of the 3 FY2022 filers): not yet observable, so A's early
    # statement does not count and the others are not marked as missing it
    assert X["a0"] == 1.0 and X["d0"] == 1.0 and X["e0"] == 1.0
    assert X["c0"] == 0.0  # FY2022, the one observable year, is missing
    assert X["b0"] == 0.0  # founded 2023: no observable year yet
    assert X["x"] == 0.0  # 2022-03-01: no statement filed by anyone yet (FY2021 arrives on 2022-05-31)


def test_claim_share_by_hand(annual):
    X = build(annual, ANNUAL)["coverage_rnd_deductions_share_24m"]
    # 2024-07-15, filings since 2022-07-15: tax years 2022 and 2023 (both held: 2 claims each)
    assert X["a1"] == 1.0 and X["d1"] == 1.0
    assert X["c1"] == 0.0 and X["e1"] == 0.0
    assert X["b1"] == 0.0  # founded 2023: tax year 2023 is observable, not claimed
    # 2024-05-15: D's 2023 claim comes on 05-20; A's alone (1 >= 2 / 2) makes 2023 observable
    assert X["a0"] == 1.0 and X["d0"] == pytest.approx(1 / 2)
    # 2025-04-01, filings since 2023-04-01: tax year 2022 began filing on 2023-03-10, before the lookback,
    # so it is not observable for anyone (D's claim of 2023-05-20 does not count either); 2023 is.
    assert X["late"] == 1.0


def test_periods_held_reads_a_numeric_key_only():
    t = {"firms": firms({"firm_id": "A"}), "applications": applications({"application_id": "a", "firm_id": "A", "application_date": "2024-07-15"}),
         "financials": rows("financials", _fin("A", 2023, "2024-05-31"))}
    index = FirmIndex(t["firms"]["firm_id"])
    apps = Applications(_applications(t, None, None), index)
    w = EventWindow(EventTable("financials", t["financials"], index), apps, 24)
    assert w.periods_held("fiscal_year").tolist() == [1.0]
    assert w.periods_held("fiscal_year", since=np.array([2024.0])).tolist() == [0.0]
    with pytest.raises(ValueError, match=r"financials: the period key 'period_end' must be numeric"):
        w.periods_held("period_end")
    with pytest.raises(ValueError, match=r"financials: since has shape \(2,\), expected \(1,\)"):
        w.coverage_share("fiscal_year", since=np.array([2020.0, 2021.0]))
