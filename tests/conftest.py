"""Shared fixtures.

MLflow: migrating a fresh SQLite tracking store takes seconds, so one store is migrated per test
session and its file is copied for every test that asks for ``mlflow_store``; the test gets its own
``MLFLOW_TRACKING_URI`` and an experiment whose artifacts live in the test's tmp dir.
``trained_model(...)`` gives a model trained once per session on a copy of the small hub, in a
private store of its own.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
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
    """A small generated data hub (1,500 firms, seed 11, every application granted), generated once
    per session. Treat as read-only; copy it before writing into it.

    Approval policy ``none``: the tests built on it check training, scoring and monitoring on a book
    whose outcomes cover every applicant (with the default policy the training reference is the
    approved book, and the hub's own applications, rejected ones included, drift from it by design).
    ``policy_hub`` is the same world under the default policy."""
    from synthetic import GeneratorParams, generate

    out = tmp_path_factory.mktemp("hub") / "small"
    generate(GeneratorParams(firms=1500, seed=11, approval_policy="none"), out)
    return out


@pytest.fixture(scope="session")
def policy_hub(tmp_path_factory) -> Path:
    """A generated data hub under the default approval policy (``traditional``): 4,000 firms, seed 7;
    only approved applications have outcomes. Treat as read-only."""
    from synthetic import GeneratorParams, generate

    out = tmp_path_factory.mktemp("hub") / "policy"
    generate(GeneratorParams(firms=4000, seed=7), out)
    return out


@dataclass
class TrainedModel:
    """A model trained on a copy of the session's small hub, in a private MLflow store of its own."""

    uri: str  # models:/NAME@champion when promoted, else the registered version (models:/NAME/1)
    store: str  # sqlite:///.../mlruns.db: set it as MLFLOW_TRACKING_URI to reach the model
    root: Path  # holds the store, the artifacts and the hub copy
    hub: Path  # the hub copy, with the feature cache training wrote
    matrix: pd.DataFrame  # the hub's feature matrix (a valid scoring input)
    summary: dict  # the training summary


@pytest.fixture(scope="session")
def trained_model(small_hub, _migrated_store, tmp_path_factory):
    """``trained_model(model="scorecard", *, name=None, experiment="trained", promote=True, params=None)``: the
    :class:`TrainedModel` for these arguments, trained on the first call and reused by every later
    call in the session (``name``: the registered name, default ``riskmodel-<model>``; ``promote``:
    set the champion alias; ``params``: the estimator's parameters). Each distinct set of arguments gets its own store, so a test module
    that writes to its store (monitoring runs, new versions) does not disturb another's. Treat the
    hub copy as read-only."""
    from riskmodel import tracking
    from riskmodel.train import train_generated

    made: dict[tuple, TrainedModel] = {}

    def make(model: str = "scorecard", *, name: str | None = None, experiment: str = "trained", promote: bool = True,
             params: dict | None = None) -> TrainedModel:
        key = (model, name, experiment, promote, tuple(sorted((params or {}).items())))
        if key not in made:
            root = tmp_path_factory.mktemp(f"trained-{name or model}")
            db = root / "mlruns.db"
            shutil.copyfile(_migrated_store, db)
            store = f"sqlite:///{db}"
            hub = root / "hub"
            shutil.copytree(small_hub, hub)
            mp = pytest.MonkeyPatch()
            mp.setenv("MLFLOW_TRACKING_URI", store)
            try:
                tracking.get_or_create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
                summary = train_generated(hub, model, experiment, registered_name=name, params=params)
                uri = summary["model_uri"]
                if promote:
                    uri = tracking.promote(summary["registered_name"], summary["registered_version"], "champion")["uri"]
            finally:
                mp.undo()
            matrix = pd.read_parquet(summary["features_cache"]["path"])
            made[key] = TrainedModel(uri, store, root, hub, matrix, summary)
        return made[key]

    return make


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
