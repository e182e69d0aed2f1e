"""Out-of-time evaluation of a PD model: discrimination, calibration, stability, segments, grades.

numpy, pandas and ``sklearn.metrics`` (AUC, ROC curve, Brier, log loss); no plotting and no MLflow.
Every function takes arrays or DataFrames and returns numbers or small DataFrames that
``riskmodel.tracking`` logs as metrics and artifacts.

Vocabulary
----------
- ``y``: observed outcome, 1 = default (bad), 0 = good.
- ``p``: predicted probability of default (PD) in [0, 1].
- AUC equals the Mann-Whitney U statistic (ties count one half), KS is the largest gap
  between the cumulative score distributions of bads and goods, Gini = 2 AUC - 1.
- PSI (population stability index) compares a current distribution with a reference one, on bins
  cut at the reference's quantiles; missing values are a bin of their own; empty bins get a small
  epsilon share so the index stays finite. Bands: < 0.1 stable, 0.1-0.25 watch, > 0.25 act.

Only this module reads ``truth/`` (the generator's latent true PD and the outcome every applicant
had or would have had), to report the oracle AUC, the ceiling any model could reach on the same test
rows, and the through-the-door metrics (:func:`through_the_door`): how the model ranks and
calibrates every applicant, the ones the bank rejected included. Both exist on generated data only.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from features.contract import SEGMENT_COLUMNS

log = logging.getLogger(__name__)

PSI_EPSILON = 1e-4
MISSING_BIN = "missing"


# --------------------------------------------------------------------------------------------
# Input checks (one place)
# --------------------------------------------------------------------------------------------


def _check_yp(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype="float64").ravel()
    p = np.asarray(p, dtype="float64").ravel()
    if y.shape != p.shape:
        raise ValueError(f"y and p must have the same length, got {y.shape[0]} and {p.shape[0]}")
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must contain only 0 (good) and 1 (bad)")
    if np.isnan(p).any():
        raise ValueError(f"p contains {int(np.isnan(p).sum())} NaN prediction(s)")
    return y, p


def _both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and 0 < y.sum() < y.size


# --------------------------------------------------------------------------------------------
# Discrimination and accuracy
# --------------------------------------------------------------------------------------------


def auc(y, p) -> float:
    """Area under the ROC curve: ``sklearn.metrics.auc`` of ``sklearn.metrics.roc_curve`` (the
    value of ``roc_auc_score``, without its second pass of input checks; ties count one half).
    NaN when only one class is present."""
    y, p = _check_yp(y, p)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr, _ = skm.roc_curve(y, p)
    return float(skm.auc(fpr, tpr))


def gini(y, p) -> float:
    """Gini coefficient (accuracy ratio) = 2 AUC - 1."""
    return 2.0 * auc(y, p) - 1.0


def roc_curve(y, p) -> pd.DataFrame:
    """ROC points at each distinct threshold, from the highest PD down: ``threshold, fpr, tpr, share``
    (``share``: fraction of all rows at or above the threshold, the x axis of a KS chart). The first
    row is the point (0, 0) at threshold +inf. FPR and TPR come from ``sklearn.metrics.roc_curve``
    (every threshold kept); with one class only, the rate of the missing class is 0."""
    y, p = _check_yp(y, p)
    if not y.size:
        return pd.DataFrame({"threshold": [np.inf], "fpr": [0.0], "tpr": [0.0], "share": [0.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one class: its rate is 0/0, set to 0 below
        fpr, tpr, threshold = skm.roc_curve(y, p, drop_intermediate=False)
    at_or_above = p.size - np.searchsorted(np.sort(p), threshold[1:], side="left")
    return pd.DataFrame(
        {
            "threshold": threshold,
            "fpr": np.nan_to_num(fpr, nan=0.0),
            "tpr": np.nan_to_num(tpr, nan=0.0),
            "share": np.r_[0.0, at_or_above / p.size],
        }
    )


def ks(y, p) -> float:
    """Kolmogorov-Smirnov statistic: max |CDF_bad - CDF_good| over thresholds (= max |TPR - FPR|)."""
    y, p = _check_yp(y, p)
    if not _both_classes(y):
        return float("nan")
    roc = roc_curve(y, p)
    return float(np.max(np.abs(roc["tpr"].to_numpy() - roc["fpr"].to_numpy())))


def brier(y, p) -> float:
    """Brier score (``sklearn.metrics.brier_score_loss``): mean squared error of the PD against the
    0/1 outcome. NaN for no rows."""
    y, p = _check_yp(y, p)
    return float(skm.brier_score_loss(y, p, pos_label=1)) if y.size else float("nan")


def log_loss(y, p, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy (``sklearn.metrics.log_loss``), with PD clipped to [eps, 1 - eps]
    first. NaN for no rows."""
    y, p = _check_yp(y, p)
    if not y.size:
        return float("nan")
    return float(skm.log_loss(y, np.clip(p, eps, 1 - eps), labels=[0.0, 1.0]))


def binary_metrics(y, p, prefix: str = "") -> dict[str, float]:
    """AUC, Gini, KS, Brier, log loss, ECE, observed and mean predicted default rate, row count."""
    y, p = _check_yp(y, p)
    a = k = float("nan")
    if _both_classes(y):  # AUC and KS from one ROC curve (one sort)
        roc = roc_curve(y, p)
        fpr, tpr = roc["fpr"].to_numpy(), roc["tpr"].to_numpy()
        a, k = float(skm.auc(fpr, tpr)), float(np.max(np.abs(tpr - fpr)))
    return {
        f"{prefix}auc": a,
        f"{prefix}gini": 2 * a - 1,
        f"{prefix}ks": k,
        f"{prefix}brier": brier(y, p),
        f"{prefix}log_loss": log_loss(y, p),
        f"{prefix}ece": expected_calibration_error(y, p),
        f"{prefix}bad_rate": float(y.mean()) if y.size else float("nan"),
        f"{prefix}mean_pd": float(p.mean()) if p.size else float("nan"),
        f"{prefix}n": float(y.size),
    }


def _tie_groups(p: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's rank among the distinct values of ``p`` (ascending) and the number of distinct values."""
    uniq, inv = np.unique(p, return_inverse=True)
    return inv.ravel(), uniq.size


def _weighted_auc(w_bad: np.ndarray, w_good: np.ndarray, group_bad: np.ndarray, group_good: np.ndarray, n_groups: int) -> float:
    """AUC when bad row i appears ``w_bad[i]`` times and good row j ``w_good[j]`` times (ties count
    one half): the Mann-Whitney statistic of the resample, without materialising it. (Element-wise
    sums, no BLAS dot: a threaded BLAS call per resample is slow on a busy machine.)"""
    good = np.bincount(group_good, weights=w_good, minlength=n_groups)
    n_bad, n_good = w_bad.sum(), good.sum()
    if n_bad == 0 or n_good == 0:
        return float("nan")
    below_plus_half_ties = np.cumsum(good) - 0.5 * good  # counts: exact in float64
    return float((w_bad * below_plus_half_ties[group_bad]).sum() / (n_bad * n_good))


def paired_bootstrap(y, p_a, p_b, n_boot: int = 1000, seed: int | np.random.Generator = 0) -> dict:
    """AUC of model ``a`` minus AUC of model ``b`` on the same rows, with a paired bootstrap 95% interval.

    Each of the ``n_boot`` resamples draws ``len(y)`` rows with replacement (uniformly, from
    ``numpy.random.default_rng(seed)``; a Generator may be passed to continue its stream) and
    computes both AUCs on that same resample, so the difference keeps the correlation between two
    models scored on one test set. Resamples holding a single class are skipped (``n_boot`` counts
    the rest). The interval is the 2.5th and 97.5th percentile of the resampled differences (the
    percentile method); ``diff`` itself is computed on the rows as given. A fixed seed gives the
    same numbers on every run. Each resample's AUC equals :func:`auc` of the resampled rows; it is
    computed from row counts, so memory stays O(rows).

    Returns ``{"auc_a", "auc_b", "diff", "ci95": [low, high], "share_positive", "n_boot"}``;
    values are NaN (and ``n_boot`` 0) when ``y`` holds only one class.
    """
    y, p_a = _check_yp(y, p_a)
    _, p_b = _check_yp(y, p_b)
    a, b = auc(y, p_a), auc(y, p_b)
    nan = float("nan")
    if not _both_classes(y):
        return {"auc_a": a, "auc_b": b, "diff": nan, "ci95": [nan, nan], "share_positive": nan, "n_boot": 0}
    rng = np.random.default_rng(seed)
    is_bad = y == 1
    ga, n_ga = _tie_groups(p_a)
    gb, n_gb = _tie_groups(p_b)
    ga_bad, ga_good, gb_bad, gb_good = ga[is_bad], ga[~is_bad], gb[is_bad], gb[~is_bad]
    n = y.size
    diffs = np.empty(n_boot)
    k = 0
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype("float64")
        w_bad, w_good = w[is_bad], w[~is_bad]
        if not w_bad.any() or not w_good.any():
            continue
        diffs[k] = _weighted_auc(w_bad, w_good, ga_bad, ga_good, n_ga) - _weighted_auc(w_bad, w_good, gb_bad, gb_good, n_gb)
        k += 1
    diffs = diffs[:k]
    if not k:
        return {"auc_a": a, "auc_b": b, "diff": a - b, "ci95": [nan, nan], "share_positive": nan, "n_boot": 0}
    return {
        "auc_a": a,
        "auc_b": b,
        "diff": a - b,
        "ci95": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
        "share_positive": float((diffs > 0).mean()),
        "n_boot": int(k),
    }


def bootstrap_aucs(y, preds: dict[str, np.ndarray], n_boot: int = 1000, seed: int | np.random.Generator = 0) -> dict[str, np.ndarray]:
    """The AUC of each of several models on the same bootstrap resamples of the rows: ``{name:
    array of n_boot AUCs}``, resample ``b`` the same rows for every model (drawn as in
    :func:`paired_bootstrap`; resamples holding one class are skipped, so arrays may be shorter than
    ``n_boot``). For statistics of several models at once, e.g. the share of a gap between two
    models that a third one closes."""
    y, _ = _check_yp(y, np.zeros(np.asarray(y).size))
    groups = {k: _tie_groups(_check_yp(y, p)[1]) for k, p in preds.items()}
    out: dict[str, list[float]] = {k: [] for k in preds}
    if not _both_classes(y):
        return {k: np.zeros(0) for k in preds}
    rng = np.random.default_rng(seed)
    is_bad = y == 1
    n = y.size
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype("float64")
        w_bad, w_good = w[is_bad], w[~is_bad]
        if not w_bad.any() or not w_good.any():
            continue
        for k, (g, n_g) in groups.items():
            out[k].append(_weighted_auc(w_bad, w_good, g[is_bad], g[~is_bad], n_g))
    return {k: np.asarray(v) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _quantile_codes(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index 0..k-1 per value by quantiles of ``p`` itself (ties share a bin)."""
    if p.size == 0:
        return np.zeros(0, dtype=int)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, p, side="right")


def calibration_table(y, p, n_bins: int = 10) -> pd.DataFrame:
    """Deciles (by default) of predicted PD: ``bin, pd_min, pd_max, mean_pd, observed_rate, count, bads``."""
    y, p = _check_yp(y, p)
    codes = _quantile_codes(p, n_bins)
    df = pd.DataFrame({"bin": codes, "p": p, "y": y})
    out = df.groupby("bin", sort=True).agg(
        pd_min=("p", "min"), pd_max=("p", "max"), mean_pd=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size"), bads=("y", "sum")
    )
    out = out.reset_index()
    out["bin"] = np.arange(1, len(out) + 1)
    out["count"] = out["count"].astype("int64")
    out["bads"] = out["bads"].astype("int64")
    return out


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Count-weighted mean |mean PD - observed rate| over the calibration table's bins."""
    t = calibration_table(y, p, n_bins)
    if t.empty:
        return float("nan")
    w = t["count"].to_numpy() / t["count"].sum()
    return float(np.sum(w * np.abs(t["mean_pd"].to_numpy() - t["observed_rate"].to_numpy())))


# --------------------------------------------------------------------------------------------
# Stability (PSI)
# --------------------------------------------------------------------------------------------


def psi_band(value: float) -> str:
    """'stable' (< 0.1), 'watch' (0.1-0.25) or 'act' (> 0.25); 'n/a' for NaN."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if value < 0.1:
        return "stable"
    if value <= 0.25:
        return "watch"
    return "act"


def reference_bins(reference, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges from the reference's quantiles (unique, finite values only)."""
    ref = pd.to_numeric(pd.Series(np.asarray(reference).ravel()), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.zeros(0)
    return np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1]))


def _bin_labels(edges: np.ndarray) -> list[str]:
    bounds = np.r_[-np.inf, edges, np.inf]
    return [f"[{lo:.6g}, {hi:.6g})" for lo, hi in zip(bounds[:-1], bounds[1:])]


def _is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def psi_table(reference, current, n_bins: int = 10, edges: np.ndarray | None = None, eps: float = PSI_EPSILON) -> pd.DataFrame:
    """PSI per bin: ``bin, lower, upper, ref_count, ref_share, cur_count, cur_share, psi``.

    Numeric values are cut at the reference's quantiles (or at ``edges`` when given, e.g. the edges
    stored with a training run); text/categorical values use one bin per category seen in either
    sample. Missing values (NaN, None, +-inf) form their own bin ``missing``. Empty bins get share
    ``eps`` so the log stays finite. The total PSI is the sum of the ``psi`` column.
    """
    ref = pd.Series(np.asarray(reference, dtype=object).ravel() if not isinstance(reference, pd.Series) else reference.to_numpy()).reset_index(drop=True)
    cur = pd.Series(np.asarray(current, dtype=object).ravel() if not isinstance(current, pd.Series) else current.to_numpy()).reset_index(drop=True)
    if _is_categorical(ref.infer_objects()) or _is_categorical(cur.infer_objects()):
        r = ref.astype("string")
        c = cur.astype("string")
        cats = sorted(set(r.dropna().unique()) | set(c.dropna().unique()))
        labels = list(cats) + [MISSING_BIN]
        r_counts = r.value_counts().reindex(cats, fill_value=0).tolist() + [int(r.isna().sum())]
        c_counts = c.value_counts().reindex(cats, fill_value=0).tolist() + [int(c.isna().sum())]
        lower = [np.nan] * len(labels)
        upper = [np.nan] * len(labels)
    else:
        rv = pd.to_numeric(ref, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        cv = pd.to_numeric(cur, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        if edges is None:
            edges = reference_bins(rv, n_bins)
        edges = np.asarray(edges, dtype="float64")
        k = edges.size + 1

        def counts(v: np.ndarray) -> list[int]:
            fin = np.isfinite(v)
            codes = np.searchsorted(edges, v[fin], side="right")
            return np.bincount(codes, minlength=k).tolist() + [int((~fin).sum())]

        labels = _bin_labels(edges) + [MISSING_BIN]
        r_counts, c_counts = counts(rv), counts(cv)
        lower = list(np.r_[-np.inf, edges]) + [np.nan]
        upper = list(np.r_[edges, np.inf]) + [np.nan]
    r_counts = np.asarray(r_counts, dtype="float64")
    c_counts = np.asarray(c_counts, dtype="float64")
    r_share = r_counts / max(r_counts.sum(), 1.0)
    c_share = c_counts / max(c_counts.sum(), 1.0)
    rs = np.where(r_share > 0, r_share, eps)
    cs = np.where(c_share > 0, c_share, eps)
    contrib = (cs - rs) * np.log(cs / rs)
    # A bin empty in both samples (typically 'missing') contributes nothing.
    contrib = np.where((r_counts == 0) & (c_counts == 0), 0.0, contrib)
    return pd.DataFrame(
        {
            "bin": labels,
            "lower": lower,
            "upper": upper,
            "ref_count": r_counts.astype("int64"),
            "ref_share": r_share,
            "cur_count": c_counts.astype("int64"),
            "cur_share": c_share,
            "psi": contrib,
        }
    )


def psi(reference, current, n_bins: int = 10, edges: np.ndarray | None = None) -> float:
    """Population stability index of ``current`` against ``reference`` (see :func:`psi_table`)."""
    return float(psi_table(reference, current, n_bins=n_bins, edges=edges)["psi"].sum())


def psi_report(reference: pd.DataFrame, current: pd.DataFrame, columns: Iterable[str], n_bins: int = 10) -> pd.DataFrame:
    """PSI of each column between two frames: ``variable, psi, band`` sorted by PSI, largest first."""
    rows = []
    for col in columns:
        value = psi(reference[col], current[col], n_bins=n_bins)
        rows.append({"variable": col, "psi": value, "band": psi_band(value)})
    out = pd.DataFrame(rows, columns=["variable", "psi", "band"])
    return out.sort_values("psi", ascending=False, kind="mergesort").reset_index(drop=True)


def reference_profile(frame: pd.DataFrame, columns: Iterable[str], n_bins: int = 10) -> pd.DataFrame:
    """What monitoring needs later from the training sample: per column its bins (edges) and shares.

    One row per (variable, bin): ``variable, bin, lower, upper, share, count``; numeric columns are
    cut at their own quantiles, categorical ones by category, missing values in bin ``missing``.
    Feed ``lower``/``upper`` back to :func:`psi_table` (``edges``) to compute PSI on new data.
    """
    parts = []
    for col in columns:
        t = psi_table(frame[col], frame[col], n_bins=n_bins)
        parts.append(pd.DataFrame({"variable": col, "bin": t["bin"], "lower": t["lower"], "upper": t["upper"], "share": t["ref_share"], "count": t["ref_count"]}))
    if not parts:
        return pd.DataFrame(columns=["variable", "bin", "lower", "upper", "share", "count"])
    return pd.concat(parts, ignore_index=True)


def psi_against_profile(profile: pd.DataFrame, current, eps: float = PSI_EPSILON) -> pd.DataFrame:
    """PSI table of ``current`` values against one variable's stored reference profile.

    ``profile`` holds the rows of one variable from :func:`reference_profile` (``bin, lower, upper,
    share``), e.g. read back from a training run's ``monitoring/feature_profile.csv``; the raw
    training rows are not needed. Returns the same columns as :func:`psi_table`."""
    prof = profile.reset_index(drop=True)
    is_missing = prof["bin"].astype(str) == MISSING_BIN
    numeric = prof.loc[~is_missing, "lower"].notna().any() or prof.loc[~is_missing, "upper"].notna().any()
    cur = pd.Series(np.asarray(current, dtype=object).ravel() if not isinstance(current, pd.Series) else current.to_numpy())
    if numeric:
        upper = pd.to_numeric(prof.loc[~is_missing, "upper"], errors="coerce").to_numpy(dtype="float64")
        edges = upper[np.isfinite(upper)]
        cv = pd.to_numeric(cur, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        fin = np.isfinite(cv)
        counts = np.bincount(np.searchsorted(edges, cv[fin], side="right"), minlength=edges.size + 1).tolist() + [int((~fin).sum())]
        labels = list(prof.loc[~is_missing, "bin"]) + [MISSING_BIN]
        ref_share = np.r_[prof.loc[~is_missing, "share"].to_numpy(dtype="float64"), prof.loc[is_missing, "share"].sum()]
    else:
        labels = [str(b) for b in prof.loc[~is_missing, "bin"]]
        c = cur.astype("string")
        vc = c.value_counts()
        unseen = int(vc[~vc.index.isin(labels)].sum())  # categories new since training: counted as missing
        counts = [int(vc.get(b, 0)) for b in labels] + [int(c.isna().sum()) + unseen]
        labels = labels + [MISSING_BIN]
        ref_share = np.r_[prof.loc[~is_missing, "share"].to_numpy(dtype="float64"), prof.loc[is_missing, "share"].sum()]
    c_counts = np.asarray(counts, dtype="float64")
    c_share = c_counts / max(c_counts.sum(), 1.0)
    rs = np.where(ref_share > 0, ref_share, eps)
    cs = np.where(c_share > 0, c_share, eps)
    contrib = np.where((ref_share == 0) & (c_counts == 0), 0.0, (cs - rs) * np.log(cs / rs))
    return pd.DataFrame(
        {
            "bin": labels,
            "lower": list(prof.loc[~is_missing, "lower"]) + [np.nan],
            "upper": list(prof.loc[~is_missing, "upper"]) + [np.nan],
            "ref_count": np.nan,
            "ref_share": ref_share,
            "cur_count": c_counts.astype("int64"),
            "cur_share": c_share,
            "psi": contrib,
        }
    )


# --------------------------------------------------------------------------------------------
# Segments and grades
# --------------------------------------------------------------------------------------------


def segment_metrics(
    frame: pd.DataFrame,
    y,
    p,
    segments: Sequence[str] = SEGMENT_COLUMNS,
    min_rows: int = 500,
    min_auc: float = 0.65,
) -> pd.DataFrame:
    """Metrics per segment value: ``segment, value, count, bads, bad_rate, mean_pd, auc, flag``.

    ``flag`` is ``"low_auc"`` for segments with at least ``min_rows`` rows and AUC below ``min_auc``
    (the report must show them), ``"insufficient"`` for smaller segments or those with one class
    only (AUC is not reliable there), and ``""`` otherwise. Segment columns absent from ``frame``
    are skipped.
    """
    y, p = _check_yp(y, p)
    rows = []
    for seg in segments:
        if seg not in frame.columns:
            continue
        values = frame[seg].astype("string").fillna(MISSING_BIN).to_numpy()
        df = pd.DataFrame({"v": values, "y": y, "p": p})
        for value, g in df.groupby("v", sort=True):
            gy, gp = g["y"].to_numpy(), g["p"].to_numpy()
            a = auc(gy, gp) if _both_classes(gy) else float("nan")
            if len(g) < min_rows or not np.isfinite(a):
                flag = "insufficient"
            elif a < min_auc:
                flag = "low_auc"
            else:
                flag = ""
            rows.append(
                {
                    "segment": seg,
                    "value": value,
                    "count": int(len(g)),
                    "bads": int(gy.sum()),
                    "bad_rate": float(gy.mean()),
                    "mean_pd": float(gp.mean()),
                    "auc": a,
                    "flag": flag,
                }
            )
    return pd.DataFrame(rows, columns=["segment", "value", "count", "bads", "bad_rate", "mean_pd", "auc", "flag"])


def bad_rate_by_grade(
    grades, y, p=None, order: Sequence | None = None, min_count: int = 1, min_expected_bads: float = 0.0
) -> tuple[pd.DataFrame, bool]:
    """Observed bad rate per grade, from the best grade to the worst, and whether it rises monotonically.

    Grades are ordered by ``order`` when given, else by their mean PD ``p`` (when given), else by
    their natural sort order. The check is non-decreasing bad rate across grades with at least
    ``min_count`` rows and, when PDs are given, at least ``min_expected_bads`` expected defaults
    (count x mean PD): in the safest grades a few hundred rows expect under one default, so one
    default more or less would decide the check. Grades not judged are still listed. Returns
    ``(table, monotone)`` where the table has ``grade, count, bads, bad_rate, mean_pd, judged``.
    """
    g = pd.Series(np.asarray(grades, dtype=object).ravel()).astype("string")
    yv = np.asarray(y, dtype="float64").ravel()
    pv = np.asarray(p, dtype="float64").ravel() if p is not None else np.full(yv.size, np.nan)
    df = pd.DataFrame({"grade": g, "y": yv, "p": pv})
    t = df.groupby("grade", sort=True).agg(count=("y", "size"), bads=("y", "sum"), bad_rate=("y", "mean"), mean_pd=("p", "mean")).reset_index()
    if order is not None:
        rank = {str(k): i for i, k in enumerate(order)}
        t["_o"] = t["grade"].map(rank).astype("float64").fillna(len(rank))
    elif p is not None:
        t["_o"] = t["mean_pd"]
    else:
        t["_o"] = np.arange(len(t))
    t = t.sort_values(["_o", "grade"], kind="mergesort").drop(columns="_o").reset_index(drop=True)
    t["count"] = t["count"].astype("int64")
    t["bads"] = t["bads"].astype("int64")
    t["judged"] = t["count"] >= min_count
    if p is not None and min_expected_bads > 0:
        t["judged"] &= (t["count"] * t["mean_pd"]).fillna(0) >= min_expected_bads
    rates = t.loc[t["judged"], "bad_rate"].to_numpy()
    monotone = bool(np.all(np.diff(rates) >= 0)) if rates.size else True
    return t, monotone


# --------------------------------------------------------------------------------------------
# Out-of-time split
# --------------------------------------------------------------------------------------------


def default_cut_date(dates, test_share: float = 0.3) -> pd.Timestamp:
    """The date that leaves about the last ``test_share`` of the applications as test.

    Applications dated on or after the cut are test, earlier ones train; the cut is the first date
    at or above the ``1 - test_share`` quantile, so train dates are strictly before test dates.
    """
    d = pd.to_datetime(pd.Series(dates)).dropna()
    if d.empty:
        raise ValueError("no application dates to split on")
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share}")
    uniq = np.sort(d.unique())
    if len(uniq) < 2:
        raise ValueError(f"all applications share one date ({pd.Timestamp(uniq[0]).date()}); an out-of-time split needs at least two dates")
    q = np.datetime64(d.quantile(1 - test_share))
    idx = int(np.searchsorted(uniq, q, side="left"))
    idx = min(max(idx, 1), len(uniq) - 1)
    return pd.Timestamp(uniq[idx])


def oot_split(
    frame: pd.DataFrame,
    date_col: str = "application_date",
    cut: str | pd.Timestamp | None = None,
    test_share: float = 0.3,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Split rows out of time: ``date < cut`` is train, ``date >= cut`` is test. Returns (train, test, cut).

    ``cut`` defaults to :func:`default_cut_date` (last ~30% of applications as test). Raises
    ``ValueError`` naming the cut when either side would be empty.
    """
    if date_col not in frame.columns:
        raise ValueError(f"column {date_col!r} is missing; cannot split out of time")
    dates = pd.to_datetime(frame[date_col])
    cut_ts = pd.Timestamp(cut) if cut is not None else default_cut_date(dates, test_share)
    is_test = (dates >= cut_ts).to_numpy()
    train, test = frame.loc[~is_test], frame.loc[is_test]
    if train.empty or test.empty:
        lo, hi = dates.min(), dates.max()
        raise ValueError(
            f"cut date {cut_ts.date()} leaves {'no training' if train.empty else 'no test'} rows; "
            f"application dates run from {lo.date()} to {hi.date()}, choose a cut inside that range"
        )
    return train, test, cut_ts


# --------------------------------------------------------------------------------------------
# Truth (oracle)
# --------------------------------------------------------------------------------------------


def load_truth(data_dir: str | Path | None) -> pd.DataFrame | None:
    """``truth/truth.parquet`` of a generated dataset, or None: ``application_id``, ``true_pd`` and,
    when the file has them, ``default_12m`` (the outcome every applicant had or would have had if
    granted) and ``window_closed`` (its 12 months ended by the snapshot; generators before 1.3.0
    granted every application and call it ``labelled``).

    Evaluation code is the only reader of ``truth/``: features and models never see it. A file that
    cannot be read gives a warning and None, as a missing one does.
    """
    if data_dir is None:
        return None
    path = Path(data_dir) / "truth" / "truth.parquet"
    if not path.is_file():
        return None
    try:
        truth = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # damaged: evaluation goes on without it
        log.warning("%s cannot be read (%s): oracle AUC and through-the-door metrics not computed", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    if "application_id" not in truth.columns or "true_pd" not in truth.columns:
        log.warning("%s has no application_id/true_pd columns: oracle AUC not computed", path)
        return None
    if "window_closed" not in truth.columns and "labelled" in truth.columns:
        truth = truth.assign(window_closed=truth["labelled"])
    cols = [c for c in ("application_id", "true_pd", "default_12m", "window_closed") if c in truth.columns]
    return truth[cols].assign(application_id=lambda t: t["application_id"].astype("string"))


def oracle_auc(truth: pd.DataFrame | None, application_ids, y) -> float | None:
    """AUC of the true PD on the given test rows: the ceiling for any model on that test set."""
    if truth is None:
        return None
    ids = pd.Series(np.asarray(application_ids, dtype=object).ravel()).astype("string")
    tp = ids.map(truth.drop_duplicates("application_id").set_index("application_id")["true_pd"])
    ok = tp.notna().to_numpy()
    if not ok.any():
        return None
    if not ok.all():
        log.warning("truth has no true_pd for %d of %d test rows; oracle AUC uses the rest", int((~ok).sum()), ok.size)
    return auc(np.asarray(y, dtype="float64")[ok], tp.to_numpy(dtype="float64")[ok])


TTD_NOTE = "generated data only: rejected applicants' outcomes come from the generator's truth, which no bank has"


def truth_outcomes(truth: pd.DataFrame | None, application_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(y, closed, true_pd)`` of the given applications from the truth (:data:`TTD_NOTE`): the
    outcome each had or would have had if granted (NaN where unknown), whether its 12-month window
    closed by the snapshot, and its true PD. None without a truth that holds outcomes."""
    if truth is None or "default_12m" not in truth.columns or "window_closed" not in truth.columns:
        return None
    ids = pd.Series(np.asarray(application_ids, dtype=object).ravel()).astype("string")
    t = truth.drop_duplicates("application_id").set_index("application_id")
    known = ids.isin(t.index).to_numpy()
    if not known.all():
        log.warning("truth has no row for %d of %d applications; they are left out", int((~known).sum()), known.size)
    row = t.reindex(ids)
    closed = known & row["window_closed"].fillna(False).to_numpy(dtype=bool)
    return row["default_12m"].to_numpy(dtype="float64", na_value=np.nan), closed, row["true_pd"].to_numpy(dtype="float64", na_value=np.nan)


def through_the_door(truth: pd.DataFrame | None, application_ids, p, groups: dict[str, np.ndarray] | None = None, n_bins: int = 10) -> pd.DataFrame | None:
    """How PDs ``p`` rank and calibrate every applicant, not only the loans a bank granted
    (:data:`TTD_NOTE`): one row for all the given applications whose 12-month window closed, and
    one per named group (a boolean mask over the given rows, e.g. ``rejected``), with the outcome
    each applicant had or would have had if granted (the truth's ``default_12m``).

    Columns: ``population, n, defaults, default_rate, mean_pd, auc, ece, oracle_auc`` (the true
    PD's AUC on the same rows). None without a truth that holds outcomes; a group with no row keeps
    its row with n 0 and NaN metrics."""
    outcomes = truth_outcomes(truth, application_ids)
    if outcomes is None:
        return None
    y, closed, tp = outcomes
    ids = pd.Series(np.asarray(application_ids, dtype=object).ravel())
    p = np.asarray(p, dtype="float64").ravel()
    masks = {"all": np.ones(ids.size, dtype=bool), **{k: np.asarray(v, dtype=bool).ravel() for k, v in (groups or {}).items()}}
    rows = []
    for name, mask in masks.items():
        m = mask & closed
        yy, pp = y[m], p[m]
        rows.append({
            "population": name, "n": int(m.sum()), "defaults": int(yy.sum()),
            "default_rate": float(yy.mean()) if m.any() else float("nan"),
            "mean_pd": float(pp.mean()) if m.any() else float("nan"),
            "auc": auc(yy, pp) if m.any() else float("nan"),
            "ece": expected_calibration_error(yy, pp, n_bins) if m.any() else float("nan"),
            "oracle_auc": auc(yy, tp[m]) if m.any() else float("nan"),
        })
    return pd.DataFrame(rows, columns=["population", "n", "defaults", "default_rate", "mean_pd", "auc", "ece", "oracle_auc"])


def ttd_metrics(table: pd.DataFrame | None) -> dict[str, float]:
    """The :func:`through_the_door` table as flat metrics: ``ttd_auc``, ``ttd_ece``, ... for all
    applicants, ``ttd_<group>_auc`` ... for each group."""
    if table is None:
        return {}
    out = {}
    for r in table.itertuples(index=False):
        prefix = "ttd_" if r.population == "all" else f"ttd_{r.population}_"
        for k in ("n", "defaults", "default_rate", "mean_pd", "auc", "ece", "oracle_auc"):
            out[f"{prefix}{k}"] = float(getattr(r, k))
    return out


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """All evaluation outputs of one model on one train/test split."""

    metrics: dict[str, float]
    calibration: pd.DataFrame
    roc: pd.DataFrame
    psi: pd.DataFrame
    segments: pd.DataFrame
    grades: pd.DataFrame | None = None
    grades_monotone: bool | None = None
    oracle_auc: float | None = None
    through_the_door: pd.DataFrame | None = None  # generated data only (see :func:`through_the_door`)
    extra: dict = field(default_factory=dict)


def evaluate(
    y_train,
    p_train,
    y_test,
    p_test,
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
    features: Sequence[str],
    segments_test: pd.DataFrame | None = None,
    score_train=None,
    score_test=None,
    grades_test=None,
    grade_order: Sequence | None = None,
    truth: pd.DataFrame | None = None,
    test_ids=None,
    n_bins: int = 10,
    grade_min_count: int = 100,
    grade_min_expected_bads: float = 5.0,
) -> Evaluation:
    """Evaluate a fitted model: test metrics (prefix ``test_``), train metrics (``train_``), PSI of
    score and every feature, segment table, bad rate by grade, oracle AUC when truth is given.

    Grade monotonicity is judged on grades with at least ``grade_min_count`` test rows and at least
    ``grade_min_expected_bads`` expected defaults: a grade of a few dozen applications, or a safe
    grade of a few hundred, holds about one default, too few to rank it."""
    metrics = binary_metrics(y_test, p_test, prefix="test_")
    metrics.update(binary_metrics(y_train, p_train, prefix="train_"))
    s_tr = score_train if score_train is not None else p_train
    s_te = score_test if score_test is not None else p_test
    psi_rows = [{"variable": "score", "psi": psi(s_tr, s_te, n_bins=n_bins)}]
    feat_psi = psi_report(X_train, X_test, features, n_bins=n_bins)
    psi_tab = pd.concat([pd.DataFrame(psi_rows), feat_psi[["variable", "psi"]]], ignore_index=True)
    psi_tab["band"] = psi_tab["psi"].map(psi_band)
    metrics["psi_score"] = float(psi_rows[0]["psi"])
    metrics["psi_features_max"] = float(feat_psi["psi"].max()) if len(feat_psi) else float("nan")
    metrics["psi_features_act"] = float((feat_psi["band"] == "act").sum())
    seg = segment_metrics(segments_test if segments_test is not None else pd.DataFrame(index=range(len(np.ravel(y_test)))), y_test, p_test)
    metrics["segments_low_auc"] = float((seg["flag"] == "low_auc").sum())
    ev = Evaluation(metrics=metrics, calibration=calibration_table(y_test, p_test, n_bins), roc=roc_curve(y_test, p_test), psi=psi_tab, segments=seg)
    if grades_test is not None:
        ev.grades, ev.grades_monotone = bad_rate_by_grade(
            grades_test, y_test, p_test, order=grade_order, min_count=grade_min_count, min_expected_bads=grade_min_expected_bads
        )
        metrics["grades_monotone"] = float(ev.grades_monotone)
    if truth is not None and test_ids is not None:
        ev.oracle_auc = oracle_auc(truth, test_ids, y_test)
        if ev.oracle_auc is not None:
            metrics["oracle_auc"] = ev.oracle_auc
            metrics["test_auc_gap_to_oracle"] = ev.oracle_auc - metrics["test_auc"]
    return ev
