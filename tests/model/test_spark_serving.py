"""The same registered model on Spark (local mode) and behind `mlflow models serve`.

Both start real processes (a JVM; a uvicorn server), so they are marked slow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel.scoring import score

pytestmark = pytest.mark.slow


@pytest.fixture
def model(trained_model):
    """A scorecard trained and promoted to champion in a private store (once per session)."""
    return trained_model("scorecard", name="serve-scorecard", experiment="serve")


def test_spark_and_pandas_paths_give_identical_outputs(model, tmp_path, monkeypatch):
    from riskmodel.spark import score_spark

    uri, matrix = model.uri, model.matrix
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    m = pd.concat([matrix, matrix.head(2)], ignore_index=True)  # two duplicate ids
    m["firm_size_headcount"] = m["firm_size_headcount"].astype(object)
    m.loc[5, "firm_size_headcount"] = "n/a"  # a string in a numeric column
    m["firm_size_headcount"] = m["firm_size_headcount"].astype(str).replace({"nan": None})
    m.to_parquet(tmp_path / "in.parquet", row_group_size=400)

    p = score(uri, tmp_path / "pandas.parquet", features=tmp_path / "in.parquet", chunk_size=300)
    s = score_spark(uri, tmp_path / "in.parquet", tmp_path / "spark.parquet")
    assert (s.rows_in, s.scored, s.rejected) == (p.rows_in, p.scored, p.rejected) == (len(m), len(m) - 3, 3)
    assert s.rejects_by_reason == p.rejects_by_reason == {"NOT_NUMERIC": 1, "DUPLICATE_ID": 2}

    a = pd.read_parquet(tmp_path / "pandas.parquet")
    b = pd.read_parquet(tmp_path / "spark.parquet")
    assert list(a.columns) == list(b.columns)
    assert a["application_id"].tolist() == b["application_id"].astype(str).tolist()
    np.testing.assert_allclose(a["pd"].to_numpy(), b["pd"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-12)
    for col in [c for c in a.columns if c.startswith("reason_") or c in ("grade", "model_name", "model_version")]:
        assert a[col].astype("string").fillna("").tolist() == b[col].astype("string").fillna("").tolist(), col
    ra = pd.read_parquet(tmp_path / "pandas.rejects.parquet")
    rb = pd.read_parquet(tmp_path / "spark.rejects.parquet")
    assert ra["row"].tolist() == rb["row"].tolist() and ra["reject_code"].tolist() == rb["reject_code"].astype(str).tolist()


def test_spark_path_with_every_row_rejected(model, tmp_path, monkeypatch):
    """No row left to score: an empty scores file with the scoring columns, every row a reject."""
    from riskmodel.spark import score_spark

    uri, matrix = model.uri, model.matrix
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    m = matrix.head(40).copy()
    m["firm_size_headcount"] = -1.0  # cannot be negative
    m.to_parquet(tmp_path / "in.parquet")
    s = score_spark(uri, tmp_path / "in.parquet", tmp_path / "spark.parquet")
    assert (s.rows_in, s.scored, s.rejected) == (40, 0, 40) and s.rejects_by_reason == {"OUT_OF_RANGE": 40}
    scores = pd.read_parquet(tmp_path / "spark.parquet")
    assert len(scores) == 0 and {"pd", "score", "grade", "reason_1_zh"} <= set(scores.columns)
    assert pd.read_parquet(tmp_path / "spark.rejects.parquet")["row"].tolist() == list(range(40))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_two_rows(model, tmp_path):
    uri, matrix = model.uri, model.matrix
    from riskmodel import tracking

    bindir = str(Path(sys.executable).parent)  # mlflow execs uvicorn from PATH: use the venv's
    env = {**os.environ, "MLFLOW_TRACKING_URI": model.store, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    try:
        cm, name, version = tracking.load_credit_model(uri)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", uri, "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        else:
            pytest.fail("mlflow models serve did not answer /ping within 120 s")
        rows = matrix.head(2)[cm.features]
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        got = pd.DataFrame(answer["predictions"])
        expected = cm.predict(rows)
        assert len(got) == 2
        np.testing.assert_allclose(got["pd"].to_numpy(float), expected["pd"].to_numpy(float), rtol=1e-9)
        assert got["grade"].tolist() == expected["grade"].astype(str).tolist()
        assert got["reason_1"].tolist() == expected["reason_1"].astype(str).tolist()
        assert got["model_name"].tolist() == [name, name] and got["model_version"].tolist() == [version, version]
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
