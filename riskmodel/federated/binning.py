"""Federated WoE binning: the hub's features are binned on the bank's labels without either side
seeing the other's rows.

Protocol (FATE's hetero feature binning, with our monotone merge):

1. The guest (bank) makes its own Paillier key pair for binning and sends the public key and its
   labels encrypted one by one: ``Enc(y_i)`` for the aligned rows.
2. The host (hub), for each of its features, computes quantile pre-bins of its own values (exactly
   as :class:`riskmodel.binning.MonotonicBinner` does), sums the encrypted labels in each pre-bin
   and in the missing-value bin (homomorphic additions), re-randomises each sum and sends the sums
   with the pre-bin row counts. It never decrypts anything: it has no key.
3. The guest decrypts the event count of every pre-bin and runs the same merging as
   ``MonotonicBinner`` on those counts (:func:`merge_from_counts`): small bins merged into the
   closer neighbour, then pool-adjacent-violators until the smoothed event rate, hence the WoE, is
   monotone in the feature's catalog direction (both directions tried, higher IV kept, when the
   direction is unknown). It computes WoE and IV per merged bin.
4. The host is told, for the features that enter the model only, which of its pre-bin boundaries
   survive the merge. It learns those merged boundaries of its own features and nothing else.

Merging only adds neighbouring pre-bins, so merging counts gives exactly the bins that
``MonotonicBinner`` fits on the pooled data (checked in ``tests/code/test_federated_binning.py``).

What the guest learns: per pre-bin row counts and event counts of every host feature (bin-level
aggregates of the hub's data joined with its own labels), never a row's value. What the host
learns: ciphertexts; the merged boundaries and the list of selected features.
"""

from __future__ import annotations

import numpy as np

from riskmodel.binning import MISSING_LABEL, VariableBinning, _numeric_labels, _pava_blocks, _woe_iv


def prebin_splits(xv: np.ndarray, max_prebins: int) -> np.ndarray:
    """Quantile pre-bin splits of the non-missing values (same rule as ``MonotonicBinner``)."""
    if len(xv) == 0:
        return np.empty(0)
    uniq = np.unique(xv)
    if len(uniq) <= max_prebins:
        return uniq[1:]
    q = np.quantile(xv, np.linspace(0, 1, max_prebins + 1)[1:-1], method="higher")
    splits = np.unique(q)
    return splits[splits > uniq[0]]


def prebin_index(x: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """Pre-bin of each value; missing values get ``len(splits) + 1`` (the last bin)."""
    idx = np.searchsorted(splits, x, side="right")
    idx[np.isnan(x)] = len(splits) + 1
    return idx


def _group(values: np.ndarray, kept: list[int]) -> np.ndarray:
    """Sums of pre-bin ``values`` over the groups delimited by the kept split positions."""
    starts = np.asarray([0, *[s + 1 for s in kept]], dtype="int64")
    return np.add.reduceat(np.asarray(values, dtype="float64"), starts) if len(values) else np.empty(0)


def _merge_small(count, event, n_total: float, min_bin_share: float) -> list[int]:
    kept = list(range(len(count) - 1))
    min_count = min_bin_share * n_total
    while kept:
        c, e = _group(count, kept), _group(event, kept)
        small = np.flatnonzero(c < min_count)
        if len(small) == 0:
            break
        i = int(small[np.argmin(c[small])])
        rate = e / np.maximum(c, 1)
        if i == 0:
            j = 0
        elif i == len(c) - 1:
            j = i - 1
        else:
            j = i - 1 if abs(rate[i] - rate[i - 1]) <= abs(rate[i] - rate[i + 1]) else i
        del kept[j]
    return kept


def _monotone(count, event, kept: list[int], increasing: bool, smoothing: float) -> list[int]:
    kept = list(kept)
    while kept:
        c, e = _group(count, kept), _group(event, kept)
        rate = (e + smoothing) / (c + 2 * smoothing)
        blocks = _pava_blocks(rate, c, increasing)
        if len(blocks) == len(c):
            break
        kept = [kept[blk[-1]] for blk in blocks[:-1]]
    return kept


def merge_from_counts(
    count, event, direction: int, n_total: float, *, min_bin_share: float = 0.05,
    smoothing: float = 0.5, unknown_direction: str = "auto",
) -> tuple[list[int], int]:
    """Merged bins from per-pre-bin counts: (kept split positions, direction used).

    ``count``/``event`` hold the non-missing pre-bins in value order; split position ``s`` separates
    pre-bins ``s`` and ``s + 1``. Same steps and tie rules as ``MonotonicBinner._fit_numeric``.
    """
    count = np.asarray(count, dtype="float64")
    event = np.asarray(event, dtype="float64")
    kept = _merge_small(count, event, n_total, min_bin_share)
    if direction != 0:
        return _monotone(count, event, kept, direction > 0, smoothing), int(direction)
    if unknown_direction == "free":
        return kept, 0
    up = _monotone(count, event, kept, True, smoothing)
    down = _monotone(count, event, kept, False, smoothing)
    iv_up = float(_woe_iv(_group(event, up), _group(count, up), smoothing)[1].sum())
    iv_down = float(_woe_iv(_group(event, down), _group(count, down), smoothing)[1].sum())
    return (up, 1) if iv_up >= iv_down else (down, -1)


class MergedBins:
    """The guest's view of one host feature after binning: counts, WoE and IV per merged bin.

    The split values stay with the host until publication (:meth:`to_variable_binning`).
    """

    def __init__(self, name: str, prebin_count, prebin_event, missing_count: float, missing_event: float,
                 direction: int, n_total: float, min_bin_share: float, smoothing: float, unknown_direction: str):
        self.name = name
        self.kept, self.direction = merge_from_counts(
            prebin_count, prebin_event, direction, n_total, min_bin_share=min_bin_share,
            smoothing=smoothing, unknown_direction=unknown_direction,
        )
        self.count = np.append(_group(prebin_count, self.kept), missing_count)
        self.event = np.append(_group(prebin_event, self.kept), missing_event)
        self.woe, self.iv_terms = _woe_iv(self.event, self.count, smoothing)
        self.missing_seen = missing_count > 0
        if not self.missing_seen:
            self.woe[-1] = 0.0
            self.iv_terms[-1] = 0.0

    @property
    def iv(self) -> float:
        return float(self.iv_terms.sum())

    def to_variable_binning(self, splits) -> VariableBinning:
        """The ordinary ``VariableBinning`` once the host has disclosed the merged split values."""
        splits = np.asarray(splits, dtype="float64")
        if len(splits) != len(self.count) - 2:
            raise ValueError(f"{self.name}: {len(splits)} split values for {len(self.count) - 1} non-missing bins")
        return VariableBinning(
            name=self.name, kind="numeric", direction=self.direction,
            labels=[*_numeric_labels(splits), MISSING_LABEL], count=self.count.copy(), event=self.event.copy(),
            woe=self.woe.copy(), iv_terms=self.iv_terms.copy(), splits=splits, missing_seen=self.missing_seen,
        )
