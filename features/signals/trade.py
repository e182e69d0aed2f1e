"""Trade signals from monthly VAT e-invoice aggregates: sales, purchases and counterparties.

Source: ``invoices``.
"""

from __future__ import annotations

import numpy as np

from features.asof import MonthlyWindow, growth, ratio, row_count, row_mean, row_sum
from features.registry import signal


@signal(
    name_zh="开票销售额同比变化",
    name_en="Invoiced sales, year on year",
    family="trade",
    lookback_months=24,
    direction=-1,
    unit="relative change",
    description="Average monthly invoiced sales of the last 12 months versus the 12 months before, minus 1 "
    "(at least 9 known months in each half).",
    reason_en="Invoiced sales fell year on year",
    reason_zh="开票销售额同比下降",
)
def sales_growth_yoy(invoices: MonthlyWindow) -> np.ndarray:
    s = invoices.values("sales_amount")
    return growth(row_mean(s[:, -12:], 9), row_mean(s[:, :12], 9))


@signal(
    name_zh="开票销售额短期动量",
    name_en="Invoiced sales momentum, 3 vs 12 months",
    family="trade",
    lookback_months=12,
    direction=-1,
    unit="relative change",
    description="Average monthly invoiced sales of the last 3 months versus the last 12 months, minus 1.",
    reason_en="Invoiced sales dropped in recent months",
    reason_zh="近三个月开票销售额回落",
)
def sales_momentum_3m(invoices: MonthlyWindow) -> np.ndarray:
    s = invoices.values("sales_amount")
    return growth(row_mean(s[:, -3:], 2), row_mean(s, 9))


@signal(
    name_zh="月均客户数",
    name_en="Customers per month",
    family="trade",
    lookback_months=12,
    direction=-1,
    unit="buyers",
    lower_bound=0.0,
    description="Average number of distinct buyers invoiced per month over the last 12 months (at least 3 known months).",
    reason_en="Few customers",
    reason_zh="下游客户数量少",
)
def customers_per_month(invoices: MonthlyWindow) -> np.ndarray:
    return row_mean(invoices.values("n_customers"), 3)


@signal(
    name_zh="客户集中度",
    name_en="Customer concentration",
    family="trade",
    lookback_months=12,
    direction=1,
    unit="share of sales",
    lower_bound=0.0,
    description="Sales-weighted average share of the largest buyer over the last 12 months.",
    reason_en="Sales depend on one large customer",
    reason_zh="销售高度依赖单一大客户",
)
def customer_concentration(invoices: MonthlyWindow) -> np.ndarray:
    share = invoices.values("top_customer_share")
    sales = invoices.values("sales_amount")
    weighted = np.where(np.isnan(share), np.nan, share * sales)
    return ratio(row_sum(weighted), row_sum(np.where(np.isnan(share), np.nan, sales)))


@signal(
    name_zh="进销比",
    name_en="Purchases to sales",
    family="trade",
    lookback_months=12,
    direction=1,
    unit="ratio",
    lower_bound=0.0,
    description="Invoiced purchases divided by invoiced sales over the last 12 months (at least 3 known months).",
    reason_en="Purchases are high relative to sales (thin margin)",
    reason_zh="进项金额相对销售额偏高,毛利空间小",
)
def purchase_to_sales(invoices: MonthlyWindow) -> np.ndarray:
    return ratio(row_sum(invoices.values("purchase_amount"), 3), row_sum(invoices.values("sales_amount"), 3))


@signal(
    name_zh="零开票月数",
    name_en="Months without invoiced sales",
    family="trade",
    lookback_months=12,
    direction=1,
    unit="months",
    lower_bound=0.0,
    description="Known months with zero invoiced sales among the last 12; NaN when no month is known.",
    reason_en="Months without any invoiced sales",
    reason_zh="存在无开票销售的月份",
)
def zero_sales_months_12m(invoices: MonthlyWindow) -> np.ndarray:
    s = invoices.values("sales_amount")
    return np.where(row_count(s) > 0, (s == 0).sum(axis=1).astype(np.float64), np.nan)
