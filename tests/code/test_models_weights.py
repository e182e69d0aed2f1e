"""Sample weights (``fit(X, y, sample_weight=...)``) in every estimator and in the WoE binning.

Reject inference fits with weights: reweighting by the inverse probability of approval, and fuzzy
augmentation, where each rejected applicant enters twice with weights p and 1 - p. Row ``i`` with
weight ``k`` must count as ``k`` copies of the row: exactly for the logistic models and the binning,
and in the direction expected for LightGBM (which counts rows, not weights, in ``min_data_in_leaf``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskmodel.binning import MonotonicBinner
from riskmodel.creditdata import synthetic_credit
from riskmodel.models import MODEL_NAMES, ModelInputError, make_model

FAST = {"gbm_monotone": {"n_estimators": 60}, "gbm_additive": {"n_estimators": 120}}
LOGISTIC = ("financial_baseline", "scorecard")


@pytest.fixture(scope="module")
def data():
    X, y, d = synthetic_credit(1500, 6, seed=21)
    Xt, _, _ = synthetic_credit(500, 6, seed=22)
    w = np.random.default_rng(0).integers(0, 4, len(y)).astype("float64")  # 0 to 3 copies of each row
    return X, y, d, Xt, w


def _pd(model, X) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unit_weights_give_the_unweighted_model(data, name):
    X, y, d, Xt, _ = data
    plain = make_model(name, directions=d, **FAST.get(name, {})).fit(X, y)
    ones = make_model(name, directions=d, **FAST.get(name, {})).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(_pd(ones, Xt), _pd(plain, Xt), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", LOGISTIC)
def test_whole_number_weights_equal_repeated_rows(data, name):
    X, y, d, Xt, w = data
    rep = np.repeat(np.arange(len(y)), w.astype(int))
    repeated = make_model(name, directions=d).fit(X.iloc[rep].reset_index(drop=True), y[rep])
    weighted = make_model(name, directions=d).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(_pd(weighted, Xt), _pd(repeated, Xt), rtol=1e-4, atol=1e-6)
    if name == "scorecard":
        assert weighted.selected_ == repeated.selected_
        pd.testing.assert_frame_equal(weighted.table(), repeated.table(), check_dtype=False, atol=1e-6)


def test_binning_counts_weighted_rows_as_copies(data):
    X, y, d, _, w = data
    rep = np.repeat(np.arange(len(y)), w.astype(int))
    a = MonotonicBinner(directions=d).fit(X, y, sample_weight=w)
    b = MonotonicBinner(directions=d).fit(X.iloc[rep].reset_index(drop=True), y[rep])
    for c in X.columns:
        np.testing.assert_array_equal(a.bins_[c].splits, b.bins_[c].splits)
        np.testing.assert_allclose(a.bins_[c].count, b.bins_[c].count)
        np.testing.assert_allclose(a.bins_[c].woe, b.bins_[c].woe)
    assert a.table()["count"].dtype == np.int64  # whole-number weights keep whole counts
    half = MonotonicBinner(directions=d).fit(X, y, sample_weight=np.full(len(y), 0.5))
    assert half.table()["count"].dtype == np.float64


@pytest.mark.parametrize("name", ("gbm_monotone", "gbm_additive"))
def test_lightgbm_follows_the_weights(data, name):
    """Upweighting the defaults three times raises every PD (LightGBM counts rows in its leaf-size
    rule, so weights are not exactly copies there; the direction and the calibration are)."""
    X, y, d, Xt, _ = data
    plain = make_model(name, directions=d, **FAST[name]).fit(X, y)
    w = np.where(y == 1, 3.0, 1.0)
    heavy = make_model(name, directions=d, **FAST[name]).fit(X, y, sample_weight=w)
    weighted_rate = (w * y).sum() / w.sum()
    assert np.average(_pd(heavy, X), weights=w) == pytest.approx(weighted_rate, abs=0.02)
    assert (_pd(heavy, Xt) > _pd(plain, Xt)).mean() > 0.9


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bad_weights_raise_clear_errors(data, name):
    X, y, d, _, _ = data
    m = make_model(name, directions=d, **FAST.get(name, {}))
    with pytest.raises(ModelInputError, match="sample_weight: .*Negative values"):
        m.fit(X, y, sample_weight=np.r_[-1.0, np.ones(len(y) - 1)])
    with pytest.raises(ModelInputError, match=r"sample_weight: .*\(1500,\)"):
        m.fit(X, y, sample_weight=np.ones(10))
    with pytest.raises(ModelInputError, match="sample_weight: .*non-zero"):
        m.fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ModelInputError, match="sample_weight is zero on every row of class 1"):
        m.fit(X, y, sample_weight=(y == 0).astype(float))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_weights_as_series_or_list_give_the_same_model_and_are_not_modified(data, name):
    X, y, d, Xt, w = data
    w = w + 0.5  # no zero weight: every row counts
    kept = w.copy()
    as_array = make_model(name, directions=d, **FAST.get(name, {})).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(w, kept)
    for other in (pd.Series(w, index=X.index + 7), w.tolist()):
        m = make_model(name, directions=d, **FAST.get(name, {})).fit(X, y, sample_weight=other)
        np.testing.assert_allclose(_pd(m, Xt), _pd(as_array, Xt), rtol=0, atol=1e-12)
