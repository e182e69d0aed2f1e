"""Training on a hub with an approval policy: the bank's decisions in the labelled set, the
through-the-door metrics (generated data only), and reject inference, which never reads the truth."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from features.tables import load_tables
from riskmodel import dataset, tracking
from riskmodel import evaluation as ev
from riskmodel.errors import UserError
from riskmodel.train import train_generated


@pytest.fixture(scope="module")
def ls(policy_hub):
    return dataset.load_labelled(policy_hub, write_cache=False)


def test_the_labelled_set_knows_the_banks_decisions(ls, policy_hub):
    apps = load_tables(policy_hub, ["applications"])[0]["applications"]
    d = ls.decisions.set_index("application_id")
    assert d["approved"].eq(apps.set_index(apps["application_id"].astype("string"))["approved"].astype("boolean")).all()
    assert d.loc[ls.labelled["application_id"].astype("string"), "approved"].all()  # outcomes: granted loans only
    first = apps.sort_values(["firm_id", "application_date"]).groupby("firm_id")["application_id"].first()
    assert set(d.index[d["first_application"]]) == set(first.astype("string"))
    rej = ls.rejected()
    assert len(rej) > 500 and not rej["approved"].any() and (rej["application_date"] < ls.cut).all()
    pop = ls.population()
    assert (pop["application_date"] >= ls.cut).all() and len(pop) == int((pd.to_datetime(ls.features["application_date"]) >= ls.cut).sum())
    groups = dataset.population_groups(pop)
    assert groups["approved"].sum() + groups["rejected"].sum() == len(pop)
    assert (pop.loc[groups["young_first"], "lifecycle_stage"] == "startup").all()


def test_training_reports_through_the_door_metrics_in_json_and_mlflow(policy_hub, mlflow_store):
    s = train_generated(policy_hub, "scorecard", mlflow_store.experiment)
    ttd = s["through_the_door"]
    assert ttd["note"].startswith("generated data only")
    rows = {r["population"]: r for r in ttd["populations"]}
    # the granted loans of the test window are the out-of-time test rows, with the same outcomes
    assert rows["approved"]["n"] == s["n_test"] and rows["approved"]["auc"] == pytest.approx(s["metrics"]["test_auc"], abs=1e-6)
    assert rows["rejected"]["n"] > 300 and rows["all"]["n"] == rows["approved"]["n"] + rows["rejected"]["n"]
    assert rows["rejected"]["default_rate"] > rows["approved"]["default_rate"]  # the policy screened some risk out
    assert rows["young_first"]["n"] > 100
    run = tracking.run_info(s["run_id"])
    for key in ("ttd_auc", "ttd_ece", "ttd_rejected_auc", "ttd_young_first_auc", "ttd_oracle_auc"):
        assert np.isfinite(run["metrics"][key]), key
    assert run["metrics"]["ttd_rejected_n"] == rows["rejected"]["n"]
    assert run["params"]["reject_inference"] == "none"
    from riskmodel.report import build_report

    page, _ = build_report(s["run_id"])
    ttd = page[page.index('<section id="ttd">'):page.index('<section id="psi">')]
    assert "rejected (declined by the bank (no outcome in its book))" in ttd and "generated data only" in ttd


def _poison(hub):
    """Every outcome and PD of the truth replaced: flipped defaults, reversed PDs, decisions swapped."""
    path = hub / "truth" / "truth.parquet"
    t = pd.read_parquet(path)
    t["default_12m"] = 1 - t["default_12m"]
    t["true_pd"] = 1 - t["true_pd"]
    t["approved"] = ~t["approved"]
    t.to_parquet(path, index=False)


@pytest.mark.parametrize("method", [None, "reweight", "augment", "self_label"])
def test_training_never_reads_the_truth(policy_hub, mlflow_store, tmp_path, method):
    """The same training on the hub, on a copy with a poisoned truth and on a copy without one gives the
    same model: only the evaluation (oracle AUC, through-the-door metrics) reads truth/."""
    hubs = {}
    for kind in ("poisoned", "removed"):
        hubs[kind] = tmp_path / kind
        shutil.copytree(policy_hub, hubs[kind], ignore=shutil.ignore_patterns("cache"))
    _poison(hubs["poisoned"])
    shutil.rmtree(hubs["removed"] / "truth")
    runs = {kind: train_generated(hub, "scorecard", mlflow_store.experiment, reject_inference=method, use_cache=False)
            for kind, hub in (("clean", policy_hub), *hubs.items())}
    pop = dataset.load_labelled(policy_hub, write_cache=False).population()
    pds = {k: tracking.load_credit_model(r["model_uri"])[0].predict_pd(pop) for k, r in runs.items()}
    np.testing.assert_array_equal(pds["poisoned"], pds["clean"])
    np.testing.assert_array_equal(pds["removed"], pds["clean"])
    assert runs["poisoned"]["reject_inference"] == runs["clean"]["reject_inference"]
    assert runs["removed"]["through_the_door"] is None and runs["removed"]["oracle_auc"] is None
    auc = lambda r: {p["population"]: p["auc"] for p in r["through_the_door"]["populations"]}["all"]  # noqa: E731
    assert auc(runs["poisoned"]) == pytest.approx(1 - auc(runs["clean"]), abs=1e-9)  # the evaluation did read it


def test_reject_inference_errors_are_one_line(small_hub, policy_hub, tmp_path, mlflow_store, cli):
    with pytest.raises(UserError, match="records no declined application before the cut"):
        train_generated(small_hub, "scorecard", mlflow_store.experiment, reject_inference="augment", use_cache=False)
    code, _, err = cli("train", "--data", str(policy_hub), "--model", "scorecard", "--reject-inference", "parcel")
    assert code == 2 and "unknown reject-inference method 'parcel'; choose one of: reweight, augment, self_label" in err
    f = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}).to_parquet(f)
    code, _, err = cli("train", "--features", str(f), "--test", str(f), "--target", "y", "--reject-inference", "augment")
    assert code == 2 and "--reject-inference applies to --data only" in err


def test_through_the_door_without_outcomes_in_the_truth_is_none():
    truth = pd.DataFrame({"application_id": pd.Series(["a", "b"], dtype="string"), "true_pd": [0.1, 0.2]})
    assert ev.through_the_door(truth, ["a", "b"], [0.1, 0.2]) is None
    assert ev.ttd_metrics(None) == {}
