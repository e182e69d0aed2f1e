"""Financial signals: what a traditional credit process sees. Latest annual statement known before the
application (fiscal years ending up to 24 months earlier), plus the loan request itself.

Sources: ``financials``, ``applications``.
"""

from __future__ import annotations

import numpy as np

from features.asof import Applications, EventWindow, growth, ratio
from features.registry import signal

LOOKBACK = 24


@signal(
    name_zh="资产负债率",
    name_en="Leverage (liabilities to assets)",
    family="finance",
    lookback_months=LOOKBACK,
    direction=1,
    unit="ratio",
    lower_bound=0.0,
    description="Total liabilities divided by total assets, latest known statement.",
    reason_en="High debt relative to assets",
    reason_zh="资产负债率高",
)
def leverage(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["total_liabilities"], last["total_assets"])


@signal(
    name_zh="净利润率",
    name_en="Net margin",
    family="finance",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="ratio to revenue (signed)",
    description="Net profit divided by revenue, latest known statement.",
    reason_en="Low or negative profitability",
    reason_zh="净利润率低或亏损",
)
def net_margin(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["net_profit"], last["revenue"])


@signal(
    name_zh="总资产收益率",
    name_en="Return on assets",
    family="finance",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="ratio",
    description="Net profit divided by total assets, latest known statement.",
    reason_en="Low return on assets",
    reason_zh="总资产收益率低",
)
def return_on_assets(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["net_profit"], last["total_assets"])


@signal(
    name_zh="毛利率",
    name_en="Gross margin",
    family="finance",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="ratio to revenue (signed)",
    description="(Revenue minus cost of sales) divided by revenue, latest known statement.",
    reason_en="Low gross margin",
    reason_zh="毛利率低",
)
def gross_margin(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["revenue"] - last["cost_of_sales"], last["revenue"])


@signal(
    name_zh="经营现金流利润率",
    name_en="Operating cash-flow margin",
    family="finance",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="ratio to revenue (signed)",
    description="Net operating cash flow divided by revenue, latest known statement.",
    reason_en="Operations consume cash",
    reason_zh="经营活动现金流弱或为负",
)
def ocf_margin(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["operating_cash_flow"], last["revenue"])


@signal(
    name_zh="营业收入增长率",
    name_en="Revenue growth",
    family="finance",
    lookback_months=36,
    direction=-1,
    unit="relative change",
    description="Year-on-year revenue change between the two latest known statements of consecutive fiscal years.",
    reason_en="Revenue fell",
    reason_zh="营业收入下降",
)
def revenue_growth(financials: EventWindow) -> np.ndarray:
    new, old = financials.latest("period_end", 0), financials.latest("period_end", 1)
    consecutive = new["fiscal_year"] - old["fiscal_year"] == 1
    return np.where(consecutive, growth(new["revenue"], old["revenue"]), np.nan)


@signal(
    name_zh="流动比率",
    name_en="Current ratio",
    family="finance",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="ratio",
    lower_bound=0.0,
    description="Current assets divided by current liabilities, latest known statement.",
    reason_en="Weak short-term liquidity",
    reason_zh="流动比率低,短期偿债能力弱",
)
def current_ratio(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["current_assets"], last["current_liabilities"])


@signal(
    name_zh="营业收入",
    name_en="Revenue",
    family="finance",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="CNY 10k (万元)",
    lower_bound=0.0,
    description="Operating revenue in the latest known statement.",
    reason_en="Small revenue base",
    reason_zh="营业收入规模小",
    actionable=False,
)
def revenue_latest(financials: EventWindow) -> np.ndarray:
    return financials.latest("period_end")["revenue"]


@signal(
    name_zh="抵押担保覆盖率",
    name_en="Collateral coverage",
    family="finance",
    lookback_months=0,
    direction=0,
    unit="ratio",
    lower_bound=0.0,
    description="Value of collateral and guarantees offered divided by the amount requested (this application). "
    "Collateral lowers the loss given default, not the probability of default (banks ask weaker borrowers for more), "
    "so no direction is imposed on PD models.",
    reason_en="Little collateral for the amount requested",
    reason_zh="抵押担保覆盖不足",
)
def collateral_coverage(applications: Applications) -> np.ndarray:
    return ratio(applications["collateral_value"], applications["amount"])


@signal(
    name_zh="申请金额占收入比",
    name_en="Loan amount to revenue",
    family="finance",
    lookback_months=LOOKBACK,
    direction=1,
    unit="ratio",
    lower_bound=0.0,
    description="Amount requested divided by revenue in the latest known statement.",
    reason_en="Amount requested is large relative to revenue",
    reason_zh="申请金额相对营业收入偏大",
)
def loan_to_revenue(applications: Applications, financials: EventWindow) -> np.ndarray:
    return ratio(applications["amount"], financials.latest("period_end")["revenue"])
