"""`riskmodel federated-train` through the real entry point, on a small generated data hub."""

from __future__ import annotations

import json
import shutil

import pytest


def test_bad_options_are_one_line_user_errors(cli, tmp_path):
    code, out, err = cli("federated-train", "--data", tmp_path, "--key-bits", "100")
    assert code == 2 and err.startswith("error: --key-bits must be one of") and "Traceback" not in err
    code, out, err = cli("federated-train", "--data", tmp_path, "--mode", "newton")
    assert code == 2 and "--mode must be 'exact' or 'taylor'" in err


@pytest.mark.slow
def test_federated_train_cli_logs_a_scorecard_run(cli, mlflow_store, small_hub, tmp_path):
    hub = tmp_path / "hub"  # training writes its feature cache into the data dir: keep the session's hub clean
    shutil.copytree(small_hub, hub)
    code, out, err = cli(
        "federated-train", "--data", hub, "--key-bits", "512", "--max-epochs", "2",
        "--experiment", mlflow_store.experiment, "--json",
    )
    assert code == 0, err
    s = json.loads(out)
    assert 0.5 < s["federated_auc"] <= 1 and 0.5 < s["centralized_auc"] <= 1
    assert s["epochs"] == 2 and s["key_bits"] == 512 and s["features"]["bank"] > 0 and s["features"]["hub"] > 0
    assert s["per_party"]["host"]["bytes_sent"] > 0 and s["rounds"] > 10
    from riskmodel import tracking

    run = tracking.client().get_run(s["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["rounds"] == s["rounds"] and "bytes_sent_host" in run.data.metrics
    model = tracking.load_model(f"models:/{s['registered_name']}/{s['registered_version']}")
    assert model is not None
