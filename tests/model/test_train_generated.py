"""Training on a generated data hub: out-of-time split, feature cache, oracle AUC, FAILED runs, determinism."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from features.contract import BASELINE_FAMILIES, SEGMENT_COLUMNS
from riskmodel import dataset, tracking
from riskmodel.errors import UserError
from riskmodel.train import train, train_generated

pytestmark = pytest.mark.slow  # each test fits and logs at least one model on generated data


@pytest.fixture
def hub(small_hub, tmp_path):
    """A private copy of the session's generated hub (training writes its feature cache into it)."""
    dst = tmp_path / "hub"
    shutil.copytree(small_hub, dst)
    return dst


def _artifact_json(run_id, path, tmp_path):
    return json.loads(open(tracking.client().download_artifacts(run_id, path, str(tmp_path))).read())


def test_train_generated_oot_cache_oracle_and_artifacts(mlflow_store, hub, tmp_path):
    s = train(hub, "gbm_monotone", mlflow_store.experiment)
    assert s["features_cache"]["status"] == "written"
    cache_file = s["features_cache"]["path"]
    assert cache_file.startswith(str(hub.resolve() / "cache" / "features-"))

    # Out of time: every training application before the cut, every test application on/after it,
    # and together exactly the labelled applications.
    apps = pd.read_parquet(hub / "applications.parquet")
    outcomes = pd.read_parquet(hub / "outcomes.parquet")
    labelled = apps[apps["application_id"].isin(outcomes["application_id"])]
    cut = pd.Timestamp(s["cut_date"])
    assert s["n_train"] == int((labelled["application_date"] < cut).sum())
    assert s["n_test"] == int((labelled["application_date"] >= cut).sum())
    assert 0.2 < s["n_test"] / len(labelled) < 0.4

    # The oracle AUC (true PD on the same test rows) is the ceiling; the model is well above chance.
    assert s["oracle_auc"] is not None and 0.7 < s["oracle_auc"] <= 1.0
    assert 0.6 < s["metrics"]["test_auc"] < s["oracle_auc"] + 0.05

    run = tracking.client().get_run(s["run_id"])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["manifest_hash"] == dataset.file_hash(hub / "manifest.json")
    assert len(p["catalog_version"]) == 16 and p["cut_date"] == s["cut_date"] and p["model"] == "gbm_monotone"
    assert run.data.metrics["oracle_auc"] == pytest.approx(s["oracle_auc"], abs=1e-6)
    arts = {a.path for a in tracking.client().list_artifacts(s["run_id"])}
    assert {"catalog.csv", "importance.csv", "importance.png", "calibration.csv", "calibration.png", "roc_ks.png",
            "segments.csv", "psi.csv", "bad_rate_by_grade.csv", "monitoring", "features.json", "credit_model.json"} <= arts
    mon = {a.path for a in tracking.client().list_artifacts(s["run_id"], "monitoring")}
    assert mon == {"monitoring/feature_profile.csv", "monitoring/score_profile.csv", "monitoring/reference.json"}
    seg = pd.read_csv(tracking.client().download_artifacts(s["run_id"], "segments.csv", str(tmp_path)))
    assert set(seg["segment"]) == set(SEGMENT_COLUMNS)  # industry, region, lifecycle stage, size band and product
    psi = pd.read_csv(tracking.client().download_artifacts(s["run_id"], "psi.csv", str(tmp_path)))
    assert psi["variable"].iloc[0] == "score" and len(psi) == s["n_features"] + 1

    # Second model on the same data: features come from the cache; the registered model scores.
    s2 = train(hub, "financial_baseline", mlflow_store.experiment)
    assert s2["features_cache"] == {"status": "hit", "path": cache_file}
    feats = _artifact_json(s2["run_id"], "features.json", tmp_path)["features"]
    cat = pd.read_csv(tracking.client().download_artifacts(s2["run_id"], "catalog.csv", str(tmp_path)))
    assert set(cat.set_index("name").loc[feats, "family"]) <= BASELINE_FAMILIES
    cached = pd.read_parquet(cache_file)
    out = tracking.load_model(s2["model_uri"]).predict(cached.head(20))
    assert out["model_name"].eq("riskmodel-financial_baseline").all() and out["model_version"].eq("1").all()
    assert out["pd"].between(0, 1).all() and out["grade"].notna().all()


def test_failure_mid_run_marks_run_failed(mlflow_store, small_hub):
    # A parameter the estimator accepts but rejects when fitting: the run exists by then.
    with pytest.raises(UserError, match="early_stopping must be 'auto', 'cv', True or False"):
        train_generated(small_hub, "gbm_monotone", mlflow_store.experiment, params={"early_stopping": "sometimes"}, use_cache=False)
    runs = tracking.client().search_runs([tracking.client().get_experiment_by_name(mlflow_store.experiment).experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "early_stopping" in runs[0].data.tags["riskmodel.error"]


def test_same_seed_same_metrics_and_explicit_cut(mlflow_store, small_hub):
    a = train_generated(small_hub, "scorecard", mlflow_store.experiment, cut="2024-07-01", use_cache=False)
    b = train_generated(small_hub, "scorecard", mlflow_store.experiment, cut="2024-07-01", use_cache=False)
    assert a["cut_date"] == "2024-07-01"
    assert a["metrics"] == b["metrics"]
    assert (a["registered_version"], b["registered_version"]) == ("1", "2")
    table = tracking.compare(mlflow_store.experiment)
    assert len(table) == 2 and table["status"].eq("FINISHED").all()


def test_cut_outside_the_data_is_a_user_error(mlflow_store, small_hub):
    with pytest.raises(UserError, match=r"out-of-time split: cut date 2031-01-01 leaves no test rows; application dates run from .* choose a cut inside"):
        train_generated(small_hub, "scorecard", mlflow_store.experiment, cut="2031-01-01", use_cache=False)
    assert tracking.client().search_runs([tracking.client().get_experiment_by_name(mlflow_store.experiment).experiment_id]) == []
