"""Workforce signals from the monthly insured headcount (social security contributions).

Source: ``social_security``.
"""

from __future__ import annotations

import numpy as np

from features.asof import MonthlyWindow, growth, last_valid, ratio, row_max, row_mean
from features.registry import signal


@signal(
    name_zh="参保人数6个月增长率",
    name_en="Headcount growth, 6 months",
    family="workforce",
    lookback_months=9,
    direction=-1,
    unit="relative change",
    description="Average insured headcount of the last 3 months versus the 3 months ending 6 months earlier, minus 1.",
    reason_en="Headcount fell over the last six months",
    reason_zh="近六个月参保人数下降",
)
def headcount_growth_6m(social_security: MonthlyWindow) -> np.ndarray:
    h = social_security.values("headcount")
    return growth(row_mean(h[:, -3:]), row_mean(h[:, :3]))


@signal(
    name_zh="参保人数12个月增长率",
    name_en="Headcount growth, 12 months",
    family="workforce",
    lookback_months=15,
    direction=-1,
    unit="relative change",
    description="Average insured headcount of the last 3 months versus the same 3 months a year earlier, minus 1.",
    reason_en="Headcount fell year on year",
    reason_zh="参保人数同比下降",
)
def headcount_growth_12m(social_security: MonthlyWindow) -> np.ndarray:
    h = social_security.values("headcount")
    return growth(row_mean(h[:, -3:]), row_mean(h[:, :3]))


@signal(
    name_zh="参保人数距峰值回撤",
    name_en="Headcount drawdown from 12-month peak",
    family="workforce",
    lookback_months=12,
    direction=1,
    unit="share",
    lower_bound=0.0,
    description="1 minus the latest known headcount over the highest monthly headcount of the last 12 months.",
    reason_en="Workforce shrank from its recent peak",
    reason_zh="员工人数较近一年峰值明显减少",
)
def headcount_drawdown_12m(social_security: MonthlyWindow) -> np.ndarray:
    h = social_security.values("headcount")
    return 1.0 - ratio(last_valid(h), row_max(h))
