"""Privacy: a demo-like pipeline (generate, features, train, score, report) leaks no raw registration id or
legal representative id into any artifact, and no L4 column reaches a feature matrix.

Scanned: every file under the MLflow artifact roots and the tracking database, the feature cache, the
score and reject files, the report, the CLI's stdout/stderr and the log records captured meanwhile.
The source tables themselves (firms.parquet) hold the raw ids by design (they are the hub's input)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.tables import SCHEMAS

L4 = sorted({c.name for s in SCHEMAS.values() for c in s.columns if c.grade == "L4"})


def _text(path: Path) -> str:
    """Everything a reader of the file could see: Parquet decoded (names, values, metadata), other files as bytes."""
    if path.suffix == ".parquet":
        t = pq.read_table(path)
        df = t.to_pandas()
        return " ".join([*map(str, t.schema.names), str(t.schema.metadata), df.astype(str).to_csv(index=False)])
    return path.read_bytes().decode("latin-1")


@pytest.mark.slow
def test_no_raw_identifier_or_l4_field_in_any_artifact(cli, champion, tmp_path, caplog, monkeypatch):
    assert L4 == ["legal_rep_id", "registration_id"]
    firms = pd.read_parquet(champion.hub / "firms.parquet")
    secrets = set(firms["registration_id"].dropna().astype(str)) | set(firms["legal_rep_id"].dropna().astype(str))
    assert len(secrets) >= 2 * len(firms) - 5 and min(map(len, secrets)) >= 8
    pattern = re.compile("|".join(map(re.escape, sorted(secrets, key=len, reverse=True))))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.store)
    outputs: list[str] = []
    with caplog.at_level(logging.DEBUG):
        # features and score through the CLI (the demo's path), report of the champion's training run
        code, out, err = cli("features", "--data", champion.hub, "--out", tmp_path / "features.parquet")
        assert code == 0, err
        outputs += [out, err]
        scored = champion.matrix.copy()
        scored.loc[0, "firm_size_headcount"] = -3.0  # one reject, so the reject file has content
        scored.to_parquet(tmp_path / "in.parquet", index=False)
        code, out, err = cli("score", "--model", champion.uri, "--features", tmp_path / "in.parquet", "--out", tmp_path / "scores.parquet", "--json")
        assert code == 0, err
        assert json.loads(out)["rejected"] == 1
        outputs += [out, err]
        if (Path(__file__).resolve().parents[2] / "riskmodel" / "report.py").exists():
            code, out, err = cli("report", "--run", champion.summary["run_id"], "--out", tmp_path / "report", "--data", champion.hub)
            assert code == 0, err
            outputs += [out, err]
            assert (tmp_path / "report" / "index.html").exists()
    outputs.append("\n".join(r.getMessage() for r in caplog.records))

    files = [p for p in champion.root.rglob("*") if p.is_file() and p.parent != champion.hub and "truth" not in p.parts]
    files += [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "in.parquet"]
    kinds = {p.suffix for p in files}
    assert {".parquet", ".db", ".html", ".json", ".pkl"} & kinds >= {".parquet", ".db", ".json"}
    assert any("artifacts" in p.parts for p in files) and (tmp_path / "scores.rejects.parquet") in files
    leaks = {}
    for p in files:
        text = _text(p)
        hit = pattern.search(text)
        if hit:
            leaks[str(p)] = hit.group(0)
        for col in L4:
            if p.suffix == ".parquet" and col in pq.read_schema(p).names:
                leaks[str(p)] = f"column {col}"
    for i, text in enumerate(outputs):
        hit = pattern.search(text)
        if hit:
            leaks[f"output {i}"] = hit.group(0)
    assert not leaks, leaks
    # The feature matrices carry no L4 column (checked above for every Parquet file; here explicitly).
    for matrix in (champion.matrix, pd.read_parquet(tmp_path / "features.parquet")):
        assert not set(L4) & set(matrix.columns)
    # The check can fail: the source table itself does contain the ids.
    assert pattern.search(_text(champion.hub / "firms.parquet"))
    print(f"privacy: scanned {len(files)} files and {len(outputs)} outputs for {len(secrets)} raw ids")
