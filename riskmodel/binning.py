"""Monotonic weight-of-evidence (WoE) binning, written for this project.

Why not optbinning at runtime: optbinning solves each variable's binning as a constraint program
(it pulls in Google OR-Tools and a MIP/CP solver), which is a heavy dependency for a bank's scoring
image, and its transform goes through per-variable Python objects that are slow at portfolio scale.
The greedy algorithm below (quantile pre-bins, then pool-adjacent-violators merging) gives the
same kind of bins for the monotone case, fits in milliseconds per variable and transforms with one
``np.searchsorted`` per column, so millions of rows take well under a second per column.

Algorithm, per numeric variable
1. Pre-bins: up to ``max_prebins`` quantile bins of the non-missing values (a variable with at most
   ``max_prebins`` distinct values gets one pre-bin per value). Bins holding less than
   ``min_bin_share`` of the rows are merged into the neighbour whose event rate is closest.
2. Monotonicity in the declared direction (``directions[name]``):
   * ``+1``: the event (default) rate must rise with the value; ``-1``: it must fall. Adjacent bins
     that violate the order are pooled (pool-adjacent-violators, the least-squares monotone fit).
   * ``0`` (unknown): with ``unknown_direction="auto"`` (default) both monotone fits are made and the
     one with the higher information value (IV) is kept. Peaked or U-shaped patterns are rare among
     credit signals and, on the small samples a scorecard is often built from, a free shape mostly
     fits noise. ``unknown_direction="free"`` keeps the pre-bins unconstrained (only the size rule
     applies); use it when the sample is large (say ``min_bin_share * n_rows`` above a few hundred
     events per bin) and a non-monotone shape is expected.
3. Missing values get their own bin. A variable with no missing values in training maps missing
   values at scoring time to WoE 0, the portfolio average (neutral: no evidence either way).

Categorical (string / category dtype) variables: one bin per category; categories holding less
than ``min_category_share`` of the rows are grouped into an ``"other"`` bin, which also receives
categories first seen at scoring time (WoE 0 if there is no such bin). Bins are listed in order of
event rate. Missing values get their own bin, as for numbers.

WoE convention: ``WoE = ln(share of events in bin / share of non-events in bin)``, i.e. positive
WoE means the bin is riskier than the portfolio (its default rate exceeds the average). With this
sign a logistic regression of default on WoE has positive coefficients, and ``coef * WoE`` is the
bin's contribution to the log-odds of default relative to the portfolio average. Empty classes are
smoothed by adding ``smoothing`` (default 0.5) to each bin's event and non-event counts.
``IV = sum((share of events - share of non-events) * WoE)`` over bins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from riskmodel.errors import UserError

log = logging.getLogger(__name__)

MISSING_LABEL = "Missing"
OTHER_LABEL = "other"


class BinningError(UserError, ValueError):
    """Bad input to the binning (wrong target, unknown direction); the message says what to fix."""


def is_categorical(series: pd.Series) -> bool:
    """True for string, object, category and boolean columns: binned by category, not by value."""
    dtype = series.dtype
    return bool(
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def category_codes(values, categories) -> np.ndarray:
    """Position of each value in ``categories`` (int64); -1 for missing and unseen values.

    Values are compared as strings. Columns are factorized first (natively for Arrow-backed pandas
    strings) and only the distinct values are mapped, never one Python string per row: on German
    credit this made scorecard scoring of 1M rows about 10x faster (benchmarks/peers_investigation.py).
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    index = pd.Index([str(c) for c in categories], dtype=object)
    if isinstance(s.dtype, pd.CategoricalDtype):
        own = index.get_indexer(pd.Index([str(c) for c in s.cat.categories], dtype=object))
        codes = s.cat.codes.to_numpy().astype("int64")
        return np.where(codes >= 0, np.append(own, -1)[codes], -1)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    own = index.get_indexer(pd.Index([str(u) for u in uniques], dtype=object))
    return np.where(codes >= 0, np.append(own, -1)[codes], -1).astype("int64")


def woe_iv(events: np.ndarray, counts: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin WoE and IV terms from per-bin event and row counts, with ``smoothing`` added to the
    events and non-events of every bin (see the module docstring for the sign convention)."""
    events = np.asarray(events, dtype="float64")
    nonevents = np.asarray(counts, dtype="float64") - events
    k = len(events)
    e = (events + smoothing) / (events.sum() + smoothing * k)
    ne = (nonevents + smoothing) / (nonevents.sum() + smoothing * k)
    woe = np.log(e / ne)
    return woe, (e - ne) * woe


def pava_blocks(rates: np.ndarray, weights: np.ndarray, increasing: bool) -> list[list[int]]:
    """Pool adjacent violators: groups of consecutive bins whose pooled (``weights``-weighted) rates
    are strictly monotone, rising when ``increasing`` else falling. Returns the groups as lists of
    bin positions, in order.

    Operates on at most ``max_prebins`` items per variable, so a small Python loop is fine here.
    """
    sign = 1.0 if increasing else -1.0
    blocks: list[list[int]] = []
    vals: list[float] = []
    wts: list[float] = []
    for i, (r, w) in enumerate(zip(rates * sign, weights)):
        blocks.append([i])
        vals.append(float(r))
        wts.append(float(w))
        # pool while the last block breaks the (non-strict) order: strict order = no ties kept
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            w2 = wts[-2] + wts[-1]
            v2 = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w2 if w2 > 0 else vals[-1]
            blocks[-2:] = [blocks[-2] + blocks[-1]]
            vals[-2:] = [v2]
            wts[-2:] = [w2]
    return blocks


@dataclass
class Bins:
    """Adjacent bins of one numeric variable while they are merged: ``count`` and ``event`` per bin
    and ``splits``, the boundary after each bin but the last. Merging only selects among the
    splits, so they may be split values (:class:`MonotonicBinner`) or split positions (federated
    binning, where the guest sees counts but not the host's values)."""

    splits: np.ndarray
    count: np.ndarray
    event: np.ndarray

    def merge(self, blocks: list[list[int]]) -> "Bins":
        """Pool consecutive bins; ``blocks`` partitions ``range(n_bins)`` in order."""
        keep = [blk[-1] for blk in blocks[:-1]]  # split after the last bin of each block
        return Bins(
            np.asarray(self.splits)[keep] if keep else np.asarray(self.splits)[:0],
            np.asarray([self.count[blk].sum() for blk in blocks]),
            np.asarray([self.event[blk].sum() for blk in blocks]),
        )


def weighted_quantile_higher(x: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(x, q, method="higher")`` of the sample in which value ``x[i]`` appears ``w[i]``
    times (exact for whole-number weights; rows of weight 0 count for nothing)."""
    o = np.argsort(x, kind="stable")
    x, c = x[o], np.cumsum(w[o])
    k = np.ceil(np.asarray(q) * (c[-1] - 1))  # position in the repeated sample, 0-based
    return x[np.minimum(np.searchsorted(c, k, side="right"), len(x) - 1)]


def prebin_splits(xv: np.ndarray, max_prebins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Split values of the quantile pre-bins of the non-missing values ``xv`` (each counted
    ``weights`` times when given): up to ``max_prebins`` bins, one per distinct value when there
    are no more than that."""
    if weights is not None:
        xv, weights = xv[weights > 0], weights[weights > 0]
    if len(xv) == 0:
        return np.empty(0)
    uniq = np.unique(xv)
    if len(uniq) <= max_prebins:
        return uniq[1:]
    qs = np.linspace(0, 1, max_prebins + 1)[1:-1]
    q = np.quantile(xv, qs, method="higher") if weights is None else weighted_quantile_higher(xv, weights, qs)
    splits = np.unique(q)
    return splits[splits > uniq[0]]


def merge_small_bins(bins: Bins, min_count: float) -> Bins:
    """Merge bins holding fewer than ``min_count`` rows, smallest first, into the neighbour with
    the closer event rate (the left one on a tie)."""
    while len(bins.count) > 1:
        count, event = bins.count, bins.event
        small = np.flatnonzero(count < min_count)
        if len(small) == 0:
            break
        i = int(small[np.argmin(count[small])])
        rate = event / np.maximum(count, 1)
        if i == 0:
            j = 0
        elif i == len(count) - 1:
            j = i - 1
        else:
            j = i - 1 if abs(rate[i] - rate[i - 1]) <= abs(rate[i] - rate[i + 1]) else i
        bins = bins.merge([[m] if m != j else [j, j + 1] for m in range(len(count)) if m != j + 1])
    return bins


def monotone_bins(bins: Bins, increasing: bool, smoothing: float) -> Bins:
    """Merge adjacent bins until the smoothed event rate (hence the WoE) is strictly monotone.

    PAVA runs on the smoothed rate ``(events + s) / (count + 2 s)``, which orders bins exactly as
    their smoothed WoE does; pooled blocks are re-counted and the pass repeats until no bins merge
    (at most a few passes: the number of bins only falls).
    """
    while len(bins.count) > 1:
        rate = (bins.event + smoothing) / (bins.count + 2 * smoothing)
        blocks = pava_blocks(rate, bins.count, increasing)
        if len(blocks) == len(bins.count):
            break
        bins = bins.merge(blocks)
    return bins


def merge_bins(bins: Bins, direction: int, n_total: float, *, min_bin_share: float, smoothing: float, unknown_direction: str) -> tuple[Bins, int]:
    """Steps 1-2 of the module docstring on pre-bins: the small-bin merge, then monotone merging
    in ``direction`` (for 0: both directions with ``unknown_direction="auto"``, the higher IV
    kept; none with ``"free"``). Returns the merged bins and the direction used."""
    bins = merge_small_bins(bins, min_bin_share * n_total)
    if direction != 0:
        return monotone_bins(bins, direction > 0, smoothing), int(direction)
    if unknown_direction == "free":
        return bins, 0
    up = monotone_bins(bins, True, smoothing)
    down = monotone_bins(bins, False, smoothing)
    iv_up = float(woe_iv(up.event, up.count, smoothing)[1].sum())
    iv_down = float(woe_iv(down.event, down.count, smoothing)[1].sum())
    return (up, 1) if iv_up >= iv_down else (down, -1)


@dataclass
class VariableBinning:
    """Fitted bins of one variable. The last bin is always the missing-value bin.

    Numeric: bin ``i`` holds ``splits[i-1] <= x < splits[i]`` (``np.searchsorted(splits, x, "right")``).
    Categorical: ``categories`` are the known (non-rare) categories, ``category_bin[j]`` the bin of
    ``categories[j]``; ``other_bin`` the bin of rare and unseen categories (None if none).
    """

    name: str
    kind: Literal["numeric", "categorical"]
    direction: int
    labels: list[str]
    count: np.ndarray
    event: np.ndarray
    woe: np.ndarray
    iv_terms: np.ndarray
    splits: np.ndarray = field(default_factory=lambda: np.empty(0))
    categories: list[str] = field(default_factory=list)
    category_bin: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="int64"))
    other_bin: int | None = None
    missing_seen: bool = False

    @property
    def iv(self) -> float:
        return float(self.iv_terms.sum())

    @property
    def n_bins(self) -> int:
        """Number of bins including the missing bin."""
        return len(self.labels)

    def bin_index(self, values) -> np.ndarray:
        """Bin number of each value (vectorised); missing values go to the last bin."""
        missing_bin = self.n_bins - 1
        if self.kind == "numeric":
            x = values.to_numpy(dtype="float64", na_value=np.nan) if isinstance(values, pd.Series) else values
            x = np.asarray(x, dtype="float64")
            # NaN sorts after every number, so with a trailing NaN split one searchsorted sends
            # NaN to the missing bin (len(splits) + 1) and +inf to the last numeric bin
            return np.searchsorted(np.append(self.splits, np.nan), x, side="right")
        s = values if isinstance(values, pd.Series) else pd.Series(values)
        isna = s.isna().to_numpy()
        codes = category_codes(s, self.categories)
        lookup = np.append(self.category_bin, -1 if self.other_bin is None else self.other_bin)
        idx = lookup[codes]  # code -1 (unseen) picks the last entry: other bin or -1
        idx[isna] = missing_bin
        return idx

    def woe_lookup(self) -> np.ndarray:
        """WoE by ``bin_index`` value: the bins' WoE, the missing bin's set to 0 when training had no
        missing values, and a trailing 0 picked by index -1 (unseen category, no ``other`` bin)."""
        woe = np.append(self.woe, 0.0)
        if not self.missing_seen:
            woe[-2] = 0.0
        return woe

    def woe_of(self, values) -> np.ndarray:
        """WoE of each value; missing values with no missing bin in training and unseen categories
        with no ``other`` bin get WoE 0 (portfolio average)."""
        return self.woe_lookup()[self.bin_index(values)]

    def table(self) -> pd.DataFrame:
        """One row per bin; counts are whole numbers unless the binning was fitted with weights."""
        whole = bool(np.all(self.count == np.round(self.count)) and np.all(self.event == np.round(self.event)))
        count = self.count.astype("int64") if whole else self.count
        event = self.event.astype("int64") if whole else self.event
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(count > 0, event / np.maximum(count, 1), np.nan)
        return pd.DataFrame(
            {
                "variable": self.name,
                "bin": self.labels,
                "count": count,
                "count_share": count / max(count.sum(), 1),
                "event": event,
                "event_rate": rate,
                "woe": self.woe,
                "iv": self.iv_terms,
            }
        )


def numeric_labels(splits: np.ndarray) -> list[str]:
    """Interval labels of the numeric bins cut at ``splits`` (values), e.g. ``[0.1, 0.35)``."""
    edges = [-np.inf, *splits.tolist(), np.inf]
    return [f"[{lo:.6g}, {hi:.6g})" for lo, hi in zip(edges[:-1], edges[1:])]


class MonotonicBinner(TransformerMixin, BaseEstimator):
    """Fit monotonic WoE bins per column of a DataFrame and transform values to WoE.

    Parameters
    ----------
    directions : dict feature -> -1/0/+1, optional
        Expected effect of each numeric feature on the event (default) rate; missing keys mean 0.
    max_prebins : int, default 20
        Quantile pre-bins per numeric variable before merging.
    min_bin_share : float, default 0.05
        Smallest share of rows a (non-missing) bin may hold.
    min_category_share : float, default 0.02
        Categories rarer than this are grouped into ``"other"``.
    unknown_direction : {"auto", "free"}, default "auto"
        How to bin numeric variables with direction 0 (see module docstring).
    smoothing : float, default 0.5
        Pseudo-count added to events and non-events of each bin for the WoE.

    ``fit(X, y, sample_weight=None)``: with weights, every count (pre-bin quantiles, bin sizes,
    events, category shares) counts row ``i`` ``sample_weight[i]`` times, so whole-number weights
    give the bins of the data with each row repeated that many times.

    Attributes
    ----------
    bins_ : dict name -> VariableBinning
    feature_names_in_ : ndarray of str
    """

    def __init__(
        self,
        directions=None,
        max_prebins: int = 20,
        min_bin_share: float = 0.05,
        min_category_share: float = 0.02,
        unknown_direction: str = "auto",
        smoothing: float = 0.5,
    ):
        self.directions = directions
        self.max_prebins = max_prebins
        self.min_bin_share = min_bin_share
        self.min_category_share = min_category_share
        self.unknown_direction = unknown_direction
        self.smoothing = smoothing

    # ---- fit --------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> "MonotonicBinner":
        if not isinstance(X, pd.DataFrame):
            raise BinningError("MonotonicBinner needs a pandas DataFrame with named columns")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise BinningError(f"y must be 1-d with one value per row of X ({len(X)}), got shape {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise BinningError("y must hold 0 (non-default) and 1 (default) only; recode the target")
        if self.unknown_direction not in ("auto", "free"):
            raise BinningError(f"unknown_direction must be 'auto' or 'free', got {self.unknown_direction!r}")
        y = y.astype("float64")
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype="float64")
            if w.shape != y.shape or not np.all(np.isfinite(w)) or (w < 0).any():
                raise BinningError(f"sample_weight must hold one finite, non-negative number per row of X ({len(X)}), got shape {w.shape}")
        directions = dict(self.directions or {})
        self.bins_: dict[str, VariableBinning] = {}
        for name in X.columns:
            col = X[name]
            if is_categorical(col):
                vb = self._fit_categorical(str(name), col, y, w)
            else:
                d = directions.get(name, 0)
                if d not in (-1, 0, 1):
                    raise BinningError(f"direction of {name!r} must be -1, 0 or +1, got {d!r}")
                vb = self._fit_numeric(str(name), col.to_numpy(dtype="float64", na_value=np.nan), y, int(d), w)
            self.bins_[str(name)] = vb
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def _finish(self, name, kind, direction, labels, count, event, missing_count, missing_event, **kw):
        count = np.append(np.asarray(count, dtype="float64"), missing_count)
        event = np.append(np.asarray(event, dtype="float64"), missing_event)
        woe, iv_terms = woe_iv(event, count, self.smoothing)
        if missing_count == 0:
            woe[-1] = 0.0
            iv_terms[-1] = 0.0
        return VariableBinning(
            name=name, kind=kind, direction=direction, labels=[*labels, MISSING_LABEL], count=count,
            event=event, woe=woe, iv_terms=iv_terms, missing_seen=missing_count > 0, **kw,
        )

    def _fit_numeric(self, name: str, x: np.ndarray, y: np.ndarray, direction: int, w: np.ndarray | None = None) -> VariableBinning:
        miss = np.isnan(x)
        xv, yv = x[~miss], y[~miss]
        wv = None if w is None else w[~miss]
        n = float(len(x)) if w is None else float(w.sum())
        # all later steps merge adjacent pre-bins, so they work on per-bin counts, not on rows
        splits = prebin_splits(xv, self.max_prebins, wv)
        idx = np.searchsorted(splits, xv, side="right")
        k = len(splits) + 1
        if wv is None:
            bins = Bins(splits, np.bincount(idx, minlength=k).astype("float64"), np.bincount(idx, weights=yv, minlength=k))
            missing = (float(miss.sum()), float(y[miss].sum()))
        else:
            bins = Bins(splits, np.bincount(idx, weights=wv, minlength=k), np.bincount(idx, weights=wv * yv, minlength=k))
            missing = (float(w[miss].sum()), float((w * y)[miss].sum()))
        bins, used = merge_bins(bins, direction, n, min_bin_share=self.min_bin_share, smoothing=self.smoothing, unknown_direction=self.unknown_direction)
        return self._finish(
            name, "numeric", used, numeric_labels(bins.splits), bins.count, bins.event, *missing, splits=bins.splits,
        )

    def _fit_categorical(self, name: str, col: pd.Series, y: np.ndarray, w: np.ndarray | None = None) -> VariableBinning:
        isna = col.isna().to_numpy()
        w_all = np.ones(len(col)) if w is None else w
        keep = ~isna & (w_all > 0)
        s = col.astype(str)[keep]
        yv, wv = y[keep], w_all[keep]
        n = float(w_all.sum())
        # per category: weighted events ("sum") and rows ("count"); plain counts without weights
        stats = pd.DataFrame({"cat": s.to_numpy(), "y": yv * wv, "w": wv}).groupby("cat", sort=True).agg(sum=("y", "sum"), count=("w", "sum"))
        counts = stats["count"].sort_values(ascending=False, kind="mergesort")
        frequent = counts[counts >= self.min_category_share * n].index.tolist()
        rare = [c for c in counts.index if c not in set(frequent)]
        groups: list[tuple[str, float, float, list[str]]] = [
            (c, float(stats.loc[c, "count"]), float(stats.loc[c, "sum"]), [c]) for c in frequent
        ]
        if rare:  # a category of the data may itself be called "other": the pooled bin is then "(other)"
            pooled = OTHER_LABEL if OTHER_LABEL not in frequent else f"({OTHER_LABEL})"
            groups.append((pooled, float(stats.loc[rare, "count"].sum()), float(stats.loc[rare, "sum"].sum()), rare))
        a = self.smoothing  # order by smoothed rate, i.e. by WoE
        groups.sort(key=lambda g: ((g[2] + a) / (g[1] + 2 * a), g[0]))
        labels = [g[0] for g in groups]
        position = {g[3][0]: i for i, g in enumerate(groups) if g[3] is not rare}
        categories = sorted(frequent)
        category_bin = np.asarray([position[c] for c in categories], dtype="int64")
        other_bin = next(i for i, g in enumerate(groups) if g[3] is rare) if rare else None
        if rare:  # rare categories seen in training are known and map to the other bin
            categories = categories + sorted(rare)
            category_bin = np.append(category_bin, np.full(len(rare), other_bin, dtype="int64"))
        return self._finish(
            name, "categorical", 0, labels, [g[1] for g in groups], [g[2] for g in groups],
            float(w_all[isna].sum()), float((w_all * y)[isna].sum()),
            categories=categories, category_bin=category_bin, other_bin=other_bin,
        )

    # ---- transform --------------------------------------------------------------------------
    def _check_fitted_columns(self, X: pd.DataFrame) -> None:
        if not hasattr(self, "bins_"):
            raise BinningError("this MonotonicBinner is not fitted yet; call fit(X, y) first")
        if not isinstance(X, pd.DataFrame):
            raise BinningError("MonotonicBinner needs a pandas DataFrame with named columns")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise BinningError(f"columns missing from X: {missing[:10]}; pass the columns the binner was fitted on")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """WoE of every value, one float64 column per fitted variable (index of X kept)."""
        self._check_fitted_columns(X)
        return pd.DataFrame({c: self.bins_[c].woe_of(X[c]) for c in self.feature_names_in_}, index=X.index)

    def bin_indices(self, X: pd.DataFrame) -> pd.DataFrame:
        """Bin number of every value (int64), one column per fitted variable."""
        self._check_fitted_columns(X)
        return pd.DataFrame({c: self.bins_[c].bin_index(X[c]) for c in self.feature_names_in_}, index=X.index)

    def iv(self) -> pd.Series:
        """Information value per variable, highest first."""
        return pd.Series({c: b.iv for c, b in self.bins_.items()}, name="iv").sort_values(ascending=False)

    def table(self, variables=None) -> pd.DataFrame:
        """Binning table: variable, bin, count, count_share, event, event_rate, woe, iv (per bin)."""
        names = list(self.bins_) if variables is None else list(variables)
        return pd.concat([self.bins_[c].table() for c in names], ignore_index=True)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_in_, dtype=object)
