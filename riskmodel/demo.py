"""The end-to-end demo a new user runs first (``make demo``): a risk analyst's whole path.

generate data -> build features point-in-time -> train every model out of time -> compare them ->
promote the best technology-flow model to ``champion`` -> score the applications that have no
outcome yet -> write the reviewer report. Each step calls the same library function the CLI
command of that step calls; this module only sequences them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

DEMO_MODELS = ("financial_baseline", "scorecard", "gbm_monotone", "gbm_additive")
BASELINE = "financial_baseline"


def _manifest_matches(out: Path, firms: int, seed: int) -> bool:
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return False
    meta = json.loads(manifest.read_text())
    params = meta.get("parameters", {})
    return params.get("firms") == firms and params.get("seed") == seed


def run_demo(
    out: str | Path = "data/synthetic/demo",
    *,
    firms: int = 5000,
    seed: int = 0,
    experiment: str = "demo",
    report_dir: str | Path = "reports/demo",
    models: tuple[str, ...] = DEMO_MODELS,
    echo: Callable[[str], None] = log.info,
) -> dict:
    """Run the demo; returns a summary dict (paths, comparison table, champion, score counts)."""
    from features.build import build_features
    from features.tables import load_tables, write_table
    from riskmodel import tracking
    from riskmodel.scoring import score
    from riskmodel.synthetic import GeneratorParams, generate
    from riskmodel.train import train_generated

    out = Path(out)
    t0 = time.perf_counter()
    summary: dict = {"data": str(out)}

    if _manifest_matches(out, firms, seed):
        echo(f"[1/6] data: reusing {out} ({firms:,} firms, seed {seed})")
    else:
        echo(f"[1/6] data: generating {firms:,} firms (seed {seed}) into {out}")
        generate(GeneratorParams(firms=firms, seed=seed), out)

    echo("[2/6] features: building the feature matrix point-in-time for every application")
    tables, _ = load_tables(out)
    matrix = build_features(tables)
    features_path = out / "features.parquet"
    write_table(matrix, features_path)
    labelled = matrix["application_id"].isin(tables["outcomes"]["application_id"])
    to_score_path = out / "applications_to_score.parquet"
    write_table(matrix.loc[~labelled], to_score_path)
    summary |= {"features": str(features_path), "labelled": int(labelled.sum()), "to_score": int((~labelled).sum())}

    runs = []
    for i, model in enumerate(models):
        echo(f"[3/6] train {model} ({i + 1}/{len(models)}): out-of-time split, MLflow run, registered model")
        runs.append(train_generated(out, model, experiment, features_file=features_path))
    summary["runs"] = [{k: r.get(k) for k in ("run_id", "model", "registered_name", "registered_version", "oracle_auc")} | {"test_auc": r["metrics"].get("test_auc")} for r in runs]

    tech = [r for r in runs if r["model"] != BASELINE]
    best = max(tech, key=lambda r: r["metrics"].get("test_auc", float("-inf")))
    promoted = tracking.promote(best["registered_name"], best["registered_version"], "champion")
    summary["champion"] = promoted | {"model": best["model"], "run_id": best["run_id"]}
    echo(f"[4/6] champion: {best['model']} ({promoted['uri']}), OOT AUC {best['metrics']['test_auc']:.3f}")

    table = tracking.compare(experiment)
    summary["compare"] = table.to_dict(orient="records")

    scores_path = out / "scores.parquet"
    s = score(promoted["uri"], scores_path, features=to_score_path, rejects=out / "scores.rejects.parquet")
    summary["scoring"] = s.to_dict()
    echo(f"[5/6] scored {s.scored:,} of {s.rows_in:,} applications without an outcome yet ({s.rejected:,} rejected) -> {scores_path}")

    try:
        from riskmodel.report import write_report
    except ImportError:  # the reviewer report lands with its own issue
        summary["report"] = None
    else:
        index = write_report(best["run_id"], Path(report_dir))["path"]  # write_report returns a summary dict
        summary["report"] = str(index)
        echo(f"[6/6] report for the champion run: {index}")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["compare_table"] = table
    return summary


def format_compare(table: pd.DataFrame) -> str:
    """The comparison table as aligned text for the terminal."""
    cols = [c for c in ("model", "champion", "test_auc", "test_ks", "test_brier", "test_ece", "oracle_auc", "test_auc_startup", "registered_version") if c in table.columns]
    return table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
