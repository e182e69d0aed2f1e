"""Labelled data products the hub serves to banks: documented formulas over signals.

Each product is a registered feature (kind="product") whose parameters are the signals it combines,
so it inherits their point-in-time guarantee, and appears in the catalog with its formula. Scores are
built from points so a credit officer can recompute them by hand:

* 研发投入强度 (``rnd_intensity_band``): three-year R&D intensity graded against the high-tech
  enterprise threshold for the firm's revenue band (5% for revenue up to CNY 50M, 4% up to 200M,
  3% above): 2 meets it, 1 reaches half of it, 0 below half. The intensity itself is the signal
  ``rnd_intensity_3y``.
* 技术成熟度指数 (``tech_maturity_index``, 0-100): IP, certifications, high-tech revenue and age.
* 科创成长性评分 (``growth_score``, 0-100): revenue, sales, workforce, energy and R&D growth.
* 创新积分 (``innovation_points``, 0-100): points in three groups in the spirit of the national
  enterprise innovation-points scheme (technological innovation 50, growth and operation 30,
  auxiliary 20).
* 科技型中小企业评价得分 (``tech_sme_score``, 0-100): the official evaluation tables, tech staff share
  20 points, R&D 50 points, IP 30 points; 60 or more qualifies.

Missing inputs earn no points (a score is NaN only when every input is missing).
"""

from __future__ import annotations

import numpy as np

from features.registry import product

# High-tech enterprise R&D thresholds by revenue band (revenue in CNY 10k, 万元).
HIGH_TECH_BANDS = ((5000.0, 0.05), (20000.0, 0.04), (np.inf, 0.03))


def rnd_threshold(revenue: np.ndarray) -> np.ndarray:
    """High-tech R&D intensity threshold for each revenue (CNY 10k): <=5000 -> 5%, <=20000 -> 4%, else 3%."""
    revenue = np.asarray(revenue, dtype=np.float64)
    out = np.where(revenue <= 5000.0, 0.05, np.where(revenue <= 20000.0, 0.04, 0.03))
    return np.where(np.isnan(revenue), np.nan, out)


def steps(x: np.ndarray, edges: tuple[float, ...], points: tuple[float, ...]) -> np.ndarray:
    """Points for ``x`` from a step table: ``x >= edges[i]`` earns ``points[i]`` (edges descending);
    below the last edge earns 0; NaN earns 0."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(len(x))
    assigned = np.zeros(len(x), dtype=bool)
    for edge, pts in zip(edges, points):
        hit = ~assigned & (x >= edge)
        out[hit] = pts
        assigned |= hit
    return out


def _all_missing(*arrays: np.ndarray) -> np.ndarray:
    return np.all([np.isnan(np.asarray(a, dtype=np.float64)) for a in arrays], axis=0)


def _unit(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of ``x`` from [lo, hi] to [0, 1], clipped; NaN stays NaN."""
    return np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)


@product(
    name_zh="研发投入强度档位(对高企门槛)",
    name_en="R&D intensity band against the high-tech threshold",
    direction=-1,
    unit="band (0, 1, 2)",
    lower_bound=0.0,
    description="Three-year R&D intensity graded against the high-tech enterprise threshold of the firm's revenue band "
    "(latest revenue <= CNY 50M: 5%; 50M-200M: 4%; > 200M: 3%): 2 meets the threshold, 1 reaches at least half of "
    "it, 0 less than half. The band, not the raw ratio, is the product: beyond the threshold more R&D per unit of "
    "revenue mostly marks a pre-revenue firm, not a safer one.",
    reason_en="R&D intensity below the high-tech enterprise threshold",
    reason_zh="研发投入强度未达到高新技术企业认定标准",
)
def rnd_intensity_band(rnd_intensity_3y: np.ndarray, revenue_latest: np.ndarray) -> np.ndarray:
    r = np.asarray(rnd_intensity_3y, dtype=np.float64) / rnd_threshold(revenue_latest)
    return np.where(np.isnan(r), np.nan, np.where(r >= 1.0, 2.0, np.where(r >= 0.5, 1.0, 0.0)))


@product(
    name_zh="技术成熟度指数",
    name_en="Technology maturity index",
    direction=-1,
    unit="points (0-100)",
    lower_bound=0.0,
    description="0-100: invention patents in force (30 points at 10 or more, linear), Class II IP (10 at 20), "
    "valid high-tech certificate (15), 专精特新 certificate (5) and little giant (5), high-tech revenue share "
    "(20 at 60% or more, linear), firm age (15 at 10 years, linear).",
    reason_en="Technology is at an early, unproven stage",
    reason_zh="技术成熟度低,成果尚未得到充分验证",
)
def tech_maturity_index(
    invention_patent_stock: np.ndarray,
    class2_ip_stock: np.ndarray,
    high_tech_valid: np.ndarray,
    specialized_valid: np.ndarray,
    little_giant_valid: np.ndarray,
    high_tech_revenue_share: np.ndarray,
    firm_age_years: np.ndarray,
) -> np.ndarray:
    parts = [
        30 * _unit(invention_patent_stock, 0, 10),
        10 * _unit(class2_ip_stock, 0, 20),
        15 * _unit(high_tech_valid, 0, 1),
        5 * _unit(specialized_valid, 0, 1),
        5 * _unit(little_giant_valid, 0, 1),
        20 * _unit(high_tech_revenue_share, 0, 0.6),
        15 * _unit(firm_age_years, 0, 10),
    ]
    total = np.nansum(np.vstack(parts), axis=0)
    inputs = (invention_patent_stock, class2_ip_stock, high_tech_valid, specialized_valid, little_giant_valid, high_tech_revenue_share, firm_age_years)
    return np.where(_all_missing(*inputs), np.nan, total)


@product(
    name_zh="科创成长性评分",
    name_en="Sci-tech growth score",
    direction=-1,
    unit="points (0-100)",
    lower_bound=0.0,
    description="0-100: weighted mean over the available components, each mapped linearly to 0-100: revenue growth "
    "(weight 25, -30%..+50%), invoiced sales growth (25, -30%..+50%), 12-month headcount growth (20, -20%..+30%), "
    "electricity growth (15, -30%..+50%), R&D growth (15, -30%..+50%).",
    reason_en="Weak growth across revenue, sales, staff and activity",
    reason_zh="收入、开票、用工及用电等成长性指标偏弱",
)
def growth_score(
    revenue_growth: np.ndarray,
    sales_growth_yoy: np.ndarray,
    headcount_growth_12m: np.ndarray,
    energy_yoy_12m: np.ndarray,
    rnd_growth: np.ndarray,
) -> np.ndarray:
    comps = np.vstack(
        [
            _unit(revenue_growth, -0.3, 0.5),
            _unit(sales_growth_yoy, -0.3, 0.5),
            _unit(headcount_growth_12m, -0.2, 0.3),
            _unit(energy_yoy_12m, -0.3, 0.5),
            _unit(rnd_growth, -0.3, 0.5),
        ]
    )
    w = np.array([25.0, 25.0, 20.0, 15.0, 15.0])[:, None] * ~np.isnan(comps)
    wsum = w.sum(axis=0)
    score = 100.0 * np.nansum(comps * w, axis=0) / np.where(wsum > 0, wsum, 1.0)
    return np.where(wsum > 0, score, np.nan)


@product(
    name_zh="创新积分",
    name_en="Innovation points",
    direction=-1,
    unit="points (0-100)",
    lower_bound=0.0,
    description="Points in three groups after the national enterprise innovation-points scheme. Technological "
    "innovation (50): R&D intensity >=6% 15, >=4% 10, >=2% 5; R&D growth >=20% 10, >=0 5; invention patents >=5 15, "
    ">=1 10; Class II IP >=5 5; a patent granted in 24 months 5. Growth and operation (30): revenue growth >=20% 10, "
    ">=0 5; high-tech revenue share >=60% 10, >=30% 5; return on assets >=5% 10, >0 5. Auxiliary (20): high-level "
    "talent >=1 10; senior titles per 100 staff >=5 5; a tender won in 24 months 5.",
    reason_en="Few innovation points",
    reason_zh="创新积分低",
)
def innovation_points(
    rnd_intensity_1y: np.ndarray,
    rnd_growth: np.ndarray,
    invention_patent_stock: np.ndarray,
    class2_ip_stock: np.ndarray,
    patent_grants_24m: np.ndarray,
    revenue_growth: np.ndarray,
    high_tech_revenue_share: np.ndarray,
    return_on_assets: np.ndarray,
    high_level_talent: np.ndarray,
    senior_titles_per_100: np.ndarray,
    bids_won_24m: np.ndarray,
) -> np.ndarray:
    roa = np.asarray(return_on_assets, dtype=np.float64)
    total = (
        steps(rnd_intensity_1y, (0.06, 0.04, 0.02), (15, 10, 5))
        + steps(rnd_growth, (0.20, 0.0), (10, 5))
        + steps(invention_patent_stock, (5, 1), (15, 10))
        + steps(class2_ip_stock, (5,), (5,))
        + steps(patent_grants_24m, (1,), (5,))
        + steps(revenue_growth, (0.20, 0.0), (10, 5))
        + steps(high_tech_revenue_share, (0.60, 0.30), (10, 5))
        + np.where(roa >= 0.05, 10.0, np.where(roa > 0, 5.0, 0.0))
        + steps(high_level_talent, (1,), (10,))
        + steps(senior_titles_per_100, (5,), (5,))
        + steps(bids_won_24m, (1,), (5,))
    )
    inputs = (rnd_intensity_1y, rnd_growth, invention_patent_stock, class2_ip_stock, patent_grants_24m, revenue_growth,
              high_tech_revenue_share, return_on_assets, high_level_talent, senior_titles_per_100, bids_won_24m)
    return np.where(_all_missing(*inputs), np.nan, total)


@product(
    name_zh="科技型中小企业评价得分",
    name_en="Tech SME evaluation score",
    direction=-1,
    unit="points (0-100)",
    lower_bound=0.0,
    description="The tech-SME (科技型中小企业) evaluation tables. Tech staff share (20): >=30% 20, >=25% 16, >=20% 12, "
    ">=15% 8, >=10% 4. R&D (50), the better of R&D/revenue >=6% 50, >=5% 40, >=4% 30, >=3% 20, >=2% 10 and R&D/total "
    "costs >=30% 50, >=25% 40, >=20% 30, >=15% 20, >=10% 10. IP (30): an invention patent in force 30, else Class II "
    "IP 4+ 24, 3 18, 2 12, 1 6. 60 points or more qualifies.",
    reason_en="Would not qualify as a tech SME (score under 60)",
    reason_zh="科技型中小企业评价得分低",
)
def tech_sme_score(
    rnd_staff_share: np.ndarray,
    rnd_intensity_1y: np.ndarray,
    rnd_to_total_cost: np.ndarray,
    invention_patent_stock: np.ndarray,
    class2_ip_stock: np.ndarray,
) -> np.ndarray:
    staff = steps(rnd_staff_share, (0.30, 0.25, 0.20, 0.15, 0.10), (20, 16, 12, 8, 4))
    rnd = np.maximum(
        steps(rnd_intensity_1y, (0.06, 0.05, 0.04, 0.03, 0.02), (50, 40, 30, 20, 10)),
        steps(rnd_to_total_cost, (0.30, 0.25, 0.20, 0.15, 0.10), (50, 40, 30, 20, 10)),
    )
    class2 = np.minimum(np.nan_to_num(np.asarray(class2_ip_stock, dtype=np.float64)), 4.0) * 6.0
    ip = np.where(np.asarray(invention_patent_stock, dtype=np.float64) >= 1, 30.0, class2)
    inputs = (rnd_staff_share, rnd_intensity_1y, rnd_to_total_cost, invention_patent_stock, class2_ip_stock)
    return np.where(_all_missing(*inputs), np.nan, staff + rnd + ip)
