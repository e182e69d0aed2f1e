"""Certification signals: high-tech enterprise (高企), tech SME (科技型中小企业), 专精特新 and 小巨人.

A certificate counts as valid for an application when its publication was known before the
application date and its expiry date is on or after it. Source: ``certifications``.
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow
from features.registry import signal

LOOKBACK = 48  # certificates last three years; 48 months covers any certificate still valid


def _valid(certifications: EventWindow, cert_type: str) -> np.ndarray:
    """Mask of (application, certificate) pairs of ``cert_type`` still valid on the application date."""
    return np.asarray(certifications["cert_type"] == cert_type) & (certifications["expiry_date"] >= certifications.app_date)


@signal(
    name_zh="高新技术企业资格有效",
    name_en="High-tech enterprise certificate valid",
    family="certification",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="0/1",
    lower_bound=0.0,
    description="1 if the firm holds a high-tech enterprise certificate valid on the application date, else 0.",
    reason_en="Not a certified high-tech enterprise",
    reason_zh="未取得有效的高新技术企业资格",
)
def high_tech_valid(certifications: EventWindow) -> np.ndarray:
    return (certifications.count(_valid(certifications, "high_tech")) > 0).astype(np.float64)


@signal(
    name_zh="高企资格剩余月数",
    name_en="Months to high-tech certificate expiry",
    family="certification",
    lookback_months=LOOKBACK,
    direction=0,
    unit="months",
    lower_bound=0.0,
    description="Months from the application date to the expiry of the firm's valid high-tech certificate "
    "(the latest-expiring one); NaN without a valid certificate.",
    reason_en="High-tech certificate expires soon and must be renewed",
    reason_zh="高新技术企业资格即将到期,需重新认定",
    actionable=False,
)
def high_tech_months_to_expiry(certifications: EventWindow) -> np.ndarray:
    valid = _valid(certifications, "high_tech")
    return certifications.max(-certifications.months_before(certifications["expiry_date"]), valid)


@signal(
    name_zh="科技型中小企业入库有效",
    name_en="Tech SME registration valid",
    family="certification",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="0/1",
    lower_bound=0.0,
    description="1 if the firm is registered as a tech SME (科技型中小企业) on the application date, else 0.",
    reason_en="Not registered as a tech SME",
    reason_zh="未入库科技型中小企业",
)
def tech_sme_valid(certifications: EventWindow) -> np.ndarray:
    return (certifications.count(_valid(certifications, "tech_sme")) > 0).astype(np.float64)


@signal(
    name_zh="专精特新企业资格有效",
    name_en="Specialised-and-innovative (专精特新) certificate valid",
    family="certification",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="0/1",
    lower_bound=0.0,
    description="1 if the firm holds a valid provincial specialised, refined, distinctive and innovative (专精特新) "
    "SME certificate, or a 小巨人 certificate (which presupposes it), on the application date.",
    reason_en="Not a certified specialised-and-innovative SME",
    reason_zh="未取得专精特新中小企业认定",
)
def specialized_valid(certifications: EventWindow) -> np.ndarray:
    valid = _valid(certifications, "specialized") | _valid(certifications, "little_giant")
    return (certifications.count(valid) > 0).astype(np.float64)


@signal(
    name_zh="专精特新小巨人资格有效",
    name_en="Little giant (小巨人) certificate valid",
    family="certification",
    lookback_months=LOOKBACK,
    direction=-1,
    unit="0/1",
    lower_bound=0.0,
    description="1 if the firm holds a valid national 专精特新 'little giant' certificate on the application date.",
    reason_en="Not a national little-giant firm",
    reason_zh="未取得国家级专精特新小巨人认定",
)
def little_giant_valid(certifications: EventWindow) -> np.ndarray:
    return (certifications.count(_valid(certifications, "little_giant")) > 0).astype(np.float64)
