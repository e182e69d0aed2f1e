"""`riskmodel validate` on real trained runs: the out-of-time rows, a later batch, a bring-your-own run.

The statistics themselves are checked against independent computations in
tests/code/test_validation.py; here, that the command runs them on the right rows against the right
references (the run's logged AUCs, the baseline run on the same data, the stored training
population, the firms' previous grades), exits by its verdict, writes its files and logs to the run.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.contract import DATE, FIRM, KEY, TARGET
from riskmodel import tracking

pytestmark = pytest.mark.slow  # two model fits on the session's small hub


@pytest.fixture(scope="module")
def setup(trained_model, tmp_path_factory):
    """A scorecard and a financial_baseline trained on the same hub, in one experiment of one store;
    the hub's feature matrix, outcomes and out-of-time cut."""
    from riskmodel.train import train_generated

    model = trained_model("scorecard", experiment="validate")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", model.store)
    d = tmp_path_factory.mktemp("validate")
    mp.chdir(d)
    base = train_generated(model.hub, "financial_baseline", "validate")
    matrix = model.matrix.assign(**{KEY: model.matrix[KEY].astype(str)})
    outcomes = pd.read_parquet(model.hub / "outcomes.parquet")
    cut = pd.Timestamp(model.summary["cut_date"])
    yield {"model": model, "base": base, "dir": d, "matrix": matrix, "outcomes": outcomes, "cut": cut, "run_id": model.summary["run_id"]}
    mp.undo()


def _labelled(setup) -> pd.DataFrame:
    lab = setup["matrix"].merge(setup["outcomes"][[KEY, TARGET]].assign(**{KEY: setup["outcomes"][KEY].astype(str)}), on=KEY)
    return lab.assign(**{DATE: pd.to_datetime(lab[DATE])})


def test_out_of_time_validation_uses_the_runs_rows_and_references(cli, setup, tmp_path):
    run_id, summary = setup["run_id"], setup["model"].summary
    code, out, err = cli("validate", "--model", setup["model"].uri, "--out", tmp_path / "val", "--json")
    r = json.loads(out)
    assert code == (1 if r["verdict"] == "red" else 0), err
    assert r["model"]["run_id"] == run_id and r["sample"]["kind"] == "out_of_time"

    # the run's out-of-time rows: same count, same AUC as training logged (sklearn there, midranks here)
    info = tracking.run_info(run_id)
    assert r["sample"]["rows"] == summary["n_test"]
    assert r["discrimination"]["auc"] == pytest.approx(info["metrics"]["test_auc"], abs=1e-12)
    lab = _labelled(setup)
    test = lab[lab[DATE] >= setup["cut"]]
    assert r["sample"]["defaults"] == int(test[TARGET].sum())

    # AUC reference on the out-of-time rows: the training AUC, shown but not counted
    t = r["discrimination"]["auc_vs_initial"]
    assert t["auc_initial"] == pytest.approx(info["metrics"]["train_auc"], abs=1e-12) and t["in_verdict"] is False
    assert r["references"]["auc"]["metric"] == "train_auc"
    row = [s for s in r["summary"] if s["test"] == "auc_vs_initial"]
    assert len(row) == 1 and row[0]["in_verdict"] is False

    # the baseline run on the same data was found; its AUC is the one its own training logged
    b = r["references"]["baseline"]
    assert b["run_id"] == setup["base"]["run_id"] and b["how"].startswith("found")
    base_auc = tracking.run_info(setup["base"]["run_id"])["metrics"]["test_auc"]
    paired = r["discrimination"]["auc_vs_baseline"]
    assert paired["auc_b"] == pytest.approx(base_auc, abs=1e-12)
    assert paired["difference"] == pytest.approx(info["metrics"]["test_auc"] - base_auc, abs=1e-12)

    # migration: out-of-time rows whose firm applied before the cut, counted from the hub directly
    before = set(lab.loc[lab[DATE] < setup["cut"], FIRM].astype(str))
    assert r["migration"]["n_pairs"] == int(test[FIRM].astype(str).isin(before).sum()) > 0
    assert np.asarray(r["migration"]["counts"]).sum() == r["migration"]["n_pairs"]

    # score PSI against the stored training population: the number `riskmodel monitor` gives
    from riskmodel.monitoring import monitor

    feats = tmp_path / "oot.parquet"
    setup["matrix"][setup["matrix"][KEY].isin(test[KEY])].to_parquet(feats, index=False)
    psi = {p["variable"]: p["psi"] for p in r["psi"]}
    assert psi["score"] == pytest.approx(monitor(setup["model"].uri, feats, log_run=False)["score"]["psi"], abs=1e-12)

    # files, and the run's record
    on_disk = json.loads((tmp_path / "val" / "validation.json").read_text(encoding="utf-8"))
    assert on_disk == {k: v for k, v in r.items() if k != "outputs"}
    html = (tmp_path / "val" / "validation.html").read_text(encoding="utf-8")
    assert '<section id="validation">' in html and "Pluto-Tasche" in html and "<script" not in html
    info = tracking.run_info(run_id)
    assert info["metrics"]["validation_oot_auc"] == pytest.approx(r["discrimination"]["auc"])
    assert info["metrics"]["validation_oot_verdict"] == {"green": 0, "yellow": 1, "red": 2}[r["verdict"]]
    assert info["tags"]["riskmodel.validation.oot"] == r["verdict"]
    assert sorted(a.path for a in tracking.client().list_artifacts(run_id, "validation/oot")) == ["validation/oot/validation.html", "validation/oot/validation.json"]

    # the readable summary
    code, out, err = cli("validate", "--run", run_id, "--no-log")
    assert code == (1 if r["verdict"] == "red" else 0), err
    assert f"verdict: {r['verdict'].upper()}" in out and "Jeffreys" in out and "Hosmer-Lemeshow" in out and "migration of" in out


def test_a_later_batch_counts_the_auc_change_and_reads_previous_scores(cli, setup, tmp_path):
    """The batch is every application from the cut on (some without an outcome yet): its labelled
    rows are the out-of-time rows, so the AUC equals the one logged at training and the ECB test
    statistic is 0; previous grades come from a scores file of the training window."""
    run_id, uri = setup["run_id"], setup["model"].uri
    m = setup["matrix"]
    later = m[pd.to_datetime(m[DATE]) >= setup["cut"]]
    earlier = m[pd.to_datetime(m[DATE]) < setup["cut"]]
    later.to_parquet(tmp_path / "batch.parquet", index=False)
    earlier.to_parquet(tmp_path / "earlier.parquet", index=False)
    setup["outcomes"].to_parquet(tmp_path / "outcomes.parquet", index=False)
    code, out, err = cli("score", "--model", uri, "--features", tmp_path / "earlier.parquet", "--out", tmp_path / "earlier_scores.parquet")
    assert code == 0, err

    code, out, err = cli("validate", "--model", uri, "--features", tmp_path / "batch.parquet", "--outcomes", tmp_path / "outcomes.parquet",
                         "--previous", tmp_path / "earlier_scores.parquet", "--json")
    r = json.loads(out)
    assert code == (1 if r["verdict"] == "red" else 0), err
    s = r["sample"]
    labelled = later[KEY].isin(setup["outcomes"][KEY].astype(str))
    assert s["kind"] == "batch" and s["labelled"] == s["rows"] == int(labelled.sum()) and s["without_outcome"] == int((~labelled).sum()) > 0
    assert s["outcomes_unmatched"] == len(setup["outcomes"]) - s["labelled"]
    info = tracking.run_info(run_id)
    t = r["discrimination"]["auc_vs_initial"]
    assert r["references"]["auc"]["metric"] == "test_auc" and t["in_verdict"] is True
    assert t["auc_initial"] == pytest.approx(info["metrics"]["test_auc"], abs=1e-12)
    assert t["statistic"] == pytest.approx(0, abs=1e-9) and t["p_value"] == pytest.approx(0.5, abs=1e-9)
    scored_before = set(pd.read_parquet(tmp_path / "earlier_scores.parquet")[FIRM].astype(str))
    assert r["migration"]["n_pairs"] == int(later.loc[labelled, FIRM].astype(str).isin(scored_before).sum()) > 0
    assert r["references"]["migration"]["source"].startswith("--previous")
    info = tracking.run_info(run_id)
    assert info["metrics"]["validation_batch_auc"] == pytest.approx(info["metrics"]["test_auc"])
    tag = f"validation/batch-{s['fingerprint']}"
    assert len(tracking.client().list_artifacts(run_id, tag)) == 2


def test_a_batch_with_more_defaults_than_the_pds_allow_is_red(cli, setup, tmp_path):
    m = setup["matrix"]
    later = m[pd.to_datetime(m[DATE]) >= setup["cut"]]
    later.to_parquet(tmp_path / "batch.parquet", index=False)
    rng = np.random.default_rng(0)
    worse = setup["outcomes"].assign(**{TARGET: np.where(rng.random(len(setup["outcomes"])) < 0.15, 1, setup["outcomes"][TARGET])})
    worse.to_parquet(tmp_path / "worse.parquet", index=False)
    code, out, err = cli("validate", "--model", setup["model"].uri, "--features", tmp_path / "batch.parquet", "--outcomes", tmp_path / "worse.parquet", "--no-log")
    assert code == 1, err
    assert "verdict: RED" in out and "red    Jeffreys test of the PD (ECB) (portfolio)" in out


def test_bad_input_is_one_line(cli, setup, tmp_path):
    uri = setup["model"].uri
    feats = tmp_path / "f.parquet"
    setup["matrix"].head(200).to_parquet(feats, index=False)
    outs = tmp_path / "o.parquet"
    cases = [
        (("validate",), "give exactly one of --run RUN_ID or --model URI"),
        (("validate", "--model", uri, "--features", feats), "needs both --features FILE and --outcomes FILE"),
        (("validate", "--model", uri, "--features", feats, "--outcomes", outs), "no such file"),
    ]
    for args, message in cases:
        code, out, err = cli(*args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
    o = setup["outcomes"]
    for frame, message in (
        (o.drop(columns=[TARGET]), f"required column {TARGET!r} is missing"),
        (o.assign(**{TARGET: 2}), "must be binary 0/1"),
        (o.assign(**{KEY: "X" + o[KEY].astype(str)}), "nothing to validate"),
        (pd.concat([o, o.head(1)]), "duplicate application_id"),
    ):
        frame.to_parquet(outs, index=False)
        code, out, err = cli("validate", "--model", uri, "--features", feats, "--outcomes", outs, "--no-log")
        assert code == 2 and message in err and "Traceback" not in err, (message, err)
    (tmp_path / "file").write_text("x")
    code, out, err = cli("validate", "--model", uri, "--out", tmp_path / "file", "--no-log")
    assert code != 0 and "is an existing file" in err


def test_a_bring_your_own_run_on_german_credit(cli, mlflow_store, tmp_path):
    """A BYO scorecard: its rows come back from the two tables the run recorded, the financial
    baseline trained on the same two tables is found, and the firms' migration is left out (no
    firm_id), with a note."""
    from riskmodel import creditdata
    from riskmodel.train import train_byo

    tr_path, te_path = creditdata.to_parquet_splits("german_credit", tmp_path)
    s = train_byo(tr_path, te_path, creditdata.TARGET, "scorecard", mlflow_store.experiment)
    base = train_byo(tr_path, te_path, creditdata.TARGET, "financial_baseline", mlflow_store.experiment)
    code, out, err = cli("validate", "--run", s["run_id"], "--json")
    r = json.loads(out)
    assert code == (1 if r["verdict"] == "red" else 0), err
    assert r["sample"]["rows"] == s["n_test"] == len(pd.read_parquet(te_path))
    assert r["discrimination"]["auc"] == pytest.approx(s["metrics"]["test_auc"], abs=1e-6)
    assert r["references"]["baseline"]["run_id"] == base["run_id"]
    assert r["migration"] is None and any(n.startswith("no migration") for n in r["notes"])
