"""Federated WoE binning: the hub's features are binned on the bank's labels without either side
seeing the other's rows.

Protocol (FATE's hetero feature binning, with our monotone merge):

1. The guest (bank) makes its own Paillier key pair for binning and sends the public key and its
   labels encrypted one by one: ``Enc(y_i)`` for the aligned rows.
2. The host (hub), for each of its features, computes quantile pre-bins of its own values (exactly
   as :class:`riskmodel.binning.MonotonicBinner` does), sums the encrypted labels in each pre-bin
   and in the missing-value bin (homomorphic additions), re-randomises each sum and sends the sums
   with the pre-bin row counts. It never decrypts anything: it has no key.
3. The guest decrypts the event count of every pre-bin and runs ``MonotonicBinner``'s own merging
   (:func:`riskmodel.binning.merge_bins`, via :func:`merge_from_counts`) on those counts: small bins merged into the
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

from riskmodel.binning import MISSING_LABEL, Bins, VariableBinning, merge_bins, numeric_labels, prebin_splits, woe_iv

__all__ = ["MergedBins", "merge_from_counts", "prebin_index", "prebin_splits"]


def prebin_index(x: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """Pre-bin of each value; missing values get ``len(splits) + 1`` (the last bin)."""
    idx = np.searchsorted(splits, x, side="right")
    idx[np.isnan(x)] = len(splits) + 1
    return idx


def merge_from_counts(
    count, event, direction: int, n_total: float, *, min_bin_share: float = 0.05,
    smoothing: float = 0.5, unknown_direction: str = "auto",
) -> tuple[Bins, int]:
    """Merged bins from per-pre-bin counts: ``(bins, direction used)``, by
    :func:`riskmodel.binning.merge_bins`, the steps ``MonotonicBinner`` takes.

    ``count``/``event`` hold the non-missing pre-bins in value order. The guest does not know the
    host's split values, so the bins' ``splits`` are split positions: position ``s`` separates
    pre-bins ``s`` and ``s + 1``, and the merged bins keep the positions that survive.
    """
    count = np.asarray(count, dtype="float64")
    event = np.asarray(event, dtype="float64")
    positions = np.arange(max(len(count) - 1, 0), dtype="int64")
    return merge_bins(Bins(positions, count, event), direction, n_total, min_bin_share=min_bin_share,
                      smoothing=smoothing, unknown_direction=unknown_direction)


class MergedBins:
    """The guest's view of one host feature after binning: counts, WoE and IV per merged bin.

    The split values stay with the host until publication (:meth:`to_variable_binning`).
    """

    def __init__(self, name: str, prebin_count, prebin_event, missing_count: float, missing_event: float,
                 direction: int, n_total: float, min_bin_share: float, smoothing: float, unknown_direction: str):
        self.name = name
        bins, self.direction = merge_from_counts(
            prebin_count, prebin_event, direction, n_total, min_bin_share=min_bin_share,
            smoothing=smoothing, unknown_direction=unknown_direction,
        )
        self.kept: list[int] = [int(s) for s in bins.splits]  # the pre-bin split positions that survive
        self.count = np.append(bins.count, missing_count)
        self.event = np.append(bins.event, missing_event)
        self.woe, self.iv_terms = woe_iv(self.event, self.count, smoothing)
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
            labels=[*numeric_labels(splits), MISSING_LABEL], count=self.count.copy(), event=self.event.copy(),
            woe=self.woe.copy(), iv_terms=self.iv_terms.copy(), splits=splits, missing_seen=self.missing_seen,
        )
