"""Four `riskmodel train` processes against one SQLite tracking store at once: all finish, all four runs
are recorded, and the registered versions are 1..4 (tracking/store.py: file lock + WAL + retries)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N = 4


@pytest.mark.slow
def test_four_concurrent_trainings_share_one_sqlite_store(_migrated_store, tmp_path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlruns.db"
    shutil.copyfile(_migrated_store, db)
    uri = f"sqlite:///{db}"
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400), "cat": rng.choice(["a", "b", "c"], 400)})
    df["bad"] = (rng.random(400) < 1 / (1 + np.exp(-(df["x"] * 1.2 - 1.5)))).astype(int)
    df.iloc[:300].to_parquet(tmp_path / "train.parquet", index=False)
    df.iloc[300:].to_parquet(tmp_path / "test.parquet", index=False)
    exe = str(Path(sys.executable).with_name("riskmodel"))
    cmd = [exe, "train", "--features", str(tmp_path / "train.parquet"), "--test", str(tmp_path / "test.parquet"), "--target", "bad",
           "--model", "financial_baseline", "--experiment", "concurrent", "--json"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "RISKMODEL_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(N)]
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * N, [e[-2000:] for _, e in results]
    assert not any("Traceback" in e for _, e in results)
    summaries = [json.loads(o) for o, _ in results]
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == N and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.info.run_id for r in runs} == {s["run_id"] for s in summaries}
    assert sorted(int(s["registered_version"]) for s in summaries) == list(range(1, N + 1))
    versions = client.search_model_versions(f"name='{summaries[0]['registered_name']}'")
    assert {v.run_id for v in versions} == {s["run_id"] for s in summaries}  # each version carries its own run
    # Same data, same seed: the four runs agree on their metrics.
    assert len({round(s["metrics"]["test_auc"], 12) for s in summaries}) == 1
