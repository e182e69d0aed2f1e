"""Talent signals: key staff with recognised credentials joining and leaving.

Sources: ``talent`` (join/leave events per person and credential), ``social_security`` (headcount).
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow, ratio
from features.registry import signal

LOOKBACK = 120  # a person's join event can be years old; ten years covers the key staff of an SME


def _on_staff(talent: EventWindow, credentials: tuple[str, ...]) -> np.ndarray:
    """Joins minus departures of people holding ``credentials`` (never below zero)."""
    cred = np.asarray(talent["credential"].isin(credentials))
    event = talent["event"]
    joins = talent.count(cred & np.asarray(event == "join"))
    leaves = talent.count(cred & np.asarray(event == "leave"))
    return np.maximum(joins - leaves, 0.0)


@signal(
    name_zh="高层次人才数",
    name_en="High-level talent on staff",
    family="talent",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="people",
    lower_bound=0.0,
    description="Staff selected for national or provincial talent programmes, joins minus departures.",
    reason_en="No recognised high-level talent on staff",
    reason_zh="缺少国家或省级人才计划入选者",
)
def high_level_talent(talent: EventWindow) -> np.ndarray:
    return _on_staff(talent, ("national_programme", "provincial_programme"))


@signal(
    name_zh="每百人高级职称数",
    name_en="Senior titles per 100 staff",
    family="talent",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="per 100 staff",
    lower_bound=0.0,
    description="Staff with a senior professional title (joins minus departures) per 100 insured employees "
    "(latest headcount of the last 12 months).",
    reason_en="Few senior engineers relative to the workforce",
    reason_zh="高级职称人员占比低",
)
def senior_titles_per_100(talent: EventWindow, firm_size_headcount: np.ndarray) -> np.ndarray:
    return 100.0 * ratio(_on_staff(talent, ("senior_title",)), firm_size_headcount)


@signal(
    name_zh="博士人数",
    name_en="Doctorates on staff",
    family="talent",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="people",
    lower_bound=0.0,
    description="Staff holding a doctorate, joins minus departures.",
    reason_en="No doctorates on staff",
    reason_zh="缺少博士研发人员",
)
def doctorates(talent: EventWindow) -> np.ndarray:
    return _on_staff(talent, ("doctorate",))


@signal(
    name_zh="近两年关键人才流失率",
    name_en="Key staff departure rate, last 24 months",
    family="talent",
    lookback_months=LOOKBACK,
    direction=0,
    unit="share",
    lower_bound=0.0,
    description="Departures of credentialed key staff in the 24 months before the application divided by those "
    "departures plus the credentialed staff still on the books; NaN for a firm without credentialed staff. A rate, "
    "not a count, so that talent-rich firms are not penalised for ordinary turnover. No direction is imposed: "
    "ordinary turnover rises with a firm's age, so only a spike signals trouble.",
    reason_en="A large share of key technical staff left recently",
    reason_zh="近两年核心技术人才流失比例高",
)
def talent_departure_rate_24m(talent: EventWindow) -> np.ndarray:
    leave = np.asarray(talent["event"] == "leave")
    recent = talent.months_before(talent["event_date"]) <= 24
    left = talent.count(leave & recent)
    on_staff = np.maximum(talent.count(~leave) - talent.count(leave), 0.0)
    return ratio(left, left + on_staff)
