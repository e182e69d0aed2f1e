"""The source tables of one chunk of firms, simulated from the latent world.

:func:`simulate_chunk` turns a chunk of firms into the column arrays of the 13 tables declared in
``features.tables`` and the truth (the latent state and true PD of every application). It is a
sequence of steps, one per source: the latent world (:mod:`synthetic.world`), the firms register,
the monthly feeds (electricity, social security, invoices, bills), annual statements and R&D
filings, certifications, patents, bids, talent, the applications, the bank's decision on each
(:func:`approvals`), and last the outcomes of the approved applications and the truth of all. Every
step draws from the chunk's one random stream, so the order of the steps, and of the draws inside
each, is part of the output: reordering them changes the data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.tables import (
    BUYER_TYPES,
    CERT_TYPES,
    CREDENTIALS,
    INDUSTRIES,
    PATENT_EVENTS,
    PATENT_TYPES,
    PRODUCTS,
    REGIONS,
    TALENT_EVENTS,
)
from synthetic import identifiers as ids
from synthetic import world
from synthetic.world import Calendar, add_months, days, sigmoid, year_day, years_of



def simulate_chunk(
    rng: np.random.Generator, n: int, offset: int, cal: Calendar, intercept: float, perm: tuple[int, int], key: bytes, *, policy: str
) -> tuple[dict, dict]:
    """Simulate ``n`` firms with global indices ``offset .. offset+n-1``: (tables, truth) as column dicts.

    ``perm`` is the permutation behind registration ids, ``key`` the pseudonymisation key and
    ``policy`` the bank's approval policy (a name in ``world.APPROVAL_POLICIES``); the steps run in
    the order below, which is the order of their random draws. The approval decisions draw last, so
    every table but ``outcomes`` (and ``applications.approved``) is the same under every policy."""
    L, ops = world.latent_world(rng, n, cal, intercept)
    gidx = offset + np.arange(n, dtype=np.int64)
    firm_id, firms_table = firms(rng, L, gidx, perm, key)
    ch = Chunk(rng, cal, L, ops, gidx, firm_id)
    tables = {"firms": firms_table}
    tables["electricity"] = electricity(ch)
    tables["social_security"] = social_security(ch)
    tables["invoices"] = invoices(ch)
    tables["bills"] = bills(ch)
    tables["financials"], tables["rnd_deductions"], targeter = annual_filings(ch)
    tables["certifications"] = certifications(ch, targeter)
    tables["patents"] = patents(ch)
    tables["bids"], bidder = bids(ch)
    tables["talent"], has_talent = talent(ch, key)
    tables["applications"], apps = applications(ch, bidder, has_talent)
    tables["applications"]["approved"] = approvals(ch, tables, apps, policy)
    tables["outcomes"], truth = outcomes_and_truth(ch, apps, tables["applications"]["approved"])
    return tables, truth


@dataclass
class Chunk:
    """A chunk of firms as every source step sees it: the chunk's random stream, the calendar, the
    latent world (``L``: hidden state, applications and defaults; ``ops``: the monthly operating
    panel), each firm's global index and its ``firm_id``."""

    rng: np.random.Generator
    cal: Calendar
    L: dict
    ops: dict
    gidx: np.ndarray
    firm_id: ids.IdColumn

    @property
    def n(self) -> int:
        return self.L["n"]

    @functools.cached_property
    def snap(self) -> np.ndarray:
        """The snapshot (int days): no date in any table is after it."""
        return days(self.cal.snapshot)

    @functools.cached_property
    def month_days(self) -> np.ndarray:
        """First day of each panel month (int days)."""
        return days(self.cal.month_days)

    @functools.cached_property
    def stop_day(self) -> np.ndarray:
        """Day each firm stops existing for the hub (its stop month), far after any snapshot if it
        does not stop: a stopped firm files, renews and hires nothing more."""
        P = self.cal.n_months
        far = np.int64(10**7)  # a day far after any snapshot
        return np.where(self.L["stop_p"] < P, self.month_days[np.clip(self.L["stop_p"], 0, P - 1)], far)

    def monthly_rows(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, month index, available day) of every True cell of a (rows x months) coverage mask,
        row-major; the day a feed delivers each month is drawn here."""
        flat = np.flatnonzero(mask)
        f, p = np.divmod(flat, mask.shape[1])
        return f, p, world.monthly_available(self.rng, p, self.cal)


# ---- the firms register --------------------------------------------------------------------------


def firms(rng: np.random.Generator, L: dict, gidx: np.ndarray, perm: tuple[int, int], key: bytes) -> tuple[ids.IdColumn, dict]:
    """The firms register: registration id, legal representative, industry, region, founding date
    and registered capital of every firm; returns (firm_id of every firm, the table)."""
    found, reg = L["founding"], L["region"]
    reg_ids = ids.registration_ids(gidx, reg, perm, rng)
    firm_id = ids.firm_ids(reg_ids, key)
    cap = np.round(np.clip(np.exp(np.log(L["staff_base"] * 8.0) + 0.7 * rng.standard_normal(len(gidx))), 10, 1e6), -1)
    table = {
        "firm_id": firm_id.values,
        "registration_id": reg_ids,
        "legal_rep_id": ids.legal_rep_ids(found, reg, rng),
        "industry": _cat(L["industry"], INDUSTRIES),
        "region": _cat(reg, REGIONS),
        "founding_date": _ts(found),
        "registered_capital": _money(cap),
        "available_date": _ts(found),
    }
    return firm_id, table


# ---- monthly feeds -------------------------------------------------------------------------------


def electricity(ch: Chunk) -> dict:
    """Monthly kWh of the firm's own meter (firms in shared offices have none)."""
    cov = world.coverage(ch.rng, ch.L, ch.cal, "electricity", ch.ops["alive"]) & ch.L["has_meter"][:, None]
    f, p, av = ch.monthly_rows(cov)
    return {
        "firm_id": ch.firm_id[f], "month": _ts(ch.month_days[p]), "kwh": np.round(ch.ops["kwh"][f, p], 1), "available_date": _ts(av),
    }


def social_security(ch: Chunk) -> dict:
    """Monthly headcount on which social-security contributions are paid."""
    cov = world.coverage(ch.rng, ch.L, ch.cal, "social_security", ch.ops["alive"])
    f, p, av = ch.monthly_rows(cov)
    return {
        "firm_id": ch.firm_id[f], "month": _ts(ch.month_days[p]), "headcount": ch.ops["staff"][f, p].astype(np.int64), "available_date": _ts(av),
    }


def invoices(ch: Chunk) -> dict:
    """Monthly VAT invoice totals: sales and purchases, customers and suppliers, and the top
    customer's share (concentration is higher for young firms and in bad months)."""
    rng, L, ops = ch.rng, ch.L, ch.ops
    ind = L["industry"]
    cov = world.coverage(rng, L, ch.cal, "invoices", ops["alive"])
    f, p, av = ch.monthly_rows(cov)
    del cov
    rev = ops["revenue"][f, p]
    sales = np.maximum(rev * np.exp(0.03 * rng.standard_normal(len(f))), 0.0)
    staff_fp = ops["staff"][f, p]
    h_fp = L["H"][f, p]
    comm_fp = ops["comm"][f, p]
    lam_c = world.IND_CUSTOMERS[ind[f]] * np.power(staff_fp, 0.6) * comm_fp * np.exp(0.3 * np.clip(h_fp, -3, 3))
    n_cust = np.where(sales > 0, 1 + rng.poisson(lam_c), 0)
    age_fp = ops["age"][f, p]
    conc_firm = np.clip(world.IND_CONCENTRATION[ind] + 0.1 * rng.standard_normal(ch.n), 0.05, 0.95)
    conc = np.clip(conc_firm[f] * (1 + 0.6 * np.exp(-age_fp / 2)) * np.exp(-0.25 * np.clip(h_fp, -3, 3) + 0.15 * rng.standard_normal(len(f))), 0, 1)
    top = 1.0 / np.maximum(n_cust, 1) + (1 - 1.0 / np.maximum(n_cust, 1)) * conc
    top = np.where(n_cust > 0, np.round(top, 4), np.nan)
    n_sup = rng.poisson(1 + 0.3 * np.power(staff_fp, 0.6) * np.exp(0.2 * np.clip(h_fp, -3, 3)))
    return {
        "firm_id": ch.firm_id[f], "month": _ts(ch.month_days[p]), "sales_amount": _money(sales),
        "purchase_amount": _money(ops["purchases"][f, p]), "n_customers": n_cust.astype(np.int64),
        "n_suppliers": n_sup.astype(np.int64), "top_customer_share": top, "available_date": _ts(av),
    }


def bills(ch: Chunk) -> dict:
    """Monthly commercial bills of the firms that pay with bills: acceptances, outstanding, overdue."""
    B = world.bills_panel(ch.rng, ch.L, ch.cal, ch.ops)
    cov = world.coverage(ch.rng, ch.L, ch.cal, "bills", ch.ops["alive"])[B["rows"]] & B["active"]
    u, p, av = ch.monthly_rows(cov)
    return {
        "firm_id": ch.firm_id[B["rows"][u]], "month": _ts(ch.month_days[p]), "accepted_count": B["count"][u, p].astype(np.int64),
        "accepted_amount": _money(B["amount"][u, p]), "outstanding_amount": _money(B["outstanding"][u, p]),
        "overdue_count": B["overdue_count"][u, p].astype(np.int64), "overdue_amount": _money(B["overdue_amount"][u, p]),
        "max_days_overdue": np.minimum(B["max_days"][u, p], 3650).astype(np.int64), "available_date": _ts(av),
    }


# ---- annual statements and R&D super-deduction filings -------------------------------------------

_STATEMENT_MONEY = ("revenue", "high_tech_revenue", "cost_of_sales", "rnd_expense", "net_profit", "total_assets",
                    "total_liabilities", "current_assets", "current_liabilities", "operating_cash_flow")


def annual_filings(ch: Chunk) -> tuple[dict, dict, np.ndarray]:
    """Financial statements and R&D super-deduction filings, one fiscal year at a time.

    Returns (financials, rnd_deductions, targeter): ``targeter`` marks the firms that steer their R&D
    ratio just above the high-tech threshold; they apply for the high-tech certificate more often."""
    traits = _filing_traits(ch)
    cal_years = ch.cal.years
    statements, claims = [], []
    for y in world.annual_years(ch.cal):
        cols = cal_years == y
        if not cols.any():
            continue
        filed, year = _statements(ch, traits, y, cols)
        statements.append(filed)
        claims.append(_rnd_claims(ch, traits, y, year))
    fin = _by_firm(statements, ch.firm_id)
    for k in ("period_end", "available_date"):
        fin[k] = _ts(fin[k])
    for k in _STATEMENT_MONEY:
        fin[k] = _money(fin[k])
    rd = _by_firm(claims, ch.firm_id)
    for k in ("filing_date", "available_date"):
        rd[k] = _ts(rd[k])
    rd["rnd_expense_claimed"] = _money(rd["rnd_expense_claimed"])
    rd["super_deduction"] = _money(rd["super_deduction"])
    return fin, rd, traits["targeter"]


def _filing_traits(ch: Chunk) -> dict[str, np.ndarray]:
    """What each firm keeps from year to year in its filings: connected to the hub, R&D ratio
    (targeted or its own), staff share in R&D, high-tech revenue share, asset turnover, files R&D."""
    rng, n, T, ind = ch.rng, ch.n, ch.L["T"], ch.L["industry"]
    a = {}
    a["fin_connected"] = rng.random(n) >= world.NOT_CONNECTED["financials"]
    a["targeter"] = rng.random(n) < sigmoid(-0.2 + 1.0 * T)
    a["rd_offset"] = 0.0008 + rng.exponential(0.006, n)
    a["rd_firm"] = world.IND_RND[ind] * np.exp(0.3 * T + 0.45 * rng.standard_normal(n))
    a["tech_share"] = np.clip(0.18 + 0.08 * T + 0.12 * (ind != INDUSTRIES.index("high_end_equipment")) + 0.06 * rng.standard_normal(n), 0.05, 0.9)
    a["hts"] = np.where(a["targeter"], rng.uniform(0.62, 0.95, n), rng.uniform(0.2, 0.9, n))
    a["turnover"] = rng.uniform(0.7, 1.4, n)
    a["files_rd"] = rng.random(n) < sigmoid(0.6 + 0.8 * T)
    return a


def _statements(ch: Chunk, a: dict, y: int, cols: np.ndarray) -> tuple[dict, dict]:
    """Fiscal year ``y`` (panel months ``cols``): the statement of every firm, of which those filed
    4-6 months after the year (existing, connected, not missing) are kept.

    Young firms' margins, leverage and liquidity are noise; mature firms' follow financial strength F
    and the year's health. Returns (filed statements with their firm index under "firm", the year's
    R&D spend, staff and end day of every firm)."""
    rng, n, L, ops = ch.rng, ch.n, ch.L, ch.ops
    F, ind, found = L["F"], L["industry"], L["founding"]
    fy_end = year_day(np.array([y]), np.array([12]), np.array([28]))[0] + 3  # Dec 31
    revenue = ops["revenue"][:, cols].sum(axis=1) * rng.uniform(0.97, 1.03, n)
    months_alive = np.maximum(ops["alive"][:, cols].sum(axis=1), 1)
    staff_avg = ops["staff"][:, cols].sum(axis=1) / months_alive
    hbar = L["H"][:, cols].mean(axis=1)
    age = (fy_end - found) / 365.25
    m = world.maturity(age)
    thr = world.rnd_thresholds(revenue)
    ratio = np.where(a["targeter"], thr + a["rd_offset"] + 0.001 * rng.standard_normal(n), a["rd_firm"] * np.exp(0.15 * rng.standard_normal(n)))
    ratio = np.clip(ratio, 0.0, 5.0)
    rnd = ratio * revenue + (1 - m) * staff_avg * a["tech_share"] * 12.0
    gm = np.clip(world.IND_GROSS_MARGIN[ind] + 0.05 * F + 0.02 * hbar + 0.03 * rng.standard_normal(n), 0.05, 0.9)
    nm_mature = 0.05 + 0.06 * F + 0.04 * hbar + 0.03 * rng.standard_normal(n)
    nm_young = -0.30 + 0.35 * rng.standard_normal(n)
    net = revenue * (m * nm_mature + (1 - m) * nm_young) - (1 - m) ** 2 * staff_avg * 6.0
    assets = revenue * a["turnover"] + (1 - m) * staff_avg * rng.uniform(20, 60, n) + 50.0
    lev = m * sigmoid(-0.4 - 0.8 * F - 0.3 * hbar + 0.3 * rng.standard_normal(n)) + (1 - m) * rng.uniform(0.05, 0.85, n)
    liab = assets * lev
    cur_a = assets * rng.uniform(0.45, 0.85, n)
    cr = np.exp(m * (0.35 + 0.3 * F + 0.1 * hbar) + 0.2 * rng.standard_normal(n) + (1 - m) * 0.6 * rng.standard_normal(n))
    cur_l = np.minimum(cur_a / cr, liab)
    ocf = net + 0.04 * assets + m * 0.04 * F * revenue + revenue * 0.06 * rng.standard_normal(n)
    filing = fy_end + rng.integers(110, 181, n)  # 4-6 months after the fiscal year
    exists = (found <= fy_end) & (filing < ch.stop_day) & (filing <= ch.snap)
    not_missing = rng.random(n) >= sigmoid(world.STATEMENT_MISSING[0] + world.STATEMENT_MISSING[1] * hbar)
    r = np.flatnonzero(exists & a["fin_connected"] & not_missing)
    filed = {"firm": r, "fiscal_year": np.full(len(r), y, dtype=np.int64), "period_end": np.full(len(r), fy_end, dtype=np.int64)}
    for name, arr in (
        ("revenue", revenue), ("high_tech_revenue", revenue * a["hts"]), ("cost_of_sales", revenue * (1 - gm)),
        ("rnd_expense", rnd), ("net_profit", net), ("total_assets", assets), ("total_liabilities", liab),
        ("current_assets", cur_a), ("current_liabilities", cur_l), ("operating_cash_flow", ocf),
    ):
        filed[name] = arr[r]
    filed["available_date"] = filing[r]
    return filed, {"rnd": rnd, "staff_avg": staff_avg, "fy_end": fy_end}


def _rnd_claims(ch: Chunk, a: dict, y: int, year: dict) -> dict:
    """Super-deduction filings for tax year ``y``, filed March-May of the next year by the firms
    that claim (a few over-claim); the deduction rate is 100% from 2023 (from 2021 for manufacturers),
    75% before. Returns the filed rows with their firm index under "firm"."""
    rng, n, ind, found = ch.rng, ch.n, ch.L["industry"], ch.L["founding"]
    rnd = year["rnd"]
    rd_filing = year_day(np.full(n, y + 1), np.full(n, 3), np.ones(n, dtype=np.int64)) + rng.integers(0, 92, n)
    overclaim = rng.random(n) < 0.04
    claimed = rnd * np.where(overclaim, rng.uniform(1.1, 1.5, n), rng.uniform(0.75, 1.0, n))
    rate = np.where((y >= 2023) | (world.IND_MANUFACTURING[ind] & (y >= 2021)), 1.0, 0.75)
    ok = (found <= year["fy_end"]) & a["files_rd"] & (rnd > 0) & (rd_filing < ch.stop_day) & (rd_filing <= ch.snap) & (rng.random(n) >= 0.05)
    r = np.flatnonzero(ok)
    return {
        "firm": r,
        "tax_year": np.full(len(r), y, dtype=np.int64),
        "filing_date": rd_filing[r],
        "rnd_expense_claimed": claimed[r],
        "super_deduction": claimed[r] * rate[r],
        "rnd_staff": np.round(year["staff_avg"][r] * a["tech_share"][r]).astype(np.int64),
        "available_date": rd_filing[r],
    }


def _by_firm(parts: list[dict], firm_id: ids.IdColumn) -> dict:
    """Rows of several years (dicts of columns with the firm index under "firm") as one table,
    sorted by firm and, within a firm, in year order."""
    firm = np.concatenate([p["firm"] for p in parts])
    o = np.argsort(firm, kind="stable")
    out = {k: np.concatenate([p[k] for p in parts])[o] for k in parts[0] if k != "firm"}
    out["firm_id"] = firm_id[firm[o]]
    return out


# ---- certifications ------------------------------------------------------------------------------


def certifications(ch: Chunk, targeter: np.ndarray) -> dict:
    """Certificates: high-tech enterprise (three-year cycles), tech SME (yearly since 2017),
    专精特新 "specialised and innovative" (three-year cycles) and 小巨人 "little giant" (specialised
    firms with strong technology). Stronger technology, and for high-tech the ``targeter`` firms,
    apply and renew more; a defaulted firm gets no new tech SME, specialised or little-giant
    certificate."""
    rng, n, cal, snap, stop_day = ch.rng, ch.n, ch.cal, ch.snap, ch.stop_day
    T, found, def_day = ch.L["T"], ch.L["founding"], ch.L["def_day"]
    fy = years_of(found)
    end_year = int(cal.end.astype("datetime64[Y]").astype(int) + 1970)
    certs = []  # (type code, firm idx, cycle/year, issue day, validity months)
    # high-tech enterprise: from a year after founding, three-year certificates, renewed or lapsed
    ht_applies = rng.random(n) < sigmoid(-0.9 + 1.2 * T + 1.0 * targeter)
    ht_first = np.maximum(fy + 1, 2008) + rng.geometric(np.clip(sigmoid(-0.5 + 1.0 * T), 0.02, 0.98), n) - 1
    ht_renew = sigmoid(1.0 + 0.8 * T)
    i, c, d = _cycles(rng, ht_first, ht_renew, 12, 3, (10, 12), stop_day, snap, found, ht_applies)
    certs.append((0, i, c, d, 36))
    # tech SME (科技型中小企业): evaluated every year since 2017, valid one year
    for y in range(2017, end_year + 1):
        issue = year_day(np.full(n, y), rng.integers(4, 12, n), rng.integers(1, 29, n))
        p_ts = sigmoid(-0.3 + 1.2 * T)
        ok = (rng.random(n) < p_ts) & (issue > found) & (issue <= snap) & (issue < stop_day) & (issue < def_day)
        r = np.flatnonzero(ok)
        certs.append((1, r, np.full(len(r), y - 2000), issue[r], 12))
    # 专精特新 (specialised, refined, distinctive, innovative): two years after founding, three-year cycles
    sp_first = np.maximum(fy + 2, 2016) + rng.geometric(np.clip(sigmoid(-2.4 + 1.2 * T), 0.01, 0.98), n) - 1
    i, c, d = _cycles(rng, sp_first, sigmoid(0.8 + 0.8 * T), 8, 3, (6, 9), np.minimum(stop_day, def_day), snap, found, np.ones(n, dtype=bool))
    certs.append((2, i, c, d, 36))
    # 小巨人 (little giant): specialised firms with strong technology, a year or more later
    sp_got = np.zeros(n, dtype=bool)
    sp_got[i[c == 0]] = True
    lg_first = np.maximum(sp_first + 1, 2019) + rng.geometric(np.clip(sigmoid(-2.5 + 1.2 * (T - 1.0)), 0.01, 0.98), n) - 1
    i, c, d = _cycles(rng, lg_first, np.full(n, 0.7), 6, 3, (7, 8), np.minimum(stop_day, def_day), snap, found, sp_got & (T > 0.5))
    certs.append((3, i, c, d, 36))
    ctype = np.concatenate([np.full(len(x[1]), x[0]) for x in certs])
    cf = np.concatenate([x[1] for x in certs])
    cc = np.concatenate([x[2] for x in certs])
    cissue = np.concatenate([x[3] for x in certs])
    cvalid = np.concatenate([np.full(len(x[1]), x[4]) for x in certs])
    cavail = cissue + rng.integers(20, 46, len(cf))
    keep = cavail <= snap
    ctype, cf, cc, cissue, cvalid, cavail = (v[keep] for v in (ctype, cf, cc, cissue, cvalid, cavail))
    o = np.lexsort((cissue, cf))
    ctype, cf, cc, cissue, cvalid, cavail = (v[o] for v in (ctype, cf, cc, cissue, cvalid, cavail))
    expiry = add_months(cissue, cvalid) - 1
    return {
        "firm_id": ch.firm_id[cf], "cert_no": ids.certificate_numbers(ctype, cissue, ch.gidx[cf], cc), "cert_type": _cat(ctype, CERT_TYPES),
        "issue_date": _ts(cissue), "expiry_date": _ts(expiry), "available_date": _ts(cavail),
    }


# ---- patents -------------------------------------------------------------------------------------


def patents(ch: Chunk) -> dict:
    """Patent events, one row each: grant, lapse, pledge and pledge release.

    Filings scale with technology strength and size (by type: invention, utility model, design,
    software copyright); a defaulted firm stops prosecuting its applications and lets most of its
    patents lapse after the grace period; some strong firms pledge patents for loans."""
    rng, n, snap = ch.rng, ch.n, ch.snap
    L = ch.L
    T, found, def_day = L["T"], L["founding"], L["def_day"]
    start_day = found + 90
    active_years = np.clip((snap - start_day) / 365.25, 0, 25)
    scale = np.exp(0.7 * T) * (L["staff_base"] / 50.0) ** 0.5
    counts = np.minimum(rng.poisson(world.IND_PATENTS[L["industry"]] * (scale * active_years)[:, None]), 999)  # (n, 4)
    pf = np.repeat(np.repeat(np.arange(n), 4), counts.ravel())
    pt = np.repeat(np.tile(np.arange(4), n), counts.ravel())
    m_ = len(pf)
    span = np.maximum(snap - start_day[pf], 1)
    filing = start_day[pf] + np.floor(span * np.power(rng.random(m_), 0.7)).astype(np.int64)
    o = np.lexsort((filing, pt, pf))
    pf, pt, filing = pf[o], pt[o], filing[o]
    seq = _group_rank(pf * 4 + pt)
    grant_p = np.select([pt == 0, pt == 1, pt == 2], [sigmoid(0.2 + 0.6 * T[pf]), np.full(m_, 0.92), np.full(m_, 0.90)], 0.99)
    granted = rng.random(m_) < grant_p
    lag = np.select(
        [pt == 0, pt == 1, pt == 2],
        [np.clip(365.25 * np.exp(np.log(2.4) + 0.2 * rng.standard_normal(m_)), 1.2 * 365, 5 * 365),
         rng.uniform(180, 365, m_), rng.uniform(120, 240, m_)],
        rng.uniform(30, 90, m_),
    ).astype(np.int64)
    grant = filing + lag
    abandoned = grant >= def_day[pf] + 180  # a defaulted firm stops prosecuting its applications
    g_ok = granted & ~abandoned
    hazard = np.array([0.05, 0.10, 0.10, 0.0])[pt]
    term = np.array([20, 10, 15, 50])[pt] * 365
    with np.errstate(divide="ignore"):
        lapse = grant + np.where(hazard > 0, rng.exponential(1.0 / np.maximum(hazard, 1e-9), m_) * 365.25, 1e9).astype(np.int64)
    lapse = np.maximum(np.minimum(lapse, filing + term), grant + 180)  # an unpaid annual fee lapses after the grace period
    post = (pt < 3) & (grant < def_day[pf] + 180) & (lapse > def_day[pf] + 180) & (rng.random(m_) < 0.7)
    lapse = np.where(post, def_day[pf] + rng.integers(180, 541, m_), lapse)
    pledger = rng.random(n) < 0.10 + 0.10 * (T > 0.5)
    pledge = grant + rng.integers(60, 1000, m_)
    pl_ok = g_ok & pledger[pf] & (pt < 2) & (rng.random(m_) < 0.4) & (pledge < lapse)
    release = pledge + rng.integers(365, 1096, m_)
    rl_ok = pl_ok & (release < lapse) & (release < def_day[pf])
    ev_day = np.stack([grant, lapse, pledge, release], axis=1)
    ev_ok = np.stack([g_ok, g_ok & (pt < 3), pl_ok, rl_ok], axis=1)
    ev_av = ev_day + rng.integers(7, 36, (m_, 4))
    ev_ok &= ev_av <= snap
    rows, ev = np.nonzero(ev_ok)  # sorted by patent then event
    pid = ids.patent_ids(pt, filing, ch.gidx[pf], seq)
    return {
        "firm_id": ch.firm_id[pf[rows]], "patent_id": pid[rows], "patent_type": _cat(pt[rows], PATENT_TYPES),
        "event": _cat(ev, PATENT_EVENTS), "filing_date": _ts(filing[rows]), "event_date": _ts(ev_day[rows, ev]),
        "available_date": _ts(ev_av[rows, ev]),
    }


# ---- bids ----------------------------------------------------------------------------------------


def bids(ch: Chunk) -> tuple[dict, np.ndarray]:
    """Public procurement awards of the firms that bid: monthly wins rise with technology, size and
    health. Returns (the table, ``bidder`` of every firm)."""
    rng, n, cal, L, ops, md = ch.rng, ch.n, ch.cal, ch.L, ch.ops, ch.month_days
    T, ind, found = L["T"], L["industry"], L["founding"]
    bidder = rng.random(n) < world.IND_BIDDERS[ind]
    lam = (bidder * world.IND_BIDS[ind] / 12.0 * np.power(L["staff_base"] / 50.0, 0.4) * np.exp(0.4 * T))[:, None] * np.exp(0.3 * np.clip(L["H"], -3, 3))
    lam = lam * ops["alive"] * (ops["age"] > 0.5)
    bc = np.minimum(rng.poisson(lam), 99)
    bf, bp = np.nonzero(bc)
    k = bc[bf, bp]
    bf, bp = np.repeat(bf, k), np.repeat(bp, k)
    bj = _group_rank(bf * cal.n_months + bp)
    ndays = days((cal.months + 1).astype("datetime64[D]"))[bp] - md[bp]
    award = md[bp] + np.floor(rng.random(len(bf)) * ndays).astype(np.int64)
    award = np.maximum(award, found[bf] + 1)
    bav = award + rng.integers(1, 11, len(bf))
    level = np.maximum(ops["revenue"][bf, bp] * 12.0, ops["staff"][bf, bp] * 10.0)
    amount = np.clip(level * 0.06 * np.exp(0.8 * rng.standard_normal(len(bf))), 1.0, 1e6)
    buyer = world.choice_rows(rng, world.IND_BUYERS[ind[bf]])
    ok = bav <= ch.snap
    ym = (cal.months[bp].astype("datetime64[Y]").astype(np.int64) + 1970) * 100 + cal.month_of_year[bp]
    bid_id = ids.bid_ids(ym, ch.gidx[bf], bj)
    table = {
        "firm_id": ch.firm_id[bf[ok]], "bid_id": bid_id[ok], "award_date": _ts(award[ok]),
        "amount": _money(amount[ok]), "buyer_type": _cat(buyer[ok], BUYER_TYPES), "available_date": _ts(bav[ok]),
    }
    return table, bidder


# ---- talent --------------------------------------------------------------------------------------


def talent(ch: Chunk, key: bytes) -> tuple[dict, np.ndarray]:
    """Credentialed key staff joining and leaving (most flee a defaulted firm; nobody joins a firm
    that has stopped). Returns (the table, whether each firm ever had such staff)."""
    rng, n, snap, L = ch.rng, ch.n, ch.snap, ch.L
    T, found, def_day = L["T"], L["founding"], L["def_day"]
    lam_t = 0.2 + 0.5 * world.IND_TALENT[L["industry"]] * np.exp(0.6 * T) * np.power(L["staff_base"] / 50.0, 0.4)
    nt = np.minimum(rng.poisson(lam_t), 60)
    tf = np.repeat(np.arange(n), nt)
    q = len(tf)
    tk = _group_rank(tf)
    strong = T[tf] > 1.0
    cred_p = np.where(strong[:, None], [[0.08, 0.15, 0.27, 0.50]], [[0.02, 0.10, 0.33, 0.55]])
    cred = world.choice_rows(rng, cred_p)
    founder = rng.random(q) < 0.3
    life = np.maximum(snap - found[tf], 1)
    join = np.where(founder, found[tf] + rng.integers(0, 61, q), found[tf] + np.floor(rng.random(q) * life).astype(np.int64))
    leave = join + (rng.exponential(12.5, q) * 365.25).astype(np.int64)
    flee = (join < def_day[tf]) & (leave > def_day[tf]) & (rng.random(q) < 0.8)
    leave = np.where(flee, def_day[tf] + rng.integers(30, 181, q), leave)
    t_day = np.stack([join, leave], axis=1)
    t_av = t_day + rng.integers(14, 61, (q, 2))
    t_ok = (t_av <= snap) & (join < ch.stop_day[tf])[:, None]  # nobody joins a firm that has stopped
    rows, ev = np.nonzero(t_ok)
    person = ids.person_ids(ch.gidx[tf], tk, key)[rows]
    table = {
        "firm_id": ch.firm_id[tf[rows]], "person_id": person, "credential": _cat(cred[rows], CREDENTIALS),
        "event": _cat(ev, TALENT_EVENTS), "event_date": _ts(t_day[rows, ev]), "available_date": _ts(t_av[rows, ev]),
    }
    return table, nt > 0


# ---- applications, outcomes and truth ------------------------------------------------------------


def applications(ch: Chunk, bidder: np.ndarray, has_talent: np.ndarray) -> tuple[dict, dict]:
    """Loan applications the firms made (scheduled and scored in the latent world): product, amount
    (a share of the last 12 months' revenue), term and collateral. Returns (the table, the
    applications' firm index ``af``, number ``ak``, day, id and maturity for the outcomes)."""
    rng, L, ops = ch.rng, ch.L, ch.ops
    T, ind = L["T"], L["industry"]
    ad = world.app_days(L, ch.cal)
    af, ak = np.nonzero(L["keep"])
    na = len(af)
    a_day = ad[af, ak]
    a_p = L["app_p"][af, ak]
    w = np.stack([
        1.0 + 0.8 * (T[af] > 0),
        0.8 + 1.0 * bidder[af],
        np.where(world.IND_MANUFACTURING[ind[af]], 1.2, 0.2),
        0.3 + 0.3 * has_talent[af],
    ], axis=1)
    prod = world.choice_rows(rng, w)
    # revenue over the 12 months before the application (latent; the bank sees statements)
    csum = np.cumsum(ops["revenue"], axis=1)
    rev12 = csum[af, a_p - 1] - np.where(a_p - 13 >= 0, csum[af, np.maximum(a_p - 13, 0)], 0.0)
    del csum
    base = np.maximum(rev12, ops["staff"][af, a_p - 1] * 20.0)
    amount = np.where(prod == 3, 50.0 + 20.0 * ops["staff"][af, a_p - 1] ** 0.5, base * world.PROD_AMOUNT[prod])
    amount = np.clip(np.round(amount * np.exp(0.5 * rng.standard_normal(na)), -1), 20, 30000)
    term = np.select([prod == k for k in range(4)], [t[rng.integers(0, len(t), na)] for t in world.PROD_TERMS])
    m_app = L["scores"]["m"][af, ak]
    secured = rng.random(na) < np.where(m_app > 0.6, 0.8, 0.3)
    coll = amount * np.where(secured, m_app * rng.uniform(0, 1.3, na) + (1 - m_app) * rng.uniform(0, 0.5, na), 0.0)
    app_id = ids.application_ids(ch.gidx[af], ak)
    table = {
        "application_id": app_id, "firm_id": ch.firm_id[af], "application_date": _ts(a_day),
        "amount": _money(amount), "term_months": term.astype(np.int64), "product": _cat(prod, PRODUCTS),
        "collateral_value": _money(coll), "available_date": _ts(a_day),
    }
    return table, {"af": af, "ak": ak, "day": a_day, "id": app_id, "maturity": m_app}


def approvals(ch: Chunk, tables: dict, apps: dict, policy: str) -> np.ndarray:
    """The bank's decision on every application (True = approved) under ``policy``
    (``world.APPROVAL_POLICIES``), from :func:`bank_view`: what the chunk's tables held before the
    application date and the bank's own earlier decisions. Applications are decided in the order a
    firm made them; one uniform draw per application (none under ``"none"``, which approves all)."""
    na = len(apps["af"])
    rule = world.APPROVAL_POLICIES[policy]
    if rule is None:
        return np.ones(na, dtype=bool)
    u = ch.rng.random(na)
    v = bank_view(ch, tables, apps)
    z = (
        rule.intercept
        + rule.collateral * v["collateral"]
        + rule.statements * v["statements"]
        + rule.profitable * v["profitable"]
        + rule.leveraged * v["leveraged"]
        + rule.established * v["established"]
        + rule.overdue * v["overdue"]
        + rule.high_tech * v["high_tech"]
        + rule.specialised * v["specialised"]
        + rule.inventions * v["inventions"]
    )
    approved = np.zeros(na, dtype=bool)
    borrowed = np.zeros(ch.n, dtype=bool)  # the firm had an earlier application approved
    af, ak = apps["af"], apps["ak"]
    for k in range(world.MAX_APPS):
        r = np.flatnonzero(ak == k)
        approved[r] = u[r] < sigmoid(z[r] + rule.repeat * borrowed[af[r]])
        borrowed[af[r[approved[r]]]] = True
    return approved


def bank_view(ch: Chunk, tables: dict, apps: dict) -> dict[str, np.ndarray]:
    """What the bank knows about each application on its date, read from the chunk's tables (rows
    with ``available_date`` before the application date, as ``features.asof`` reads them):
    collateral coverage, filed statements (up to ``world.MAX_STATEMENTS``) and whether the latest
    shows a profit or high leverage, whether the firm is three years old, had an overdue bill in the
    12 months before, holds a valid high-tech or specialised certificate, and its granted invention
    patents (up to ``world.MAX_INVENTIONS``)."""
    app = tables["applications"]
    af, a_day = apps["af"], apps["day"]
    na = len(af)
    coverage = np.minimum(app["collateral_value"] / app["amount"], world.COLLATERAL_CAP)
    founded = days(tables["firms"]["founding_date"])[af]
    # statements: the latest available before the application, and how many
    fin = tables["financials"]
    a_i, r_i = _pairs(af, _firm_index(ch, fin["firm_id"]))
    known = days(fin["available_date"])[r_i] < a_day[a_i]
    a_i, r_i = a_i[known], r_i[known]
    statements = np.bincount(a_i, minlength=na)
    latest = np.full(na, -1, dtype=np.int64)
    order = np.lexsort((days(fin["available_date"])[r_i], a_i))  # the last row of each application is its latest
    latest[a_i[order]] = r_i[order]
    # position -1 (no statement) picks the appended neutral row: no profit, no leverage
    profitable = np.append(fin["net_profit"], 0.0)[latest] > 0
    leveraged = np.append(fin["total_liabilities"], 0.0)[latest] > world.LEVERAGE_LIMIT * np.append(fin["total_assets"], 1.0)[latest]
    # overdue bills in the 12 months before the application
    bill = tables["bills"]
    a_i, r_i = _pairs(af, _firm_index(ch, bill["firm_id"]))
    late = (
        (bill["overdue_count"][r_i] > 0)
        & (days(bill["available_date"])[r_i] < a_day[a_i])
        & (days(bill["month"])[r_i] >= a_day[a_i] - 365)
    )
    overdue = np.bincount(a_i[late], minlength=na) > 0
    # certificates valid on the application date
    cert = tables["certifications"]
    a_i, r_i = _pairs(af, _firm_index(ch, cert["firm_id"]))
    d = a_day[a_i]
    valid = (days(cert["available_date"])[r_i] < d) & (days(cert["issue_date"])[r_i] <= d) & (d <= days(cert["expiry_date"])[r_i])
    ctype = _codes(cert["cert_type"], CERT_TYPES)[r_i]
    high_tech = np.bincount(a_i[valid & (ctype == CERT_TYPES.index("high_tech"))], minlength=na) > 0
    special = valid & np.isin(ctype, [CERT_TYPES.index("specialized"), CERT_TYPES.index("little_giant")])
    specialised = np.bincount(a_i[special], minlength=na) > 0
    # invention patents granted
    pat = tables["patents"]
    a_i, r_i = _pairs(af, _firm_index(ch, pat["firm_id"]))
    grant = (
        (_codes(pat["event"], PATENT_EVENTS)[r_i] == PATENT_EVENTS.index("grant"))
        & (_codes(pat["patent_type"], PATENT_TYPES)[r_i] == PATENT_TYPES.index("invention"))
        & (days(pat["available_date"])[r_i] < a_day[a_i])
    )
    inventions = np.bincount(a_i[grant], minlength=na)
    return {
        "collateral": coverage,
        "statements": np.minimum(statements, world.MAX_STATEMENTS),
        "profitable": profitable,
        "leveraged": leveraged,
        "established": (a_day - founded) >= 3 * 365.25,
        "overdue": overdue,
        "high_tech": high_tech,
        "specialised": specialised,
        "inventions": np.minimum(inventions, world.MAX_INVENTIONS),
    }


def outcomes_and_truth(ch: Chunk, apps: dict, approved: np.ndarray) -> tuple[dict, dict]:
    """The 12-month outcome of every approved application whose window closed by the snapshot
    (labelled), and the truth of every application: true PD, log-odds, the latent drivers, the
    default it had or would have had if granted, and the bank's decision. Draws nothing: defaults
    were drawn in the latent world, which the decision does not change."""
    L, S = ch.L, ch.L["scores"]
    af, ak, a_day, app_id = apps["af"], apps["ak"], apps["day"], apps["id"]
    dflt = S["default"][af, ak]
    dday = S["default_day"][af, ak]
    closed = world.labelled_mask(a_day, ch.cal)
    lab = closed & approved
    r = np.flatnonzero(lab)
    ddate = _ts(np.where(dflt, dday, 0))
    ddate[~dflt] = np.datetime64("NaT")
    outcomes = {
        "application_id": app_id[r], "firm_id": ch.firm_id[af[r]], "default_12m": dflt[r].astype(np.int64),
        "default_date": ddate[r], "available_date": _ts(add_months(a_day[r], 12)),
    }
    truth = {
        "application_id": app_id, "firm_id": ch.firm_id[af], "application_date": _ts(a_day),
        "true_pd": S["pd"][af, ak], "logit": S["z"][af, ak], "default_12m": dflt.astype(np.int64), "default_date": ddate,
        "labelled": lab, "window_closed": closed, "approved": approved, "tech_strength": L["T"][af], "financial_strength": L["F"][af], "maturity": apps["maturity"],
        "age_years": S["age"][af, ak], "operating_health": S["h3"][af, ak], "health_trend": S["trend"][af, ak],
        "health_level_longrun": L["mu_H"][af], "distress_episode": L["episode"][af],
        "industry": _cat(L["industry"][af], INDUSTRIES), "region": _cat(L["region"][af], REGIONS),
        "industry_effect": S["ind_eff"][af, ak], "region_effect": S["reg_eff"][af, ak], "has_own_meter": L["has_meter"][af],
        "staff_scale": L["staff_base"][af],
    }
    return outcomes, truth


class ApprovalCounts:
    """Who the bank approved, counted chunk by chunk from the truth (:meth:`add`), for the manifest
    (:meth:`summary`): approval rates overall, by firm age band, by industry and for first-time
    applicants, and the default rate approved and rejected applicants had or would have had (windows
    closed by the snapshot; known only because the data is generated)."""

    AGE_BANDS = ((0.0, 3.0, "under 3 years"), (3.0, 8.0, "3 to 8 years"), (8.0, np.inf, "8 years or more"))

    def __init__(self) -> None:
        self.groups: dict[str, list[int]] = {}  # group -> [applications, approved]
        self.outcomes = {"approved": [0, 0], "rejected": [0, 0]}  # windows closed: [applications, defaults]

    def _count(self, group: str, mask: np.ndarray, approved: np.ndarray) -> None:
        g = self.groups.setdefault(group, [0, 0])
        g[0] += int(mask.sum())
        g[1] += int((mask & approved).sum())

    def add(self, truth: dict) -> None:
        approved = np.asarray(truth["approved"], dtype=bool)
        age = np.asarray(truth["age_years"], dtype=np.float64)
        industry = np.asarray(truth["industry"].to_numpy(zero_copy_only=False), dtype=object)
        firm = np.asarray(truth["firm_id"].to_numpy(zero_copy_only=False), dtype=object)
        day = days(truth["application_date"])
        first = np.zeros(len(firm), dtype=bool)  # the firm's first application (a firm's applications share a chunk)
        if len(firm):
            o = np.lexsort((day, firm))
            first[o] = np.r_[True, firm[o][1:] != firm[o][:-1]]
        self._count("all", np.ones(len(firm), dtype=bool), approved)
        for lo, hi, name in self.AGE_BANDS:
            self._count(f"age: {name}", (age >= lo) & (age < hi), approved)
        for ind in INDUSTRIES:
            self._count(f"industry: {ind}", industry == ind, approved)
        self._count("first application", first, approved)
        self._count("first application, under 3 years", first & (age < 3.0), approved)
        self._count("later application", ~first, approved)
        closed = np.asarray(truth["window_closed"], dtype=bool)
        dflt = np.asarray(truth["default_12m"]) == 1
        for key, mask in (("approved", closed & approved), ("rejected", closed & ~approved)):
            self.outcomes[key][0] += int(mask.sum())
            self.outcomes[key][1] += int((mask & dflt).sum())

    def summary(self, policy: str) -> dict:
        rate = lambda k, n: round(k / n, 4) if n else None  # noqa: E731
        return {
            "policy": policy,
            "rates": {g: {"applications": n, "approved": k, "rate": rate(k, n)} for g, (n, k) in self.groups.items()},
            "default_rate_if_granted": {
                key: {"applications": n, "defaults": d, "rate": rate(d, n)} for key, (n, d) in self.outcomes.items()
            },
        }


# ---- column helpers ------------------------------------------------------------------------------


def _firm_index(ch: Chunk, firm_ids: pa.Array) -> np.ndarray:
    """Position in the chunk of each row's firm (every firm id of a chunk table is the chunk's)."""
    return pc.index_in(firm_ids, value_set=ch.firm_id.values).to_numpy(zero_copy_only=False).astype(np.int64)


def _codes(values: pa.Array, categories: tuple[str, ...]) -> np.ndarray:
    """Position of each text value in ``categories`` (the inverse of :func:`_cat`)."""
    return pc.index_in(values, value_set=pa.array(list(categories), type=pa.string())).to_numpy(zero_copy_only=False).astype(np.int64)


def _pairs(app_firm: np.ndarray, row_firm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(application position, row position) for every row of a table that belongs to the firm of
    an application: each application meets each of its firm's rows once."""
    order = np.argsort(row_firm, kind="stable")
    sorted_firm = row_firm[order]
    start = np.searchsorted(sorted_firm, app_firm, side="left")
    count = np.searchsorted(sorted_firm, app_firm, side="right") - start
    a_i = np.repeat(np.arange(len(app_firm)), count)
    within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return a_i, order[np.repeat(start, count) + within]

_US_PER_DAY = np.int64(86_400_000_000)


def _ts(day_ints: np.ndarray) -> np.ndarray:
    """int days since 1970-01-01 -> datetime64[us]."""
    return (np.asarray(day_ints, dtype=np.int64) * _US_PER_DAY).view("datetime64[us]")


def _cat(codes: np.ndarray, categories: tuple[str, ...]) -> pa.Array:
    return pa.array(list(categories), type=pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def _money(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1e8, 1e8), 2)


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal consecutive keys (keys must be sorted)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, keys[1:] != keys[:-1]]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, idx, 0))
    return idx - first


def _cycles(rng, first_year, renew_p, n_cycles, period, months, stop_day, snap, found, ok):
    """Certificates issued in cycles of ``period`` years from ``first_year``, each renewed with ``renew_p``.

    Returns (firm index, cycle, issue day) of issued certificates (issue before the snapshot, before
    the firm stops, after founding)."""
    n = len(first_year)
    cont = ok.copy()
    fi, cy, iss = [], [], []
    for c in range(n_cycles):
        if c > 0:
            cont &= rng.random(n) < renew_p
        year = first_year + c * period
        month = rng.integers(months[0], months[1] + 1, n)
        issue = year_day(year, month, rng.integers(1, 29, n))
        valid = cont & (issue <= snap) & (issue < stop_day) & (issue > found)
        cont &= issue < stop_day
        r = np.flatnonzero(valid)
        fi.append(r)
        cy.append(np.full(len(r), c))
        iss.append(issue[r])
    return np.concatenate(fi), np.concatenate(cy), np.concatenate(iss)
