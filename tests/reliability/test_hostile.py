"""Cases a careless or hostile user found (issue: hostile review of the newest commands).

Each test names the command that went wrong before its fix: a traceback (exit 70), a hub changed by
an output written into one of its table folders, a work folder that was a file, and leftovers of a
killed build that a rerun never removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest


def _one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    lines = [ln for ln in err.splitlines() if not ln.startswith(("WARNING", "INFO"))]
    assert code == expected_code and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- validate: a batch with one class -----------------------------------------------------------


@pytest.mark.parametrize("label", [0, 1])
def test_validate_on_a_batch_with_one_class_prints_its_summary(cli, use_champion_store, tmp_path, label):
    """Every statistic that needs both classes is undefined ('-', n/a); before, the baseline line
    formatted a None difference and the command ended in exit 70."""
    features = tmp_path / "batch.parquet"
    use_champion_store.matrix.to_parquet(features, index=False)
    outcomes = pd.read_parquet(use_champion_store.hub / "outcomes.parquet")
    outcomes["default_12m"] = label
    outcomes.to_parquet(tmp_path / "outcomes.parquet", index=False)
    code, out, err = cli("validate", "--model", use_champion_store.uri, "--features", features, "--outcomes", tmp_path / "outcomes.parquet",
                         "--baseline", use_champion_store.uri, "--no-log", "--out", tmp_path / "v")
    assert code in (0, 1) and "Traceback" not in err and "error:" not in err, (code, err)
    assert "AUC - [-, -]" in out and "difference -, z -" in out, out
    assert (tmp_path / "v" / "validation.json").is_file()
