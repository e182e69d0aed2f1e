"""Portfolio monitoring: is the population a model now scores still the one it was trained on?

``monitor(model_uri, features_path, previous=None)`` compares a new batch of feature rows with the
training population stored with the model (the ``monitoring/`` artifacts every training run logs:
per-feature bins and shares, score bins, grade shares) and returns a JSON-able dict:

* ``score``: PSI of the model score, bins cut at the training score deciles;
* ``features``: PSI of every feature the model uses (``CreditModel.used_features``: a
  scorecard's selected characteristics, every feature for the other models; only these can move
  the score, and only these must be in the batch), bins cut at the training deciles (missing values
  are their own bin, categorical features one bin per category; categories unseen in training
  count as missing);
* ``families``: missing-rate drift per source family (catalog ``family``): the mean share of
  missing values over the family's features in training and now, and the PSI of that two-bin
  (missing / present) distribution;
* ``grades``: grade shares in training and now, and their PSI (reported, not part of ``status``:
  tail grades hold under 1% each, so their PSI is mostly sampling noise on small batches);
* ``migration``: when ``previous`` scores are given, the grade migration matrix of the firms
  (``firm_id``) scored in both (the latest row per firm on each side).

The reference is built here too: :func:`training_reference` summarises the training population
and :func:`log_training_reference` stores it with the training run (``riskmodel.train`` calls it);
:func:`load_training_reference` reads it back for a model URI.

PSI = sum over bins (cur - ref) * ln(cur / ref) (``riskmodel.evaluation.psi_against_profile``, empty
bins floored at 1e-4). Bands: < 0.1 stable, 0.1-0.25 watch, > 0.25 act (``evaluation.psi_band``);
``status`` is the worst band of score, features and families. ``riskmodel monitor`` exits 1
when the status is "act", so a scheduler can alert. ``log_monitoring_run`` records the result as an
MLflow run in ``<training experiment>-monitoring``, tagged with the model's name, version, URI and
training run id.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel import evaluation as ev
from riskmodel.errors import ScoringError, UserError

log = logging.getLogger(__name__)

BAND_ORDER = {"n/a": -1, "stable": 0, "watch": 1, "act": 2}
#: folder of a training run's artifacts that holds the reference, and the files in it
REFERENCE_DIR = "monitoring"
REFERENCE_FILES = ("feature_profile.csv", "score_profile.csv", "reference.json")
SCORE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


# --------------------------------------------------------------------------------------------
# The training reference: built at training time, read back for monitoring
# --------------------------------------------------------------------------------------------


def training_reference(X_train: pd.DataFrame, features: list[str], pred_train: pd.DataFrame, y_train: np.ndarray, cut_date: str | None) -> dict[str, Any]:
    """The training population a model is monitored against, one entry per file of
    ``REFERENCE_FILES``: ``feature_profile.csv`` (bins at the training deciles and their shares, per
    feature), ``score_profile.csv`` (the same for the score) and ``reference.json`` (size, bad rate,
    mean PD, score quantiles, grade shares, the out-of-time cut). ``pred_train`` holds the training
    rows' ``pd``, ``score`` and ``grade`` (``CreditModel.predict_grades``)."""
    score_bins = ev.psi_table(pred_train["score"], pred_train["score"])
    return {
        "feature_profile.csv": ev.reference_profile(X_train, features),
        "score_profile.csv": score_bins.drop(columns=["cur_count", "cur_share", "psi"]),
        "reference.json": {
            "features": features,
            "n_train": len(X_train),
            "train_bad_rate": float(np.mean(y_train)),
            "train_mean_pd": float(pred_train["pd"].mean()),
            "score_quantiles": {str(q): float(pred_train["score"].quantile(q)) for q in SCORE_QUANTILES},
            "grade_shares": pred_train["grade"].astype("string").value_counts(normalize=True).sort_index().to_dict(),
            "cut_date": cut_date,
        },
    }


def log_training_reference(run, reference: dict[str, Any]) -> None:
    """Store a :func:`training_reference` with a training run (a ``tracking.TrainingRun``)."""
    for name in REFERENCE_FILES:
        obj = reference[name]
        if isinstance(obj, pd.DataFrame):
            run.log_table(obj, f"{REFERENCE_DIR}/{name}")
        else:
            run.log_dict(obj, f"{REFERENCE_DIR}/{name}")


def load_training_reference(uri: str) -> dict:
    """The population summary the training run of model ``uri`` logged under ``monitoring/``:
    ``feature_profile`` and ``score_profile`` (DataFrames: bins and training shares), ``reference``
    (dict from reference.json), plus ``run_id``, ``experiment`` and ``artifact_location`` of that run's
    experiment (monitoring runs go to the experiment ``<experiment>-monitoring`` beside it)."""
    from riskmodel import tracking

    run_id = tracking.run_of_model(uri)
    info = tracking.run_info(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = tracking.download_artifacts(run_id, REFERENCE_DIR, tmp)
        except UserError as exc:
            raise UserError(f"model {uri!r} (run {run_id}) has no monitoring reference: {exc}; retrain it with `riskmodel train`") from None
        missing = [f for f in REFERENCE_FILES if not (local / f).is_file()]
        if missing:
            raise UserError(f"model {uri!r} (run {run_id}) lacks monitoring/{', monitoring/'.join(missing)}; retrain it with `riskmodel train`")
        feature_profile = pd.read_csv(local / "feature_profile.csv", keep_default_na=False, na_values=[""])
        score_profile = pd.read_csv(local / "score_profile.csv", keep_default_na=False, na_values=[""])
        reference = json.loads((local / "reference.json").read_text(encoding="utf-8"))
    return {
        "run_id": run_id,
        "experiment": info["experiment"],
        "artifact_location": info["artifact_location"],
        "feature_profile": feature_profile,
        "score_profile": score_profile,
        "reference": reference,
    }


# --------------------------------------------------------------------------------------------
# Comparing a batch with the reference
# --------------------------------------------------------------------------------------------


def worst_band(bands) -> str:
    """The most severe of ``bands`` ('act' > 'watch' > 'stable'; 'n/a' only when nothing else)."""
    best = "n/a"
    for b in bands:
        if BAND_ORDER.get(b, -1) > BAND_ORDER[best]:
            best = b
    return best


def missing_psi(ref_rate: float, cur_rate: float, eps: float = ev.PSI_EPSILON) -> float:
    """PSI of the two-bin distribution (missing, present) between a reference and a current rate."""
    r = np.clip(np.array([ref_rate, 1.0 - ref_rate], dtype="float64"), 0.0, 1.0)
    c = np.clip(np.array([cur_rate, 1.0 - cur_rate], dtype="float64"), 0.0, 1.0)
    rs, cs = np.where(r > 0, r, eps), np.where(c > 0, c, eps)
    both_zero = (r == 0) & (c == 0)
    return float(np.where(both_zero, 0.0, (cs - rs) * np.log(cs / rs)).sum())


def read_frame(path: str | Path, what: str = "--features") -> pd.DataFrame:
    """A Parquet or CSV file as a DataFrame; unreadable input is one UserError line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path}: no such file")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype={"application_id": "string", "firm_id": "string"})
    except Exception as exc:  # pyarrow / parser errors: the file is the problem, say which
        raise UserError(f"{what} {path}: cannot read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    raise UserError(f"{what} {path} must be a .parquet or .csv file")


def feature_psi(profile: pd.DataFrame, batch: pd.DataFrame, features: list[str], catalog: pd.DataFrame | None) -> pd.DataFrame:
    """PSI and band of every feature of the batch against its training profile."""
    fam = {}
    if catalog is not None and "family" in catalog.columns:
        fam = dict(zip(catalog["name"], catalog["family"].astype(str)))
    by_var = {v: g for v, g in profile.groupby("variable", sort=False)}
    rows = []
    for f in features:
        prof = by_var.get(f)
        if prof is None:
            rows.append({"feature": f, "family": fam.get(f, "other"), "psi": np.nan, "band": "n/a", "ref_missing": np.nan, "cur_missing": np.nan})
            continue
        t = ev.psi_against_profile(prof, batch[f])
        value = float(t["psi"].sum())
        miss = t["bin"].astype(str) == ev.MISSING_BIN
        rows.append({
            "feature": f, "family": fam.get(f, "other"), "psi": value, "band": ev.psi_band(value),
            "ref_missing": float(t.loc[miss, "ref_share"].sum()), "cur_missing": float(t.loc[miss, "cur_share"].sum()),
        })
    out = pd.DataFrame(rows, columns=["feature", "family", "psi", "band", "ref_missing", "cur_missing"])
    return out.sort_values("psi", ascending=False, kind="mergesort", na_position="last").reset_index(drop=True)


def psi_against_reference(ref: dict, score, batch: pd.DataFrame, features: list[str], catalog: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The score's PSI table (bins of the training score profile: ``bin, ref_share, cur_share, psi``)
    and :func:`feature_psi` of ``features``, against a :func:`load_training_reference`."""
    sp = ref["score_profile"].rename(columns={"ref_share": "share"})
    return ev.psi_against_profile(sp, pd.Series(np.asarray(score, dtype="float64"))), feature_psi(ref["feature_profile"], batch, features, catalog)


def family_missing(table: pd.DataFrame) -> pd.DataFrame:
    """Missing-rate drift per source family from the per-feature table of :func:`feature_psi`."""
    g = table.dropna(subset=["ref_missing"]).groupby("family", sort=True)
    out = g.agg(n_features=("feature", "size"), ref_missing=("ref_missing", "mean"), cur_missing=("cur_missing", "mean")).reset_index()
    out["change_pp"] = (out["cur_missing"] - out["ref_missing"]) * 100
    out["psi"] = [missing_psi(r, c) for r, c in zip(out["ref_missing"], out["cur_missing"])]
    out["band"] = [ev.psi_band(v) for v in out["psi"]]
    return out.sort_values("psi", ascending=False, kind="mergesort").reset_index(drop=True)


def grade_shift(reference: dict, grades: np.ndarray, labels: list[str]) -> tuple[pd.DataFrame, float]:
    """Grade shares in training (reference.json) and now, with the PSI of the grade distribution."""
    ref = reference.get("grade_shares") or {}
    cur = pd.Series(grades, dtype=object).value_counts(normalize=True)
    t = pd.DataFrame({"grade": labels, "ref_share": [float(ref.get(g, 0.0)) for g in labels], "cur_share": [float(cur.get(g, 0.0)) for g in labels]})
    rs = np.where(t["ref_share"] > 0, t["ref_share"], ev.PSI_EPSILON)
    cs = np.where(t["cur_share"] > 0, t["cur_share"], ev.PSI_EPSILON)
    both_zero = (t["ref_share"] == 0) & (t["cur_share"] == 0)
    t["psi"] = np.where(both_zero, 0.0, (cs - rs) * np.log(cs / rs))
    return t, float(t["psi"].sum()) if ref else float("nan")


def latest_per_firm(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest row of each firm: by ``application_date`` when there is one, else the last in file order."""
    if "application_date" in frame.columns:
        frame = frame.assign(_d=pd.to_datetime(frame["application_date"], errors="coerce")).sort_values("_d", kind="mergesort")
    return frame.drop_duplicates("firm_id", keep="last")


def grade_migration(previous: pd.DataFrame, current: pd.DataFrame, labels: list[str], source: str = "--previous") -> dict:
    """Migration of the firms scored in both ``previous`` and ``current`` (latest row per firm)."""
    from riskmodel.stress import migration_matrix

    for col in ("firm_id", "grade"):
        if col not in previous.columns:
            raise UserError(f"{source}: required column {col!r} is missing (give a scores file written by `riskmodel score`)")
    if "firm_id" not in current.columns:
        raise UserError("--features has no firm_id column; grade migration matches firms by firm_id")
    prev = latest_per_firm(previous.assign(firm_id=previous["firm_id"].astype("string")))[["firm_id", "grade"]]
    cur = latest_per_firm(current.assign(firm_id=current["firm_id"].astype("string")))[["firm_id", "grade"]]
    both = prev.merge(cur, on="firm_id", suffixes=("_prev", "_cur"))
    unknown = sorted(set(both["grade_prev"].dropna().astype(str)) - set(labels))
    if unknown:
        raise UserError(f"{source}: grades {unknown[:5]} are not on the model's master scale {labels}; compare scores of the same model")
    m = migration_matrix(both["grade_prev"], both["grade_cur"], labels)
    rank = {g: i for i, g in enumerate(labels)}
    rp = both["grade_prev"].map(rank).to_numpy(dtype="float64")
    rc = both["grade_cur"].map(rank).to_numpy(dtype="float64")
    n = len(both)
    return {
        "matched_firms": n,
        "previous_firms": int(prev["firm_id"].nunique()),
        "share_same": float((rp == rc).mean()) if n else None,
        "share_downgraded": float((rc > rp).mean()) if n else None,
        "share_upgraded": float((rc < rp).mean()) if n else None,
        "share_moved_2plus": float((np.abs(rc - rp) >= 2).mean()) if n else None,
        "labels": labels,
        "counts": m.to_numpy().tolist(),
    }


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def monitor(model_uri: str, features: str | Path, previous: str | Path | None = None, log_run: bool = True) -> dict:
    """Compare the batch in ``features`` with the training population of ``model_uri`` (see module doc)."""
    from riskmodel import tracking

    t0 = time.perf_counter()
    batch = read_frame(features, "--features")
    if batch.empty:
        raise UserError(f"--features {features} has no rows")
    prev = read_frame(previous, "--previous") if previous is not None else None
    credit_model, name, version = tracking.load_credit_model(model_uri)
    ref = load_training_reference(model_uri)
    feats = credit_model.used_features  # a scorecard's unselected features cannot move its score
    missing = [c for c in feats if c not in batch.columns]
    if missing:
        raise ScoringError(f"--features {features}: {len(missing)} model feature column(s) missing: {missing[:10]}; build them with `riskmodel features`")
    pred = credit_model.predict_grades(batch)
    p, score = pred["pd"].to_numpy(), pred["score"].to_numpy()
    grades = pred["grade"].to_numpy(dtype=object)
    labels = list(credit_model.master_scale.labels)

    st, ftab = psi_against_reference(ref, score, batch, feats, credit_model.catalog)
    score_psi = float(st["psi"].sum())
    fam = family_missing(ftab)
    gtab, grade_psi = grade_shift(ref["reference"], grades, labels)
    # The grade PSI is reported but does not set the status: tail grades each hold under 1% of a
    # population, so on batches of a few thousand rows their PSI is mostly sampling noise (the score
    # PSI over training deciles measures the same distribution with well-filled bins).
    bands = [ev.psi_band(score_psi), *ftab["band"], *fam["band"]]
    status = worst_band(bands)
    result: dict[str, Any] = {
        "status": status,
        "model": {"uri": model_uri, "name": name, "version": version, "training_run_id": ref["run_id"]},
        "batch": {"path": str(features), "rows": len(batch), "mean_pd": float(p.mean()), "training_mean_pd": ref["reference"].get("train_mean_pd")},
        "score": {"psi": score_psi, "band": ev.psi_band(score_psi), "bins": _records(st[["bin", "ref_share", "cur_share", "psi"]])},
        "grades": {"psi": grade_psi, "band": ev.psi_band(grade_psi), "table": _records(gtab)},
        "features": _records(ftab),
        "families": _records(fam),
        "counts": {b: int(sum(1 for x in ftab["band"] if x == b)) for b in ("stable", "watch", "act", "n/a")},
        "act": [*(["score"] if ev.psi_band(score_psi) == "act" else []), *ftab.loc[ftab["band"] == "act", "feature"].tolist(),
                *[f"missing:{f}" for f in fam.loc[fam["band"] == "act", "family"]]],
        "migration": grade_migration(prev, batch.assign(grade=grades), labels) if prev is not None else None,
    }
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if log_run:
        result["run_id"] = log_monitoring_run(result, ref, ftab, fam)
    return result


def log_monitoring_run(result: dict, ref: dict, ftab: pd.DataFrame, fam: pd.DataFrame) -> str:
    """Record a monitoring result as a run in ``<training experiment>-monitoring``, tagged with the
    model it monitors (name, version, URI, training run); returns the run id."""
    from riskmodel import tracking

    m = result["model"]
    experiment = f"{ref['experiment']}-monitoring"
    loc = ref.get("artifact_location")
    artifact_location = f"{loc.rstrip('/')}-monitoring" if isinstance(loc, str) and loc else None
    tags = {
        "riskmodel.kind": "monitoring", "riskmodel.model_uri": m["uri"], "riskmodel.registered_name": m["name"] or "",
        "riskmodel.registered_version": m["version"] or "", "riskmodel.training_run_id": m["training_run_id"],
        "riskmodel.status": result["status"],
    }
    with tracking.training_run(experiment, run_name=f"monitor {m['name']}:{m['version']}", tags=tags, artifact_location=artifact_location) as run:
        run.log_params({"model_uri": m["uri"], "features": result["batch"]["path"], "rows": result["batch"]["rows"]})
        metrics = {"psi_score": result["score"]["psi"], "psi_grades": result["grades"]["psi"], "mean_pd": result["batch"]["mean_pd"],
                   "n_act": result["counts"]["act"], "n_watch": result["counts"]["watch"],
                   "psi_feature_max": float(ftab["psi"].max()) if ftab["psi"].notna().any() else None}
        metrics |= {f"missing_psi_{f}": v for f, v in zip(fam["family"], fam["psi"])}
        if result.get("migration"):
            metrics["share_downgraded"] = result["migration"]["share_downgraded"]
        run.log_metrics(metrics)
        run.log_table(ftab, "monitoring/feature_psi.csv")
        run.log_table(fam, "monitoring/family_missing.csv")
        run.log_dict({k: v for k, v in result.items() if k != "run_id"}, "monitoring/result.json")
    return run.run_id
