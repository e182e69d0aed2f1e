"""Reject inference methods (riskmodel.rejects) on a selection problem with a known answer.

A synthetic credit book where the bank approves mostly low-x1 applicants (x1 raises the risk, so
the approved book is safer than the applicants): approval depends only on observed features, the
case inverse-probability weighting is built for.
"""

from __future__ import annotations

import numpy as np
import pytest

from riskmodel import rejects
from riskmodel.creditdata import synthetic_credit
from riskmodel.errors import UserError
from riskmodel.models import make_model


@pytest.fixture(scope="module")
def book():
    X, y, d = synthetic_credit(6000, 6, seed=5, categorical=False)
    rng = np.random.default_rng(1)
    z = 3.0 - 4.0 * np.log1p(X["x0"].fillna(1.0).to_numpy())  # x0 (direction +1) drives the decision
    approved = rng.random(len(y)) < 1 / (1 + np.exp(-z))
    return X, y, d, approved


def test_reweighting_recovers_the_applicants_default_rate(book):
    """With approval depending on the features only, the accepted defaults weighted by 1 / P(approved)
    estimate the default rate of every applicant; unweighted they understate it."""
    X, y, _, approved = book
    p_acc, p_rej, auc = rejects.approval_probability(X[approved], X[~approved], seed=0)
    assert auc > 0.7 and p_acc.mean() > p_rej.mean()
    w = 1 / np.maximum(p_acc, 0.05)
    everyone, booked = y.mean(), y[approved].mean()
    assert booked < everyone - 0.02  # the policy screened risk out
    assert abs(np.average(y[approved], weights=w) - everyone) < 0.4 * abs(booked - everyone)


@pytest.mark.parametrize("method", rejects.METHODS)
def test_each_method_fits_with_the_declined_rows_and_says_what_it_did(book, method):
    X, y, d, approved = book
    est = make_model("scorecard", directions=d)
    model, info = rejects.fit_with_rejects(method, est, X[approved], y[approved], X[~approved], seed=0)
    assert not hasattr(est, "selected_")  # the argument stays unfitted: the method fits clones
    assert info["method"] == method and info["n_rejected"] == int((~approved).sum()) and info["n_accepted"] == int(approved.sum())
    plain = make_model("scorecard", directions=d).fit(X[approved], y[approved])
    p, p0 = model.predict_proba(X[~approved])[:, 1], plain.predict_proba(X[~approved])[:, 1]
    assert np.abs(p - p0).max() > 1e-3  # the declined rows changed the model
    if method == "reweight":
        assert 0 < info["effective_sample_share"] < 1 and info["approval_model_auc"] > 0.7
    if method == "augment":
        assert info["rejected_mean_pd_known_good_bad"] > info["accepted_default_rate"]
    if method == "self_label":
        assert info["rejected_filtered_out"] == pytest.approx(0.1 * (~approved).sum(), abs=2)
        assert info["rounds"] == 3 and info["labelled_good"] > 0 and info["labelled_bad"] > 0
        # bias-aware: the labelled batch defaults about twice as often as the granted loans
        assert info["labelled_default_rate"] == pytest.approx(2 * info["accepted_default_rate"] / (1 + info["accepted_default_rate"]), rel=0.1)


def test_augmentation_enters_each_declined_row_twice_with_its_pd_as_weight(book, monkeypatch):
    X, y, d, approved = book
    seen = {}
    original = type(make_model("financial_baseline")).fit

    def spy(self, X_, y_, sample_weight=None):
        seen.setdefault("calls", []).append((len(X_), None if sample_weight is None else np.asarray(sample_weight)))
        return original(self, X_, y_, sample_weight=sample_weight)

    monkeypatch.setattr(type(make_model("financial_baseline")), "fit", spy)
    model, info = rejects.augment(make_model("financial_baseline"), X[approved], y[approved], X[~approved])
    (n_kgb, w_kgb), (n_final, w) = seen["calls"]
    n_acc, n_rej = int(approved.sum()), int((~approved).sum())
    assert (n_kgb, w_kgb) == (n_acc, None) and n_final == n_acc + 2 * n_rej
    np.testing.assert_allclose(w[:n_acc], 1.0)
    np.testing.assert_allclose(w[n_acc:n_acc + n_rej] + w[n_acc + n_rej:], 1.0)  # as a default with q, as a non-default with 1 - q
    assert w[n_acc:n_acc + n_rej].mean() == pytest.approx(info["rejected_mean_pd_known_good_bad"], abs=1e-5)


def test_bad_calls_raise_clear_errors(book):
    X, y, d, approved = book
    est = make_model("scorecard", directions=d)
    with pytest.raises(UserError, match="unknown reject-inference method 'parcel'; choose one of: reweight, augment, self_label"):
        rejects.fit_with_rejects("parcel", est, X[approved], y[approved], X[~approved])
    with pytest.raises(UserError, match="reject inference needs rejected applications, and there are none before the cut"):
        rejects.fit_with_rejects("augment", est, X[approved], y[approved], X.iloc[:0])
    with pytest.raises(ValueError, match="the accepted rows' feature columns"):
        rejects.fit_with_rejects("augment", est, X[approved], y[approved], X[~approved][list(X.columns)[::-1]])
