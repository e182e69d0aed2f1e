"""MLflow tracking on a real SQLite store (session-migrated, copied per test): round trip, FAILED runs,
compare with the champion marked, promote, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskmodel import tracking
from riskmodel.tracking.store import _retry
from riskmodel.errors import ScoringError, UserError
from riskmodel.models import make_model


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    X.loc[rng.random(n) < 0.1, "c"] = np.nan
    logit = -2 + 1.2 * X["a"] - 0.8 * X["b"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


def _catalog(features):
    return pd.DataFrame(
        {
            "name": features,
            "name_zh": [f"特征{f}" for f in features],
            "name_en": [f"feature {f}" for f in features],
            "family": "finance",
            "kind": "signal",
            "tables": "financials",
            "lookback_months": 12,
            "direction": [1, -1, 0][: len(features)],
            "grade": "L3",
            "unit": "",
            "description": [f"feature {f}" for f in features],
            "reason_en": [f"{f} is high" for f in features],
            "reason_zh": [f"{f}偏高" for f in features],
            "actionable": True,
        }
    )


def _credit_model(X, y, model="scorecard"):
    from riskmodel.train import make_credit_model

    est = make_model(model, directions={"a": 1, "b": -1, "c": 0})
    est.fit(X, y)
    return make_credit_model(est, list(X.columns), _catalog(list(X.columns)), model)


def test_tracking_uri_resolved_at_call_time(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"
    assert not (tmp_path / "mlruns.db").exists()  # resolving the URI creates nothing


def test_round_trip_runs_and_alias_give_identical_predictions(mlflow_store):
    X, y = _data()
    cm = _credit_model(X, y)
    with tracking.training_run(mlflow_store.experiment, run_name="rt") as run:
        run.log_params({"model": "scorecard"})
        run.log_metrics({"test_auc": 0.7})
        name, version = run.log_model(cm, X, "riskmodel-test-rt")
    assert (name, version) == ("riskmodel-test-rt", "1")
    assert tracking.run_status(run.run_id) == "FINISHED"
    expected = cm.predict(X)

    by_run = tracking.load_model(f"runs:/{run.run_id}/{tracking.MODEL_NAME_IN_RUN}").predict(X)
    tracking.promote(name, version, "champion")
    by_alias = tracking.load_model(f"models:/{name}@champion").predict(X)
    for got in (by_run, by_alias):
        assert list(got["model_name"].unique()) == [name]
        assert list(got["model_version"].unique()) == ["1"]
        # the pyfunc hands text out as plain Python strings (Spark and JSON serving need them)
        plain = expected.assign(**{c: expected[c].astype(object).where(expected[c].notna(), None) for c in expected.columns if c not in ("pd", "score")})
        pd.testing.assert_frame_equal(got.drop(columns=["model_name", "model_version"]), plain)
    # Extra columns in the input (ids, segments) are ignored; the index is kept.
    wide = X.assign(application_id=[f"A{i}" for i in range(len(X))]).set_index(pd.RangeIndex(100, 100 + len(X)))
    got_wide = tracking.load_model(f"models:/{name}@champion").predict(wide)
    np.testing.assert_allclose(got_wide["pd"].to_numpy(), expected["pd"].to_numpy())


def test_second_registration_gets_next_version(mlflow_store):
    X, y = _data()
    cm = _credit_model(X, y, "financial_baseline")
    versions = []
    for _ in range(2):
        with tracking.training_run(mlflow_store.experiment) as run:
            versions.append(run.log_model(cm, X, "riskmodel-test-v")[1])
    assert versions == ["1", "2"]
    out = tracking.load_model("models:/riskmodel-test-v/2").predict(X.head(3))
    assert list(out["model_version"]) == ["2", "2", "2"]


def test_failing_run_ends_failed_not_running(mlflow_store):
    with pytest.raises(RuntimeError, match="boom in the middle"):
        with tracking.training_run(mlflow_store.experiment, run_name="fails") as run:
            run.log_params({"model": "scorecard"})
            raise RuntimeError("boom in the middle")
    assert tracking.run_status(run.run_id) == "FAILED"
    r = tracking.client().get_run(run.run_id)
    assert "boom in the middle" in r.data.tags["riskmodel.error"]


@pytest.mark.slow
def test_compare_sorted_by_oot_auc_with_champion_marked(mlflow_store):
    X, y = _data()
    cm = _credit_model(X, y, "financial_baseline")
    ids = {}
    for label, auc in (("low", 0.61), ("high", 0.83), ("mid", 0.72)):
        with tracking.training_run(mlflow_store.experiment, run_name=label) as run:
            run.log_params({"model": label})
            run.log_metrics({"test_auc": auc})
            name, version = run.log_model(cm, X, "riskmodel-test-cmp")
            run.set_tags({"riskmodel.registered_name": name, "riskmodel.registered_version": version})
        ids[label] = (run.run_id, version)
    with pytest.raises(RuntimeError):
        with tracking.training_run(mlflow_store.experiment, run_name="broken"):
            raise RuntimeError("x")
    tracking.promote("riskmodel-test-cmp", ids["mid"][1])
    table = tracking.compare(mlflow_store.experiment)
    assert list(table["run_name"]) == ["high", "mid", "low", "broken"]
    assert table.loc[table["champion"], "run_id"].tolist() == [ids["mid"][0]]
    assert table.loc[table["run_name"] == "broken", "status"].item() == "FAILED"


def test_compare_unknown_experiment_is_a_clear_error(mlflow_store):
    with pytest.raises(UserError, match=r"experiment 'nope' does not exist .*riskmodel train .*--experiment nope"):
        tracking.compare("nope")


def test_promote_unknown_model_or_version(mlflow_store):
    with pytest.raises(UserError, match="registered model 'ghost' does not exist"):
        tracking.promote("ghost", 1)
    X, y = _data()
    with tracking.training_run(mlflow_store.experiment) as run:
        run.log_model(_credit_model(X, y, "financial_baseline"), X, "riskmodel-test-p")
    with pytest.raises(UserError, match=r"has no version 7; existing versions: \[1\]"):
        tracking.promote("riskmodel-test-p", 7)


def test_load_model_unknown_uri_or_alias(mlflow_store):
    X, y = _data()
    with tracking.training_run(mlflow_store.experiment) as run:
        run.log_model(_credit_model(X, y, "financial_baseline"), X, "riskmodel-test-l")
    with pytest.raises(ScoringError, match=r"cannot load model 'models:/riskmodel-test-l@champion'.*is the alias set\?"):
        tracking.load_model("models:/riskmodel-test-l@champion")
    with pytest.raises(ScoringError, match="cannot load model 'models:/nothing-here/1'"):
        tracking.load_model("models:/nothing-here/1")


def test_retry_helper_retries_locked_errors_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert _retry(flaky) == "ok" and len(calls) == 3

    def broken():
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        _retry(broken)


def test_input_example_is_synthetic_not_a_real_row():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 100.0], "s": ["x", "y", "y", None]})
    ex = tracking.input_example(X)
    assert list(ex.columns) == ["a", "s"]
    assert ex["a"].tolist() == [2.5, X["a"].quantile(0.75)]
    assert ex["s"].tolist() == ["y", "y"]


def test_interrupted_run_ends_killed(mlflow_store):
    with pytest.raises(SystemExit):
        with tracking.training_run(mlflow_store.experiment) as run:
            raise SystemExit(143)  # what `riskmodel train` raises on SIGTERM
    assert tracking.run_status(run.run_id) == "KILLED"


def test_load_credit_model_gives_the_model_and_its_stamped_version(mlflow_store):
    X, y = _data()
    cm = _credit_model(X, y, "financial_baseline")
    with tracking.training_run(mlflow_store.experiment) as run:
        run.log_model(cm, X, "riskmodel-test-cm")
    tracking.promote("riskmodel-test-cm", 1)
    inner, name, version = tracking.load_credit_model("models:/riskmodel-test-cm@champion")
    assert (name, version) == ("riskmodel-test-cm", "1")
    assert (inner.name, inner.version) == ("riskmodel-test-cm", "1")
    pd.testing.assert_frame_equal(inner.predict(X), cm.predict(X))


def test_requirement_mismatches_are_named_and_logged(caplog):
    from importlib.metadata import version

    from riskmodel import tracking

    numpy_now = version("numpy")
    reqs = [f"numpy=={numpy_now}", "numpy==0.0.1", "no-such-distribution==1.0", "pandas"]
    with caplog.at_level("WARNING", logger="riskmodel.tracking"):
        found = tracking.requirement_mismatches(reqs)
    assert found == [f"numpy==0.0.1 (installed: {numpy_now})", "no-such-distribution==1.0 (installed: not installed)"]
    assert "numpy==0.0.1" in caplog.text and "predictions may differ" in caplog.text
    assert tracking.requirement_mismatches(tracking.pip_requirements()) == []
