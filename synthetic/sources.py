"""The source tables of one chunk of firms, simulated from the latent world.

:func:`simulate_chunk` turns a chunk of firms into the column arrays of the 13 tables declared in
``features.tables`` and the truth (the latent state and true PD of every application); the latent
model itself is in :mod:`synthetic.world`. Every step draws from the chunk's one random stream, in a
fixed order: changing the order changes the data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.tables import (
    BUYER_TYPES,
    CERT_TYPES,
    CREDENTIALS,
    INDUSTRIES,
    PATENT_EVENTS,
    PATENT_TYPES,
    PRODUCTS,
    REGIONS,
    SCHEMAS,
    TALENT_EVENTS,
)
from synthetic import identifiers as ids
from synthetic import world as sm
from synthetic.world import Calendar, add_months, days, sigmoid, year_day, years_of

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


def simulate_chunk(rng: np.random.Generator, n: int, offset: int, cal: Calendar, intercept: float, perm: tuple[int, int], key: bytes) -> tuple[dict, dict]:
    """Simulate ``n`` firms with global indices ``offset .. offset+n-1``: (tables, truth) as column dicts."""
    P = cal.n_months
    snap = days(cal.snapshot)
    md = days(cal.month_days)
    L = sm.draw_latent(rng, n, cal)
    L = sm.run_defaults(rng, L, cal, intercept)
    ops = sm.operating_panel(rng, L, cal)
    gidx = offset + np.arange(n, dtype=np.int64)
    ind, reg, T, F = L["industry"], L["region"], L["T"], L["F"]
    found = L["founding"]
    # the firm stops existing (for the hub) at its stop month; defaulted firms stop filing and renewing
    far = np.int64(10**7)  # a day far after any snapshot
    stop_day = np.where(L["stop_p"] < P, md[np.clip(L["stop_p"], 0, P - 1)], far)
    def_day = L["def_day"]

    reg_ids = ids.registration_ids(gidx, reg, perm, rng)
    firm_id = ids.firm_ids(reg_ids, key)
    T_ = {}

    # ---- firms
    cap = np.round(np.clip(np.exp(np.log(L["staff_base"] * 8.0) + 0.7 * rng.standard_normal(n)), 10, 1e6), -1)
    T_["firms"] = {
        "firm_id": firm_id.values,
        "registration_id": reg_ids,
        "legal_rep_id": ids.legal_rep_ids(found, reg, rng),
        "industry": _cat(ind, INDUSTRIES),
        "region": _cat(reg, REGIONS),
        "founding_date": _ts(found),
        "registered_capital": _money(cap),
        "available_date": _ts(found),
    }

    # ---- monthly sources
    def monthly(mask):
        flat = np.flatnonzero(mask)
        f, p = np.divmod(flat, mask.shape[1])
        return f, p, sm.monthly_available(rng, p, cal)

    cov_e = sm.coverage(rng, L, cal, "electricity", ops["alive"]) & L["has_meter"][:, None]
    f, p, av = monthly(cov_e)
    T_["electricity"] = {
        "firm_id": firm_id[f], "month": _ts(md[p]), "kwh": np.round(ops["kwh"][f, p], 1), "available_date": _ts(av),
    }
    del cov_e
    cov_s = sm.coverage(rng, L, cal, "social_security", ops["alive"])
    f, p, av = monthly(cov_s)
    T_["social_security"] = {
        "firm_id": firm_id[f], "month": _ts(md[p]), "headcount": ops["staff"][f, p].astype(np.int64), "available_date": _ts(av),
    }
    del cov_s
    cov_i = sm.coverage(rng, L, cal, "invoices", ops["alive"])
    f, p, av = monthly(cov_i)
    del cov_i
    rev = ops["revenue"][f, p]
    sales = np.maximum(rev * np.exp(0.03 * rng.standard_normal(len(f))), 0.0)
    staff_fp = ops["staff"][f, p]
    h_fp = L["H"][f, p]
    comm_fp = ops["comm"][f, p]
    lam_c = sm.IND_CUSTOMERS[ind[f]] * np.power(staff_fp, 0.6) * comm_fp * np.exp(0.3 * np.clip(h_fp, -3, 3))
    n_cust = np.where(sales > 0, 1 + rng.poisson(lam_c), 0)
    age_fp = ops["age"][f, p]
    conc_firm = np.clip(sm.IND_CONCENTRATION[ind] + 0.1 * rng.standard_normal(n), 0.05, 0.95)
    conc = np.clip(conc_firm[f] * (1 + 0.6 * np.exp(-age_fp / 2)) * np.exp(-0.25 * np.clip(h_fp, -3, 3) + 0.15 * rng.standard_normal(len(f))), 0, 1)
    top = 1.0 / np.maximum(n_cust, 1) + (1 - 1.0 / np.maximum(n_cust, 1)) * conc
    top = np.where(n_cust > 0, np.round(top, 4), np.nan)
    n_sup = rng.poisson(1 + 0.3 * np.power(staff_fp, 0.6) * np.exp(0.2 * np.clip(h_fp, -3, 3)))
    T_["invoices"] = {
        "firm_id": firm_id[f], "month": _ts(md[p]), "sales_amount": _money(sales),
        "purchase_amount": _money(ops["purchases"][f, p]), "n_customers": n_cust.astype(np.int64),
        "n_suppliers": n_sup.astype(np.int64), "top_customer_share": top, "available_date": _ts(av),
    }
    del rev, sales, staff_fp, h_fp, comm_fp, lam_c, n_cust, age_fp, conc, top, n_sup
    B = sm.bills_panel(rng, L, cal, ops)
    cov_b = sm.coverage(rng, L, cal, "bills", ops["alive"])[B["rows"]] & B["active"]
    u, p, av = monthly(cov_b)
    del cov_b
    T_["bills"] = {
        "firm_id": firm_id[B["rows"][u]], "month": _ts(md[p]), "accepted_count": B["count"][u, p].astype(np.int64),
        "accepted_amount": _money(B["amount"][u, p]), "outstanding_amount": _money(B["outstanding"][u, p]),
        "overdue_count": B["overdue_count"][u, p].astype(np.int64), "overdue_amount": _money(B["overdue_amount"][u, p]),
        "max_days_overdue": np.minimum(B["max_days"][u, p], 3650).astype(np.int64), "available_date": _ts(av),
    }
    del B

    # ---- annual: financial statements and R&D super-deduction filings
    years = sm.annual_years(cal)
    fin_connected = rng.random(n) >= sm.NOT_CONNECTED["financials"]
    targeter = rng.random(n) < sigmoid(-0.2 + 1.0 * T)
    rd_offset = 0.0008 + rng.exponential(0.006, n)
    rd_firm = sm.IND_RND[ind] * np.exp(0.3 * T + 0.45 * rng.standard_normal(n))
    tech_share = np.clip(0.18 + 0.08 * T + 0.12 * (ind != sm.INDUSTRIES.index("high_end_equipment")) + 0.06 * rng.standard_normal(n), 0.05, 0.9)
    hts = np.where(targeter, rng.uniform(0.62, 0.95, n), rng.uniform(0.2, 0.9, n))
    turnover = rng.uniform(0.7, 1.4, n)
    files_rd = rng.random(n) < sigmoid(0.6 + 0.8 * T)
    fin_cols: dict[str, list] = {c: [] for c in SCHEMAS["financials"].column_names}
    rd_cols: dict[str, list] = {c: [] for c in SCHEMAS["rnd_deductions"].column_names}
    cal_years = cal.years
    fin_idx: list[np.ndarray] = []
    rd_idx: list[np.ndarray] = []
    for y in years:
        cols = cal_years == y
        if not cols.any():
            continue
        fy_end = year_day(np.array([y]), np.array([12]), np.array([28]))[0] + 3  # Dec 31
        revenue = ops["revenue"][:, cols].sum(axis=1) * rng.uniform(0.97, 1.03, n)
        months_alive = np.maximum(ops["alive"][:, cols].sum(axis=1), 1)
        staff_avg = ops["staff"][:, cols].sum(axis=1) / months_alive
        hbar = L["H"][:, cols].mean(axis=1)
        age = (fy_end - found) / 365.25
        m = sm.maturity(age)
        thr = sm.rnd_thresholds(revenue)
        ratio = np.where(targeter, thr + rd_offset + 0.001 * rng.standard_normal(n), rd_firm * np.exp(0.15 * rng.standard_normal(n)))
        ratio = np.clip(ratio, 0.0, 5.0)
        rnd = ratio * revenue + (1 - m) * staff_avg * tech_share * 12.0
        gm = np.clip(sm.IND_GROSS_MARGIN[ind] + 0.05 * F + 0.02 * hbar + 0.03 * rng.standard_normal(n), 0.05, 0.9)
        nm_mature = 0.05 + 0.06 * F + 0.04 * hbar + 0.03 * rng.standard_normal(n)
        nm_young = -0.30 + 0.35 * rng.standard_normal(n)
        net = revenue * (m * nm_mature + (1 - m) * nm_young) - (1 - m) ** 2 * staff_avg * 6.0
        assets = revenue * turnover + (1 - m) * staff_avg * rng.uniform(20, 60, n) + 50.0
        lev = m * sigmoid(-0.4 - 0.8 * F - 0.3 * hbar + 0.3 * rng.standard_normal(n)) + (1 - m) * rng.uniform(0.05, 0.85, n)
        liab = assets * lev
        cur_a = assets * rng.uniform(0.45, 0.85, n)
        cr = np.exp(m * (0.35 + 0.3 * F + 0.1 * hbar) + 0.2 * rng.standard_normal(n) + (1 - m) * 0.6 * rng.standard_normal(n))
        cur_l = np.minimum(cur_a / cr, liab)
        ocf = net + 0.04 * assets + m * 0.04 * F * revenue + revenue * 0.06 * rng.standard_normal(n)
        filing = fy_end + rng.integers(110, 181, n)  # 4-6 months after the fiscal year
        exists = (found <= fy_end) & (filing < stop_day) & (filing <= snap)
        r = np.flatnonzero(exists & fin_connected & (rng.random(n) >= sigmoid(sm.STATEMENT_MISSING[0] + sm.STATEMENT_MISSING[1] * hbar)))
        fin_idx.append(r)
        fin_cols["fiscal_year"].append(np.full(len(r), y, dtype=np.int64))
        fin_cols["period_end"].append(np.full(len(r), fy_end, dtype=np.int64))
        for name, arr in (
            ("revenue", revenue), ("high_tech_revenue", revenue * hts), ("cost_of_sales", revenue * (1 - gm)),
            ("rnd_expense", rnd), ("net_profit", net), ("total_assets", assets), ("total_liabilities", liab),
            ("current_assets", cur_a), ("current_liabilities", cur_l), ("operating_cash_flow", ocf),
        ):
            fin_cols[name].append(arr[r])
        fin_cols["available_date"].append(filing[r])
        # super-deduction: filed March-May of the next year
        rd_filing = year_day(np.full(n, y + 1), np.full(n, 3), np.ones(n, dtype=np.int64)) + rng.integers(0, 92, n)
        overclaim = rng.random(n) < 0.04
        claimed = rnd * np.where(overclaim, rng.uniform(1.1, 1.5, n), rng.uniform(0.75, 1.0, n))
        rate = np.where((y >= 2023) | (sm.IND_MANUFACTURING[ind] & (y >= 2021)), 1.0, 0.75)
        ok = (found <= fy_end) & files_rd & (rnd > 0) & (rd_filing < stop_day) & (rd_filing <= snap) & (rng.random(n) >= 0.05)
        r = np.flatnonzero(ok)
        rd_idx.append(r)
        rd_cols["tax_year"].append(np.full(len(r), y, dtype=np.int64))
        rd_cols["filing_date"].append(rd_filing[r])
        rd_cols["rnd_expense_claimed"].append(claimed[r])
        rd_cols["super_deduction"].append(claimed[r] * rate[r])
        rd_cols["rnd_staff"].append(np.round(staff_avg[r] * tech_share[r]).astype(np.int64))
        rd_cols["available_date"].append(rd_filing[r])
    fi = np.concatenate(fin_idx)
    o = np.argsort(fi, kind="stable")  # by firm, then fiscal year
    fin = {k: np.concatenate(v)[o] for k, v in fin_cols.items() if k != "firm_id"}
    fin["firm_id"] = firm_id[fi[o]]
    fin_t = dict(fin)
    for k in ("period_end", "available_date"):
        fin_t[k] = _ts(fin[k])
    for k in ("revenue", "high_tech_revenue", "cost_of_sales", "rnd_expense", "net_profit", "total_assets",
              "total_liabilities", "current_assets", "current_liabilities", "operating_cash_flow"):
        fin_t[k] = _money(fin[k])
    T_["financials"] = fin_t
    ri = np.concatenate(rd_idx)
    o = np.argsort(ri, kind="stable")
    rd = {k: np.concatenate(v)[o] for k, v in rd_cols.items() if k != "firm_id"}
    rd["firm_id"] = firm_id[ri[o]]
    for k in ("filing_date", "available_date"):
        rd[k] = _ts(rd[k])
    rd["rnd_expense_claimed"] = _money(rd["rnd_expense_claimed"])
    rd["super_deduction"] = _money(rd["super_deduction"])
    T_["rnd_deductions"] = rd

    # ---- certifications
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
    ctype, cf, cc, cissue, cvalid, cavail = (a[keep] for a in (ctype, cf, cc, cissue, cvalid, cavail))
    o = np.lexsort((cissue, cf))
    ctype, cf, cc, cissue, cvalid, cavail = (a[o] for a in (ctype, cf, cc, cissue, cvalid, cavail))
    expiry = add_months(cissue, cvalid) - 1
    cert_no = ids.certificate_numbers(ctype, cissue, gidx[cf], cc)
    T_["certifications"] = {
        "firm_id": firm_id[cf], "cert_no": cert_no, "cert_type": _cat(ctype, CERT_TYPES),
        "issue_date": _ts(cissue), "expiry_date": _ts(expiry), "available_date": _ts(cavail),
    }

    # ---- patents: one row per event (grant, lapse, pledge, pledge release)
    start_day = found + 90
    active_years = np.clip((snap - start_day) / 365.25, 0, 25)
    scale = np.exp(0.7 * T) * (L["staff_base"] / 50.0) ** 0.5
    counts = np.minimum(rng.poisson(sm.IND_PATENTS[ind] * (scale * active_years)[:, None]), 999)  # (n, 4)
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
    pid = ids.patent_ids(pt, filing, gidx[pf], seq)
    T_["patents"] = {
        "firm_id": firm_id[pf[rows]], "patent_id": pid[rows], "patent_type": _cat(pt[rows], PATENT_TYPES),
        "event": _cat(ev, PATENT_EVENTS), "filing_date": _ts(filing[rows]), "event_date": _ts(ev_day[rows, ev]),
        "available_date": _ts(ev_av[rows, ev]),
    }
    del pf, pt, filing, grant, lapse, pledge, release, ev_day, ev_ok, ev_av, pid

    # ---- bids: public procurement awards
    bidder = rng.random(n) < sm.IND_BIDDERS[ind]
    lam = (bidder * sm.IND_BIDS[ind] / 12.0 * np.power(L["staff_base"] / 50.0, 0.4) * np.exp(0.4 * T))[:, None] * np.exp(0.3 * np.clip(L["H"], -3, 3))
    lam = lam * ops["alive"] * (ops["age"] > 0.5)
    bc = np.minimum(rng.poisson(lam), 99)
    bf, bp = np.nonzero(bc)
    k = bc[bf, bp]
    bf, bp = np.repeat(bf, k), np.repeat(bp, k)
    bj = _group_rank(bf * P + bp)
    ndays = days((cal.months + 1).astype("datetime64[D]"))[bp] - md[bp]
    award = md[bp] + np.floor(rng.random(len(bf)) * ndays).astype(np.int64)
    award = np.maximum(award, found[bf] + 1)
    bav = award + rng.integers(1, 11, len(bf))
    level = np.maximum(ops["revenue"][bf, bp] * 12.0, ops["staff"][bf, bp] * 10.0)
    amount = np.clip(level * 0.06 * np.exp(0.8 * rng.standard_normal(len(bf))), 1.0, 1e6)
    buyer = sm.choice_rows(rng, sm.IND_BUYERS[ind[bf]])
    ok = bav <= snap
    ym = (cal.months[bp].astype("datetime64[Y]").astype(np.int64) + 1970) * 100 + cal.month_of_year[bp]
    bid_id = ids.bid_ids(ym, gidx[bf], bj)
    T_["bids"] = {
        "firm_id": firm_id[bf[ok]], "bid_id": bid_id[ok], "award_date": _ts(award[ok]),
        "amount": _money(amount[ok]), "buyer_type": _cat(buyer[ok], BUYER_TYPES), "available_date": _ts(bav[ok]),
    }

    # ---- talent: credentialed key staff joining and leaving
    lam_t = 0.2 + 0.5 * sm.IND_TALENT[ind] * np.exp(0.6 * T) * np.power(L["staff_base"] / 50.0, 0.4)
    nt = np.minimum(rng.poisson(lam_t), 60)
    tf = np.repeat(np.arange(n), nt)
    q = len(tf)
    tk = _group_rank(tf)
    strong = T[tf] > 1.0
    cred_p = np.where(strong[:, None], [[0.08, 0.15, 0.27, 0.50]], [[0.02, 0.10, 0.33, 0.55]])
    cred = sm.choice_rows(rng, cred_p)
    founder = rng.random(q) < 0.3
    life = np.maximum(snap - found[tf], 1)
    join = np.where(founder, found[tf] + rng.integers(0, 61, q), found[tf] + np.floor(rng.random(q) * life).astype(np.int64))
    leave = join + (rng.exponential(12.5, q) * 365.25).astype(np.int64)
    flee = (join < def_day[tf]) & (leave > def_day[tf]) & (rng.random(q) < 0.8)
    leave = np.where(flee, def_day[tf] + rng.integers(30, 181, q), leave)
    t_day = np.stack([join, leave], axis=1)
    t_av = t_day + rng.integers(14, 61, (q, 2))
    t_ok = (t_av <= snap) & (join < stop_day[tf])[:, None]  # nobody joins a firm that has stopped
    rows, ev = np.nonzero(t_ok)
    person = ids.person_ids(gidx[tf], tk, key)[rows]
    T_["talent"] = {
        "firm_id": firm_id[tf[rows]], "person_id": person, "credential": _cat(cred[rows], CREDENTIALS),
        "event": _cat(ev, TALENT_EVENTS), "event_date": _ts(t_day[rows, ev]), "available_date": _ts(t_av[rows, ev]),
    }

    # ---- applications, outcomes, truth
    ad = sm.app_days(L, cal)
    af, ak = np.nonzero(L["keep"])
    na = len(af)
    a_day = ad[af, ak]
    a_p = L["app_p"][af, ak]
    talent_any = nt > 0
    w = np.stack([
        1.0 + 0.8 * (T[af] > 0),
        0.8 + 1.0 * bidder[af],
        np.where(sm.IND_MANUFACTURING[ind[af]], 1.2, 0.2),
        0.3 + 0.3 * talent_any[af],
    ], axis=1)
    prod = sm.choice_rows(rng, w)
    # revenue over the 12 months before the application (latent; the bank sees statements)
    csum = np.cumsum(ops["revenue"], axis=1)
    rev12 = csum[af, a_p - 1] - np.where(a_p - 13 >= 0, csum[af, np.maximum(a_p - 13, 0)], 0.0)
    del csum
    base = np.maximum(rev12, ops["staff"][af, a_p - 1] * 20.0)
    amount = np.where(prod == 3, 50.0 + 20.0 * ops["staff"][af, a_p - 1] ** 0.5, base * sm.PROD_AMOUNT[prod])
    amount = np.clip(np.round(amount * np.exp(0.5 * rng.standard_normal(na)), -1), 20, 30000)
    term = np.select([prod == k for k in range(4)], [t[rng.integers(0, len(t), na)] for t in sm.PROD_TERMS])
    m_app = L["scores"]["m"][af, ak]
    secured = rng.random(na) < np.where(m_app > 0.6, 0.8, 0.3)
    coll = amount * np.where(secured, m_app * rng.uniform(0, 1.3, na) + (1 - m_app) * rng.uniform(0, 0.5, na), 0.0)
    app_id = ids.application_ids(gidx[af], ak)
    T_["applications"] = {
        "application_id": app_id, "firm_id": firm_id[af], "application_date": _ts(a_day),
        "amount": _money(amount), "term_months": term.astype(np.int64), "product": _cat(prod, PRODUCTS),
        "collateral_value": _money(coll), "available_date": _ts(a_day),
    }
    dflt = L["scores"]["default"][af, ak]
    dday = L["scores"]["default_day"][af, ak]
    lab = sm.labelled_mask(a_day, cal)
    r = np.flatnonzero(lab)
    ddate = _ts(np.where(dflt, dday, 0))
    ddate[~dflt] = np.datetime64("NaT")
    T_["outcomes"] = {
        "application_id": app_id[r], "firm_id": firm_id[af[r]], "default_12m": dflt[r].astype(np.int64),
        "default_date": ddate[r], "available_date": _ts(add_months(a_day[r], 12)),
    }
    S = L["scores"]
    truth = {
        "application_id": app_id, "firm_id": firm_id[af], "application_date": _ts(a_day),
        "true_pd": S["pd"][af, ak], "logit": S["z"][af, ak], "default_12m": dflt.astype(np.int64), "default_date": ddate,
        "labelled": lab, "tech_strength": T[af], "financial_strength": F[af], "maturity": m_app, "age_years": S["age"][af, ak],
        "operating_health": S["h3"][af, ak], "health_trend": S["trend"][af, ak], "health_level_longrun": L["mu_H"][af],
        "distress_episode": L["episode"][af], "industry": _cat(ind[af], INDUSTRIES), "region": _cat(reg[af], REGIONS),
        "industry_effect": S["ind_eff"][af, ak], "region_effect": S["reg_eff"][af, ak], "has_own_meter": L["has_meter"][af],
        "staff_scale": L["staff_base"][af],
    }
    return T_, truth


