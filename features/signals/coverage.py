"""Data coverage signals: the share of the history a firm could have on record that it does have.

Missing data is information (a firm without a meter or payroll record is a different borrower), so
these are features, not errors.

Each signal is a share in [0, 1]: the months (fiscal or tax years) in the lookback with a record of
the firm, over the months (years) it could have on record. A period could be on record when the hub
already held it for that source at the application date and the firm had been founded by then
(``coverage_share`` in ``features/asof.py``). "Held" is measured on the table's own rows, point in
time, not from a declared start date: rows of any firm known strictly before the application date,
at least half as many as for the period before. That follows when a feed really began, a month
missing for every firm, and the publication lag: a month or fiscal year whose rows are still
arriving counts only once most firms' rows are in, so a late filer is not marked as missing it in
the meantime. A row known only on or after the application date counts in neither part.

Why shares over short lookbacks: a count of months since the hub began rises with the hub's age, so
monitoring flags drift that is only the calendar (the old ``coverage_*_months`` did). A share over a
lookback the hub does not yet fill still drifts, more weakly: the longer the observable span, the
less likely a record without a single gap. So a coverage share is stable once the hub holds the whole
lookback before every application it scores. The lookbacks are chosen for that: 12 months for the
monthly feeds and 24 months of fiscal-year ends or filings for the annual ones, which a generated hub
covers from its first application (a year into its window, with statements from the year before).

No observable period (an absent table, an application before the source's first month, a firm
founded in the application month) gives 0, not NaN: nothing could be on record and nothing is, the
same value as a firm without a meter. So an absent table still reads as coverage 0
(``features.build``) and the coverage family has no missing values.

The founding date comes from the ``firms`` window restricted to the signal's lookback, which holds
the registry row only for a firm founded inside the lookback: exactly when the founding date
shortens the observable span. Otherwise it is NaT and the span starts with the lookback.

Bills are the exception: a firm discloses bills only once it accepts them (banks and suppliers rarely
take a young firm's paper), so its span starts with its first disclosure in the lookback. Counted
from founding, the share of a bill user aged one to two years is about half for that reason alone
(under 0.6 on a generated hub, over 0.9 when older), and its mean moved with the age mix of the
applicants (tests/data/test_coverage_drift.py).

Directions follow what a gap means. Missed social-security contributions (欠缴社保), months without a
VAT invoice and unfiled annual statements are signs of a cash squeeze: -1. A missing meter reading
is data plumbing and a firm without its own meter sits in a shared office: 0. Bills and R&D claims
are -1 through who has them at all: accepted bills mean suppliers and banks extend the firm credit,
super-deduction claims mean real R&D.
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow, MonthlyWindow, year_of
from features.registry import signal

MONTHS = 12
YEARS_MONTHS = 24


def _founded(firms: EventWindow) -> np.ndarray:
    """Registration date per application: NaT when founded before the lookback or not yet registered."""
    return firms.latest("available_date")["founding_date"]


# The monthly shares read row presence and the L1 founding date only. Presence in an internal feed is
# internal (L2), the grade the catalog gives a presence count, so it is declared: derived from the
# columns read it would be L1.


@signal(
    name_zh="用电数据覆盖率(12个月)",
    name_en="Electricity coverage, 12 months",
    family="coverage",
    lookback_months=MONTHS,
    direction=0,
    unit="share",
    lower_bound=0.0,
    grade="L2",
    description="Share of the observable months among the 12 before the application month with an electricity reading "
    "of the firm known before the application date. Observable: the hub held the month (readings of any firm known "
    "before that date, at least half as many as for the month before) and the firm was founded by its end; 0 when "
    "no month is observable. No direction is imposed: a missing reading is lost between the grid and the hub, "
    "whatever the firm's health, and a firm without its own meter sits in a shared office (0 here, common for "
    "software and AI firms); a meter reading zero is energy_zero_months_12m.",
    reason_en="Electricity records missing for many recent months",
    reason_zh="近12个月用电数据缺失月份多",
    actionable=False,
)
def coverage_electricity_share_12m(electricity: MonthlyWindow, firms: EventWindow) -> np.ndarray:
    return electricity.coverage_share(_founded(firms))


@signal(
    name_zh="社保数据覆盖率(12个月)",
    name_en="Payroll coverage, 12 months",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="share",
    lower_bound=0.0,
    grade="L2",
    description="Share of the observable months among the 12 before the application month with a social-security "
    "record of the firm known before the application date (observable as for coverage_electricity_share_12m); 0 "
    "when no month is observable. A firm short of cash stops paying contributions (欠缴社保), so its months go "
    "missing.",
    reason_en="Payroll records missing for many recent months",
    reason_zh="近12个月社保缴纳记录缺失月份多",
    actionable=False,
)
def coverage_social_security_share_12m(social_security: MonthlyWindow, firms: EventWindow) -> np.ndarray:
    return social_security.coverage_share(_founded(firms))


@signal(
    name_zh="发票数据覆盖率(12个月)",
    name_en="Invoice coverage, 12 months",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="share",
    lower_bound=0.0,
    grade="L2",
    description="Share of the observable months among the 12 before the application month with a VAT invoice filing "
    "of the firm known before the application date (observable as for coverage_electricity_share_12m); 0 when no "
    "month is observable. A month without a single invoice is a sign of a business stalling.",
    reason_en="Invoice records missing for many recent months",
    reason_zh="近12个月开票记录缺失月份多",
    actionable=False,
)
def coverage_invoices_share_12m(invoices: MonthlyWindow, firms: EventWindow) -> np.ndarray:
    return invoices.coverage_share(_founded(firms))


@signal(
    name_zh="票据披露覆盖率(12个月)",
    name_en="Bill disclosure coverage, 12 months",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="share",
    lower_bound=0.0,
    grade="L2",
    description="Share of the observable months among the 12 before the application month with a commercial-bill "
    "disclosure of the firm known before the application date, counted from the firm's first such disclosure in "
    "those months (observable otherwise as for coverage_electricity_share_12m): an acceptor discloses while it has "
    "bills, a firm not yet accepting any has nothing to disclose. 0 without a disclosure. Only firms whose "
    "suppliers accept their bills disclose, so 0 marks commercial credit not extended or not used.",
    reason_en="No record of paying suppliers with accepted bills",
    reason_zh="无商业汇票承兑记录,商业信用未经验证",
    actionable=False,
)
def coverage_bills_share_12m(bills: MonthlyWindow, firms: EventWindow) -> np.ndarray:
    return bills.coverage_share(_founded(firms), from_first_row=True)


@signal(
    name_zh="财务报表覆盖率(24个月)",
    name_en="Financial statement coverage, 24 months",
    family="coverage",
    lookback_months=YEARS_MONTHS,
    direction=-1,
    unit="share",
    lower_bound=0.0,
    description="Share of the observable fiscal years with an annual statement of the firm known before the application "
    "date. Observable: the fiscal year ended in the 24 months before the application, the hub held it (statements "
    "of any firm known before that date, at least half as many as for the year before) and the firm was founded by "
    "its end; 0 when no year is observable. A firm short of cash delays or skips its audit and filing.",
    reason_en="Annual statements missing for recent years",
    reason_zh="近两年财务报表缺失",
    actionable=False,
)
def coverage_financials_share_24m(financials: EventWindow, firms: EventWindow) -> np.ndarray:
    return financials.coverage_share("fiscal_year", year_of(_founded(firms)))


@signal(
    name_zh="研发加计扣除申报覆盖率(24个月)",
    name_en="R&D super-deduction coverage, 24 months",
    family="coverage",
    lookback_months=YEARS_MONTHS,
    direction=-1,
    unit="share",
    lower_bound=0.0,
    description="Share of the observable tax years with an R&D super-deduction filing of the firm known before the "
    "application date. Observable: the hub held the tax year (filings of any firm known before that date, at least "
    "half as many as for the year before, the earliest made in the 24 months before the application) and the firm "
    "was founded by its end; 0 when no year is observable.",
    reason_en="No R&D super-deduction filings for recent years",
    reason_zh="近两年缺少研发费用加计扣除申报记录",
    actionable=False,
)
def coverage_rnd_deductions_share_24m(rnd_deductions: EventWindow, firms: EventWindow) -> np.ndarray:
    return rnd_deductions.coverage_share("tax_year", year_of(_founded(firms)))
