"""Fixtures of the reliability suite: one trained champion per session, an in-process CLI runner."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def champion(trained_model):
    """A scorecard trained on a copy of the session's small hub, promoted to @champion
    (``models:/reliability-scorecard@champion``) in its own store (a ``TrainedModel``)."""
    return trained_model("scorecard", name="reliability-scorecard", experiment="reliability")


@pytest.fixture
def use_champion_store(champion, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.store)
    return champion
