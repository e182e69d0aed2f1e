"""Bring-your-own tables: German credit end to end through MLflow, and the bad-input errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from riskmodel import tracking
from riskmodel.creditdata import TARGET, german_credit, split_stratified
from riskmodel.errors import UserError
from riskmodel.train import train, train_byo


@pytest.fixture(scope="module")
def german_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("german")
    train_df, test_df = split_stratified(german_credit(), TARGET)
    train_df.to_parquet(d / "train.parquet", index=False)
    test_df.to_parquet(d / "test.parquet", index=False)
    return d / "train.parquet", d / "test.parquet", test_df


@pytest.mark.slow
def test_german_credit_byo_scorecard(mlflow_store, german_files):
    tr, te, test_df = german_files
    s = train(features=tr, test=te, target=TARGET, model="scorecard", experiment=mlflow_store.experiment)
    assert s["registered_name"] == "riskmodel-scorecard-train" and s["registered_version"] == "1"
    assert s["n_train"] == 700 and s["n_test"] == 300
    assert s["n_features"] == 20  # every German credit attribute, strings as categories
    # Published pipelines reach 0.77-0.80 test AUC on this split; ours must be in that league.
    assert s["metrics"]["test_auc"] > 0.77
    assert tracking.run_status(s["run_id"]) == "FINISHED"
    # The registered model scores the raw test rows (strings included) exactly like the run's metrics say.
    out = tracking.load_model(s["model_uri"]).predict(test_df.drop(columns=[TARGET]))
    from riskmodel.evaluation import auc

    assert auc(test_df[TARGET], out["pd"]) == pytest.approx(s["metrics"]["test_auc"], abs=1e-6)
    arts = {a.path for a in tracking.client().list_artifacts(s["run_id"])}
    assert {"scorecard_table.csv", "psi.csv", "calibration.csv", "roc_ks.png", "importance.csv"} <= arts


@pytest.mark.slow
def test_directions_file_reaches_the_model(mlflow_store, german_files, tmp_path):
    tr, te, _ = german_files
    f = tmp_path / "dirs.toml"
    f.write_text("[directions]\nduration_in_month = 1\ncredit_amount = 1\nage_in_years = -1\n")
    s = train_byo(tr, te, TARGET, "gbm_monotone", mlflow_store.experiment, directions_file=f)
    run = tracking.client().get_run(s["run_id"])
    local = tracking.client().download_artifacts(s["run_id"], "features.json", str(tmp_path))
    d = json.loads(open(local).read())["directions"]
    assert (d["duration_in_month"], d["credit_amount"], d["age_in_years"], d["purpose"]) == (1, 1, -1, 0)
    assert run.data.params["model"] == "gbm_monotone"


def _write(df, path):
    df.to_parquet(path, index=False)
    return path


def _small(tmp_path, n=200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "cat": rng.choice(["a", "b"], n)})
    df["bad"] = (rng.random(n) < 1 / (1 + np.exp(-(df["x"] * 1.5 - 1)))).astype(int)
    return df


def test_missing_target(tmp_path):
    df = _small(tmp_path)
    tr = _write(df, tmp_path / "tr.parquet")
    with pytest.raises(UserError, match=r"tr.parquet: target column 'default' not found.*pass --target COL"):
        train(features=tr, test=tr, target="default")


def test_non_binary_target(tmp_path):
    df = _small(tmp_path).assign(bad=lambda d: d["bad"] * 2)
    tr = _write(df, tmp_path / "tr.parquet")
    with pytest.raises(UserError, match=r"target column 'bad' must be binary 0/1 .*found \['2'\]; recode it"):
        train(features=tr, test=tr, target="bad")
    df2 = _small(tmp_path).assign(bad=lambda d: np.where(d["bad"] == 1, "bad", "good"))
    tr2 = _write(df2, tmp_path / "tr2.parquet")
    with pytest.raises(UserError, match=r"must be binary 0/1 .*\['bad', 'good'\]"):
        train(features=tr2, test=tr2, target="bad")


def test_test_file_with_other_columns(tmp_path):
    df = _small(tmp_path)
    tr = _write(df, tmp_path / "tr.parquet")
    te = _write(df.drop(columns=["z"]).assign(w=1.0), tmp_path / "te.parquet")
    with pytest.raises(UserError, match=r"te.parquet: columns differ from .*tr.parquet \(missing \['z'\], extra \['w'\]\); both files need the same columns"):
        train(features=tr, test=te, target="bad")


@pytest.mark.slow
def test_constant_and_all_missing_features_dropped_with_warning(mlflow_store, tmp_path, caplog):
    df = _small(tmp_path, n=400).assign(const=7.0, empty=np.nan)
    tr = _write(df.iloc[:300], tmp_path / "tr.parquet")
    te = _write(df.iloc[300:], tmp_path / "te.parquet")
    with caplog.at_level(logging.WARNING, logger="riskmodel.train"):
        s = train(features=tr, test=te, target="bad", model="financial_baseline", experiment=mlflow_store.experiment)
    assert "constant or all missing" in caplog.text and "const" in caplog.text and "empty" in caplog.text
    assert s["n_features"] == 3


def test_nothing_left_is_an_error(tmp_path):
    df = pd.DataFrame({"k": [1.0] * 120, "m": [np.nan] * 120, "bad": [0, 1] * 60})
    tr = _write(df, tmp_path / "tr.parquet")
    with pytest.raises(UserError, match=r"no usable feature .*every column is constant or all missing \(k, m\)"):
        train(features=tr, test=tr, target="bad")


def test_unknown_model_name(tmp_path):
    tr = _write(_small(tmp_path), tmp_path / "tr.parquet")
    with pytest.raises(UserError, match=r"unknown model 'xgboost'; choose one of: financial_baseline, scorecard, gbm_monotone, gbm_additive"):
        train(features=tr, test=tr, target="bad", model="xgboost")


def test_bad_directions_file(tmp_path):
    tr = _write(_small(tmp_path), tmp_path / "tr.parquet")
    f = tmp_path / "d.yaml"
    f.write_text("x: 2\n")
    with pytest.raises(UserError, match=r"d.yaml: direction of 'x' must be -1 .*, 0 .* or 1"):
        train(features=tr, test=tr, target="bad", directions_file=f)
    f.write_text("nosuch: 1\n")
    with pytest.raises(UserError, match=r"direction given for unknown feature\(s\) \['nosuch'\]"):
        train(features=tr, test=tr, target="bad", directions_file=f)


def test_boolean_target_as_text_or_bool():
    """A CSV writes a boolean target as text: True/false in any case reads as 1/0, as a Parquet bool does."""
    from riskmodel.dataset import _binary_target

    text = pd.Series(["True", "false", " TRUE ", "False"], dtype="string")
    np.testing.assert_array_equal(_binary_target(text, "bad", "t.csv"), [1, 0, 1, 0])
    np.testing.assert_array_equal(_binary_target(pd.Series([True, False]), "bad", "t.parquet"), [1, 0])
    with pytest.raises(UserError, match=r"t.csv: target column 'bad' must be binary 0/1 .*found \['yes'\]"):
        _binary_target(pd.Series(["yes", "false"], dtype="string"), "bad", "t.csv")
