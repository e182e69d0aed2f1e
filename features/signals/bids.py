"""Bid signals from public procurement awards: orders won from government, SOEs, universities and hospitals.

Source: ``bids``.
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow
from features.registry import signal


@signal(
    name_zh="近两年中标次数",
    name_en="Tenders won, last 24 months",
    family="bids",
    lookback_months=24,
    direction=-1,
    unit="awards",
    lower_bound=0.0,
    description="Public procurement awards published in the 24 months before the application.",
    reason_en="No public tenders won recently",
    reason_zh="近两年无公开中标记录",
)
def bids_won_24m(bids: EventWindow) -> np.ndarray:
    return bids.count()


@signal(
    name_zh="近两年中标金额",
    name_en="Tender value won, last 24 months",
    family="bids",
    lookback_months=24,
    direction=-1,
    unit="CNY 10k (万元)",
    lower_bound=0.0,
    description="Total contract amount of public procurement awards in the 24 months before the application.",
    reason_en="Little contract value won in public tenders",
    reason_zh="近两年中标金额小",
)
def bid_amount_24m(bids: EventWindow) -> np.ndarray:
    return bids.sum(bids["amount"])
