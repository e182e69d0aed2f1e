"""`riskmodel train / compare / promote` through the real entry point (riskmodel.cli.main)."""

from __future__ import annotations

import json

import pytest

from riskmodel.creditdata import TARGET, german_credit, split_stratified


@pytest.fixture(scope="module")
def german_parquet(tmp_path_factory):
    d = tmp_path_factory.mktemp("german-cli")
    tr, te = split_stratified(german_credit(), TARGET)
    tr.to_parquet(d / "gc_train.parquet", index=False)
    te.to_parquet(d / "gc_test.parquet", index=False)
    return d / "gc_train.parquet", d / "gc_test.parquet"


@pytest.mark.slow
def test_train_promote_compare_byo(cli, mlflow_store, german_parquet):
    tr, te = german_parquet
    exp = mlflow_store.experiment
    summaries = []
    for model in ("financial_baseline", "gbm_monotone"):
        code, out, err = cli("train", "--features", tr, "--test", te, "--target", TARGET, "--model", model, "--experiment", exp, "--json")
        assert code == 0, err
        s = json.loads(out)
        assert s["model"] == model and s["registered_version"] == "1" and 0.6 < s["metrics"]["test_auc"] < 1
        summaries.append(s)
    code, out, err = cli("promote", "--name", summaries[0]["registered_name"], "--version", "1", "--alias", "champion")
    assert code == 0, err
    assert "@champion" in out
    code, out, err = cli("compare", "--experiment", exp, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["test_auc"] for r in rows] == pytest.approx(sorted((s["metrics"]["test_auc"] for s in summaries), reverse=True), abs=1e-6)
    champ = [r for r in rows if r["champion"]]
    assert [r["run_id"] for r in champ] == [summaries[0]["run_id"]]
    code, out, err = cli("compare", "--experiment", exp)
    assert code == 0 and "*" in out and "financial_baseline" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["compare", "--experiment", "nope"], r"error: experiment 'nope' does not exist"),
        (["train", "--data", "somewhere"], r"error: --model is required with --data"),
        (["train", "--features", "x.parquet"], r"error: bring-your-own training needs --features TRAIN.parquet, --test TEST.parquet and --target COL"),
        (["train", "--data", "d", "--model", "gbm_monotone", "--cut", "June"], r"error: --cut 'June' is not a date; use YYYY-MM-DD"),
        (["promote", "--name", "ghost", "--version", "1"], r"error: registered model 'ghost' does not exist"),
    ],
)
def test_user_errors_are_one_line_exit_2(cli, mlflow_store, args, message):
    import re

    code, out, err = cli(*args)
    assert code == 2
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_model_cli(cli, mlflow_store, german_parquet):
    tr, te = german_parquet
    code, _, err = cli("train", "--features", tr, "--test", te, "--target", TARGET, "--model", "forest")
    assert code == 2
    assert err.strip() == "error: unknown model 'forest'; choose one of: financial_baseline, scorecard, gbm_monotone, gbm_additive (e.g. --model gbm_monotone)"
