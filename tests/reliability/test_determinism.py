"""Same seed and data, two runs: byte-identical generated data, identical features, identical metrics
and identical scores.

Both runs are on the same machine, so bytes may be compared. Across machines only values are promised
(floats within a tolerance): tests/data/test_reproducibility.py and data/synthetic/README.md."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generated_data_and_features_are_byte_identical(cli, tmp_path):
    for run in ("a", "b"):
        code, _, err = cli("generate", "--firms", "300", "--seed", "5", "--out", tmp_path / run)
        assert code == 0, err
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) >= 14 and a == b  # 13 tables + manifest + truth
    for run in ("a", "b"):
        code, _, err = cli("features", "--data", tmp_path / "a", "--out", tmp_path / f"features-{run}.parquet")
        assert code == 0, err
    assert (tmp_path / "features-a.parquet").read_bytes() == (tmp_path / "features-b.parquet").read_bytes()
    # Another seed gives other data (the comparison above can fail).
    cli("generate", "--firms", "300", "--seed", "6", "--out", tmp_path / "c")
    assert _digests(tmp_path / "c")["firms.parquet"] != a["firms.parquet"]


@pytest.mark.slow
def test_training_twice_gives_identical_features_metrics_and_scores(champion, tmp_path, monkeypatch):
    """The session's champion is run 1; run 2 trains again from a fresh copy of the same hub."""
    from riskmodel import tracking
    from riskmodel.scoring import score
    from riskmodel.train import train_generated

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.store)
    hub = tmp_path / "hub"
    shutil.copytree(champion.hub, hub, ignore=shutil.ignore_patterns("cache"))
    tracking.get_or_create_experiment("determinism", artifact_location=(tmp_path / "artifacts").as_uri())
    second = train_generated(hub, "scorecard", "determinism", registered_name="determinism-scorecard")
    features2 = pd.read_parquet(next((hub / "cache").glob("features-*.parquet")))
    pd.testing.assert_frame_equal(champion.matrix, features2)
    first = champion.summary
    timing = ("seconds", "lock_")
    m1 = {k: v for k, v in first["metrics"].items() if not k.startswith(timing) and "seconds" not in k}
    m2 = {k: v for k, v in second["metrics"].items() if not k.startswith(timing) and "seconds" not in k}
    assert m1.keys() == m2.keys() and len(m1) > 5
    differ = {k: (m1[k], m2[k]) for k in m1 if not (m1[k] == m2[k] or (m1[k] != m1[k] and m2[k] != m2[k]))}
    assert not differ, differ
    inp = tmp_path / "in.parquet"
    champion.matrix.to_parquet(inp, index=False)
    score(champion.uri, tmp_path / "s1.parquet", features=inp)
    score(second["model_uri"], tmp_path / "s2.parquet", features=inp)
    s1, s2 = pd.read_parquet(tmp_path / "s1.parquet"), pd.read_parquet(tmp_path / "s2.parquet")
    cols = [c for c in s1.columns if c not in ("model_name", "model_version")]
    pd.testing.assert_frame_equal(s1[cols], s2[cols], check_exact=True)
