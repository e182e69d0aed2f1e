"""Fixtures of the reliability suite: one trained champion per session, an in-process CLI runner."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest


@dataclass
class Champion:
    """A scorecard trained on a copy of the session's small hub, promoted to @champion in its own store."""

    uri: str  # models:/reliability-scorecard@champion
    store: str  # sqlite:///.../mlruns.db
    root: Path  # store, artifacts, hub copy
    hub: Path
    matrix: pd.DataFrame  # the hub's feature matrix (a valid scoring input)
    summary: dict  # the training summary


@pytest.fixture(scope="session")
def champion(small_hub, _migrated_store, tmp_path_factory) -> Champion:
    from riskmodel import tracking
    from riskmodel.train import train_generated

    root = tmp_path_factory.mktemp("reliability")
    db = root / "mlruns.db"
    shutil.copyfile(_migrated_store, db)
    uri = f"sqlite:///{db}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    hub = root / "hub"
    shutil.copytree(small_hub, hub)
    tracking.get_or_create_experiment("reliability", artifact_location=(root / "artifacts").as_uri())
    summary = train_generated(hub, "scorecard", "reliability", registered_name="reliability-scorecard")
    tracking.promote("reliability-scorecard", summary["registered_version"], "champion")
    matrix = pd.read_parquet(next((hub / "cache").glob("features-*.parquet")))
    mp.undo()
    return Champion("models:/reliability-scorecard@champion", uri, root, hub, matrix, summary)


@pytest.fixture
def use_champion_store(champion, monkeypatch) -> Champion:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.store)
    return champion
