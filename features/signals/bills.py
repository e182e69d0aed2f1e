"""Bill signals from the commercial-paper disclosure platform (bills the firm accepted as acceptor).

Overdue accepted bills are among the earliest public signs of a cash squeeze. Source: ``bills``.
"""

from __future__ import annotations

import numpy as np

from features.asof import MonthlyWindow, last_valid, ratio, row_count, row_max
from features.registry import signal


@signal(
    name_zh="票据逾期月数",
    name_en="Months with overdue bills",
    family="bills",
    lookback_months=12,
    direction=1,
    unit="months",
    lower_bound=0.0,
    description="Disclosed months of the last 12 with at least one accepted bill overdue at month end; NaN without disclosures.",
    reason_en="Commercial bills overdue in recent months",
    reason_zh="近一年存在商业汇票逾期",
)
def bill_overdue_months_12m(bills: MonthlyWindow) -> np.ndarray:
    c = bills.values("overdue_count")
    return np.where(row_count(c) > 0, (c > 0).sum(axis=1).astype(np.float64), np.nan)


@signal(
    name_zh="逾期票据张数峰值",
    name_en="Peak overdue bill count",
    family="bills",
    lookback_months=12,
    direction=1,
    unit="bills",
    lower_bound=0.0,
    description="Highest month-end count of overdue accepted bills over the last 12 months.",
    reason_en="Several bills overdue at once",
    reason_zh="同时逾期的票据张数多",
)
def bill_overdue_count_max_12m(bills: MonthlyWindow) -> np.ndarray:
    return row_max(bills.values("overdue_count"))


@signal(
    name_zh="逾期票据金额占比",
    name_en="Overdue share of bills",
    family="bills",
    lookback_months=12,
    direction=1,
    unit="share",
    lower_bound=0.0,
    description="Overdue amount over (outstanding + overdue amount) at the latest disclosed month end.",
    reason_en="A large share of accepted bills is overdue",
    reason_zh="逾期票据金额占比高",
)
def bill_overdue_amount_share(bills: MonthlyWindow) -> np.ndarray:
    overdue = bills.values("overdue_amount")
    outstanding = bills.values("outstanding_amount")
    return ratio(last_valid(overdue), last_valid(overdue + outstanding))


@signal(
    name_zh="票据最长逾期天数",
    name_en="Longest bill delay",
    family="bills",
    lookback_months=12,
    direction=1,
    unit="days",
    lower_bound=0.0,
    description="Longest days overdue of any accepted bill at a month end in the last 12 months.",
    reason_en="Bills paid very late",
    reason_zh="票据逾期天数长",
)
def bill_max_days_overdue_12m(bills: MonthlyWindow) -> np.ndarray:
    return row_max(bills.values("max_days_overdue"))
