"""Firm signals: age and size, from the business registry and the insured headcount.

Sources: ``firms``, ``social_security``.
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow, MonthlyWindow, last_valid
from features.registry import signal


@signal(
    name_zh="成立年限",
    name_en="Firm age",
    family="firm",
    lookback_months=0,
    direction=-1,
    unit="years",
    lower_bound=0.0,
    description="Years from the registration date to the application date (days / 365.25).",
    reason_en="Young firm with a short track record",
    reason_zh="成立时间短,经营记录有限",
    actionable=False,
)
def firm_age_years(firms: EventWindow) -> np.ndarray:
    founded = firms.latest("available_date")["founding_date"]
    days = (firms.apps.dates - founded).astype("timedelta64[D]").astype(np.float64)
    return np.where(np.isnat(founded), np.nan, days / 365.25)


@signal(
    name_zh="参保职工人数",
    name_en="Headcount",
    family="firm",
    lookback_months=12,
    direction=-1,
    unit="employees",
    lower_bound=0.0,
    description="Latest known monthly insured headcount within the last 12 months.",
    reason_en="Very small workforce",
    reason_zh="参保职工人数少,企业规模小",
    actionable=False,
)
def firm_size_headcount(social_security: MonthlyWindow) -> np.ndarray:
    return last_valid(social_security.values("headcount"))


@signal(
    name_zh="注册资本",
    name_en="Registered capital",
    family="firm",
    lookback_months=0,
    direction=-1,
    unit="CNY 10k (万元)",
    lower_bound=0.0,
    description="Registered capital in the business registry.",
    reason_en="Low registered capital",
    reason_zh="注册资本较低",
    actionable=False,
)
def registered_capital(firms: EventWindow) -> np.ndarray:
    return firms.latest("available_date")["registered_capital"]
