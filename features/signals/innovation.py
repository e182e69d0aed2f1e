"""Innovation signals: R&D spending and its consistency with tax filings, patents and copyrights.

Sources: ``financials`` (annual statements), ``rnd_deductions`` (R&D super-deduction filings),
``patents`` (grant / lapse / pledge / pledge-release events), ``social_security`` (headcount).
"""

from __future__ import annotations

import numpy as np

from features.asof import EventWindow, growth, ratio
from features.registry import signal

# IP classes of the 科技型中小企业 evaluation: invention patents are Class I; utility models, designs and
# software copyrights are Class II.
CLASS_II = ("utility_model", "design", "software_copyright")
PATENTS = ("invention", "utility_model", "design")


def _stock(patents: EventWindow, types: tuple[str, ...]) -> np.ndarray:
    """Rights granted minus rights lapsed, among ``types`` (each right has at most one of each event)."""
    kind = np.asarray(patents["patent_type"].isin(types))
    event = patents["event"]
    grants = patents.count(kind & np.asarray(event == "grant"))
    lapses = patents.count(kind & np.asarray(event == "lapse"))
    return np.maximum(grants - lapses, 0.0)


@signal(
    name_zh="研发投入强度(近一年)",
    name_en="R&D intensity, latest year",
    family="innovation",
    lookback_months=24,
    direction=0,
    unit="share of revenue",
    lower_bound=0.0,
    description="R&D expense divided by revenue in the latest annual statement known before the application. "
    "Not monotone in risk: too little R&D marks a weak innovator, a very high ratio a pre-revenue firm burning cash "
    "(rnd_intensity_band grades it against the high-tech threshold instead).",
    reason_en="Low R&D spending relative to revenue",
    reason_zh="研发投入占营业收入比例偏低",
)
def rnd_intensity_1y(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["rnd_expense"], last["revenue"])


@signal(
    name_zh="研发投入强度(近三年)",
    name_en="R&D intensity, last three years",
    family="innovation",
    lookback_months=48,
    direction=0,
    unit="share of revenue",
    lower_bound=0.0,
    description="Sum of R&D expense over the latest three known annual statements divided by their summed "
    "revenue (fewer years for younger firms), as in the high-tech enterprise test. Not monotone in risk (see "
    "rnd_intensity_1y).",
    reason_en="Low three-year R&D spending relative to revenue",
    reason_zh="近三年研发投入占收入比例偏低",
)
def rnd_intensity_3y(financials: EventWindow) -> np.ndarray:
    recent = financials.rank("period_end") < 3
    return ratio(financials.sum(financials["rnd_expense"], recent), financials.sum(financials["revenue"], recent))


@signal(
    name_zh="研发投入增长率",
    name_en="R&D expense growth",
    family="innovation",
    lookback_months=36,
    direction=-1,
    unit="relative change",
    description="Year-on-year change of R&D expense between the two latest known statements of consecutive fiscal years.",
    reason_en="R&D spending fell or stopped growing",
    reason_zh="研发投入下降或停滞",
)
def rnd_growth(financials: EventWindow) -> np.ndarray:
    new, old = financials.latest("period_end", 0), financials.latest("period_end", 1)
    consecutive = new["fiscal_year"] - old["fiscal_year"] == 1
    return np.where(consecutive, growth(new["rnd_expense"], old["rnd_expense"]), np.nan)


@signal(
    name_zh="研发费用申报一致性差距",
    name_en="R&D claim gap",
    family="innovation",
    lookback_months=36,
    direction=0,
    unit="share",
    lower_bound=0.0,
    description="|reported - claimed| / max(reported, claimed) between the R&D expense in the statement and the R&D "
    "super-deduction claim of the same (latest claimed) year; 0 is perfectly consistent. A bookkeeping-quality "
    "check for reviewers; no direction is imposed on models.",
    reason_en="R&D in the accounts does not match the R&D claimed for tax",
    reason_zh="财务报表研发费用与加计扣除申报不一致",
)
def rnd_claim_gap(rnd_deductions: EventWindow, financials: EventWindow) -> np.ndarray:
    claim = rnd_deductions.latest("tax_year")
    year = claim["tax_year"]
    same_year = financials["fiscal_year"] == year[financials.app]
    found = financials.count(same_year) > 0
    reported = np.where(found, financials.sum(financials["rnd_expense"], same_year), np.nan)
    claimed = claim["rnd_expense_claimed"]
    return ratio(np.abs(reported - claimed), np.fmax(reported, claimed))


@signal(
    name_zh="有效发明专利数",
    name_en="Invention patents in force",
    family="innovation",
    lookback_months=0,
    direction=-1,
    unit="patents",
    lower_bound=0.0,
    description="Invention patents granted and not lapsed, as published before the application.",
    reason_en="Few invention patents in force",
    reason_zh="有效发明专利较少",
)
def invention_patent_stock(patents: EventWindow) -> np.ndarray:
    return _stock(patents, ("invention",))


@signal(
    name_zh="二类知识产权数",
    name_en="Class II IP in force",
    family="innovation",
    lookback_months=0,
    direction=-1,
    unit="rights",
    lower_bound=0.0,
    description="Utility models, designs and software copyrights granted and not lapsed (Class II IP in the tech-SME evaluation).",
    reason_en="Little secondary intellectual property",
    reason_zh="实用新型、外观设计及软件著作权较少",
)
def class2_ip_stock(patents: EventWindow) -> np.ndarray:
    return _stock(patents, CLASS_II)


@signal(
    name_zh="近两年专利授权数",
    name_en="Patent grants, last 24 months",
    family="innovation",
    lookback_months=24,
    direction=-1,
    unit="patents",
    lower_bound=0.0,
    description="Patents (invention, utility model, design) granted in the 24 months before the application: grant velocity.",
    reason_en="No recent patent grants",
    reason_zh="近两年专利授权较少",
)
def patent_grants_24m(patents: EventWindow) -> np.ndarray:
    return patents.count(np.asarray(patents["patent_type"].isin(PATENTS)) & np.asarray(patents["event"] == "grant"))


@signal(
    name_zh="专利失效率(近三年)",
    name_en="Patent lapse rate, 36 months",
    family="innovation",
    lookback_months=0,
    direction=0,
    unit="share",
    lower_bound=0.0,
    description="Patents lapsed in the 36 months before the application divided by all patents ever granted to the firm. "
    "Ambiguous: unpaid fees can mean distress, but mature portfolios are also pruned on purpose.",
    reason_en="Patents are being abandoned (fees unpaid)",
    reason_zh="近三年专利失效比例偏高",
)
def patent_lapse_rate_36m(patents: EventWindow) -> np.ndarray:
    kind = np.asarray(patents["patent_type"].isin(PATENTS))
    event = patents["event"]
    recent = patents.months_before(patents["event_date"]) <= 36
    lapses = patents.count(kind & np.asarray(event == "lapse") & recent)
    return ratio(lapses, patents.count(kind & np.asarray(event == "grant")))


@signal(
    name_zh="软件著作权数",
    name_en="Software copyrights",
    family="innovation",
    lookback_months=0,
    direction=-1,
    unit="registrations",
    lower_bound=0.0,
    description="Software copyrights registered before the application.",
    reason_en="Few software copyrights",
    reason_zh="软件著作权较少",
)
def software_copyrights(patents: EventWindow) -> np.ndarray:
    return _stock(patents, ("software_copyright",))


@signal(
    name_zh="质押中专利数",
    name_en="Pledged patents",
    family="innovation",
    lookback_months=0,
    direction=-1,
    unit="patents",
    lower_bound=0.0,
    description="Patents currently pledged as collateral (pledges registered minus pledges released). Lenders accept "
    "only valuable, enforceable patents as collateral, so a pledge is evidence that the IP is bankable.",
    reason_en="No patent has been accepted as loan collateral",
    reason_zh="无专利获得质押融资,知识产权价值未经金融机构验证",
)
def pledged_patents(patents: EventWindow) -> np.ndarray:
    event = patents["event"]
    return np.maximum(patents.count(np.asarray(event == "pledge")) - patents.count(np.asarray(event == "pledge_release")), 0.0)


@signal(
    name_zh="发明专利占比",
    name_en="Invention share of patents",
    family="innovation",
    lookback_months=0,
    direction=-1,
    unit="share",
    lower_bound=0.0,
    description="Invention patents in force divided by all patents in force (invention, utility model, design).",
    reason_en="Patent portfolio is mostly minor (utility model/design) rights",
    reason_zh="专利以实用新型和外观设计为主,发明专利占比低",
)
def invention_share(patents: EventWindow) -> np.ndarray:
    return ratio(_stock(patents, ("invention",)), _stock(patents, PATENTS))


@signal(
    name_zh="高新技术产品收入占比",
    name_en="High-tech revenue share",
    family="innovation",
    lookback_months=24,
    direction=-1,
    unit="share of revenue",
    lower_bound=0.0,
    description="Revenue from high-tech products and services divided by revenue, latest known statement.",
    reason_en="Little revenue from high-tech products",
    reason_zh="高新技术产品收入占比低",
)
def high_tech_revenue_share(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["high_tech_revenue"], last["revenue"])


@signal(
    name_zh="研发人员占比",
    name_en="R&D staff share",
    family="innovation",
    lookback_months=24,
    direction=-1,
    unit="share of staff",
    lower_bound=0.0,
    description="R&D staff declared in the latest super-deduction filing divided by the latest insured headcount "
    "(last 12 months).",
    reason_en="Few R&D staff relative to the workforce",
    reason_zh="研发人员占职工总数比例低",
)
def rnd_staff_share(rnd_deductions: EventWindow, firm_size_headcount: np.ndarray) -> np.ndarray:
    staff = rnd_deductions.latest("tax_year")["rnd_staff"]
    return np.minimum(ratio(staff, firm_size_headcount), 1.0)


@signal(
    name_zh="研发费用占成本费用比",
    name_en="R&D share of total costs",
    family="innovation",
    lookback_months=24,
    direction=0,
    unit="share of costs",
    lower_bound=0.0,
    description="R&D expense divided by total costs and expenses (revenue minus net profit) in the latest known statement. "
    "Not monotone in risk, like rnd_intensity_1y.",
    reason_en="Low R&D spending relative to total costs",
    reason_zh="研发费用占成本费用总额比例低",
)
def rnd_to_total_cost(financials: EventWindow) -> np.ndarray:
    last = financials.latest("period_end")
    return ratio(last["rnd_expense"], last["revenue"] - last["net_profit"])
