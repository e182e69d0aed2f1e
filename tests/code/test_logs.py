"""Logging of a CLI run (riskmodel.logs): where the log file goes, what reaches the terminal, pruning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from riskmodel import logs


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for k in (logs.LOG_DIR_ENV, "XDG_STATE_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield tmp_path
    logs.close_cli()


def test_log_dir_order_env_then_xdg_then_home(clean_env, monkeypatch):
    tmp = clean_env
    assert logs.log_dir() == tmp / "home" / ".local" / "state" / "riskmodel" / "logs"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # the XDG spec: ignore relative paths
    assert logs.log_dir() == tmp / "home" / ".local" / "state" / "riskmodel" / "logs"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp / "state"))
    assert logs.log_dir() == tmp / "state" / "riskmodel" / "logs"
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(tmp / "mine"))
    assert logs.log_dir() == tmp / "mine" and (tmp / "mine").is_dir()


def test_unusable_dirs_fall_back_and_say_so(clean_env, monkeypatch, capsys):
    tmp = clean_env
    (tmp / "afile").write_text("x")
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(tmp / "afile" / "logs"))  # below a file: cannot be created
    (tmp / "home").write_text("not a directory")  # ~/.local/state cannot be created either
    path = logs.setup_cli("test")
    assert path is not None and path.parent == logs.log_dir_candidates()[-1]  # <temp dir>/riskmodel-logs-<uid>
    err = capsys.readouterr().err
    assert f"WARNING riskmodel.logs: {logs.LOG_DIR_ENV}={tmp / 'afile' / 'logs'} is not a writable directory; the log file is {path}" in err
    logs.close_cli()
    path.unlink()


def test_terminal_shows_our_lines_file_gets_all_verbose_shows_all(clean_env, monkeypatch, capsys):
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(clean_env / "logs"))
    path = logs.setup_cli("test", verbose=False)
    logging.getLogger("riskmodel.something").warning("ours %d", 1)
    logging.getLogger("features.privacy").info("ours, info")
    logging.getLogger("mlflow.pyfunc").warning("a library warning")
    logging.getLogger("mlflow.pyfunc").info("a library info")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")  # statement echo stays off
    err = capsys.readouterr().err
    assert err == "WARNING riskmodel.something: ours 1\n"
    logs.close_cli()
    text = path.read_text(encoding="utf-8")
    for line in ("WARNING riskmodel.something: ours 1", "INFO features.privacy: ours, info", "WARNING mlflow.pyfunc: a library warning", "INFO mlflow.pyfunc: a library info"):
        assert line in text
    assert "SELECT 1" not in text

    logs.setup_cli("test", verbose=True)
    logging.getLogger("mlflow.pyfunc").info("a library info")
    logging.getLogger("riskmodel.x").info("ours, info")
    err = capsys.readouterr().err
    assert "INFO mlflow.pyfunc: a library info\n" in err and "INFO riskmodel.x: ours, info\n" in err


def test_setup_is_idempotent_and_releases_mlflow_handlers(clean_env, monkeypatch):
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(clean_env / "logs"))
    mlflow_logger = logging.getLogger("mlflow")
    monkeypatch.setattr(mlflow_logger, "handlers", [logging.StreamHandler(sys.stderr)])  # as mlflow installs at import
    monkeypatch.setattr(mlflow_logger, "propagate", False)
    monkeypatch.setitem(sys.modules, "mlflow", sys.modules.get("mlflow") or object())
    first = logs.setup_cli("one")
    second = logs.setup_cli("two")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_riskmodel_cli_handler", False)]
    assert len(ours) == 2 and logs.current_log_file() == second != first
    assert mlflow_logger.handlers == [] and mlflow_logger.propagate is True
    assert os.environ["MLFLOW_CONFIGURE_LOGGING"] == "false"
    logs.close_cli()
    assert logs.current_log_file() is None


def test_keeps_only_the_newest_log_files(clean_env, monkeypatch):
    d = clean_env / "logs"
    d.mkdir()
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(d))
    now = time.time()
    for i in range(8):
        p = d / f"riskmodel-2020010{i}-000000-old-{i}.log"
        p.write_text("old")
        os.utime(p, (now - 1000 + i, now - 1000 + i))
    (d / "notes.txt").write_text("not a log")
    path = logs.setup_cli("new", keep=3)
    kept = sorted(p.name for p in d.glob("riskmodel-*.log"))
    assert kept == sorted([path.name, "riskmodel-20200107-000000-old-7.log", "riskmodel-20200106-000000-old-6.log"])
    assert (d / "notes.txt").is_file()


def test_python_warnings_go_to_the_file_only(tmp_path):
    """In a fresh process (pytest manages warnings in its own): a library's warnings.warn is logged, not printed."""
    code = ("import warnings; from riskmodel.logs import setup_cli; p = setup_cli('t'); "
            "warnings.warn('careful with this', UserWarning); print(p)")
    env = {**os.environ, logs.LOG_DIR_ENV: str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = Path(proc.stdout.strip()).read_text(encoding="utf-8")
    assert "WARNING py.warnings:" in text and "careful with this" in text


def test_cli_errors_and_crashes_are_recorded_in_the_log_file(cli, mlflow_store, monkeypatch, tmp_path):
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(tmp_path / "logs"))
    code, out, err = cli("compare", "--experiment", "nope")
    assert code == 2 and err.startswith("error: experiment 'nope' does not exist")
    (first,) = (tmp_path / "logs").glob("riskmodel-*-compare-*.log")
    assert "ERROR riskmodel.cli: error: experiment 'nope' does not exist" in first.read_text(encoding="utf-8")

    from riskmodel import tracking

    def boom(*a, **k):
        raise RuntimeError("boom: a bug")

    monkeypatch.setattr(tracking, "compare", boom)
    code, out, err = cli("compare", "--experiment", "x")
    assert logs.current_log_file() is None  # the run's handlers are closed even when it crashes
    (crash,) = set((tmp_path / "logs").glob("riskmodel-*-compare-*.log")) - {first}
    # one line: the command, that it is a bug, and where the traceback is; no traceback on the terminal
    assert code == 70 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: riskmodel compare failed unexpectedly (RuntimeError: boom: a bug); this is a bug in riskmodel")
    assert f"the traceback is in {crash}" in err
    text = crash.read_text(encoding="utf-8")
    assert "CRITICAL riskmodel.cli: unexpected error (a bug in riskmodel) in riskmodel compare" in text and "Traceback" in text and "RuntimeError: boom: a bug" in text


@pytest.mark.parametrize("preset,expected", [(None, "PASSIVE"), ("active", "active")])
def test_the_command_makes_openmp_threads_wait_passively_unless_told_otherwise(tmp_path, preset, expected):
    """Set at the start of a `riskmodel` run, before LightGBM loads (riskmodel.config.openmp_defaults)."""
    code = ("import os, sys; sys.argv = ['riskmodel', 'catalog', '--format', 'csv']; from riskmodel.cli import main; main(); "
            "print('OMP', os.environ.get('OMP_WAIT_POLICY'), 'lightgbm' in sys.modules, file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {logs.LOG_DIR_ENV: str(tmp_path)}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"OMP {expected} False"
