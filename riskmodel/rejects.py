"""Reject inference: learning from the applications a bank declined, which never get an outcome.

A bank sees defaults only on the loans it granted. A model fitted on that book learns the risk of
firms like the ones the policy approved; where the policy rarely lends (young firms without
collateral or profitable statements, 首贷 applicants), it has few examples and its ranking and PDs
there are guesses. Reject inference adds the declined applications, whose features the bank has but
whose outcomes it never sees, in one of three ways (``METHODS``):

``reweight``
    Inverse probability of approval. An approval model (gradient boosting, fitted on every decided
    application before the cut: approved = 1, declined = 0, its probabilities out of fold) gives each
    granted loan its probability ``p`` of approval; the loan enters the fit with weight ``1 / p``
    (``p`` floored at ``min_propensity``), so granted loans that look like the declined ones speak
    for them. Correct when approval depends only on what the features show; it adds no new rows.
``augment``
    Fuzzy augmentation. The model fitted on the granted loans (the "known good/bad" model) scores
    every declined application with PD ``q``; each enters the final fit twice, as a default with
    weight ``q`` and as a non-default with weight ``1 - q``. The declined rows then carry the
    known-good/bad model's own belief, so they pull the fit towards where the applicants are, but
    the risk they add is the one the first model already had (Crook & Banasik 2004 found it helps
    little).
``self_label``
    Bias-aware self-labelling after Kozodoi, Lessmann et al., "Fighting sampling bias" (EJOR 2025).
    First the declined applications least like any granted one (an isolation forest fitted on the
    granted loans; the ``filter_share`` most unusual) are dropped: no label for them can be trusted.
    Then, for ``max_rounds`` rounds, a regularised logistic regression (a weak learner, less prone
    to overfit its own labels) fitted on the granted loans and the rows labelled so far scores the
    remaining declined ones; the ``label_share`` with the lowest PD are labelled non-default and the
    highest-PD ones default, as many as make the labelled batch's default rate ``bad_multiplier``
    times the granted loans' (declined applicants are expected to be riskier: that is the "bias-aware"
    part). The final model is fitted on the granted loans plus every labelled declined row.

Nothing here reads ``truth/``: the declined applications come from the bank's own ``applications``
table (``approved = false``) and their features from the feature matrix. Each method returns the
fitted estimator and a small dict of what it did (logged with the training run).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from riskmodel.errors import UserError

log = logging.getLogger(__name__)

METHODS = ("reweight", "augment", "self_label")


def check_method(method: str) -> str:
    """The method name if known, else a UserError listing the choices."""
    if method not in METHODS:
        raise UserError(f"unknown reject-inference method {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def _pd(model, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


def _stack(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def _numeric_matrix(X: pd.DataFrame) -> pd.DataFrame:
    """Features for the helper models: numbers as float, text as pandas categories."""
    out = {}
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = s.to_numpy(dtype="float64", na_value=np.nan)
        else:
            out[c] = s.astype("string").astype("category")
    return pd.DataFrame(out, index=X.index)


# --------------------------------------------------------------------------------------------
# Reweighting by the inverse probability of approval
# --------------------------------------------------------------------------------------------


def approval_probability(X_accepted: pd.DataFrame, X_rejected: pd.DataFrame, *, seed: int = 0, n_folds: int = 5) -> tuple[np.ndarray, np.ndarray, float]:
    """P(approved | features) of every accepted and every rejected application, each predicted by
    a model that did not see it (``n_folds``-fold cross-fitting: an in-sample probability of a
    flexible model sits near 1 for the rows it was fitted on, which would hide the correction).
    Returns (p_accepted, p_rejected, out-of-fold AUC of the approval model)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    X = _numeric_matrix(_stack(X_accepted, X_rejected))
    a = np.r_[np.ones(len(X_accepted), dtype=int), np.zeros(len(X_rejected), dtype=int)]
    p = np.empty(len(a))
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for tr, te in folds.split(X, a):
        m = HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=400, max_leaf_nodes=15, min_samples_leaf=50, l2_regularization=1.0,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=20, categorical_features="from_dtype",
            random_state=seed,
        )
        m.fit(X.iloc[tr], a[tr])
        p[te] = m.predict_proba(X.iloc[te])[:, 1]
    return p[: len(X_accepted)], p[len(X_accepted):], float(roc_auc_score(a, p))


def reweight(estimator, X_accepted: pd.DataFrame, y_accepted: np.ndarray, X_rejected: pd.DataFrame, *, seed: int = 0,
             min_propensity: float = 0.05) -> tuple[Any, dict]:
    """Fit ``estimator`` (a clone) on the accepted rows weighted by 1 / P(approved | x)."""
    p_acc, p_rej, approval_auc = approval_probability(X_accepted, X_rejected, seed=seed)
    w = 1.0 / np.maximum(p_acc, min_propensity)
    w = w / w.mean()
    model = clone(estimator).fit(X_accepted, y_accepted, sample_weight=w)
    info = {
        "approval_model_auc": round(approval_auc, 4),
        "approval_probability_accepted_median": round(float(np.median(p_acc)), 4),
        "approval_probability_rejected_median": round(float(np.median(p_rej)), 4),
        "floored_at_min_propensity": int((p_acc < min_propensity).sum()),
        "weight_max": round(float(w.max()), 3),
        "effective_sample_share": round(float(w.sum() ** 2 / (w**2).sum() / len(w)), 4),  # Kish's effective n / n
    }
    return model, info


# --------------------------------------------------------------------------------------------
# Fuzzy augmentation
# --------------------------------------------------------------------------------------------


def augment(estimator, X_accepted: pd.DataFrame, y_accepted: np.ndarray, X_rejected: pd.DataFrame, *, seed: int = 0) -> tuple[Any, dict]:
    """Fit the known-good/bad model on the accepted rows, then ``estimator`` (a clone) on the accepted
    rows plus each rejected row twice: a default weighted by its PD, a non-default by 1 - PD."""
    kgb = clone(estimator).fit(X_accepted, y_accepted)
    q = _pd(kgb, X_rejected)
    X = _stack(X_accepted, X_rejected, X_rejected)
    y = np.r_[np.asarray(y_accepted, dtype=int), np.ones(len(q), dtype=int), np.zeros(len(q), dtype=int)]
    w = np.r_[np.ones(len(X_accepted)), q, 1.0 - q]
    model = clone(estimator).fit(X, y, sample_weight=w)
    info = {
        "accepted_default_rate": round(float(np.mean(y_accepted)), 5),
        "rejected_mean_pd_known_good_bad": round(float(q.mean()), 5),
    }
    return model, info


# --------------------------------------------------------------------------------------------
# Bias-aware self-labelling
# --------------------------------------------------------------------------------------------


def _unusual(X_accepted: pd.DataFrame, X_rejected: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """True for the ``share`` of rejected rows an isolation forest fitted on the accepted rows finds
    the most unusual (numeric features; missing values at the accepted median)."""
    from sklearn.ensemble import IsolationForest

    num = [c for c in X_accepted.columns if pd.api.types.is_numeric_dtype(X_accepted[c]) and not pd.api.types.is_bool_dtype(X_accepted[c])]
    if not num or share <= 0 or len(X_rejected) == 0:
        return np.zeros(len(X_rejected), dtype=bool)
    A = X_accepted[num].to_numpy(dtype="float64", na_value=np.nan)
    med = np.nan_to_num(np.nanmedian(A, axis=0), nan=0.0)
    fill = lambda M: np.where(np.isnan(M), med, M)  # noqa: E731
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(fill(A))
    score = forest.score_samples(fill(X_rejected[num].to_numpy(dtype="float64", na_value=np.nan)))  # low = unusual
    return score <= np.quantile(score, share)


def self_label(estimator, X_accepted: pd.DataFrame, y_accepted: np.ndarray, X_rejected: pd.DataFrame, *, seed: int = 0,
               filter_share: float = 0.1, label_share: float = 0.2, bad_multiplier: float = 2.0, max_rounds: int = 3) -> tuple[Any, dict]:
    """Bias-aware self-labelling (module docstring): filter, label the most confident rejected rows
    in rounds with a weak learner, fit ``estimator`` (a clone) on accepted plus labelled rows."""
    from riskmodel.models import FinancialBaseline

    y_accepted = np.asarray(y_accepted, dtype=int)
    bad_rate = float(y_accepted.mean())
    drop = _unusual(X_accepted, X_rejected, filter_share, seed)
    pool = np.flatnonzero(~drop)
    start = len(pool)
    labelled_rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    rounds = 0
    for _ in range(max_rounds):
        n_good = int(np.floor(label_share * len(pool)))
        n_bad = int(np.ceil(bad_multiplier * bad_rate / max(1.0 - bad_rate, 1e-9) * n_good))
        if n_good < 1 or n_good + n_bad > len(pool):
            break
        rows = np.concatenate(labelled_rows) if labelled_rows else np.zeros(0, dtype=int)
        X_fit = _stack(X_accepted, X_rejected.iloc[rows])
        y_fit = np.r_[y_accepted, np.concatenate(labels) if labels else np.zeros(0, dtype=int)]
        weak = FinancialBaseline(C=0.1).fit(X_fit, y_fit)
        q = _pd(weak, X_rejected.iloc[pool])
        order = np.argsort(q, kind="mergesort")
        good, bad = pool[order[:n_good]], pool[order[len(order) - n_bad:]]
        labelled_rows += [good, bad]
        labels += [np.zeros(len(good), dtype=int), np.ones(len(bad), dtype=int)]
        pool = np.setdiff1d(pool, np.r_[good, bad])
        rounds += 1
    rows = np.concatenate(labelled_rows) if labelled_rows else np.zeros(0, dtype=int)
    y_lab = np.concatenate(labels) if labels else np.zeros(0, dtype=int)
    model = clone(estimator).fit(_stack(X_accepted, X_rejected.iloc[rows]), np.r_[y_accepted, y_lab])
    info = {
        "rejected_filtered_out": int(drop.sum()),
        "rejected_in_pool": int(start),
        "rounds": rounds,
        "labelled_good": int((y_lab == 0).sum()),
        "labelled_bad": int((y_lab == 1).sum()),
        "labelled_default_rate": round(float(y_lab.mean()), 5) if len(y_lab) else None,
        "accepted_default_rate": round(bad_rate, 5),
    }
    return model, info


_FIT = {"reweight": reweight, "augment": augment, "self_label": self_label}


def fit_with_rejects(method: str, estimator, X_accepted: pd.DataFrame, y_accepted: np.ndarray, X_rejected: pd.DataFrame, *, seed: int = 0) -> tuple[Any, dict]:
    """Fit ``estimator`` (a clone; the argument stays unfitted) with reject inference ``method`` on
    the accepted rows (features and outcomes) and the rejected rows (features only). Returns the
    fitted estimator and what the method did (``method``, ``n_accepted``, ``n_rejected`` and its own
    figures)."""
    check_method(method)
    if len(X_rejected) == 0:
        raise UserError("reject inference needs rejected applications, and there are none before the cut "
                        "(a hub generated with --approval-policy none, or an applications table without the approved column)")
    if list(X_rejected.columns) != list(X_accepted.columns):
        raise ValueError("rejected rows must have the accepted rows' feature columns, in the same order")
    model, info = _FIT[method](estimator, X_accepted, y_accepted, X_rejected, seed=seed)
    log.info("reject inference %s: %d accepted, %d rejected rows; %s", method, len(X_accepted), len(X_rejected), info)
    return model, {"method": method, "n_accepted": int(len(X_accepted)), "n_rejected": int(len(X_rejected)), **info}
