"""The latent model behind the synthetic data hub: firms, their hidden state, and how it shows in data.

Everything here is vectorised over a chunk of firms: the monthly panel is a (firms x months) array,
annual sources are (firms x years) arrays, event registers (patents, certificates, talent, bids) are
built with ``np.repeat`` over per-firm counts. There is no Python loop over firms; the only loops
run over months (the AR(1) recursion), years, application rounds or certificate cycles.

Hidden state of firm i (documented in data/synthetic/README.md):

- ``T`` technology strength, static, N(0,1): R&D intensity, patents, certificates, talent, bids.
- ``F`` financial strength, static, N(0,1), corr(T, F) = 0.3: leverage, margins, liquidity, cash flow
  -- but only for mature firms. A young firm's statements are noisy and loss-making whatever F is
  (the maturity factor ``m = 1 - exp(-age / 3)`` blends the two), which is the proposal's thesis.
- ``H_t`` monthly operating health: AR(1) around a firm level driven by T, F and an idiosyncratic
  term, minus distress episodes (slow slides of 1 to 2.5 units over 6 to 18 months, some recovering).
  H drives electricity, headcount, invoices, bills and procurement wins; the lower H, the likelier a
  month in which production stops and the meter reads zero kWh (``zero_kwh_months``, which also
  writes zeros for moves, meter changes and festival closures).

A loan application at month t gets ``true_pd = sigmoid(a + z)`` with ``z`` a linear function of T,
m*F, the mean H of the three months before t, the six-month change in H, industry, region and age;
the intercept ``a`` is calibrated on a fixed calibration sample so labelled applications default at
the requested rate. A defaulting firm's health slides from the application (3 to 12 months before
the default) so distress shows in its monthly data ahead of the default, and its activity stops
some months after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.tables import INDUSTRIES, REGIONS

BURN_IN_MONTHS = 12  # latent panel starts in January of the year before the data window (its statements, bids history)
MAX_APPS = 5  # applications per firm at most
APP_GAP_MIN = 13  # months between two applications of a firm: the 12-month windows never overlap
STAFF_CAP = 500  # tech SMEs have at most 500 staff
DAY = np.timedelta64(1, "D")

# Month (1 or 2) of the Spring Festival (春节) by year: the month with the holiday dip.
SPRING_FESTIVAL_MONTH = {
    2000: 2, 2001: 1, 2002: 2, 2003: 2, 2004: 1, 2005: 2, 2006: 1, 2007: 2, 2008: 2, 2009: 1,
    2010: 2, 2011: 2, 2012: 1, 2013: 2, 2014: 1, 2015: 2, 2016: 2, 2017: 1, 2018: 2, 2019: 2,
    2020: 1, 2021: 2, 2022: 2, 2023: 1, 2024: 2, 2025: 1, 2026: 2, 2027: 2, 2028: 1, 2029: 2,
    2030: 2, 2031: 1, 2032: 2, 2033: 1, 2034: 2, 2035: 2, 2036: 1,
}

# ---- industry profiles (order = features.tables.INDUSTRIES) -------------------------------------
# ai, integrated_circuits, biomedicine, new_energy, new_materials, high_end_equipment, software
IND_SHARE = np.array([0.13, 0.10, 0.14, 0.13, 0.14, 0.21, 0.15])
IND_STAFF = np.log(np.array([55.0, 80.0, 65.0, 100.0, 85.0, 110.0, 45.0]))  # median staff at maturity
IND_REV_PER_STAFF = np.array([55.0, 90.0, 60.0, 130.0, 110.0, 95.0, 40.0])  # 万元 per staff per year
IND_KWH_PER_STAFF = np.array([450.0, 1600.0, 900.0, 2800.0, 3500.0, 2200.0, 180.0])  # kWh per staff per month
IND_NO_METER = np.array([0.25, 0.04, 0.05, 0.03, 0.03, 0.04, 0.45])  # share in shared offices
IND_RND = np.array([0.12, 0.16, 0.18, 0.040, 0.045, 0.050, 0.11])  # median R&D/revenue of non-targeting firms
IND_GROSS_MARGIN = np.array([0.50, 0.45, 0.60, 0.22, 0.25, 0.32, 0.60])
IND_COST_SHARE = np.array([0.35, 0.55, 0.40, 0.70, 0.70, 0.60, 0.25])  # purchases / sales
IND_MANUFACTURING = np.array([False, True, True, True, True, True, False])
IND_BILL_USERS = np.array([0.15, 0.40, 0.30, 0.50, 0.50, 0.50, 0.10])
IND_FESTIVAL_DIP = np.array([0.82, 0.72, 0.75, 0.68, 0.66, 0.70, 0.85])
IND_CUSTOMERS = np.array([1.2, 0.5, 0.8, 0.7, 0.8, 0.6, 1.8])
IND_CONCENTRATION = np.array([0.30, 0.45, 0.35, 0.40, 0.35, 0.40, 0.25])
IND_TALENT = np.array([1.3, 1.4, 1.5, 0.8, 0.9, 0.8, 0.9])
IND_BIDS = np.array([1.5, 0.3, 0.8, 0.6, 0.4, 1.0, 2.0])  # procurement wins per year of a bidding firm
IND_BIDDERS = np.array([0.55, 0.25, 0.55, 0.35, 0.30, 0.50, 0.65])
IND_PD = np.array([0.10, -0.05, 0.15, 0.10, 0.0, -0.10, 0.05])  # industry effect on log-odds
# patent filings per year (invention, utility model, design, software copyright) of a 50-staff firm, T = 0
IND_PATENTS = np.array([
    [0.50, 0.30, 0.05, 1.20],
    [1.00, 0.50, 0.02, 0.15],
    [0.80, 0.25, 0.05, 0.05],
    [0.40, 1.20, 0.15, 0.10],
    [0.50, 1.00, 0.05, 0.03],
    [0.35, 1.50, 0.25, 0.25],
    [0.15, 0.05, 0.03, 2.00],
])
# buyer types (government, soe, university_hospital) by industry
IND_BUYERS = np.array([
    [0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.2, 0.1, 0.7], [0.4, 0.6, 0.0],
    [0.3, 0.6, 0.1], [0.3, 0.6, 0.1], [0.7, 0.2, 0.1],
])
# ---- regions (order = features.tables.REGIONS) --------------------------------------------------
# jingjinji, yangtze_delta, greater_bay, chengyu, central, west_northeast
REG_SHARE = np.array([0.18, 0.30, 0.20, 0.09, 0.13, 0.10])
REG_PD = np.array([-0.10, -0.15, -0.05, 0.05, 0.10, 0.25])
REG_ADMIN = [
    ["110108", "110105", "120116", "130100"],
    ["310115", "320500", "330100", "320100"],
    ["440300", "440100", "440600", "441900"],
    ["510100", "500000", "510700", "500112"],
    ["420100", "430100", "410100", "340100"],
    ["610100", "210200", "230100", "530100"],
]
# ---- products (order = features.tables.PRODUCTS) -------------------------------------------------
PROD_AMOUNT = np.array([0.15, 0.10, 0.20, 0.05])  # share of annual revenue requested
PROD_TERMS = [np.array([12, 24, 36]), np.array([6, 12]), np.array([24, 36, 48, 60]), np.array([12, 24, 36])]

# ---- default model ------------------------------------------------------------------------------
PD_T = -0.65
PD_F = -0.75  # times maturity
PD_H_LEVEL = -0.80
PD_H_TREND = -0.55
PD_YOUNG = 0.45  # times exp(-age / 1.5)

# ---- months in which the firm's own meter reads zero kWh -----------------------------------------
# A real meter reads zero when nothing runs behind it for the whole month. Five causes, all modest:
ZERO_SHUTDOWN = (-7.8, -1.6)  # production halted: monthly start chance sigmoid(a + b * H), mostly in distress
ZERO_SHUTDOWN_OFFICE = 0.5  # ... times this for office-based industries (ai, software): lights stay on longer
ZERO_SHUTDOWN_STAYS = 0.45  # chance a shutdown lasts another month (mean length 1.8 months)
ZERO_WIND_DOWN = 0.5  # firms that stop operating: share whose meter reads zero in their last 1-2 months
ZERO_MOVE_RATE = (0.01, 0.02)  # moves a year that leave a whole month without use: base + extra times exp(-age / 3)
ZERO_MOVE_SECOND_MONTH = 0.4  # a move leaves one month at zero, or two with this chance
ZERO_METER_CHANGE_RATE = 0.005  # meter replacements a year that leave one zero reading
ZERO_FESTIVAL_SHARE = 0.04  # manufacturers that close for the whole Spring Festival month ...
ZERO_FESTIVAL_YEAR = 0.7  # ... in a given year with this chance

# ---- sources: share of firms the hub never receives a feed for, feeds connected late, missing months ----
# Connection (never, or late inside the window) is data plumbing: it does not depend on the firm's health.
NOT_CONNECTED = {"electricity": 0.04, "social_security": 0.03, "invoices": 0.05, "bills": 0.02, "financials": 0.08}
LATE_CONNECTED = {"electricity": 0.12, "social_security": 0.05, "invoices": 0.08, "bills": 0.05}
# Missing months of a connected, living firm have two causes:
# - plumbing: a month lost between the grid, the social-security fund, the tax bureau or the bill exchange
#   and the hub; any firm alike, each month with chance MONTH_GAP_PLUMBING;
# - arrears (payroll and invoices only): a firm short of cash stops paying social-security contributions
#   (欠缴社保) or issues no VAT invoice in a month, with chance sigmoid(a + b * H) that month: 0.1% at
#   H = 0, 2% at H = -2, 7-10% at H = -3, so mostly in distress episodes and around a default (H slides
#   before it and keeps falling after it).
# Together they miss about MONTH_GAP of a generated hub's living, connected months, as the plumbing
# alone did up to generator 1.1.0 (the arrears intercepts are set for that; checked by
# tests/data/test_generator.py::test_only_payroll_and_invoice_gaps_follow_health).
MONTH_GAP = {"electricity": 0.015, "social_security": 0.008, "invoices": 0.012, "bills": 0.01}
MONTH_GAP_PLUMBING = {"electricity": 0.015, "social_security": 0.002, "invoices": 0.004, "bills": 0.01}
MONTH_GAP_ARREARS = {"social_security": (-7.1, -1.5), "invoices": (-6.7, -1.5)}
# A connected firm's annual statement is missing for a fiscal year with chance sigmoid(a + b * mean H of
# that year): 2% at H = 0, 14% at H = -2, about 4% of living firm-years (the flat rate up to generator
# 1.1.0). A firm short of cash delays or skips its audit and filing; a healthy one misses a year by accident.
STATEMENT_MISSING = (-3.8, -1.0)

# ---- the bank's approval policy ------------------------------------------------------------------
COLLATERAL_CAP = 1.0  # collateral coverage counts up to this (a loan covered once over is covered)
LEVERAGE_LIMIT = 0.7  # liabilities / assets above this count against the firm
MAX_STATEMENTS = 2  # statements count up to two years of filed accounts
MAX_INVENTIONS = 3  # granted invention patents count up to three


@dataclass(frozen=True)
class ApprovalPolicy:
    """How the bank decides an application from what it knows on the application date: the
    application (amount, collateral), the firms register (founding date), the financial statements,
    overdue bills (the credit-report check), certificates and patent grants available before that
    day, and its own earlier decisions.

    ``P(approved) = sigmoid(intercept + the terms that apply)``, each term a log-odds weight. The draw
    against that probability stands for the loan officer's judgement and for what no table holds; it
    is independent of the firm's risk, so approval depends on the firm only through observable data.
    """

    intercept: float
    collateral: float  # times collateral coverage (collateral_value / amount, up to COLLATERAL_CAP)
    statements: float  # per filed annual statement available, up to MAX_STATEMENTS
    profitable: float  # the latest statement shows a net profit
    leveraged: float  # the latest statement's liabilities / assets exceed LEVERAGE_LIMIT
    established: float  # the firm is at least three years old
    repeat: float  # an earlier application of the firm was approved (and repaid: the firm still applies)
    overdue: float  # a bill the firm accepted was overdue in the 12 months before (the credit-report check)
    high_tech: float = 0.0  # holds a valid high-tech enterprise certificate
    specialised: float = 0.0  # holds a valid 专精特新 (specialized) or 小巨人 (little giant) certificate
    inventions: float = 0.0  # per granted invention patent, up to MAX_INVENTIONS


APPROVAL_POLICIES: dict[str, ApprovalPolicy | None] = {
    # collateral- and statement-based lending: what a traditional credit process asks for
    "traditional": ApprovalPolicy(
        intercept=-2.0, collateral=2.4, statements=0.6, profitable=1.0, leveraged=-1.0, established=0.6, repeat=1.2,
        overdue=-2.0,
    ),
    # the same basics with less weight on collateral, plus a few of the hub's technology signals
    "tech_aware": ApprovalPolicy(
        intercept=-1.9, collateral=1.6, statements=0.5, profitable=0.7, leveraged=-1.0, established=0.4, repeat=1.2,
        overdue=-2.0, high_tech=0.9, specialised=0.6, inventions=0.35,
    ),
    # every application granted: outcomes for every applicant (generator 1.2.0 and before)
    "none": None,
}
DEFAULT_APPROVAL_POLICY = "traditional"


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calendar:
    """Months of the latent panel: from January of the year before ``start`` up to ``end`` (inclusive)."""

    start: np.datetime64  # datetime64[M]
    end: np.datetime64

    @property
    def months(self) -> np.ndarray:
        return np.arange(self.start - self.burn_in, self.end + 1, dtype="datetime64[M]")

    @property
    def burn_in(self) -> int:
        """Months simulated before ``start``: back to January of the previous year (12 to 23)."""
        return BURN_IN_MONTHS + int(self.start.astype(np.int64) % 12)

    @property
    def n_months(self) -> int:
        return len(self.months)

    @property
    def window_first(self) -> int:
        """Panel index of the first month of the data window."""
        return self.burn_in

    @property
    def app_first(self) -> int:
        """Panel index of the first month with applications: a year into the window (history for features)."""
        return self.burn_in + 12

    @property
    def snapshot(self) -> np.datetime64:
        """Last day of the end month: no date in any table is after it."""
        return (self.end + 1).astype("datetime64[D]") - DAY

    @property
    def month_days(self) -> np.ndarray:
        return self.months.astype("datetime64[D]")

    @property
    def years(self) -> np.ndarray:
        return self.months.astype("datetime64[Y]").astype(int) + 1970

    @property
    def month_of_year(self) -> np.ndarray:
        return self.months.astype(int) % 12 + 1

    @property
    def festival(self) -> np.ndarray:
        """True in the Spring Festival month of each year."""
        return np.array([SPRING_FESTIVAL_MONTH[y] == m for y, m in zip(self.years, self.month_of_year)])


def days(x) -> np.ndarray:
    """datetime64[D] -> int64 days since 1970-01-01."""
    return np.asarray(x).astype("datetime64[D]").astype(np.int64)


def month_index(day_ints: np.ndarray, cal: Calendar) -> np.ndarray:
    """Panel month index of each date (int days); may be negative or >= n_months."""
    m = day_ints.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return m - (cal.start.astype(np.int64) - cal.burn_in)


def add_months(day_ints: np.ndarray, k) -> np.ndarray:
    """Add k months to dates whose day of month is at most 28 (int days in, int days out)."""
    d = day_ints.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    return ((m + np.asarray(k)).astype("datetime64[D]")).astype(np.int64) + dom


def years_of(day_ints: np.ndarray) -> np.ndarray:
    """Calendar year of each date (int days)."""
    return day_ints.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def year_day(year: np.ndarray, month: np.ndarray, dom: np.ndarray) -> np.ndarray:
    """int days of year-month-dom (dom 1..28)."""
    m = (np.asarray(year, dtype=np.int64) - 1970) * 12 + (np.asarray(month, dtype=np.int64) - 1)
    return m.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + np.asarray(dom, dtype=np.int64) - 1


def choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


# --------------------------------------------------------------------------------------------------
# Latent state
# --------------------------------------------------------------------------------------------------


def draw_latent(rng: np.random.Generator, n: int, cal: Calendar) -> dict:
    """Static firm attributes, the monthly health panel H, and the application schedule."""
    P = cal.n_months
    snap = days(cal.snapshot)
    L: dict = {"n": n}
    L["industry"] = rng.choice(len(INDUSTRIES), size=n, p=IND_SHARE)
    L["region"] = rng.choice(len(REGIONS), size=n, p=REG_SHARE)
    young = rng.random(n) < 0.42
    age_end = np.where(young, rng.uniform(0.3, 6.0, n), np.minimum(2.0 + rng.gamma(2.0, 3.2, n), 35.0))
    L["founding"] = snap - np.round(age_end * 365.25).astype(np.int64)
    L["found_p"] = month_index(L["founding"], cal)
    T = rng.standard_normal(n)
    F = 0.3 * T + np.sqrt(1 - 0.09) * rng.standard_normal(n)
    L["T"], L["F"] = T, F
    ind = L["industry"]
    L["mu_H"] = 0.35 * T + 0.35 * F + 0.45 * rng.standard_normal(n)
    L["staff_base"] = np.exp(IND_STAFF[ind] + 0.30 * T + 0.20 * F + 0.55 * rng.standard_normal(n))
    L["growth"] = np.clip(0.08 + 0.05 * T + 0.03 * F + 0.08 * rng.standard_normal(n), -0.2, 0.45)
    L["has_meter"] = rng.random(n) >= IND_NO_METER[ind]

    # distress episodes: the firm's level of health slides down for 6-18 months; half recover over a year
    episode = rng.random(n) < 0.22
    ep_start = rng.integers(0, P, n)
    ep_len = rng.integers(6, 19, n)
    ep_depth = rng.uniform(1.0, 2.5, n)
    recover = rng.random(n) < 0.5
    t = np.arange(P)[None, :] - ep_start[:, None]
    ramp = np.clip(t / ep_len[:, None], 0.0, 1.0)
    after = np.clip((t - ep_len[:, None]) / 12.0, 0.0, 1.0)
    D = ep_depth[:, None] * np.where(recover[:, None], ramp * (1.0 - after), ramp)
    D[~episode] = 0.0
    L["episode"] = episode
    # AR(1) deviations around the (episode-adjusted) level
    phi, sig = 0.85, 0.30
    X = np.empty((n, P))
    X[:, 0] = rng.standard_normal(n) * sig / np.sqrt(1 - phi**2)
    eps = rng.standard_normal((n, P))
    for p in range(1, P):
        X[:, p] = phi * X[:, p - 1] + sig * eps[:, p]
    L["H"] = L["mu_H"][:, None] - D + X
    del X, eps, D, t, ramp, after

    # application schedule: the first a year into the window, at least 6 months after founding,
    # then every 13-30 months while the firm keeps borrowing
    lo = np.maximum(cal.app_first, L["found_p"] + 6)
    can = lo <= P - 1
    first = lo + np.floor(rng.random(n) * np.maximum(P - lo, 1)).astype(np.int64)
    app_p = np.full((n, MAX_APPS), -1, dtype=np.int64)
    cur = np.where(can, first, P + 99)
    cont = np.ones(n, dtype=bool)
    for k in range(MAX_APPS):
        ok = cont & (cur <= P - 1)
        app_p[ok, k] = cur[ok]
        cur = cur + APP_GAP_MIN + rng.integers(0, 18, n)
        cont = cont & (rng.random(n) < 0.6)
    L["app_p"] = app_p
    L["app_dom"] = rng.integers(0, 28, (n, MAX_APPS))  # day of month - 1
    # applications cannot precede founding (same month): push the day after the founding day
    return L


def app_days(L: dict, cal: Calendar) -> np.ndarray:
    md = days(cal.month_days)
    P = cal.n_months
    d = md[np.clip(L["app_p"], 0, P - 1)] + L["app_dom"]
    d = np.maximum(d, L["founding"][:, None] + 1)
    return np.where(L["app_p"] >= 0, d, -1)


def maturity(age_years):
    return 1.0 - np.exp(-np.maximum(age_years, 0.0) / 3.0)


def linear_predictor(L: dict, cal: Calendar, k: int, rows: np.ndarray | None = None) -> dict:
    """Risk drivers and z (log-odds without intercept) for application k of the given firms."""
    if rows is None:
        rows = np.arange(L["n"])
    p = L["app_p"][rows, k]
    H = L["H"]
    h3 = (H[rows, p - 1] + H[rows, p - 2] + H[rows, p - 3]) / 3.0
    trend = H[rows, p - 1] - H[rows, p - 7]
    d = app_days(L, cal)[rows, k]
    age = (d - L["founding"][rows]) / 365.25
    m = maturity(age)
    ind_eff = IND_PD[L["industry"][rows]]
    reg_eff = REG_PD[L["region"][rows]]
    z = (
        PD_T * L["T"][rows]
        + PD_F * m * L["F"][rows]
        + PD_H_LEVEL * h3
        + PD_H_TREND * trend
        + PD_YOUNG * np.exp(-age / 1.5)
        + ind_eff
        + reg_eff
    )
    return {"z": z, "h3": h3, "trend": trend, "age": age, "m": m, "ind_eff": ind_eff, "reg_eff": reg_eff, "day": d}


def labelled_mask(app_day: np.ndarray, cal: Calendar) -> np.ndarray:
    """True where the 12-month outcome window closed by the snapshot."""
    return (app_day >= 0) & (add_months(np.maximum(app_day, 0), 12) <= days(cal.snapshot))


def calibrate_intercept(L: dict, cal: Calendar, target: float) -> float:
    """Intercept a with expected default rate of labelled applications equal to ``target``.

    Later applications of a firm exist only if it did not default on earlier ones, so each
    application is weighted by the probability that the firm survived its earlier ones.
    """
    n = L["n"]
    zs, lab = [], []
    ad = app_days(L, cal)
    for k in range(MAX_APPS):
        has = L["app_p"][:, k] >= 0
        z = np.full(n, np.nan)
        z[has] = linear_predictor(L, cal, k, np.flatnonzero(has))["z"]
        zs.append(z)
        lab.append(labelled_mask(ad[:, k], cal))
    Z = np.column_stack(zs)
    LAB = np.column_stack(lab)

    has = ~np.isnan(Z)
    Z0 = np.where(has, Z, -np.inf)  # no application: pd 0

    def rate(a: float) -> float:
        pd_ = sigmoid(a + Z0)
        surv = np.cumprod(np.column_stack([np.ones(n), 1.0 - pd_[:, :-1]]), axis=1)
        w = surv * LAB
        return float((w * pd_).sum() / max(w.sum(), 1e-12))

    lo, hi = -20.0, 10.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if rate(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def run_defaults(rng: np.random.Generator, L: dict, cal: Calendar, intercept: float) -> dict:
    """Score each application in time order, draw defaults, bend defaulters' health, stop their activity."""
    n, P = L["n"], cal.n_months
    ad = app_days(L, cal)
    keep = L["app_p"] >= 0
    out = {k: np.full((n, MAX_APPS), np.nan) for k in ("pd", "z", "h3", "trend", "age", "m", "ind_eff", "reg_eff")}
    out["default"] = np.zeros((n, MAX_APPS), dtype=bool)
    out["default_day"] = np.full((n, MAX_APPS), -1, dtype=np.int64)
    def_day = np.full(n, 10**7, dtype=np.int64)  # a day far after any snapshot
    def_p = np.full(n, P + 1000, dtype=np.int64)
    dead = np.zeros(n, dtype=bool)
    for k in range(MAX_APPS):
        keep[:, k] &= ~dead
        rows = np.flatnonzero(keep[:, k])
        u = rng.random(n)
        offs = np.round(rng.triangular(60, 220, 364, n)).astype(np.int64)
        lead = rng.integers(3, 13, n)
        drop = rng.uniform(1.5, 3.0, n)
        if len(rows) == 0:
            continue
        lp = linear_predictor(L, cal, k, rows)
        pd_ = sigmoid(intercept + lp["z"])
        for key in ("z", "h3", "trend", "age", "m", "ind_eff", "reg_eff"):
            out[key][rows, k] = lp[key]
        out["z"][rows, k] = intercept + lp["z"]
        out["pd"][rows, k] = pd_
        dflt = u[rows] < pd_
        r = rows[dflt]
        if len(r) == 0:
            continue
        dd = ad[r, k] + np.minimum(offs[r], add_months(ad[r, k], 12) - ad[r, k] - 1)
        out["default"][r, k] = True
        out["default_day"][r, k] = dd
        dead[r] = True
        def_day[r] = dd
        dp = month_index(dd, cal)
        def_p[r] = dp
        # health slides from max(application month, default - lead) to the default, then keeps falling
        s = np.maximum(L["app_p"][r, k], dp - lead[r])
        t = np.arange(P)[None, :]
        span = (dp - s + 1)[:, None]
        slide = drop[r][:, None] * np.clip((t - s[:, None] + 1) / span, 0.0, 1.0)
        slide += 0.2 * np.clip(t - dp[:, None], 0, None)
        L["H"][r] -= slide
    # activity stops 1-9 months after default for three in four defaulters
    stops = rng.random(n) < 0.75
    stop_p = np.where(stops & dead, def_p + rng.integers(1, 10, n), P + 1000)
    L["keep"] = keep
    L["dead"] = dead
    L["def_day"] = def_day
    L["def_p"] = def_p
    L["stop_p"] = stop_p
    L["intercept"] = intercept
    L["scores"] = out
    return L


def latent_world(rng: np.random.Generator, n: int, cal: Calendar, intercept: float) -> tuple[dict, dict]:
    """The latent world of ``n`` firms: hidden state and application schedule (:func:`draw_latent`),
    scored applications and defaults, which bend the defaulters' health (:func:`run_defaults`), and
    the monthly operating panel (:func:`operating_panel`). Returns (latent state, operating panel)."""
    L = draw_latent(rng, n, cal)
    L = run_defaults(rng, L, cal, intercept)
    return L, operating_panel(rng, L, cal)


# --------------------------------------------------------------------------------------------------
# Observable data
# --------------------------------------------------------------------------------------------------


def _ema(H: np.ndarray, alpha: float) -> np.ndarray:
    E = np.empty_like(H)
    E[:, 0] = H[:, 0]
    for p in range(1, H.shape[1]):
        E[:, p] = (1 - alpha) * E[:, p - 1] + alpha * H[:, p]
    return E


def operating_panel(rng: np.random.Generator, L: dict, cal: Calendar) -> dict:
    """Monthly staff, revenue, purchases and electricity of every firm (latent truth, before gaps)."""
    n, P = L["n"], cal.n_months
    ind = L["industry"]
    md = days(cal.month_days)
    age = (md[None, :] + 15 - L["founding"][:, None]) / 365.25
    alive = (age > 0) & (np.arange(P)[None, :] < L["stop_p"][:, None])
    years_to_end = (md[None, :] - md[-1]) / 365.25
    H = L["H"]
    E = _ema(H, 0.25)
    festival = cal.festival
    moy = cal.month_of_year
    after_festival = np.r_[False, festival[:-1]]
    ramp = 0.08 + 0.92 * (1.0 - np.exp(-np.maximum(age, 0) / 2.5))
    staff = L["staff_base"][:, None] * ramp * np.exp(L["growth"][:, None] * years_to_end + 0.22 * E)
    hc_season = np.where(after_festival, 0.98, 1.0) * np.where(np.isin(moy, (7, 8, 9)), 1.01, 1.0)
    staff = staff * hc_season[None, :] * np.exp(0.02 * rng.standard_normal((n, P)))
    staff = np.clip(np.round(staff), 1, STAFF_CAP)
    staff[~alive] = 0
    # revenue: commercialisation ramps up with age (slower in biomedicine)
    comm_speed = np.where(ind == INDUSTRIES.index("biomedicine"), 4.0, 2.0)
    comm = 0.10 + 0.90 * (1.0 - np.exp(-np.maximum(age, 0) / comm_speed[:, None]))
    rev_season = np.where(festival, 0.75, 1.0) * np.where(moy == 12, 1.18, 1.0) * np.where(np.isin(moy, (3, 6, 9)), 1.05, 1.0)
    rps = IND_REV_PER_STAFF[ind] * np.exp(0.25 * L["T"] + 0.25 * rng.standard_normal(n))
    revenue = staff * (rps / 12.0)[:, None] * comm * np.exp(0.30 * H) * rev_season[None, :] * np.exp(0.15 * rng.standard_normal((n, P)))
    pre_revenue = rng.random((n, P)) < 0.5 * (1.0 - comm) ** 2
    revenue[pre_revenue | ~alive] = 0.0
    cost_share = IND_COST_SHARE[ind] * np.exp(0.15 * rng.standard_normal(n))
    purchases = revenue * cost_share[:, None] * np.exp(0.2 * rng.standard_normal((n, P))) + staff * 0.4 * np.exp(0.3 * rng.standard_normal((n, P)))
    purchases[~alive] = 0.0
    # electricity: industry intensity per staff, summer and winter peaks, the Spring Festival dip
    e_season = np.array([1.03, 1.0, 1.0, 0.97, 0.98, 1.03, 1.09, 1.09, 1.01, 0.97, 0.98, 1.03])[moy - 1]
    dip = IND_FESTIVAL_DIP[ind]
    fest = np.where(festival[None, :], dip[:, None], np.where(after_festival[None, :], 1.0 - (1.0 - dip[:, None]) * 0.25, 1.0))
    kps = IND_KWH_PER_STAFF[ind] * np.exp(0.35 * rng.standard_normal(n))
    kwh = staff * kps[:, None] * e_season[None, :] * fest * np.exp(0.35 * H) * np.exp(0.08 * rng.standard_normal((n, P)))
    kwh[~alive | zero_kwh_months(rng, L, cal, alive, age)] = 0.0
    return {"alive": alive, "age": age, "staff": staff, "revenue": revenue, "purchases": purchases, "kwh": kwh, "comm": comm}


def zero_kwh_months(rng: np.random.Generator, L: dict, cal: Calendar, alive: np.ndarray, age: np.ndarray) -> np.ndarray:
    """(firms x months) True where a living firm's meter reads zero kWh (see the ZERO_* constants).

    Shutdowns start more often as operating health H falls, so they cluster in distress episodes and
    after a default; moves, meter changes and festival closures are unrelated to risk."""
    n, P = alive.shape
    manufacturing = IND_MANUFACTURING[L["industry"]]
    a, b = ZERO_SHUTDOWN
    start = sigmoid(a + b * L["H"]) * np.where(manufacturing, 1.0, ZERO_SHUTDOWN_OFFICE)[:, None]
    u_start, u_stay = rng.random((n, P)), rng.random((n, P))
    shut = np.zeros((n, P), dtype=bool)
    shut[:, 0] = u_start[:, 0] < start[:, 0]
    for p in range(1, P):
        shut[:, p] = np.where(shut[:, p - 1], u_stay[:, p] < ZERO_SHUTDOWN_STAYS, u_start[:, p] < start[:, p])
    del u_start, u_stay, start
    # the last one or two months before the firm stops operating
    stop = L["stop_p"]
    winds = (rng.random(n) < ZERO_WIND_DOWN) & (stop < P)
    last = stop - rng.integers(1, 3, n)  # first zero month
    p_ = np.arange(P)[None, :]
    wind = winds[:, None] & (p_ >= last[:, None]) & (p_ < stop[:, None])
    # moves (one or two months) and meter changes (one), by monthly hazard
    move_rate = (ZERO_MOVE_RATE[0] + ZERO_MOVE_RATE[1] * np.exp(-np.maximum(age, 0.0) / 3.0)) / 12.0
    u = rng.random((n, P))
    move = u < move_rate
    meter = (u >= move_rate) & (u < move_rate + ZERO_METER_CHANGE_RATE / 12.0)
    second = np.zeros_like(move)
    second[:, 1:] = move[:, :-1] & (rng.random((n, P - 1)) < ZERO_MOVE_SECOND_MONTH)
    # the Spring Festival month, for a few manufacturers
    closer = manufacturing & (rng.random(n) < ZERO_FESTIVAL_SHARE)
    festival = closer[:, None] & cal.festival[None, :] & (rng.random((n, P)) < ZERO_FESTIVAL_YEAR)
    return alive & (shut | wind | move | second | meter | festival)


def coverage(rng: np.random.Generator, L: dict, cal: Calendar, source: str, alive: np.ndarray) -> np.ndarray:
    """Where the hub holds a monthly row of ``source``: firm connected, feed started, month not missing, inside the window.

    Missing months are plumbing (``MONTH_GAP_PLUMBING``, unrelated to the firm) and, for payroll and
    invoices, arrears (``MONTH_GAP_ARREARS``: likelier as operating health H falls)."""
    n, P = alive.shape
    connected = rng.random(n) >= NOT_CONNECTED[source]
    late = rng.random(n) < LATE_CONNECTED[source]
    w0 = cal.window_first
    first = np.where(late, rng.integers(w0, P, n), w0)
    first = np.maximum(first, L["found_p"] + rng.integers(0, 3, n))
    p = np.arange(P)[None, :]
    mask = alive & connected[:, None] & (p >= first[:, None]) & (p <= P - 2)
    # plumbing: drawn sparsely (about 1% of cells) instead of one uniform per cell
    k = rng.binomial(n * P, MONTH_GAP_PLUMBING[source])
    mask.ravel()[rng.integers(0, n * P, k)] = False
    if source in MONTH_GAP_ARREARS:
        a, b = MONTH_GAP_ARREARS[source]
        mask &= rng.random((n, P)) >= sigmoid(a + b * L["H"])
    return mask


def monthly_available(rng: np.random.Generator, month_p: np.ndarray, cal: Calendar) -> np.ndarray:
    """Available 10-25 days into the month after the reading (int days)."""
    md = days((cal.months + 1).astype("datetime64[D]"))
    return md[month_p] + rng.integers(9, 25, len(month_p))


def bills_panel(rng: np.random.Generator, L: dict, cal: Calendar, ops: dict) -> dict:
    """Commercial bills the firm accepted: monthly acceptances, outstanding, overdue state.

    Only firms that pay with bills are simulated; the returned arrays are (users x months) with
    ``rows`` giving each user's firm index."""
    n, P = L["n"], cal.n_months
    ind = L["industry"]
    user = rng.random(n) < IND_BILL_USERS[ind] * sigmoid(0.5 + 0.5 * L["F"]) * 1.6
    rows = np.flatnonzero(user)
    u = len(rows)
    lam = rng.uniform(0.3, 2.5, u)
    H = L["H"][rows]
    count = rng.poisson(lam[:, None] * np.exp(0.2 * np.clip(H, -3, 3)) * (ops["age"][rows] > 1.0))
    size = np.maximum(ops["purchases"][rows], 1.0) * rng.uniform(0.1, 0.3, u)[:, None]
    amount = count * size * np.exp(0.3 * rng.standard_normal((u, P)))
    cs = np.cumsum(amount, axis=1)
    outstanding = cs - np.concatenate([np.zeros((u, 6)), cs[:, :-6]], axis=1)  # 6-month tenor
    # overdue: a Markov state; falling health makes new overdue bills likely and cures unlikely
    q_new = sigmoid(-6.2 - 2.2 * H)
    q_cure = sigmoid(1.0 + 1.5 * H)
    dead_after = np.arange(P)[None, :] >= L["def_p"][rows][:, None]
    u1, u2 = rng.random((u, P)), rng.random((u, P))
    new_ = (u1 < q_new) & np.concatenate([np.zeros((u, 1), dtype=bool), outstanding[:, :-1] > 0], axis=1)
    keep_ = (u2 >= q_cure) | dead_after
    over = np.zeros((u, P), dtype=bool)
    ocount = np.zeros((u, P), dtype=np.int64)
    oamount = np.zeros((u, P))
    new_c = 1 + rng.poisson(0.6, (u, P))
    new_a = size * np.exp(0.3 * rng.standard_normal((u, P)))
    for p in range(1, P):
        prev = over[:, p - 1]
        started = ~prev & new_[:, p]
        stays = prev & keep_[:, p]
        grows = stays & (u1[:, p] < q_new[:, p])
        over[:, p] = started | stays
        ocount[:, p] = started * new_c[:, p] + stays * (ocount[:, p - 1] + grows * new_c[:, p])
        oamount[:, p] = started * new_a[:, p] + stays * (oamount[:, p - 1] + grows * new_a[:, p])
    idx = np.arange(P)[None, :]
    last_clean = np.maximum.accumulate(np.where(~over, idx, -1), axis=1)
    run = idx - last_clean
    first_day = rng.integers(1, 30, u)[:, None]
    max_days = np.where(over, 30 * (run - 1) + first_day, 0)
    active = ops["alive"][rows] & ((count > 0) | (outstanding > 0) | over)
    return {
        "rows": rows, "active": active, "count": count, "amount": amount, "outstanding": outstanding,
        "overdue_count": ocount, "overdue_amount": oamount, "max_days": max_days,
    }


def annual_years(cal: Calendar) -> np.ndarray:
    """Fiscal years with statements in the hub: the year before the window starts up to the year before the end."""
    y0 = int(cal.start.astype("datetime64[Y]").astype(int) + 1970) - 1
    y1 = int(cal.end.astype("datetime64[Y]").astype(int) + 1970)
    return np.arange(y0, y1 + 1)


def rnd_thresholds(revenue_wan: np.ndarray) -> np.ndarray:
    """High-tech enterprise R&D/revenue threshold by revenue band (万元): 5% <=5000, 4% <=20000, 3% above."""
    return np.where(revenue_wan <= 5000, 0.05, np.where(revenue_wan <= 20000, 0.04, 0.03))
