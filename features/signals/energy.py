"""Energy signals from the firm's own electricity meter: a real-time trace of production activity.

Source: ``electricity`` (monthly kWh). Windows are the calendar months before the application month,
as known before the application date (the latest month is usually not billed yet).
"""

from __future__ import annotations

import numpy as np

from features.asof import MonthlyWindow, growth, row_count, row_mean, row_std
from features.registry import signal


def _yoy(kwh: np.ndarray) -> np.ndarray:
    """Mean of the last 12 months over the mean of the 12 before, minus 1 (9 of 12 months needed each)."""
    return growth(row_mean(kwh[:, -12:], 9), row_mean(kwh[:, -24:-12], 9))


@signal(
    name_zh="用电量同比变化",
    name_en="Electricity use, year on year",
    family="energy",
    lookback_months=24,
    direction=-1,
    unit="relative change",
    description="Average monthly kWh over the last 12 months versus the 12 months before, minus 1 (at least 9 known "
    "months in each half).",
    reason_en="Electricity use fell year on year",
    reason_zh="用电量同比下降",
)
def energy_yoy_12m(electricity: MonthlyWindow) -> np.ndarray:
    return _yoy(electricity.values("kwh"))


@signal(
    name_zh="用电量短期动量",
    name_en="Electricity momentum, 3 vs 12 months",
    family="energy",
    lookback_months=12,
    direction=-1,
    unit="relative change",
    description="Average monthly kWh over the last 3 months versus the last 12 months, minus 1 (at least 2 and 9 known months).",
    reason_en="Electricity use dropped in recent months",
    reason_zh="近三个月用电量明显回落",
)
def energy_momentum_3m(electricity: MonthlyWindow) -> np.ndarray:
    kwh = electricity.values("kwh")
    return growth(row_mean(kwh[:, -3:], 2), row_mean(kwh, 9))


@signal(
    name_zh="用电量波动率(剔除季节)",
    name_en="Electricity volatility, seasonally adjusted",
    family="energy",
    lookback_months=24,
    direction=1,
    unit="std of log ratio",
    lower_bound=0.0,
    description="Standard deviation over the last 12 months of the log ratio of each month's kWh to the same month a "
    "year earlier (at least 6 such pairs). Comparing each month with the same calendar month removes the seasonal "
    "pattern (Spring Festival dip, summer peak) that a plain coefficient of variation would mistake for instability.",
    reason_en="Electricity use is erratic beyond the usual seasonal pattern",
    reason_zh="用电量波动大(已剔除季节因素),生产不稳定",
)
def energy_volatility_12m(electricity: MonthlyWindow) -> np.ndarray:
    kwh = electricity.values("kwh")
    now, before = kwh[:, -12:], kwh[:, -24:-12]
    ok = (now > 0) & (before > 0)
    log_ratio = np.where(ok, np.log(np.where(ok, now, 1.0) / np.where(ok, before, 1.0)), np.nan)
    return row_std(log_ratio, 6)


@signal(
    name_zh="零用电月数",
    name_en="Months without electricity use",
    family="energy",
    lookback_months=12,
    direction=1,
    unit="months",
    lower_bound=0.0,
    description="Known months with zero kWh among the last 12; NaN when no month is known.",
    reason_en="Months with no electricity use (possible shutdown)",
    reason_zh="存在零用电月份,可能停产",
)
def energy_zero_months_12m(electricity: MonthlyWindow) -> np.ndarray:
    kwh = electricity.values("kwh")
    return np.where(row_count(kwh) > 0, (kwh == 0).sum(axis=1).astype(np.float64), np.nan)


@signal(
    name_zh="用电量同比相对行业",
    name_en="Electricity growth relative to industry",
    family="energy",
    lookback_months=24,
    direction=-1,
    unit="relative change",
    description="Year-on-year electricity change minus the median change of all firms in the same industry, the norm "
    "computed from rows known on the first day of the application month.",
    reason_en="Electricity use grew less than the industry's",
    reason_zh="用电量增速低于行业水平",
)
def energy_yoy_vs_industry(electricity: MonthlyWindow) -> np.ndarray:
    return _yoy(electricity.values("kwh")) - electricity.peer_median("kwh", _yoy)
