"""Synthetic multi-source data hub for sci-tech SMEs, with a known ground truth.

``generate(GeneratorParams(firms=..., seed=...), out_dir)`` writes the 13 source tables declared in
``features.tables`` (``<table>.parquet`` each), ``manifest.json`` and ``truth/truth.parquet`` (the
latent state and true PD of every application; only evaluation code may read it). The latent model
lives in ``riskmodel.synthetic_model``; data/synthetic/README.md documents both.

Scale: firms are simulated in chunks of ``CHUNK_SIZE`` with per-chunk random streams derived from the
seed (``np.random.SeedSequence(seed, spawn_key=(1, chunk))``), each chunk appended to the Parquet
files as row groups, so memory stays flat in the number of firms. The same seed and parameters give
byte-identical files on one machine and the same values on any machine (floats, rounded to
``FLOAT_PLACES``, within a tolerance: ``compare_datasets``); a run with more firms starts with the
same firms as a run with fewer (whole chunks). Output is written to a temporary directory next to the
target and renamed at the end, so a failed or interrupted run leaves no partial dataset.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import re
import shutil
import sys
import tempfile
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features import privacy
from features.errors import UserError
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
    TABLE_NAMES,
    TALENT_EVENTS,
)
from synthetic import world as sm
from synthetic.world import Calendar, add_months, days, sigmoid

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.2.0"
CHUNK_SIZE = 50_000  # fixed: the output depends on it, so it is part of the format, not an option
CALIBRATION_FIRMS = 30_000
ROW_GROUP_SIZE = 1_000_000
MIN_MONTH, MAX_MONTH = "2010-01", "2035-12"
MIN_WINDOW_MONTHS = 24
DEFAULT_RATE_RANGE = (0.01, 0.08)
MAX_FIRMS = 10_000_000
_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# Decimal places of every float the generator writes. numpy's exp, log and power give different last
# bits on different CPUs (they are vectorised per instruction set), so an unrounded float differs
# between machines by about 1e-16 relative. Rounding to these places (np.round: multiply, round half
# to even, divide -- exact IEEE operations, the same everywhere) hides such a difference unless the
# value lies within it of a rounding boundary. data/synthetic/README.md ("Reproducibility") says how rare that is.
_FLOAT_PLACES_OTHER_THAN_MONEY = {("electricity", "kwh"): 1, ("invoices", "top_customer_share"): 4}
TRUTH_FLOAT_PLACES = 9  # true_pd, logit and the latent state
TRUTH_STAFF_SCALE_PLACES = 6  # staff_scale is a headcount (10 to 1,000s): 6 places keep 8 or more digits
MONEY_PLACES = 2  # CNY 10k (万元) to the 100 CNY

TRUTH_COLUMNS = {
    "application_id": pa.string(),
    "firm_id": pa.string(),
    "application_date": pa.timestamp("us"),
    "true_pd": pa.float64(),
    "logit": pa.float64(),
    "default_12m": pa.int64(),
    "default_date": pa.timestamp("us"),
    "labelled": pa.bool_(),
    "tech_strength": pa.float64(),
    "financial_strength": pa.float64(),
    "maturity": pa.float64(),
    "age_years": pa.float64(),
    "operating_health": pa.float64(),
    "health_trend": pa.float64(),
    "health_level_longrun": pa.float64(),
    "distress_episode": pa.bool_(),
    "industry": pa.string(),
    "region": pa.string(),
    "industry_effect": pa.float64(),
    "region_effect": pa.float64(),
    "has_own_meter": pa.bool_(),
    "staff_scale": pa.float64(),
}

FLOAT_PLACES: dict[str, dict[str, int]] = {
    **{
        t: {c.name: _FLOAT_PLACES_OTHER_THAN_MONEY.get((t, c.name), MONEY_PLACES) for c in SCHEMAS[t].columns if c.dtype == "float"}
        for t in TABLE_NAMES
    },
    "truth": {
        c: (TRUTH_STAFF_SCALE_PLACES if c == "staff_scale" else TRUTH_FLOAT_PLACES)
        for c, t in TRUTH_COLUMNS.items()
        if t == pa.float64()
    },
}
"""Decimal places of each float column, by table ("truth" for truth/truth.parquet); the writer rounds to them."""


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorParams:
    """What to generate. Validated in ``__post_init__``; a bad value raises ``UserError`` saying what to change."""

    firms: int
    seed: int = 0
    start: str = "2021-01"
    end: str = "2025-12"
    default_rate: float = 0.03

    def __post_init__(self) -> None:
        if isinstance(self.firms, bool) or not isinstance(self.firms, (int, np.integer)):
            raise UserError(f"--firms must be a whole number, got {self.firms!r}")
        if self.firms < 1:
            raise UserError(f"--firms must be at least 1, got {self.firms}")
        if self.firms > MAX_FIRMS:
            raise UserError(f"--firms must be at most {MAX_FIRMS:,}, got {self.firms:,}; generate several datasets instead")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise UserError(f"--seed must be a non-negative whole number, got {self.seed!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _MONTH_RE.match(value):
                raise UserError(f"--{name} must be a month written YYYY-MM (e.g. 2021-01), got {value!r}")
            if not (MIN_MONTH <= value <= MAX_MONTH):
                raise UserError(f"--{name} must lie between {MIN_MONTH} and {MAX_MONTH}, got {value}")
        s, e = np.datetime64(self.start, "M"), np.datetime64(self.end, "M")
        if e < s:
            raise UserError(f"--end ({self.end}) is before --start ({self.start}); give an end month after the start month")
        span = int((e - s).astype(int)) + 1
        if span < MIN_WINDOW_MONTHS:
            raise UserError(
                f"--start {self.start} to --end {self.end} spans {span} months; give at least {MIN_WINDOW_MONTHS} "
                "(a year of history before the first application and a year of outcomes)"
            )
        try:
            rate = float(self.default_rate)
        except (TypeError, ValueError):
            raise UserError(f"--default-rate must be a number, got {self.default_rate!r}") from None
        lo, hi = DEFAULT_RATE_RANGE
        if not (lo <= rate <= hi):
            raise UserError(f"--default-rate must be between {lo} and {hi} (a share, e.g. 0.03 for 3%), got {self.default_rate}")

    @property
    def calendar(self) -> Calendar:
        return Calendar(np.datetime64(self.start, "M"), np.datetime64(self.end, "M"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["firms"] = int(d["firms"])
        d["seed"] = int(d["seed"])
        d["default_rate"] = float(d["default_rate"])
        d["chunk_size"] = CHUNK_SIZE
        return d


# --------------------------------------------------------------------------------------------------
# Identifiers: fixed-width ASCII built with numpy, unique by construction
# --------------------------------------------------------------------------------------------------

_USCC_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def _digits(x: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative ints as an (n, width) uint8 ASCII array."""
    x = np.asarray(x, dtype=np.int64)
    pow10 = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((x[:, None] // pow10[None, :]) % 10 + 48).astype(np.uint8)


def _const(s: str, n: int) -> np.ndarray:
    return np.tile(np.frombuffer(s.encode("ascii"), dtype=np.uint8), (n, 1))


def _join(*blocks: np.ndarray) -> np.ndarray:
    """Concatenate (n, w_k) uint8 blocks and return an array of str."""
    arr = np.ascontiguousarray(np.concatenate(blocks, axis=1))
    n, w = arr.shape
    if n == 0:
        return np.array([], dtype=f"U{max(w, 1)}")
    return arr.view(f"S{w}").ravel().astype(f"U{w}")


def registration_ids(global_index: np.ndarray, region: np.ndarray, perm: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """18-character unified social credit codes, unique per firm index.

    The 9-character organisation code is an affine permutation of the firm index modulo 31^9, so ids
    never collide; the check character is deliberately wrong, so no generated code is a valid real one.
    """
    n = len(global_index)
    mod = 31**9
    a, b = perm
    x = (global_index.astype(np.int64) * a + b) % mod
    pow31 = 31 ** np.arange(8, -1, -1, dtype=np.int64)
    body_idx = (x[:, None] // pow31[None, :]) % 31
    admin_choice = rng.integers(0, 4, n)
    admin_codes = np.array([[int(c) for c in row] for row in sm.REG_ADMIN], dtype=np.int64)
    admin = admin_codes[region, admin_choice]
    head = _const("91", n)
    admin_d = _digits(admin, 6)
    values = np.concatenate([np.full((n, 1), 9), np.full((n, 1), 1), admin_d.astype(np.int64) - 48, body_idx], axis=1)
    check = (31 - (values * _USCC_WEIGHTS[None, :]).sum(axis=1) % 31) % 31
    wrong = (check + 1) % 31
    return _join(head, admin_d, _USCC_ALPHABET[body_idx], _USCC_ALPHABET[wrong][:, None])


def legal_rep_ids(founding: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """18-character resident id numbers of legal representatives (synthetic; check digit deliberately wrong)."""
    n = len(founding)
    admin_codes = np.array([[int(c) for c in row] for row in sm.REG_ADMIN], dtype=np.int64)
    admin = admin_codes[region, rng.integers(0, 4, n)]
    birth = founding - np.round(rng.uniform(25, 55, n) * 365.25).astype(np.int64)
    bd = birth.astype("datetime64[D]")
    y = bd.astype("datetime64[Y]").astype(np.int64) + 1970
    mth = bd.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (bd - bd.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    seq = rng.integers(0, 1000, n)
    body = np.concatenate([_digits(admin, 6), _digits(y, 4), _digits(mth, 2), _digits(dom, 2), _digits(seq, 3)], axis=1)
    s = ((body.astype(np.int64) - 48) * _ID_WEIGHTS[None, :]).sum(axis=1) % 11
    wrong = (s + 1) % 11
    return _join(body, _ID_CHECK[wrong][:, None])


# --------------------------------------------------------------------------------------------------
# One chunk of firms -> column arrays of every table
# --------------------------------------------------------------------------------------------------


class _Take:
    """An Arrow string column indexed like a numpy array (``ids[rows]`` -> Arrow array), without Python objects."""

    def __init__(self, values: pa.Array):
        self.values = values

    def __getitem__(self, rows) -> pa.Array:
        return self.values.take(pa.array(np.asarray(rows, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.values)


def _pseudonymize(values: np.ndarray, key: bytes, prefix: str) -> pa.Array:
    """Same ids as ``features.privacy.pseudonymize`` (keyed HMAC-SHA256, shortened), about 3x faster:
    the keyed HMAC state is built once and copied per value instead of re-keyed."""
    base = hmac.new(key, digestmod=hashlib.sha256)
    width = privacy.ID_LENGTH

    def one(v: str) -> str:
        h = base.copy()
        h.update(v.encode("utf-8"))
        return prefix + h.hexdigest()[:width]

    return pa.array([one(v) for v in values.tolist()], type=pa.string())


_US_PER_DAY = np.int64(86_400_000_000)


def _ts(day_ints: np.ndarray) -> np.ndarray:
    """int days since 1970-01-01 -> datetime64[us]."""
    return (np.asarray(day_ints, dtype=np.int64) * _US_PER_DAY).view("datetime64[us]")


def _cat(codes: np.ndarray, categories: tuple[str, ...]) -> pa.Array:
    return pa.array(list(categories), type=pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def _money(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1e8, 1e8), 2)


def _years_of(day_ints: np.ndarray) -> np.ndarray:
    return day_ints.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def _year_day(year: np.ndarray, month: np.ndarray, dom: np.ndarray) -> np.ndarray:
    """int days of year-month-dom (dom 1..28)."""
    m = (np.asarray(year, dtype=np.int64) - 1970) * 12 + (np.asarray(month, dtype=np.int64) - 1)
    return m.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + np.asarray(dom, dtype=np.int64) - 1


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
        issue = _year_day(year, month, rng.integers(1, 29, n))
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

    reg_ids = registration_ids(gidx, reg, perm, rng)
    firm_id = _Take(_pseudonymize(reg_ids, key, "F"))
    T_ = {}

    # ---- firms
    cap = np.round(np.clip(np.exp(np.log(L["staff_base"] * 8.0) + 0.7 * rng.standard_normal(n)), 10, 1e6), -1)
    T_["firms"] = {
        "firm_id": firm_id.values,
        "registration_id": reg_ids,
        "legal_rep_id": legal_rep_ids(found, reg, rng),
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
        fy_end = _year_day(np.array([y]), np.array([12]), np.array([28]))[0] + 3  # Dec 31
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
        rd_filing = _year_day(np.full(n, y + 1), np.full(n, 3), np.ones(n, dtype=np.int64)) + rng.integers(0, 92, n)
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
    fy = _years_of(found)
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
        issue = _year_day(np.full(n, y), rng.integers(4, 12, n), rng.integers(1, 29, n))
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
    prefixes = np.frombuffer(b"GRKJZJXJ", dtype=np.uint8).reshape(4, 2)
    cert_no = _join(prefixes[ctype], _digits(_years_of(cissue), 4), _digits(gidx[cf], 7), _digits(cc, 2))
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
    typecode = np.frombuffer(b"1230", dtype=np.uint8)
    fyear = _years_of(filing)
    is_sw = pt == 3
    head = np.where(is_sw[:, None], _const("SR", m_), _const("ZL", m_))
    pid = _join(head, _digits(fyear, 4), typecode[pt][:, None], _digits(gidx[pf], 7), _digits(seq, 3))
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
    bid_id = _join(_const("ZB", len(bf)), _digits(ym, 6), _digits(gidx[bf], 7), _digits(bj, 2))
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
    person_src = _join(_const("person-", q), _digits(gidx[tf], 7), _const("-", q), _digits(tk, 3))
    person = _Take(_pseudonymize(person_src, key, "P"))[rows]
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
    app_id = _join(_const("A", na), _digits(gidx[af], 7), _digits(ak, 2))
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


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

_ARROW = {"string": pa.string(), "category": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.timestamp("us"), "bool": pa.bool_()}


def arrow_schema(table: str) -> pa.Schema:
    """Arrow schema of a source table, from its declaration in ``features.tables``."""
    s = SCHEMAS[table]
    return pa.schema([pa.field(c.name, _ARROW[c.dtype], nullable=True) for c in s.columns])


TRUTH_SCHEMA = pa.schema([pa.field(k, v) for k, v in TRUTH_COLUMNS.items()])


def _to_arrow(cols: dict, schema: pa.Schema, places: dict[str, int]) -> pa.Table:
    """Columns -> Arrow table; every float column is rounded to its ``places`` (a float column without
    declared places is a programming error)."""
    arrays = []
    for f in schema:
        v = cols[f.name]
        if f.type == pa.float64():
            v = np.round(np.asarray(v, dtype=np.float64), places[f.name])
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays.append(v if v.type == f.type else v.cast(f.type))
        else:
            arrays.append(pa.array(v, type=f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


class _Writers:
    """One ParquetWriter per file; chunks append row groups (same settings as ``features.tables.write_table``)."""

    def __init__(self, directory: Path):
        self.directory = directory
        (directory / "truth").mkdir(parents=True, exist_ok=True)
        self.schemas = {t: arrow_schema(t) for t in TABLE_NAMES}
        self.schemas["truth"] = TRUTH_SCHEMA
        self.paths = {t: directory / f"{t}.parquet" for t in TABLE_NAMES}
        self.paths["truth"] = directory / "truth" / "truth.parquet"
        self.writers = {
            t: pq.ParquetWriter(str(p), self.schemas[t], compression="zstd", write_statistics=True) for t, p in self.paths.items()
        }
        self.rows = {t: 0 for t in self.paths}

    def write(self, name: str, cols: dict) -> None:
        table = _to_arrow(cols, self.schemas[name], FLOAT_PLACES[name])
        if table.num_rows:
            self.writers[name].write_table(table, row_group_size=ROW_GROUP_SIZE)
        self.rows[name] += table.num_rows

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a directory path (new, empty, or a previous generated dataset)")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise UserError(
            f"--out {out} is a non-empty directory that is not a generated dataset (no manifest.json); "
            "give a new or empty directory"
        )
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--out {out}: parent {parent} is a file; give a path inside a directory")


def calibrate(params: GeneratorParams) -> float:
    """Intercept of the PD model so that labelled applications default at ``params.default_rate``.

    Computed on a fixed calibration sample (its own random stream), so the PD model does not depend on
    the number of firms generated."""
    return _calibrate(int(params.seed), params.start, params.end, float(params.default_rate))


@functools.lru_cache(maxsize=16)
def _calibrate(seed: int, start: str, end: str, rate: float) -> float:
    cal = Calendar(np.datetime64(start, "M"), np.datetime64(end, "M"))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    L = sm.draw_latent(rng, CALIBRATION_FIRMS, cal)
    return sm.calibrate_intercept(L, cal, rate)


def generate(params: GeneratorParams, out: str | Path, key: str | bytes | None = None) -> dict:
    """Write a synthetic dataset to ``out`` and return its manifest.

    ``key`` is the pseudonymisation key for firm and person ids (default: ``RISKMODEL_ID_KEY`` or the
    demo key). An existing ``out`` is replaced only if it is a previous generated dataset (has a
    manifest.json) or empty."""
    out = Path(out)
    _check_out(out)
    k = privacy.id_key(key)
    cal = params.calendar
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        intercept = calibrate(params)
        log.info("calibrated intercept %.4f for default rate %.3f", intercept, params.default_rate)
        seq = np.random.SeedSequence(int(params.seed), spawn_key=(2,))
        ids_rng = np.random.default_rng(seq)
        perm = (int(ids_rng.integers(1_000_000, 9_000_000)) * 31 + 1, int(ids_rng.integers(0, 31**9)))
        writers = _Writers(tmp)
        n_chunks = -(-params.firms // CHUNK_SIZE)
        labelled = defaults = 0
        try:
            for c in range(n_chunks):
                n = min(CHUNK_SIZE, params.firms - c * CHUNK_SIZE)
                rng = np.random.default_rng(np.random.SeedSequence(int(params.seed), spawn_key=(1, c)))
                tables, truth = simulate_chunk(rng, n, c * CHUNK_SIZE, cal, intercept, perm, k)
                for name in TABLE_NAMES:
                    writers.write(name, tables[name])
                writers.write("truth", truth)
                labelled += len(tables["outcomes"]["default_12m"])
                defaults += int(tables["outcomes"]["default_12m"].sum())
                log.info("chunk %d/%d: %d firms written", c + 1, n_chunks, n)
                del tables, truth
        finally:
            writers.close()
        files = {}
        for name, path in writers.paths.items():
            rel = path.relative_to(tmp).as_posix()
            files[rel] = {"rows": writers.rows[name], "bytes": path.stat().st_size, "sha256": _sha256(path)}
        manifest = {
            "generator": "riskmodel.synthetic",
            "generator_version": GENERATOR_VERSION,
            "seed": int(params.seed),
            "parameters": params.to_dict(),
            "snapshot_date": str(cal.snapshot),
            "id_key": "demo" if privacy.is_demo_key(k) else "custom",
            "pd_intercept": round(float(intercept), 6),
            "rows": {name: writers.rows[name] for name in TABLE_NAMES},
            "truth_rows": writers.rows["truth"],
            "labelled_applications": labelled,
            "default_rate_observed": round(defaults / labelled, 6) if labelled else None,
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished dataset into place; an older generated dataset at ``out`` is replaced."""
    if out.is_dir():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


# --------------------------------------------------------------------------------------------------
# Reproducibility across machines: value comparison, and emulating another CPU's last bits
# --------------------------------------------------------------------------------------------------

COMPARE_RTOL = 1e-9
MANIFEST_PLACES = 6  # floats in manifest.json (pd_intercept, default_rate_observed)
_MANIFEST_SAME_MACHINE = ("sha256", "bytes")  # depend on the exact float bits: a same-machine promise


@dataclass(frozen=True)
class Difference:
    """One way in which two datasets differ: a file, a column (or manifest key), and the first differing row."""

    file: str
    column: str = ""
    rows: int = 0  # rows that differ (0: not a row-by-row difference)
    of_rows: int = 0
    row: int = -1  # first differing row
    first: object = None  # its value in the first dataset
    second: object = None
    note: str = ""
    firm_id: str | None = None  # of the first differing row, where the table has one
    exact: bool = True  # False for a float column compared within a tolerance

    def __str__(self) -> str:
        label = "column " if self.file.endswith(".parquet") else ""  # a manifest key otherwise
        where = f"{self.file}: {label}{self.column}" if self.column else self.file
        if self.rows:
            firm = f" (firm_id {self.firm_id})" if self.firm_id else ""
            return (f"{where}: {self.rows:,} of {self.of_rows:,} rows differ{self.note}; first at row {self.row}{firm}: "
                    f"{_show(self.first)} != {_show(self.second)}")
        return f"{where}: {self.note}"


def _dataset_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(root).parts)}


def _show(v) -> str:
    if v is None:
        return "null"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return repr(v)


def _float_close(x: np.ndarray, y: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    both_nan = np.isnan(x) & np.isnan(y)
    with np.errstate(invalid="ignore"):
        close = np.abs(x - y) <= atol + rtol * np.maximum(np.abs(x), np.abs(y))
    return both_nan | (x == y) | close


def _compare_file(rel: str, fa: Path, fb: Path, rtol: float, atol: float | None) -> list[Difference]:
    table = "truth" if rel == "truth/truth.parquet" else rel.removesuffix(".parquet")
    places = FLOAT_PLACES.get(table, {})
    sa, sb = pq.read_schema(fa), pq.read_schema(fb)
    out = []
    if sa.names != sb.names:
        only_a = [c for c in sa.names if c not in sb.names]
        only_b = [c for c in sb.names if c not in sa.names]
        out.append(Difference(rel, note=f"columns differ: only in the first {only_a}, only in the second {only_b}, "
                                         f"order {sa.names} vs {sb.names}"))
    na, nb = pq.ParquetFile(fa).metadata.num_rows, pq.ParquetFile(fb).metadata.num_rows
    if na != nb:
        return out + [Difference(rel, note=f"{na:,} rows != {nb:,} rows")]
    for name in (c for c in sa.names if c in sb.names):
        ta, tb = sa.field(name).type, sb.field(name).type
        if ta != tb:
            out.append(Difference(rel, name, note=f"type {ta} != {tb}"))
            continue
        ca = pq.read_table(fa, columns=[name]).column(name).combine_chunks()
        cb = pq.read_table(fb, columns=[name]).column(name).combine_chunks()
        is_float = pa.types.is_floating(ta)
        if is_float:
            x = ca.to_numpy(zero_copy_only=False).astype(np.float64)
            y = cb.to_numpy(zero_copy_only=False).astype(np.float64)
            tol = atol if atol is not None else (1.5 * 10.0 ** -places[name] if name in places else 0.0)
            bad = ~_float_close(x, y, rtol, tol)
            note = f" (by more than {tol:g} + {rtol:g} x value)"
        else:
            same = pc.or_kleene(pc.equal(ca, cb), pc.and_(pc.is_null(ca), pc.is_null(cb)))
            bad = ~np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False), dtype=bool)
            note = ""
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            firm = pq.read_table(fa, columns=["firm_id"]).column("firm_id")[i].as_py() if "firm_id" in sa.names and name != "firm_id" else None
            out.append(Difference(rel, name, int(bad.sum()), na, i, ca[i].as_py(), cb[i].as_py(), note, firm, exact=not is_float))
    return out


def _compare_json(path: str, a, b, rtol: float, atol: float) -> list[Difference]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in _MANIFEST_SAME_MACHINE and path.startswith("files."):
                continue
            if k not in a or k not in b:
                out.append(Difference("manifest.json", f"{path}{k}", note=f"only in the {'first' if k in a else 'second'} dataset"))
            else:
                out += _compare_json(f"{path}{k}.", a[k], b[k], rtol, atol)
        return out
    if isinstance(a, float) and isinstance(b, float):
        ok = bool(_float_close(np.array([a]), np.array([b]), rtol, atol)[0])
    else:
        ok = a == b and type(a) is type(b)
    return [] if ok else [Difference("manifest.json", path.rstrip("."), note=f"{a!r} != {b!r}", exact=not isinstance(a, float))]


def differences(a: str | Path, b: str | Path, rtol: float = COMPARE_RTOL, atol: float | None = None) -> list[Difference]:
    """``compare_datasets`` as records (for code that counts differences, such as the portability benchmark)."""
    a, b = Path(a), Path(b)
    out: list[Difference] = []
    files_a, files_b = _dataset_files(a), _dataset_files(b)
    for rel in sorted(files_a ^ files_b):
        out.append(Difference(rel, note=f"only in {a if rel in files_a else b}"))
    ma, mb = a / "manifest.json", b / "manifest.json"
    if ma.exists() and mb.exists():
        matol = 1.5 * 10.0**-MANIFEST_PLACES if atol is None else atol
        out += _compare_json("", json.loads(ma.read_text()), json.loads(mb.read_text()), rtol, matol)
    elif ma.exists() or mb.exists():
        out.append(Difference("manifest.json", note=f"only in {a if ma.exists() else b}"))
    for rel in sorted(files_a & files_b):
        out += _compare_file(rel, a / rel, b / rel, rtol, atol)
    return out


def compare_datasets(a: str | Path, b: str | Path, rtol: float = COMPARE_RTOL, atol: float | None = None) -> list[str]:
    """Differences between two generated datasets, one readable line each; ``[]`` when they hold the same values.

    This is the cross-machine test of reproducibility (data/synthetic/README.md, "Reproducibility"):
    the same files and row counts, the same column names, order and types, and the same values
    row by row. Integers, dates, strings, categories and booleans must be equal (null equals null);
    a float may differ by ``atol + rtol * |value|``, where ``atol`` defaults to 1.5 units in the last
    decimal place the column is written with (``FLOAT_PLACES``: a value on a rounding boundary may
    round the other way on another CPU). The manifest must match too, except the sha256 and byte
    size of each file, which depend on the exact float bits (a same-machine promise); its floats are
    written with ``MANIFEST_PLACES`` places. Each line names the file, the column, how many rows
    differ, and the first of them with both values.
    """
    return [str(d) for d in differences(a, b, rtol, atol)]


_NOISY = ("exp", "log", "log1p", "expm1", "power")  # what numpy computes with CPU-specific code paths


class _NoisyNumpy(types.ModuleType):
    """``numpy`` as the generator sees it, except that ``_NOISY`` functions perturb their results."""

    def __init__(self, ulps: float, rng: np.random.Generator):
        super().__init__("numpy")
        self._numpy = real = np  # the module global is patched while this is in use
        step = ulps * real.finfo(real.float64).eps

        def noisy(fn):
            def wrapped(*args, **kwargs):
                r = fn(*args, **kwargs)
                return r * (1.0 + step * rng.uniform(-1.0, 1.0, real.shape(r)))

            return wrapped

        for name in _NOISY:
            setattr(self, name, noisy(getattr(real, name)))

    def __getattr__(self, name):
        return getattr(self.__dict__["_numpy"], name)


@contextlib.contextmanager
def other_cpu(ulps: float = 4.0, seed: int = 0):
    """Run the generator as if on another CPU: every ``np.exp``, ``np.log``, ``np.log1p``, ``np.expm1``
    and ``np.power`` it calls returns its result times ``1 + u * ulps * 2**-52`` with ``u`` uniform in
    [-1, 1] (about ``ulps`` units in the last place), drawn from a stream of its own so the generator's
    draws are unchanged. Different CPUs differ by a few units; larger ``ulps`` measure how often a
    difference reaches the written data (benchmarks/bench_generate_portability.py). Patches module
    globals, so not thread-safe; for tests and benchmarks only.
    """
    noisy = _NoisyNumpy(float(ulps), np.random.default_rng(seed))
    modules = (sys.modules[__name__], sm)
    saved = [m.np for m in modules]
    _calibrate.cache_clear()  # the intercept is recomputed under the noise, and not kept afterwards
    try:
        for m in modules:
            m.np = noisy
        yield
    finally:
        for m, orig in zip(modules, saved):
            m.np = orig
        _calibrate.cache_clear()
