"""The boosted models choose their complexity from the data (riskmodel.models._LGBMBase): rounds by
cross-validation on small books, leaves and leaf sizes by the number of defaults, one-vs-rest splits
on text columns. benchmarks/bench_small_books.py measures the effect on real and generated books."""

from __future__ import annotations

import numpy as np
import pytest

from riskmodel.creditdata import synthetic_credit
from riskmodel.evaluation import auc
from riskmodel.models import CV_BELOW_ROWS, ModelInputError, make_model


def _book(n: int, rate: float, seed: int):
    """synthetic_credit with its defaults thinned so about ``rate`` of the rows are bad."""
    X, y, d = synthetic_credit(n, 6, seed=seed, categorical=False)
    rng = np.random.default_rng(seed)
    keep = (y == 0) | (rng.random(n) < rate / y.mean())
    return X[keep].reset_index(drop=True), y[keep], d


@pytest.mark.parametrize("name", ("gbm_monotone", "gbm_additive"))
def test_leaves_and_leaf_size_follow_the_defaults(name):
    X, y, d = _book(2500, 0.03, seed=1)
    m = make_model(name, directions=d).fit(X, y)
    defaults, rate = y.sum(), y.mean()
    assert m.num_leaves_ == max(2, min(defaults // 40, m.max_leaves))
    assert m.min_child_samples_ == int(min(max(20, np.ceil(5 / rate)), len(y) // 4))
    big = make_model(name, directions=d).fit(*synthetic_credit(6000, 6, seed=2, categorical=False)[:2])
    assert big.num_leaves_ == big.max_leaves and big.min_child_samples_ < m.min_child_samples_
    fixed = make_model(name, directions=d, num_leaves=6, min_child_samples=33).fit(X, y)
    assert (fixed.num_leaves_, fixed.min_child_samples_) == (6, 33)
    weighted = make_model(name, directions=d).fit(X, y, sample_weight=np.where(y == 1, 4.0, 1.0))
    assert weighted.min_child_samples_ < m.min_child_samples_  # weighted defaults count


def test_rounds_are_chosen_by_cross_validation_on_a_small_book():
    X, y, d = _book(3000, 0.04, seed=3)
    cv = make_model("gbm_monotone", directions=d).fit(X, y)
    assert hasattr(cv, "cv_logloss_") and 1 <= cv.n_iter_ < cv.n_estimators
    held = make_model("gbm_monotone", directions=d, early_stopping=True).fit(X, y)
    assert not hasattr(held, "cv_logloss_")
    full = make_model("gbm_monotone", directions=d, early_stopping=False).fit(X, y)
    assert full.n_iter_ == full.n_estimators
    Xt, yt, _ = _book(20000, 0.04, seed=4)
    assert auc(yt, cv.predict_proba(Xt)[:, 1]) > auc(yt, full.predict_proba(Xt)[:, 1])  # 400 rounds overfit 120 defaults
    assert CV_BELOW_ROWS == 10_000


def test_a_high_cardinality_noise_column_costs_little():
    """One-vs-rest splits: a 300-level column of pure noise does not let the trees fit the noise."""
    X, y, d = _book(4000, 0.06, seed=5)
    Xt, yt, _ = _book(20000, 0.06, seed=6)
    rng = np.random.default_rng(0)
    noisy, noisy_t = X.assign(code=rng.integers(0, 300, len(X)).astype(str)), Xt.assign(code=rng.integers(0, 300, len(Xt)).astype(str))
    for name in ("gbm_monotone", "gbm_additive"):
        clean = auc(yt, make_model(name, directions=d).fit(X, y).predict_proba(Xt)[:, 1])
        m = make_model(name, directions=d).fit(noisy, y)
        assert auc(yt, m.predict_proba(noisy_t)[:, 1]) > clean - 0.01, name
        assert m._lgb_params()["max_cat_to_onehot"] > 300


@pytest.mark.parametrize("bad,match", [({"num_leaves": 1}, "num_leaves must be 'auto' or a whole number >= 2, got 1"),
                                       ({"min_child_samples": "many"}, "min_child_samples must be 'auto' or a whole number >= 1, got 'many'"),
                                       ({"early_stopping": "sometimes"}, "early_stopping must be 'auto', 'cv', True or False")])
def test_bad_complexity_parameters_raise_clear_errors(bad, match):
    X, y, d = synthetic_credit(600, 3, seed=1, categorical=False)
    with pytest.raises(ModelInputError, match=match):
        make_model("gbm_monotone", directions=d, **bad).fit(X, y)
