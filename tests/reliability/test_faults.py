"""Faults: kill -9 in the middle of `riskmodel score`, a training run that fails inside MLflow, and an
output directory that cannot be written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


EXE = str(Path(sys.executable).with_name("riskmodel"))


def _env(champion) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": champion.store, "RISKMODEL_THREADS": "1", "CI": "1"}


@pytest.mark.slow
def test_kill_9_during_score_leaves_no_file_and_a_rerun_succeeds(champion, tmp_path):
    # A large-enough input: the hub's matrix repeated to ~60k rows with unique ids, scored in small chunks.
    m = champion.matrix
    reps = int(np.ceil(60_000 / len(m)))
    big = pd.concat([m] * reps, ignore_index=True)
    big["application_id"] = [f"K{i:07d}" for i in range(len(big))]
    src = tmp_path / "big.parquet"
    big.to_parquet(src, index=False, row_group_size=1_000)
    out = tmp_path / "scores.parquet"
    cmd = [EXE, "score", "--model", champion.uri, "--features", str(src), "--out", str(out), "--chunk-size", "1000", "--json"]
    proc = subprocess.Popen(cmd, env=_env(champion), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    tmp_files: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:  # wait until scores are being written
        tmp_files = [p for p in tmp_path.glob(".scores.parquet.*.tmp") if p.stat().st_size > 0]
        if tmp_files:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "scoring finished before it could be killed; make the input larger"
    assert tmp_files, "no temporary output appeared within 120 s"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and not (tmp_path / "scores.rejects.parquet").exists(), "partial file at the target path"
    # The rerun succeeds, accounts for every row and removes the killed run's temporary file.
    rerun = subprocess.run(cmd, env=_env(champion), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    s = json.loads(rerun.stdout)
    assert s["rows_in"] == len(big) == s["scored"] + s["rejected"] and s["rejected"] == 0
    assert len(pd.read_parquet(out)) == len(big)
    assert not list(tmp_path.glob(".scores.parquet.*.tmp")), sorted(p.name for p in tmp_path.iterdir())


def test_failed_training_run_is_marked_failed(cli, mlflow_store, tmp_path):
    """The artifact store breaks after the run has started: its location is under a regular file, so
    logging the model fails inside the run. The run must end FAILED, not stay RUNNING, and nothing is registered."""
    from riskmodel import tracking

    (tmp_path / "afile").write_text("not a directory")
    tracking.get_or_create_experiment("broken-artifacts", artifact_location=(tmp_path / "afile" / "artifacts").as_uri())
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    df["bad"] = (rng.random(300) < 1 / (1 + np.exp(-(df["x"] - 1.5)))).astype(int)
    df.iloc[:200].to_parquet(tmp_path / "tr.parquet", index=False)
    df.iloc[200:].to_parquet(tmp_path / "te.parquet", index=False)
    code, out, err = cli("train", "--features", tmp_path / "tr.parquet", "--test", tmp_path / "te.parquet", "--target", "bad",
                         "--model", "financial_baseline", "--experiment", "broken-artifacts")
    assert code != 0 and "Traceback" not in err, err
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")], err
    exp = tracking.client().get_experiment_by_name("broken-artifacts")
    runs = tracking.client().search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not [m for m in tracking.client().search_registered_models() if m.name.startswith("riskmodel-financial_baseline")]


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create files in.

    As a normal user, chmod 0555 does it. The test suite often runs as root, where permission bits do
    not stop writes (os.access says writable, and it is): then we use /proc/sys, a directory in which
    nobody, root included, can create a file (os.access(..., W_OK) is False there for root too)."""
    if os.geteuid() != 0:
        ro = tmp_path / "readonly"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    ro = Path("/proc/sys")
    if os.access(ro, os.W_OK):
        pytest.skip("running as root and /proc/sys is writable here: no directory is read-only for this process")
    return ro


NPL_CONFIG = Path(__file__).resolve().parents[2] / "riskmodel" / "scenarios" / "npl_tolerance.toml"


def _read_only_case(command: str, champion, tmp_path: Path, ro: Path) -> tuple[list, Path]:
    """The arguments of ``command`` with its output in ``ro``, and that output path. Models are
    unknown where the command would load one: reaching the model would say 'cannot load model'."""
    inp = tmp_path / "in.parquet"
    target = ro / ("out.parquet" if command in ("score", "features", "stress") else "out.md" if command == "catalog" else "out.sql" if command == "export" else "out")
    args = {
        "score": ["score", "--model", "models:/no-such-model@champion", "--features", inp, "--out", target],
        "features": ["features", "--data", champion.hub, "--out", target],
        "stress": ["stress", "--model", "models:/no-such-model@champion", "--data", champion.hub, "--scenario", "sector_downturn", "--out", target],
        "npl-tolerance": ["npl-tolerance", "--scores", inp, "--config", NPL_CONFIG, "--out", target],
        "report": ["report", "--run", "0123456789abcdef", "--out", target],
        "validate": ["validate", "--run", "0123456789abcdef", "--out", target],
        "export": ["export", "--model", "models:/no-such-model@champion", "--out", target],
        "catalog": ["catalog", "--out", target],
        "demo": ["demo", "--firms", "50", "--out", target, "--report-dir", tmp_path / "report"],
    }[command]
    return args, target


@pytest.mark.parametrize("command", ["score", "features", "stress", "npl-tolerance", "report", "validate", "export", "catalog", "demo"])
def test_read_only_output_directory_fails_before_any_work(cli, command, champion, tmp_path, monkeypatch):
    ro = _unwritable_dir(tmp_path)
    before = sorted(p.name for p in ro.iterdir())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.store)
    champion.matrix.head(50).to_parquet(tmp_path / "in.parquet", index=False)
    args, target = _read_only_case(command, champion, tmp_path, ro)
    t0 = time.perf_counter()
    code, out, err = cli(*args)
    wall = time.perf_counter() - t0
    assert code == 2 and "Traceback" not in err, err
    assert err.strip() == f"error: --out {target}: folder {ro} is not writable; choose another path", err
    assert wall < 5, "the error came after the work"
    assert sorted(p.name for p in ro.iterdir()) == before
    if ro.is_relative_to(tmp_path):
        ro.chmod(0o755)


def test_output_under_a_file_fails_before_any_work(cli, champion, tmp_path, monkeypatch):
    """Root-independent variant: the output's parent is a regular file."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.store)
    champion.matrix.head(20).to_parquet(tmp_path / "in.parquet", index=False)
    (tmp_path / "afile").write_text("x")
    for args in (["score", "--model", champion.uri, "--features", tmp_path / "in.parquet", "--out", tmp_path / "afile" / "s.parquet"],
                 ["features", "--data", champion.hub, "--out", tmp_path / "afile" / "f.parquet"]):
        t0 = time.perf_counter()
        code, out, err = cli(*args)
        assert code == 2 and "Traceback" not in err and err.startswith("error: ") and "afile" in err, err
        assert time.perf_counter() - t0 < 5, "the error came after the work"
