"""Every identifier the generator writes: fixed-width ASCII built with numpy, unique by construction.

Registration ids (unified social credit codes) and legal representatives' resident ids look real but
carry a deliberately wrong check character, so none is a valid real id. Firm and person ids are the
keyed pseudonyms of ``features.privacy`` (the hub never hands out a registration id). Certificate,
patent, bid and application numbers embed the firm's global index, so they never collide across
chunks.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa

from features import privacy
from synthetic.world import REG_ADMIN, years_of

_USCC_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_ADMIN_CODES = np.array([[int(c) for c in row] for row in REG_ADMIN], dtype=np.int64)  # (region, 4) administrative division codes


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
    admin = _ADMIN_CODES[region, admin_choice]
    head = _const("91", n)
    admin_d = _digits(admin, 6)
    values = np.concatenate([np.full((n, 1), 9), np.full((n, 1), 1), admin_d.astype(np.int64) - 48, body_idx], axis=1)
    check = (31 - (values * _USCC_WEIGHTS[None, :]).sum(axis=1) % 31) % 31
    wrong = (check + 1) % 31
    return _join(head, admin_d, _USCC_ALPHABET[body_idx], _USCC_ALPHABET[wrong][:, None])


def legal_rep_ids(founding: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """18-character resident id numbers of legal representatives (synthetic; check digit deliberately wrong)."""
    n = len(founding)
    admin = _ADMIN_CODES[region, rng.integers(0, 4, n)]
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


class IdColumn:
    """A column of ids as an Arrow string array, indexed like a numpy array (``ids[rows]`` -> Arrow
    array) so that repeating a firm's id on each of its rows builds no Python objects."""

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


def firm_ids(registration: np.ndarray, key: bytes) -> IdColumn:
    """``firm_id``: the keyed pseudonym of each registration id (prefix ``F``)."""
    return IdColumn(_pseudonymize(registration, key, "F"))


def person_ids(firm_index: np.ndarray, seq: np.ndarray, key: bytes) -> IdColumn:
    """``person_id`` of the ``seq``-th credentialed person of each firm (global index): the keyed
    pseudonym (prefix ``P``) of ``person-<firm index>-<seq>``."""
    q = len(firm_index)
    source = _join(_const("person-", q), _digits(firm_index, 7), _const("-", q), _digits(seq, 3))
    return IdColumn(_pseudonymize(source, key, "P"))


_CERT_PREFIXES = np.frombuffer(b"GRKJZJXJ", dtype=np.uint8).reshape(4, 2)  # by features.tables.CERT_TYPES
_PATENT_TYPE_CODES = np.frombuffer(b"1230", dtype=np.uint8)  # by features.tables.PATENT_TYPES


def certificate_numbers(cert_type: np.ndarray, issue_day: np.ndarray, firm_index: np.ndarray, cycle: np.ndarray) -> np.ndarray:
    """``cert_no``: type prefix, issue year, firm index (7 digits) and cycle (2 digits)."""
    return _join(_CERT_PREFIXES[cert_type], _digits(years_of(issue_day), 4), _digits(firm_index, 7), _digits(cycle, 2))


def patent_ids(patent_type: np.ndarray, filing_day: np.ndarray, firm_index: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """``patent_id``: ``ZL`` (``SR`` for a software copyright), filing year, type digit, firm index and
    the patent's rank among the firm's patents of its type."""
    m = len(patent_type)
    head = np.where((patent_type == 3)[:, None], _const("SR", m), _const("ZL", m))
    return _join(head, _digits(years_of(filing_day), 4), _PATENT_TYPE_CODES[patent_type][:, None], _digits(firm_index, 7), _digits(seq, 3))


def bid_ids(year_month: np.ndarray, firm_index: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """``bid_id``: ``ZB``, award month (YYYYMM), firm index and the award's rank in that month."""
    return _join(_const("ZB", len(firm_index)), _digits(year_month, 6), _digits(firm_index, 7), _digits(seq, 2))


def application_ids(firm_index: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``application_id``: ``A``, firm index and the application's number ``k`` of the firm."""
    return _join(_const("A", len(firm_index)), _digits(firm_index, 7), _digits(k, 2))
