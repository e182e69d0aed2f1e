"""Training orchestration: data -> features -> out-of-time split -> fit -> evaluate -> log to MLflow.

Two entry points share one core, :func:`run_training`, which opens an MLflow run and calls
:func:`fit`, :func:`evaluate` and :func:`log_to_run` in turn:

* :func:`train_generated` (``riskmodel train --data DIR``): a data-hub directory of source tables.
  The labelled set (feature matrix, outcomes, out-of-time split by application date) comes from
  :mod:`riskmodel.dataset`, which caches the feature matrix by the content of the tables and the
  feature code, so the next model trained on the same data and code skips the build (the summary
  says ``hit`` or ``written``). Feature directions (+1 raises PD, -1 lowers it) come from the catalog.
  ``reject_inference`` (``riskmodel train --reject-inference METHOD``) adds the applications the bank
  declined before the cut (:mod:`riskmodel.rejects`). On a generated hub the evaluation also reports
  the through-the-door metrics (every applicant of the test window, the declined ones included, with
  the outcome the generator's truth knows; :func:`riskmodel.evaluation.through_the_door`): generated
  data only, and read by evaluation code only, never by the fit.
* :func:`train_byo` (``riskmodel train --features TRAIN --test TEST --target COL``): real data from
  elsewhere, already split. String columns are categorical; directions are unknown (0) unless a
  TOML/YAML file gives them.

Nothing here imports mlflow; ``riskmodel.tracking`` does the logging.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from features.contract import BASELINE_FAMILIES, SEGMENT_COLUMNS, TARGET
from riskmodel import dataset
from riskmodel.dataset import byo_catalog, prepare_byo, read_byo, usable_features  # the labelled set's home; used here and kept importable from train
from riskmodel import evaluation as ev
from riskmodel.errors import UserError
from riskmodel.models import MODEL_NAMES, Scorecard, make_model

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "riskmodel"
DEFAULT_BYO_EXPERIMENT = "riskmodel-byo"


# --------------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------------


def check_model_name(model: str) -> str:
    """The model name if known, else a UserError listing the choices."""
    if model not in MODEL_NAMES:
        raise UserError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_NAMES)} (e.g. --model gbm_monotone)")
    return model


def default_registered_name(model: str, byo_stem: str | None = None) -> str:
    """``riskmodel-<model>``; BYO runs get ``riskmodel-<model>-<train file stem>`` so they never
    mix with the data-hub lineage of the same model."""
    if byo_stem:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", byo_stem).strip("-") or "byo"
        return f"riskmodel-{model}-{slug}"
    return f"riskmodel-{model}"


def _directions_from_file(path: str | Path, features: Sequence[str]) -> dict[str, int]:
    """Read ``feature = -1|0|1`` pairs from a TOML or YAML file (optionally under ``[directions]``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: directions file not found (a TOML or YAML file of `feature = -1|0|1` lines)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the directions file as UTF-8") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except Exception as exc:  # tomllib.TOMLDecodeError / yaml.YAMLError
        raise UserError(f"{path}: cannot parse directions file ({str(exc).splitlines()[0][:150]}); expected `feature = -1|0|1` lines") from None
    if isinstance(data, dict) and isinstance(data.get("directions"), dict):
        data = data["directions"]
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of feature name to -1, 0 or 1")
    unknown = sorted(set(data) - set(features))
    if unknown:
        raise UserError(f"{path}: direction given for unknown feature(s) {unknown[:10]}; features are {list(features)[:20]}")
    out = {}
    for k, v in data.items():
        if v not in (-1, 0, 1) or isinstance(v, bool):
            raise UserError(f"{path}: direction of {k!r} must be -1 (higher value, lower risk), 0 (unknown) or 1 (higher value, higher risk); got {v!r}")
        out[k] = int(v)
    return out


# --------------------------------------------------------------------------------------------
# Data-hub path
# --------------------------------------------------------------------------------------------


def features_for_model(model: str, frame: pd.DataFrame, catalog: pd.DataFrame) -> list[str]:
    """Feature columns a model uses: numeric catalog features present in ``frame``;
    ``financial_baseline`` only the families a traditional credit process sees (finance, firm)."""
    cat = catalog[catalog["name"].isin(frame.columns)]
    if model == "financial_baseline":
        cat = cat[cat["family"].isin(BASELINE_FAMILIES)]
    cols = [c for c in cat["name"] if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    if not cols:
        raise UserError(f"no catalog feature for model {model!r} in the feature matrix; rebuild features (`riskmodel features`)")
    return cols


def train_generated(
    data_dir: str | Path,
    model: str,
    experiment: str = DEFAULT_EXPERIMENT,
    *,
    features_file: str | Path | None = None,
    cut: str | pd.Timestamp | None = None,
    test_share: float = 0.3,
    registered_name: str | None = None,
    seed: int = 42,
    params: Mapping[str, Any] | None = None,
    use_cache: bool = True,
    artifact_location: str | None = None,
    reject_inference: str | None = None,
) -> dict:
    """Train ``model`` on a data-hub directory, evaluate it out of time, log and register it.

    ``reject_inference``: one of :data:`riskmodel.rejects.METHODS` to learn from the declined
    applications before the cut too (None: the granted loans only)."""
    from riskmodel import rejects as ri

    t_start = time.perf_counter()
    check_model_name(model)
    if reject_inference is not None:
        ri.check_method(reject_inference)
    data_dir = Path(data_dir)
    ls = dataset.load_labelled(data_dir, cut=cut, test_share=test_share, features_file=features_file, use_cache=use_cache)
    features = features_for_model(model, ls.train, ls.catalog)
    features = usable_features(ls.train, features, "training rows (before the cut)")
    rejected = ls.rejected() if reject_inference is not None else None
    if rejected is not None and rejected.empty:
        recorded = ls.decisions if ls.decisions is not None else dataset.decisions(ls.features[list(dataset.ID_COLUMNS)])
        why = ("applications.approved is never false there" if recorded["approved"].notna().any()
               else "its applications table has no approved column: the hub records no decision of the bank")
        raise UserError(f"--reject-inference {reject_inference}: {data_dir} records no declined application before the cut "
                        f"{ls.cut.date()} ({why}); train without it")
    directions = {str(r.name): int(r.direction) for r in ls.catalog.itertuples() if r.name in features}
    meta = {
        "source": "data_hub",
        "data": str(data_dir.resolve()),
        "data_fingerprint": ls.info.data_fingerprint,
        "manifest_hash": ls.info.manifest_hash,
        "feature_code_version": ls.info.code_version,
        "catalog_version": ls.info.catalog_version,
        "cut_date": str(ls.cut.date()),
        "test_share": test_share,
        "n_labelled": len(ls.labelled),
        "features_cache": ls.info.cache_status,
        "reject_inference": reject_inference or "none",
    }
    summary = run_training(
        model=model,
        train_df=ls.train,
        test_df=ls.test,
        features=features,
        target=TARGET,
        directions=directions,
        catalog=ls.catalog,
        experiment=experiment,
        registered_name=registered_name or default_registered_name(model),
        seed=seed,
        params=params,
        meta=meta,
        truth=ev.load_truth(data_dir),
        artifact_location=artifact_location,
        rejected=rejected,
        reject_inference=reject_inference,
        population=ls.population(),
    )
    summary["features_cache"] = ls.info.cache
    summary["cut_date"] = meta["cut_date"]
    summary["seconds_total"] = round(time.perf_counter() - t_start, 3)
    return summary


# --------------------------------------------------------------------------------------------
# Bring-your-own tables
# --------------------------------------------------------------------------------------------


def train_byo(
    features: str | Path,
    test: str | Path,
    target: str,
    model: str = "scorecard",
    experiment: str = DEFAULT_BYO_EXPERIMENT,
    *,
    directions_file: str | Path | None = None,
    keep_columns: Sequence[str] = (),
    registered_name: str | None = None,
    seed: int = 42,
    params: Mapping[str, Any] | None = None,
    artifact_location: str | None = None,
) -> dict:
    """Train ``model`` on a user's train/test tables (already split, checked by :func:`read_byo`), log
    and register it. The summary carries ``columns`` (what happened to each column) and ``warnings``."""
    t_start = time.perf_counter()
    check_model_name(model)
    byo = read_byo(features, test, target, keep_columns)
    train_df, test_df, cols = byo.train, byo.test, byo.features
    directions = _directions_from_file(directions_file, cols) if directions_file else {}
    directions = {c: int(directions.get(c, 0)) for c in cols}
    catalog = byo_catalog(cols, directions)
    meta = {
        "source": "byo",
        "data": f"{Path(features).resolve()} | {Path(test).resolve()}",
        "manifest_hash": dataset.file_hash([features, test]),
        "catalog_version": dataset.catalog_version(catalog),
        "directions_file": str(directions_file) if directions_file else "",
        "keep_columns": list(keep_columns),
        "byo_columns": byo.columns,
    }
    summary = run_training(
        model=model,
        train_df=train_df,
        test_df=test_df,
        features=cols,
        target=target,
        directions=directions,
        catalog=catalog,
        experiment=experiment,
        registered_name=registered_name or default_registered_name(model, Path(features).stem),
        seed=seed,
        params=params,
        meta=meta,
        truth=None,
        artifact_location=artifact_location,
        warnings=byo.warnings,
    )
    summary["columns"] = byo.columns
    summary["seconds_total"] = round(time.perf_counter() - t_start, 3)
    return summary


def train(
    data_dir: str | Path | None = None,
    model: str | None = None,
    experiment: str | None = None,
    *,
    features: str | Path | None = None,
    test: str | Path | None = None,
    target: str | None = None,
    directions_file: str | Path | None = None,
    features_file: str | Path | None = None,
    keep_columns: Sequence[str] = (),
    reject_inference: str | None = None,
    **kwargs,
) -> dict:
    """Dispatch: ``train(data_dir, model, ...)`` for a data hub, ``train(features=, test=, target=)`` for BYO."""
    if reject_inference is not None and data_dir is None:
        raise UserError("--reject-inference applies to --data only: it needs the hub's declined applications (applications.approved)")
    if data_dir is not None:
        if features is not None or test is not None:
            raise UserError("give either --data (a data-hub directory) or --features/--test/--target (your own tables), not both")
        if model is None:
            raise UserError(f"--model is required with --data; choose one of: {', '.join(MODEL_NAMES)}")
        if keep_columns:
            raise UserError("--keep-column applies to --features/--test only; with --data the features come from the feature catalog")
        return train_generated(data_dir, model, experiment or DEFAULT_EXPERIMENT, features_file=features_file, reject_inference=reject_inference, **kwargs)
    if features is None or test is None or target is None:
        raise UserError("bring-your-own training needs --features TRAIN.parquet, --test TEST.parquet and --target COL (or use --data DIR)")
    return train_byo(features, test, target, model or "scorecard", experiment or DEFAULT_BYO_EXPERIMENT, directions_file=directions_file, keep_columns=keep_columns, **kwargs)


# --------------------------------------------------------------------------------------------
# The shared core: fit -> evaluate -> log, inside one MLflow run
# --------------------------------------------------------------------------------------------


def build_estimator(model: str, directions: Mapping[str, int], seed: int, params: Mapping[str, Any] | None):
    """``make_model(model, directions, **params)`` with ``random_state=seed`` when the estimator has one."""
    try:
        est = make_model(model, directions=dict(directions), **dict(params or {}))
    except TypeError as exc:
        raise UserError(f"model {model!r} does not accept these parameters: {exc}") from None
    if "random_state" in est.get_params() and not (params and "random_state" in params):
        est.set_params(random_state=seed)
    return est


def make_credit_model(estimator, features: list[str], catalog: pd.DataFrame, model: str):
    """Wrap a fitted estimator as a ``CreditModel`` (feature list, master scale, catalog rows)."""
    from riskmodel.creditmodel import CreditModel

    rows = catalog[catalog["name"].isin(features)].reset_index(drop=True)
    return CreditModel.from_estimator(estimator, catalog=rows, name=model)


def importance_table(credit_model, estimator, X: pd.DataFrame, catalog: pd.DataFrame, max_rows: int = 5000) -> pd.DataFrame:
    """Mean |log-odds contribution| per feature on ``X`` (at most ``max_rows`` sampled rows), from
    the estimator's additive contributions: the average size of each feature's push on the log-odds."""
    if len(X) > max_rows:  # TreeSHAP costs ~0.6 ms a row: a fixed sample is plenty for a ranking
        X = X.sample(n=max_rows, random_state=0)
    contrib = estimator.contributions(X)
    imp = contrib.abs().mean(axis=0)
    t = pd.DataFrame({"feature": imp.index.astype(str), "importance": imp.to_numpy(dtype="float64")})
    t["share"] = t["importance"] / t["importance"].sum() if t["importance"].sum() > 0 else 0.0
    names = catalog.set_index("name")
    for col in ("name_en", "name_zh", "family", "direction"):
        if col in names.columns:
            t[col] = t["feature"].map(names[col])
    return t.sort_values("importance", ascending=False, kind="mergesort").reset_index(drop=True)


@dataclass
class Fitted:
    """A fitted model and its predictions (PD, score, grade; no reasons) on the train and test rows."""

    model: str
    estimator: Any
    credit_model: Any  # riskmodel.creditmodel.CreditModel
    features: list[str]
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    pred_train: pd.DataFrame
    pred_test: pd.DataFrame
    seconds: dict[str, float]  # seconds_fit, seconds_predict
    reject_inference: dict | None = None  # what riskmodel.rejects did, when it was used


def fit(estimator, model: str, train_df: pd.DataFrame, test_df: pd.DataFrame, features: list[str], target: str, catalog: pd.DataFrame,
        *, rejected: pd.DataFrame | None = None, reject_inference: str | None = None, seed: int = 0) -> Fitted:
    """Fit ``estimator`` on the training rows (with reject inference ``reject_inference`` on the
    ``rejected`` rows' features when given), wrap it as a CreditModel and predict both sets."""
    X_train, X_test = train_df[features], test_df[features]
    y_train = train_df[target].to_numpy(dtype="int64")
    y_test = test_df[target].to_numpy(dtype="int64")
    t0 = time.perf_counter()
    ri_info = None
    if reject_inference is not None:
        from riskmodel import rejects as ri

        estimator, ri_info = ri.fit_with_rejects(reject_inference, estimator, X_train, y_train, rejected[features], seed=seed)
    else:
        estimator.fit(X_train, y_train)
    t1 = time.perf_counter()
    credit_model = make_credit_model(estimator, features, catalog, model)
    pred_train = credit_model.predict_grades(X_train)
    pred_test = credit_model.predict_grades(X_test)
    seconds = {"seconds_fit": t1 - t0, "seconds_predict": time.perf_counter() - t1}
    return Fitted(model, estimator, credit_model, features, X_train, X_test, y_train, y_test, pred_train, pred_test, seconds, ri_info)


def through_the_door(credit_model, population: pd.DataFrame | None, truth: pd.DataFrame | None) -> pd.DataFrame | None:
    """The through-the-door table (:func:`riskmodel.evaluation.through_the_door`) of a fitted model
    on ``population`` (:meth:`riskmodel.dataset.LabelledSet.population`), or None without truth."""
    if truth is None or population is None or population.empty:
        return None
    p = credit_model.predict_grades(population[list(credit_model.features)])["pd"].to_numpy()
    return ev.through_the_door(truth, population["application_id"], p, dataset.population_groups(population))


def evaluate(fitted: Fitted, test_df: pd.DataFrame, truth: pd.DataFrame | None, population: pd.DataFrame | None = None) -> tuple[ev.Evaluation, dict[str, float]]:
    """The out-of-time evaluation of a fitted model and its metrics (with the AUC on start-ups, the
    borrowers technology-flow lending is for, the through-the-door metrics on generated data, and
    the seconds each step took)."""
    t0 = time.perf_counter()
    f = fitted
    seg_cols = [c for c in SEGMENT_COLUMNS if c in test_df.columns]
    result = ev.evaluate(
        f.y_train, f.pred_train["pd"].to_numpy(), f.y_test, f.pred_test["pd"].to_numpy(),
        f.X_train, f.X_test, f.features,
        segments_test=test_df[seg_cols].reset_index(drop=True),
        score_train=f.pred_train["score"].to_numpy(), score_test=f.pred_test["score"].to_numpy(),
        grades_test=f.pred_test["grade"].to_numpy(), grade_order=list(f.credit_model.master_scale.labels),
        truth=truth, test_ids=test_df["application_id"].to_numpy() if "application_id" in test_df.columns else None,
    )
    metrics = dict(result.metrics)
    if "lifecycle_stage" in test_df.columns:
        young = (test_df["lifecycle_stage"].astype("string") == "startup").to_numpy()
        if young.any():
            metrics["test_auc_startup"] = ev.auc(f.y_test[young], f.pred_test["pd"].to_numpy()[young])
    result.through_the_door = through_the_door(f.credit_model, population, truth)
    metrics.update(ev.ttd_metrics(result.through_the_door))
    metrics.update(f.seconds)
    metrics["seconds_evaluate"] = time.perf_counter() - t0
    return result, metrics


def log_to_run(run, fitted: Fitted, result: ev.Evaluation, metrics: Mapping[str, float], catalog: pd.DataFrame,
        directions: Mapping[str, int], registered_name: str | None, cut_date: str | None) -> tuple[str | None, str | None, dict[str, float]]:
    """Log metrics, tables, figures, the monitoring reference and the model to ``run`` (a
    ``tracking.TrainingRun``) and register the model; returns ``(name, version, seconds)``."""
    from riskmodel import monitoring, plots

    f = fitted
    run.log_metrics(metrics)
    t0 = time.perf_counter()
    imp = importance_table(f.credit_model, f.estimator, f.X_train, catalog)
    run.log_table(catalog, "catalog.csv")
    run.log_dict({"features": f.features, "directions": {c: int(directions.get(c, 0)) for c in f.features}}, "features.json")
    run.log_dict(f.credit_model.config(), "credit_model.json")
    run.log_table(imp, "importance.csv")
    run.log_figure(plots.plot_importance(imp), "importance.png")
    if isinstance(f.estimator, Scorecard):
        run.log_table(f.estimator.table(), "scorecard_table.csv")
    run.log_table(result.calibration, "calibration.csv")
    run.log_figure(plots.plot_calibration(result.calibration), "calibration.png")
    run.log_figure(plots.plot_roc_ks(result.roc, metrics["test_auc"], metrics["test_ks"], title=f.model), "roc_ks.png")
    run.log_table(result.segments, "segments.csv")
    run.log_table(result.psi, "psi.csv")
    if result.through_the_door is not None:
        run.log_table(result.through_the_door, "through_the_door.csv")
    if f.reject_inference is not None:
        run.log_dict(f.reject_inference, "reject_inference.json")
    if result.grades is not None:
        run.log_table(result.grades, "bad_rate_by_grade.csv")
    monitoring.log_training_reference(run, monitoring.training_reference(f.X_train, f.features, f.pred_train, f.y_train, cut_date))
    t1 = time.perf_counter()
    name, version = run.log_model(f.credit_model, f.X_train, registered_name)
    return name, version, {"seconds_artifacts": t1 - t0, "seconds_log_model": time.perf_counter() - t1}


#: A train AUC this much above the test AUC is reported as a warning (over-fitting, or a test
#: population unlike the training one).
AUC_GAP_WARNING = 0.10


def fit_warnings(metrics: Mapping[str, float]) -> list[str]:
    """What the metrics of a fit warn about: a train AUC more than :data:`AUC_GAP_WARNING` above the
    test AUC (the model learned the training rows rather than the risk, or the test rows differ)."""
    tr, te = metrics.get("train_auc"), metrics.get("test_auc")
    if tr is None or te is None or not (np.isfinite(tr) and np.isfinite(te)) or tr - te <= AUC_GAP_WARNING:
        return []
    text = (f"train AUC {tr:.3f} is {tr - te:.3f} above the test AUC {te:.3f}: the model fits the training rows far better "
            "than new ones (too many or noisy features, leakage, or a test population unlike the training one)")
    log.warning("%s", text)
    return [text]


def _ttd_summary(table: pd.DataFrame | None) -> dict | None:
    """The through-the-door table for the training summary: one record per population, with the note
    that it exists on generated data only."""
    if table is None:
        return None
    rows = []
    for r in table.to_dict("records"):
        rows.append({k: (int(v) if k in ("n", "defaults") else (round(float(v), 6) if isinstance(v, float) and np.isfinite(v) else (None if isinstance(v, float) else v))) for k, v in r.items()})
    return {"note": ev.TTD_NOTE, "populations": rows}


SUMMARY_METRICS = ("test_auc", "test_gini", "test_ks", "test_brier", "test_log_loss", "test_ece", "test_auc_startup", "train_auc", "psi_score", "grades_monotone", "segments_low_auc")


def run_training(
    *,
    model: str,
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    features: list[str],
    target: str,
    directions: Mapping[str, int],
    catalog: pd.DataFrame,
    experiment: str,
    registered_name: str | None,
    seed: int,
    params: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
    truth: pd.DataFrame | None,
    artifact_location: str | None = None,
    warnings: Sequence[str] = (),
    rejected: pd.DataFrame | None = None,
    reject_inference: str | None = None,
    population: pd.DataFrame | None = None,
) -> dict:
    """:func:`fit`, :func:`evaluate` and :func:`log_to_run` one model inside one MLflow run (FAILED if
    anything raises); returns the training summary. ``warnings`` (the data's) are logged as the run's
    tag ``riskmodel.warnings`` and returned in ``summary["warnings"]`` with those of the fit (a
    train–test AUC gap above :data:`AUC_GAP_WARNING`). ``rejected`` and ``reject_inference``: see
    :func:`fit`; ``population``: every application of the test window, for the through-the-door
    metrics (with ``truth``)."""
    from riskmodel import tracking

    estimator = build_estimator(model, directions, seed, params)  # bad parameters fail before a run exists
    y_train = train_df[target].to_numpy(dtype="int64")
    if y_train.min() == y_train.max():
        raise UserError(f"the training rows have only one class ({int(y_train[0])}) in {target!r}; a model needs both defaults and non-defaults")
    tags = {"riskmodel.model": model, "riskmodel.source": meta.get("source", ""), "riskmodel.registered_name": registered_name or ""}
    lock0 = dict(tracking.lock_stats)
    with tracking.training_run(experiment, run_name=f"{model}", tags=tags, artifact_location=artifact_location) as run:
        t0 = time.perf_counter()
        run.log_params(
            {
                "model": model,
                "model_config": {k: v for k, v in estimator.get_params(deep=False).items() if k != "directions"},
                "seed": seed,
                "n_features": len(features),
                "n_train": len(train_df),
                "n_test": len(test_df),
                "target": target,
                **{k: v for k, v in meta.items()},
            }
        )
        fitted = fit(estimator, model, train_df, test_df, features, target, catalog, rejected=rejected, reject_inference=reject_inference, seed=seed)
        result, metrics = evaluate(fitted, test_df, truth, population)
        warnings = [*warnings, *fit_warnings(metrics)]
        if warnings:
            run.set_tags({"riskmodel.warnings": " | ".join(warnings)[:5000]})
        name, version, seconds = log_to_run(run, fitted, result, metrics, catalog, directions, registered_name, meta.get("cut_date"))
        run.set_tags({"riskmodel.registered_name": name or "", "riskmodel.registered_version": version or ""})
        seconds["seconds_run"] = time.perf_counter() - t0
        run.log_metrics(seconds)
    timings = {**fitted.seconds, "seconds_evaluate": metrics["seconds_evaluate"], **seconds}
    return {
        "run_id": run.run_id,
        "experiment": experiment,
        "model": model,
        "registered_name": name,
        "registered_version": version,
        "model_uri": f"models:/{name}/{version}" if name else f"runs:/{run.run_id}/{tracking.MODEL_NAME_IN_RUN}",
        "n_train": len(train_df),
        "n_test": len(test_df),
        "n_features": len(features),
        "metrics": {k: round(float(metrics[k]), 6) for k in SUMMARY_METRICS if k in metrics and np.isfinite(metrics[k])},
        "oracle_auc": round(float(result.oracle_auc), 6) if result.oracle_auc is not None else None,
        "warnings": warnings,
        "reject_inference": fitted.reject_inference,
        "through_the_door": _ttd_summary(result.through_the_door),
        "low_auc_segments": result.segments.loc[result.segments["flag"] == "low_auc", ["segment", "value", "count", "auc"]].to_dict("records"),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "store_lock": {
            "wait_seconds": round(tracking.lock_stats["wait_seconds"] - lock0["wait_seconds"], 3),
            "held_seconds": round(tracking.lock_stats["held_seconds"] - lock0["held_seconds"], 3),
            "retries": int(tracking.lock_stats["retries"] - lock0["retries"]),
        },
    }
