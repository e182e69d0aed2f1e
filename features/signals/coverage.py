"""Data coverage signals: how much history each source holds for the firm before the application.

Missing data is information (a firm without a meter or payroll record is a different borrower), so
these are features, not errors: an absent table gives coverage 0 and NaN for its other signals.
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow, MonthlyWindow
from features.registry import signal

MONTHS = 36


@signal(
    name_zh="用电数据覆盖月数",
    name_en="Months of electricity history",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="months",
    description="Months with a known electricity reading among the 36 before the application month.",
    reason_en="Little electricity history",
    reason_zh="用电数据历史短或缺失",
    actionable=False,
)
def coverage_electricity_months(electricity: MonthlyWindow) -> np.ndarray:
    return electricity.months_known()


@signal(
    name_zh="社保数据覆盖月数",
    name_en="Months of payroll history",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="months",
    description="Months with a known social-security record among the 36 before the application month.",
    reason_en="Little payroll history",
    reason_zh="社保缴纳记录短或缺失",
    actionable=False,
)
def coverage_social_security_months(social_security: MonthlyWindow) -> np.ndarray:
    return social_security.months_known()


@signal(
    name_zh="发票数据覆盖月数",
    name_en="Months of invoice history",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="months",
    description="Months with a known VAT invoice filing among the 36 before the application month.",
    reason_en="Little invoice history",
    reason_zh="开票记录短或缺失",
    actionable=False,
)
def coverage_invoices_months(invoices: MonthlyWindow) -> np.ndarray:
    return invoices.months_known()


@signal(
    name_zh="票据披露覆盖月数",
    name_en="Months of bill disclosures",
    family="coverage",
    lookback_months=MONTHS,
    direction=-1,
    unit="months",
    description="Months with a commercial-bill disclosure among the 36 before the application month "
    "(only firms whose suppliers accept their bills disclose).",
    reason_en="No record of paying suppliers with accepted bills",
    reason_zh="无商业汇票承兑记录,商业信用未经验证",
    actionable=False,
)
def coverage_bills_months(bills: MonthlyWindow) -> np.ndarray:
    return bills.months_known()


@signal(
    name_zh="财务报表覆盖年数",
    name_en="Years of financial statements",
    family="coverage",
    lookback_months=60,
    direction=-1,
    unit="statements",
    description="Annual statements known before the application for fiscal years ending in the last 60 months.",
    reason_en="Few annual statements on file",
    reason_zh="可用财务报表年份少",
    actionable=False,
)
def coverage_financials_years(financials: EventWindow) -> np.ndarray:
    return financials.count()


@signal(
    name_zh="研发加计扣除申报年数",
    name_en="Years of R&D super-deduction filings",
    family="coverage",
    lookback_months=60,
    direction=-1,
    unit="filings",
    description="R&D super-deduction filings made in the 60 months before the application.",
    reason_en="No R&D super-deduction filings",
    reason_zh="缺少研发费用加计扣除申报记录",
    actionable=False,
)
def coverage_rnd_deductions_years(rnd_deductions: EventWindow) -> np.ndarray:
    return rnd_deductions.count()
