"""Shared fixtures.

MLflow: migrating a fresh SQLite tracking store takes seconds, so one store is migrated per test
session and its file is copied for every test that asks for ``mlflow_store``; the test gets its own
``MLFLOW_TRACKING_URI`` and an experiment whose artifacts live in the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("RISKMODEL_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _cli_log_dir(tmp_path_factory) -> Path:
    """CLI runs in tests (in-process or subprocesses) write their log files here, not into ~/.local/state."""
    path = tmp_path_factory.mktemp("cli-logs")
    mp = pytest.MonkeyPatch()
    mp.setenv("RISKMODEL_LOG_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory) -> Path:
    """A migrated, empty SQLite tracking store (created once per session)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlruns.db"
    uri = f"sqlite:///{path}"
    c = MlflowClient(uri, registry_uri=uri)
    c.search_experiments(max_results=1)  # runs the tracking schema migrations
    c.search_registered_models(max_results=1)  # and the registry's
    return path


class Store:
    """A per-test MLflow store: ``uri``, ``experiment`` (name) and ``artifacts`` (dir)."""

    def __init__(self, uri: str, db: Path, experiment: str, artifacts: Path):
        self.uri, self.db, self.experiment, self.artifacts = uri, db, experiment, artifacts


@pytest.fixture
def mlflow_store(_migrated_store, tmp_path, monkeypatch, request) -> Store:
    """A private copy of the migrated store, set as MLFLOW_TRACKING_URI, with a per-test experiment."""
    from riskmodel import tracking

    db = tmp_path / "mlruns.db"
    shutil.copyfile(_migrated_store, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    name = "test-" + request.node.name.replace("[", "-").replace("]", "")[:80]
    tracking.get_or_create_experiment(name, artifact_location=artifacts.as_uri())
    yield Store(uri, db, name, artifacts)
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run(status="KILLED")


@pytest.fixture(scope="session")
def small_hub(tmp_path_factory) -> Path:
    """A small generated data hub (1,500 firms, seed 11), generated once per session. Treat as read-only;
    copy it before writing into it."""
    from synthetic import GeneratorParams, generate

    out = tmp_path_factory.mktemp("hub") / "small"
    generate(GeneratorParams(firms=1500, seed=11), out)
    return out


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(*args)`` runs ``riskmodel ARGS`` in-process through ``riskmodel.cli.main`` and returns
    ``(exit code, stdout, stderr)``. Any exception other than SystemExit escapes: that is a
    traceback the user would see."""
    import sys

    from riskmodel.cli import main

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["riskmodel", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
