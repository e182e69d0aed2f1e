"""The tracking store: damaged, unreachable, left with runs a killed process never ended; and
``riskmodel doctor``, which checks and repairs it.

Every failure here must be one line naming the store and what to do, quickly: a damaged
``mlruns.db`` used to print a 318-line traceback, and an ``http://`` store that does not answer kept
a command in MLflow's retries for four minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from riskmodel.tracking.runs import ENDED_TAG, PROCESS_TAG, process_identity


def _damage(db: Path, how: str) -> None:
    if how == "garbage":
        db.write_bytes(os.urandom(40_000))
    elif how == "text":
        db.write_text("this is not a database\n")
    elif how == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("how", ["garbage", "text", "truncated"])
@pytest.mark.parametrize("command", ["compare", "promote", "score"])
def test_a_damaged_store_is_one_line_naming_the_file(cli, mlflow_store, tmp_path, monkeypatch, how, command):
    from riskmodel.tracking import store

    monkeypatch.setattr(store, "_prepared", set())  # this process has not opened the store yet
    _damage(mlflow_store.db, how)
    args = {
        "compare": ["compare", "--experiment", "x"],
        "promote": ["promote", "--name", "m", "--version", "1"],
        "score": ["score", "--model", "models:/m@champion", "--features", tmp_path / "f.parquet", "--out", tmp_path / "s.parquet"],
    }[command]
    if command == "score":
        import pandas as pd

        pd.DataFrame({"application_id": ["A1"], "x": [1.0]}).to_parquet(tmp_path / "f.parquet")
    t0 = time.perf_counter()
    code, out, err = cli(*args)
    assert time.perf_counter() - t0 < 10
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tracking store "), err
    assert str(mlflow_store.db) in err and "move it aside" in err and ".broken" in err
    assert not (tmp_path / "s.parquet").exists()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("command", ["compare", "train"])
def test_a_server_that_does_not_answer_fails_fast_with_exit_75(cli, monkeypatch, tmp_path, small_hub, command):
    from riskmodel.tracking import store

    monkeypatch.setattr(store, "_prepared", set())
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = ["compare", "--experiment", "x"] if command == "compare" else ["train", "--data", small_hub, "--model", "financial_baseline"]
    t0 = time.perf_counter()
    code, out, err = cli(*args)
    assert time.perf_counter() - t0 < 30  # MLflow's own retries took about four minutes
    assert code == 75, err
    assert len(err.strip().splitlines()) == 1 and f"tracking server {uri} does not answer" in err and "MLFLOW_TRACKING_URI" in err


def test_http_retry_settings_are_bounded_but_overridable(monkeypatch):
    from riskmodel.tracking import store

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")  # a user's own choice wins
    store.configure()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == store.HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("latest", r"--alias 'latest' is reserved by MLflow"),
        ("v1", r"--alias 'v1' is reserved by MLflow"),
        ("a/b", r"--alias 'a/b' is not a valid alias: use 1 to 255 letters, digits, '_' or '-'"),
        ("", r"--alias an empty name is not a valid alias"),
        ("champion x", r"--alias 'champion x' is not a valid alias"),
    ],
)
def test_alias_names_are_checked_before_mlflow(cli, mlflow_store, alias, message):
    import re

    code, out, err = cli("promote", "--name", "riskmodel-scorecard", "--version", "1", "--alias", alias)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_a_version_that_is_not_a_number_is_refused(cli, mlflow_store):
    code, out, err = cli("promote", "--name", "riskmodel-scorecard", "--version", "abc")
    assert code == 2 and "--version 'abc' is not a version number" in err


# ---- runs left RUNNING ----------------------------------------------------------------------


def _running_run(experiment: str, identity: str | None, start_ms: int | None = None) -> str:
    from riskmodel import tracking

    c = tracking.client()
    exp = tracking.get_or_create_experiment(experiment)
    tags = {PROCESS_TAG: identity} if identity else {}
    run = c.create_run(exp, start_time=start_ms, tags=tags)
    return run.info.run_id


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # exited and reaped: no process has this pid now (reuse within the test is unlikely; checked below)


def test_a_run_whose_process_is_gone_ends_failed_at_the_next_start(mlflow_store):
    from riskmodel import tracking

    pid = _dead_pid()
    assert not Path(f"/proc/{pid}").exists()
    dead = _running_run(mlflow_store.experiment, f"{socket.gethostname()}:{pid}:123")
    alive = _running_run(mlflow_store.experiment, process_identity())  # this process: still running
    elsewhere = _running_run(mlflow_store.experiment, "another-host:1:1")  # cannot tell from here
    with tracking.training_run(mlflow_store.experiment) as run:  # the next start reaps
        pass
    c = tracking.client()
    assert c.get_run(dead).info.status == "FAILED"
    assert "is gone" in c.get_run(dead).data.tags[ENDED_TAG]
    assert c.get_run(alive).info.status == "RUNNING"
    assert c.get_run(elsewhere).info.status == "RUNNING"
    assert c.get_run(run.run_id).info.status == "FINISHED"
    assert c.get_run(run.run_id).data.tags[PROCESS_TAG] == process_identity()


def test_kill_9_during_a_run_then_doctor(cli, mlflow_store, tmp_path):
    """A real process opens a run and is killed with SIGKILL; `riskmodel doctor --dry-run` reports it
    and changes nothing, `riskmodel doctor` marks it FAILED and says so."""
    from riskmodel import tracking

    code = (
        "import sys, time\n"
        "from riskmodel import tracking\n"
        f"with tracking.training_run({mlflow_store.experiment!r}) as run:\n"
        "    print(run.run_id, flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_store.uri)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    run_id = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    assert tracking.client().get_run(run_id).info.status == "RUNNING"
    code, out, err = cli("doctor", "--dry-run", "--json")
    r = json.loads(out)
    assert code == 0 and r["status"] == "would_repair", out
    assert any(f["check"] == "runs" and run_id in f["detail"] and f["status"] == "would_repair" for f in r["findings"])
    assert tracking.client().get_run(run_id).info.status == "RUNNING"  # a dry run changes nothing
    code, out, err = cli("doctor")
    assert code == 0 and f"marked run {run_id} FAILED" in out and "status: REPAIRED" in out, out
    assert tracking.client().get_run(run_id).info.status == "FAILED"
    code, out, err = cli("doctor")
    assert code == 0 and "status: OK" in out


def test_doctor_fails_stale_runs_of_unknown_origin(cli, mlflow_store):
    from riskmodel import tracking

    old = _running_run(mlflow_store.experiment, None, start_ms=int((time.time() - 3 * 86400) * 1000))
    young = _running_run(mlflow_store.experiment, None)
    code, out, err = cli("doctor", "--stale-hours", "48")
    assert code == 0, out + err
    c = tracking.client()
    assert c.get_run(old).info.status == "FAILED" and "longer than 48 h" in c.get_run(old).data.tags[ENDED_TAG]
    assert c.get_run(young).info.status == "RUNNING"


# ---- doctor on the store itself --------------------------------------------------------------


def test_doctor_switches_on_wal(cli, _migrated_store, tmp_path, monkeypatch):
    from riskmodel.tracking import store

    db = tmp_path / "mlruns.db"
    shutil.copyfile(_migrated_store, db)  # migrated by MLflow, never opened by riskmodel: rollback journal
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setattr(store, "_prepared", set())
    code, out, err = cli("doctor", "--dry-run")
    assert code == 0 and "would switch to WAL" in out and "status: WOULD_REPAIR" in out, out
    assert store._journal_mode(db) == "delete"
    code, out, err = cli("doctor")
    assert code == 0 and "journal mode switched to wal" in out, out
    assert store._journal_mode(db) == "wal"


def test_doctor_on_a_store_that_does_not_exist_creates_nothing(cli, tmp_path, monkeypatch):
    """A mistyped store path is reported, not turned into a new empty store that passes as ok."""
    db = tmp_path / "typo" / "mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    code, out, err = cli("doctor")
    assert code == 0 and "does not exist yet" in out and "check MLFLOW_TRACKING_URI for a typo" in out, out
    assert not db.exists() and not db.parent.exists()


def test_doctor_deletes_an_alias_to_a_missing_version_and_reports_missing_files(cli, mlflow_store):
    from riskmodel import tracking

    c = tracking.client()
    c.create_registered_model("m")
    c.create_model_version("m", source=(mlflow_store.artifacts / "x").as_uri())
    c.set_registered_model_alias("m", "champion", "1")
    con = sqlite3.connect(mlflow_store.db, timeout=30)
    con.execute("INSERT INTO registered_model_aliases (alias, version, name) VALUES ('ghost', 7, 'm')")
    con.commit()
    con.close()
    code, out, err = cli("doctor", "--dry-run", "--json")
    r = json.loads(out)
    assert code == 1 and r["status"] == "problem"  # the champion's model files are missing: a person must act
    details = " | ".join(f["detail"] for f in r["findings"])
    assert "m@ghost -> version 7: the version does not exist; would delete the alias" in details
    assert "m@champion -> version 1: its model files are missing; promote another version" in details
    code, out, err = cli("doctor")
    assert code == 1 and "alias deleted" in out and "status: PROBLEM" in out
    con = sqlite3.connect(mlflow_store.db)
    assert con.execute("SELECT count(*) FROM registered_model_aliases WHERE alias = 'ghost'").fetchone()[0] == 0
    con.close()


def test_doctor_on_a_damaged_store_says_what_to_do(cli, mlflow_store, monkeypatch):
    from riskmodel.tracking import store

    monkeypatch.setattr(store, "_prepared", set())
    _damage(mlflow_store.db, "truncated")
    code, out, err = cli("doctor")
    assert code == 1 and "problem" in out and "is not a usable SQLite database" in out and "mv " in out


def test_doctor_cleans_the_feature_cache(cli, mlflow_store, trained_model, tmp_path):
    """Stale and corrupt cache entries and a killed writer's temporary file are removed; the
    current entry stays, and training still hits it afterwards."""
    model = trained_model("scorecard", name="reliability-scorecard", experiment="reliability")
    hub = tmp_path / "hub"
    shutil.copytree(model.hub, hub)
    cache = hub / "cache"
    current = sorted(cache.glob("features-*.parquet"))
    assert len(current) == 1
    (cache / "features-0000000000000000-0000000000000000.parquet").write_bytes(b"stale")
    (cache / ".features-x.parquet.abc123.tmp").write_bytes(b"partial")
    code, out, err = cli("doctor", "--data", hub, "--dry-run")
    assert "would remove" in out and (cache / ".features-x.parquet.abc123.tmp").exists()
    code, out, err = cli("doctor", "--data", hub)
    assert code == 0 and "stale:" in out and "left behind by a writer that was killed" in out, out
    assert sorted(p.name for p in cache.iterdir() if p.suffix in (".parquet", ".tmp")) == [current[0].name]
    current[0].write_bytes(b"corrupt")
    code, out, err = cli("doctor", "--data", hub)
    assert code == 0 and "corrupt:" in out and not current[0].exists()
