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


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module's Spark tests."""
    from riskmodel.spark import spark_session

    session = spark_session(app_name="riskmodel-spark-scoring-test")
    yield session
    session.stop()


def _messy(matrix: pd.DataFrame) -> pd.DataFrame:
    """The feature rows with two duplicate ids (at the end) and a string in a numeric column."""
    m = pd.concat([matrix, matrix.head(2)], ignore_index=True)
    m["firm_size_headcount"] = m["firm_size_headcount"].astype(object)
    m.loc[5, "firm_size_headcount"] = "twelve"  # text, not a missing-value token such as "n/a"
    m["firm_size_headcount"] = m["firm_size_headcount"].astype(str).replace({"nan": None})
    return m


def _assert_same_outputs(pandas_scores: Path, spark_scores: Path, pandas_rejects: Path, spark_rejects: Path) -> None:
    """The Spark folders hold the pandas files' rows, in the same order, with the same values."""
    a, b = pd.read_parquet(pandas_scores), pd.read_parquet(spark_scores)
    assert list(a.columns) == list(b.columns)
    assert a["application_id"].tolist() == b["application_id"].astype(str).tolist()
    assert a["firm_id"].astype(str).tolist() == b["firm_id"].astype(str).tolist()
    assert (a["application_date"] == b["application_date"]).all()
    np.testing.assert_allclose(a["pd"].to_numpy(), b["pd"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-12)
    for col in [c for c in a.columns if c.startswith("reason_") or c in ("grade", "model_name", "model_version")]:
        assert a[col].astype("string").fillna("").tolist() == b[col].astype("string").fillna("").tolist(), col
    ra, rb = pd.read_parquet(pandas_rejects), pd.read_parquet(spark_rejects)
    assert list(ra.columns) == list(rb.columns)
    for col in ra.columns:
        assert ra[col].astype(str).tolist() == rb[col].astype(str).tolist(), col


def test_spark_and_pandas_paths_give_identical_outputs(model, spark, tmp_path, monkeypatch):
    from riskmodel.spark import score_spark

    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    m = _messy(model.matrix)
    m.to_parquet(tmp_path / "in.parquet", row_group_size=400)  # many row groups: one task each

    p = score(model.uri, tmp_path / "pandas.parquet", features=tmp_path / "in.parquet", chunk_size=300)
    s = score_spark(model.uri, tmp_path / "in.parquet", tmp_path / "spark.parquet", spark=spark)
    assert (s.rows_in, s.scored, s.rejected) == (p.rows_in, p.scored, p.rejected) == (len(m), len(m) - 3, 3), (s.rejects_by_reason, p.rejects_by_reason)
    assert s.rejects_by_reason == p.rejects_by_reason == {"NOT_NUMERIC": 1, "DUPLICATE_ID": 2}
    # the JSON summary: the same fields with the same meaning
    assert s.to_dict().keys() == p.to_dict().keys()
    assert s.grade_counts == p.grade_counts and sum(s.grade_counts.values()) == s.scored
    assert s.mean_pd == pytest.approx(p.mean_pd, rel=1e-12)
    assert s.extra_columns == p.extra_columns
    assert len(list((tmp_path / "spark.parquet").glob("part-*.parquet"))) > 1
    _assert_same_outputs(tmp_path / "pandas.parquet", tmp_path / "spark.parquet", tmp_path / "pandas.rejects.parquet", tmp_path / "spark.rejects.parquet")


def _pandas_reference(model, m: pd.DataFrame, tmp_path: Path) -> tuple[Path, Path]:
    m.to_parquet(tmp_path / "ref-in.parquet")
    score(model.uri, tmp_path / "ref.parquet", features=tmp_path / "ref-in.parquet", chunk_size=1000)
    return tmp_path / "ref.parquet", tmp_path / "ref.rejects.parquet"


def _folders(tmp_path: Path, name: str) -> tuple[Path, Path]:
    a, b = tmp_path / f"{name}-scores", tmp_path / f"{name}-rejects"
    a.mkdir()
    b.mkdir()
    return a, b


def test_one_row_group_is_cut_across_tasks_in_order(model, spark, tmp_path, monkeypatch):
    """A file with a single row group still keeps every core busy: its batches are shared out in runs."""
    from riskmodel import spark as rs
    from riskmodel import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    monkeypatch.setattr(rs, "MIN_TASK_ROWS", 200)
    m = _messy(model.matrix)
    m.loc[len(m) // 2 + 7, "application_id"] = m.loc[3, "application_id"]  # a repeat far from its first row
    ref, ref_rej = _pandas_reference(model, m, tmp_path)
    m.to_parquet(tmp_path / "one.parquet", row_group_size=len(m))
    cm, name, version = tracking.load_credit_model(model.uri)
    scores_dir, rejects_dir = _folders(tmp_path, "cut")
    rows_in, counts, _ = rs.score_file(spark, tmp_path / "one.parquet", cm, scores_dir, rejects_dir, name, version, batch_rows=250)
    assert rows_in == counts.rows_in == len(m) and counts.rejects_by_reason == {"NOT_NUMERIC": 1, "DUPLICATE_ID": 3}
    assert len(list(scores_dir.glob("part-*.parquet"))) == spark.sparkContext.defaultParallelism > 1
    _assert_same_outputs(ref, scores_dir, ref_rej, rejects_dir)


@pytest.mark.parametrize("numbering", ["row_index", "partition_order", "one_partition"])
def test_score_dataframe_numbers_rows_and_keeps_the_order(model, spark, tmp_path, monkeypatch, numbering):
    """A DataFrame in a Spark job: rows numbered by Spark's row index, by partition order (no row
    column), or, for an input with fewer partitions than cores, cut into row ranges (a shuffle)."""
    from riskmodel import spark as rs
    from riskmodel import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    m = _messy(model.matrix)
    ref, ref_rej = _pandas_reference(model, m, tmp_path)
    cm, name, version = tracking.load_credit_model(model.uri)
    m.to_parquet(tmp_path / "in.parquet", row_group_size=500)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "256k")  # several partitions from one file
    try:
        sdf = rs.read_features(spark, tmp_path / "in.parquet")
        row = rs.ROW
        if numbering == "partition_order":
            sdf, row = sdf.drop(rs.ROW), None
            assert sdf.rdd.getNumPartitions() > 1
        elif numbering == "one_partition":
            monkeypatch.setattr(rs, "MIN_TASK_ROWS", 200)
            sdf = sdf.coalesce(1)
        scores_dir, rejects_dir = _folders(tmp_path, numbering)
        rows_in, counts, extra = rs.score_dataframe(sdf, cm, scores_dir, rejects_dir, name, version, row=row)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert rows_in == counts.rows_in == counts.scored + 3 == len(m)
    assert len(list(scores_dir.glob("part-*.parquet"))) > 1
    _assert_same_outputs(ref, scores_dir, ref_rej, rejects_dir)


def test_spark_path_with_every_row_rejected(model, spark, tmp_path, monkeypatch):
    """No row left to score: an empty scores folder with the scoring columns, every row a reject."""
    from riskmodel.spark import score_spark

    uri, matrix = model.uri, model.matrix
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    m = matrix.head(40).copy()
    m["firm_size_headcount"] = -1.0  # cannot be negative
    m.to_parquet(tmp_path / "in.parquet")
    s = score_spark(uri, tmp_path / "in.parquet", tmp_path / "spark.parquet", spark=spark)
    assert (s.rows_in, s.scored, s.rejected) == (40, 0, 40) and s.rejects_by_reason == {"OUT_OF_RANGE": 40}
    assert s.grade_counts == {} and s.mean_pd is None
    scores = pd.read_parquet(tmp_path / "spark.parquet")
    assert len(scores) == 0 and {"pd", "score", "grade", "reason_1_zh"} <= set(scores.columns)
    assert pd.read_parquet(tmp_path / "spark.rejects.parquet")["row"].tolist() == list(range(40))


def test_spark_path_with_an_unknown_model_writes_nothing(model, spark, tmp_path, monkeypatch):
    """The repeated-id job runs while the model loads; a model that cannot load stops it, leaves no
    output behind, and the session goes on working."""
    from riskmodel.errors import ScoringError
    from riskmodel.spark import score_spark

    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    model.matrix.head(50).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(ScoringError, match=r"cannot load model 'models:/no-such-model/1'"):
        score_spark("models:/no-such-model/1", tmp_path / "in.parquet", tmp_path / "out.parquet", spark=spark)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
    assert spark.range(3).count() == 3


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
