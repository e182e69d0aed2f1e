"""Reason codes: the features that raise each firm's risk most, with texts for credit officers.

Input: a contributions DataFrame (rows x features, additive log-odds contributions relative to the
model's reference, see :mod:`riskmodel.models`) and the catalog rows of those features.

Rule, per row: take the ``k`` (default 3) features with the largest *positive* contributions,
largest first, after removing suppressed features (non-actionable factors such as firm age or
region, from a configurable list). A row with fewer than ``k`` positive contributions gets ``None``
for the missing reasons: nothing else makes that firm riskier than the reference. NaN
contributions never become reasons.

Codes are the feature names; texts come from the catalog's ``reason_en`` / ``reason_zh`` columns,
falling back to the feature name when the catalog has no row (bring-your-own data) or the text is
empty. Everything is vectorised over rows (one pass of a max/min sorting network over the feature
columns, in cache-sized blocks of rows; see ``_top_block``): no Python loop runs per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskmodel.errors import UserError


def reason_columns(k: int = 3) -> list[str]:
    """Output columns in order: reason_1..k, reason_1_zh..k_zh, reason_1_en..k_en."""
    return (
        [f"reason_{i}" for i in range(1, k + 1)]
        + [f"reason_{i}_zh" for i in range(1, k + 1)]
        + [f"reason_{i}_en" for i in range(1, k + 1)]
    )


def _texts(names: list[str], catalog: pd.DataFrame | None, column: str) -> list[str]:
    out = list(names)
    if catalog is None or len(catalog) == 0 or column not in catalog.columns or "name" not in catalog.columns:
        return out
    lookup: dict = {}
    for name, text in zip(catalog["name"].tolist(), catalog[column].tolist()):  # tens of rows
        lookup.setdefault(name, text)  # the first row of a name counts
    for i, n in enumerate(names):
        t = lookup.get(n)
        if isinstance(t, str) and t.strip():
            out[i] = t
    return out


_BLOCK_ROWS = 16_384  # rows per block: the block's key arrays stay in the CPU cache
_NAN_KEY = np.float64(np.inf).view(np.int64)  # keys above +inf's bits come from NaN


def _exact_top(C: np.ndarray, k: int, cols: np.ndarray) -> np.ndarray:
    """Top-k by a stable sort (ties: earlier column first); for the few rows the fast pass flags."""
    X = C[:, cols]
    valid = X > 0  # NaN compares False
    order = np.argsort(np.where(valid, -X, np.inf), axis=1, kind="stable")[:, :k]
    out = np.full((len(X), k), -1, dtype=np.int64)  # k may exceed the number of columns
    out[:, : order.shape[1]] = np.where(np.take_along_axis(valid, order, axis=1), cols[order], -1)
    return out


def _top_block(C: np.ndarray, k: int, cols: np.ndarray) -> np.ndarray:
    """Top-k column indices (-1 = none) of one block of rows; exact.

    Fast pass: a positive double's bits, read as an int64, order like the double. Each value is
    rounded up to a bucket of ``2**shift`` bit patterns and the column number subtracted, giving a
    key that is positive exactly when the value is (non-positive values and NaN with the sign bit
    give keys <= 0: never a reason). A sorting network of ``np.maximum`` / ``np.minimum`` keeps
    the k + 1 largest keys per row in one pass over the columns: a handful of array operations per
    column and no boolean masks. The key order is the exact order except between values in the same
    bucket (equal, or within about 2**-46 relative), so rows where two of the k + 1 kept keys share
    a bucket, or where a NaN got in, are recomputed by ``_exact_top``: the result equals a full
    stable sort, row by row.
    """
    n, _ = C.shape
    shift = max(1, int(C.shape[1]).bit_length())
    low = (1 << shift) - 1
    bits = C.view(np.int64)
    slots = [np.zeros(n, dtype=np.int64) for _ in range(k + 1)]
    key, carry, spare = (np.empty(n, dtype=np.int64) for _ in range(3))
    for j in cols:
        np.maximum(bits[:, j], 0, out=key)  # negative doubles (sign bit set) -> 0
        np.add(key, low, out=key)  # round up to the bucket: 0 stays 0, anything positive >= 2**shift
        np.bitwise_and(key, ~low, out=key)
        np.subtract(key, j, out=key)  # earlier columns rank first within a bucket; 0 -> -j (none)
        np.minimum(slots[0], key, out=carry)
        np.maximum(slots[0], key, out=slots[0])
        for r in range(1, k + 1):
            np.minimum(slots[r], carry, out=spare)
            np.maximum(slots[r], carry, out=slots[r])
            carry, spare = spare, carry
    idx = np.empty((n, k), dtype=np.int64)
    suspect = slots[0] > _NAN_KEY  # a NaN's bits exceed +inf's
    bucket = [(s + low) >> shift for s in slots]
    for r in range(k):
        idx[:, r] = np.where(slots[r] > 0, low - ((slots[r] + low) & low), -1)
        suspect |= (slots[r + 1] > 0) & (bucket[r] == bucket[r + 1])
    if suspect.any():
        idx[suspect] = _exact_top(C[suspect], k, cols)
    return idx


def _top_indices(contrib, k: int, suppress) -> np.ndarray:
    if not isinstance(contrib, pd.DataFrame):
        raise UserError("contributions must be a DataFrame with one column per feature")
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    names = [str(c) for c in contrib.columns]
    C = contrib.to_numpy(dtype="float64")  # column-major view of the contributions, no copy
    n, p = C.shape
    skip = {names.index(s) for s in suppress if s in names}
    cols = np.asarray([j for j in range(p) if j not in skip], dtype=np.int64)
    idx = np.full((n, k), -1, dtype=np.int64)
    if len(cols):
        for s in range(0, n, _BLOCK_ROWS):
            idx[s : s + _BLOCK_ROWS] = _top_block(C[s : s + _BLOCK_ROWS], k, cols)
    return idx


def top_reasons(contrib, k: int = 3, suppress=()) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n x k, -1 = no reason) and values of the top-k positive, non-suppressed contributions,
    largest first (ties: the earlier column wins).

    Blocks of 16,384 rows; in each, one pass over the feature columns keeps the k + 1 largest
    packed keys per row (see ``_top_block``). ``benchmarks/bench_scoring.py`` times it inside
    ``riskmodel score``.
    """
    idx = _top_indices(contrib, k, suppress)
    C = contrib.to_numpy(dtype="float64")
    vals = np.where(idx >= 0, C[np.arange(len(C))[:, None], np.maximum(idx, 0)], -np.inf)
    return idx, vals


class _Texts:
    """Feature index (-1 = none) -> categorical of texts; several features may share a text."""

    def __init__(self, texts: list[str]):
        uniq = list(dict.fromkeys(texts))
        self.code = np.asarray([uniq.index(t) for t in texts] + [-1], dtype="int64")  # index -1 -> code -1
        self.dtype = pd.CategoricalDtype(uniq)

    def __call__(self, idx: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(self.code[idx], dtype=self.dtype)


def reason_codes(
    contrib: pd.DataFrame, catalog: pd.DataFrame | None = None, suppress=(), k: int = 3
) -> pd.DataFrame:
    """Per row: reason_1..k (feature names), reason_i_zh, reason_i_en (catalog texts); missing where
    no (further) feature raises the risk. Index of ``contrib`` kept.

    The columns are pandas categoricals (dictionary-encoded strings): building a million rows of
    them costs an integer take instead of a million Python strings, and Parquet stores them as
    dictionaries. ``.astype(str)`` or ``.astype(object)`` gives plain strings when needed.
    """
    names = [str(c) for c in contrib.columns]
    idx = _top_indices(contrib, k, suppress)
    sources = {"": names, "_zh": _texts(names, catalog, "reason_zh"), "_en": _texts(names, catalog, "reason_en")}
    data = {}
    for suffix, texts in sources.items():
        to_text = _Texts(texts)
        for i in range(k):
            data[f"reason_{i + 1}{suffix}"] = to_text(idx[:, i])
    return pd.DataFrame(data, index=contrib.index)[reason_columns(k)]
