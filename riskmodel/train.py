"""Training orchestration: data -> features -> out-of-time split -> fit -> evaluate -> log to MLflow.

Two entry points share one core, :func:`run_training`, which opens an MLflow run and calls
:func:`fit`, :func:`evaluate` and :func:`log_to_run` in turn:

* :func:`train_generated` (``riskmodel train --data DIR``): a data-hub directory of source tables.
  The labelled set (feature matrix, outcomes, out-of-time split by application date) comes from
  :mod:`riskmodel.dataset`, which caches the feature matrix by the content of the tables and the
  feature code, so the next model trained on the same data and code skips the build (the summary
  says ``hit`` or ``written``). Feature directions (+1 raises PD, -1 lowers it) come from the catalog.
* :func:`train_byo` (``riskmodel train --features TRAIN --test TEST --target COL``): real data from
  elsewhere, already split. String columns are categorical; directions are unknown (0) unless a
  TOML/YAML file gives them.

Nothing here imports mlflow; ``riskmodel.tracking`` does the logging.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from features.contract import BASELINE_FAMILIES, CATALOG_COLUMNS, SEGMENT_COLUMNS, TARGET
from riskmodel import dataset
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


def usable_features(frame: pd.DataFrame, columns: Sequence[str], where: str = "training data") -> list[str]:
    """Drop features that are all missing or constant (warning), error if none is left."""
    keep, dropped = [], []
    for c in columns:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            vals = s.to_numpy(dtype="float64", na_value=np.nan)
            fin = vals[np.isfinite(vals)]
            n_unique = np.unique(fin).size
        else:
            n_unique = s.dropna().nunique()
        if n_unique <= 1:
            dropped.append(c)
        else:
            keep.append(c)
    if dropped:
        log.warning("dropped %d feature(s) that are constant or all missing in the %s: %s", len(dropped), where, ", ".join(dropped))
    if not keep:
        raise UserError(
            f"no usable feature in the {where}: every column is constant or all missing ({', '.join(dropped[:20])}); "
            "check the file or choose other columns"
        )
    return keep


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


def _binary_target(series: pd.Series, target: str, file: str) -> np.ndarray:
    vals = pd.to_numeric(series, errors="coerce")
    missing = int(series.isna().sum())
    if missing:
        raise UserError(f"{file}: target column {target!r} has {missing} missing value(s); drop those rows or fill them with 0/1")
    bad = ~vals.isin([0, 1])
    if bad.any():
        seen = sorted(map(str, pd.unique(series[bad.to_numpy()])))[:5]
        raise UserError(f"{file}: target column {target!r} must be binary 0/1 (1 = default); found {seen}; recode it (e.g. bad -> 1, good -> 0)")
    return vals.to_numpy(dtype="int64")


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
) -> dict:
    """Train ``model`` on a data-hub directory, evaluate it out of time, log and register it."""
    t_start = time.perf_counter()
    check_model_name(model)
    data_dir = Path(data_dir)
    ls = dataset.load_labelled(data_dir, cut=cut, test_share=test_share, features_file=features_file, use_cache=use_cache)
    features = features_for_model(model, ls.train, ls.catalog)
    features = usable_features(ls.train, features, "training rows (before the cut)")
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
    )
    summary["features_cache"] = ls.info.cache
    summary["cut_date"] = meta["cut_date"]
    summary["seconds_total"] = round(time.perf_counter() - t_start, 3)
    return summary


# --------------------------------------------------------------------------------------------
# Bring-your-own tables
# --------------------------------------------------------------------------------------------


def byo_catalog(features: Sequence[str], directions: Mapping[str, int]) -> pd.DataFrame:
    """Minimal catalog rows for BYO columns: the column name stands in for every text. There is no
    ``unit`` or ``lower_bound`` column: both are unknown, so scoring derives value bounds from the
    training range."""
    rows = []
    for f in features:
        rows.append(
            {
                "name": f, "name_zh": f, "name_en": f, "family": "byo", "kind": "signal", "tables": "byo",
                "lookback_months": 0, "direction": int(directions.get(f, 0)), "grade": "L3",
                "description": f"column {f} of the user's table", "reason_en": f"{f} raises the risk",
                "reason_zh": f"{f} 推高风险", "actionable": True,
            }
        )
    return pd.DataFrame(rows, columns=[c for c in CATALOG_COLUMNS if c not in ("unit", "lower_bound")])


#: Bring-your-own training refuses a training file with fewer rows or fewer defaults than these.
#: A scorecard bins each feature into groups of at least 5% of the rows and estimates a weight of
#: evidence per group from its defaults: with 20 defaults, a 5% group expects one default, and
#: fewer leave most groups without any, so the weights are noise. Below 100 rows there is barely
#: one group per feature. These are floors that make a fit possible, not sizes that make it good.
MIN_TRAIN_ROWS = 100
MIN_TRAIN_DEFAULTS = 20
#: A train AUC this much above the test AUC is reported as a warning (over-fitting, or a test
#: population unlike the training one).
AUC_GAP_WARNING = 0.10
#: A text column holding at least this share of distinct values (over 50+ rows) reads as an identifier.
ID_DISTINCT_SHARE = 0.95
_ID_NAME = re.compile(r"(?:^|[_\-\s.])(?:id|ID|Id)$|^(?:id|ID|Id)$|[a-z0-9](?:Id|ID)$|编号$")


def id_like(name: str, values: pd.Series, kind: str) -> str | None:
    """Why a column looks like an identifier rather than a feature, or None: its name (``id``,
    ``*_id``, ``loanId``, ``*编号``), a distinct text value on (nearly) every row, or a distinct whole
    number on every row (row numbers, sequential ids). An identifier as a feature lets a model
    memorise rows and fails on new ones."""
    if _ID_NAME.search(name):
        return f"its name ({name!r}) marks an identifier"
    v = values.dropna()
    n = len(v)
    if n < 20:
        return None
    if kind == "categorical":
        distinct = v.astype("string").nunique()
        if n >= 50 and distinct >= ID_DISTINCT_SHARE * n:
            return f"{distinct:,} distinct text values in {n:,} rows"
        return None
    if kind == "numeric" and pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
        x = v.to_numpy(dtype="float64")
        if np.all(np.isfinite(x)) and np.all(x == np.round(x)) and np.unique(x).size == n:
            monotone = bool(np.all(np.diff(x) > 0) or np.all(np.diff(x) < 0))
            return f"a distinct whole number on every row{' (monotone: row numbers?)' if monotone else ''}"
    return None


@dataclass
class ByoTables:
    """Bring-your-own tables after reading and checking (:func:`read_byo`): the frames, the feature
    columns, what happened to every column (``columns``) and what the user should know (``warnings``)."""

    train: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    columns: dict[str, dict]
    warnings: list[str]


def _warn(warnings: list[str], text: str) -> None:
    warnings.append(text)
    log.warning("%s", text)


def read_byo(train_path: str | Path, test_path: str | Path, target: str, keep_columns: Sequence[str] = ()) -> ByoTables:
    """Read and check bring-your-own train/test tables (Parquet or CSV, :mod:`riskmodel.usertables`).

    Refused: a target that is missing, not 0/1 or one class; fewer than :data:`MIN_TRAIN_ROWS` rows or
    :data:`MIN_TRAIN_DEFAULTS` defaults in training; test columns unlike the training ones. Each
    column's type is decided once over the training column (:func:`riskmodel.usertables.infer_column`:
    numbers, numbers written as text, categories, dates) and applied to both files; values that do
    not fit become missing and are counted per column. Identifier-like columns (:func:`id_like`) and
    dates are not features unless named in ``keep_columns``. Warned: a one-class test file, a test
    file identical to the training file, test rows identical to training rows."""
    from riskmodel.usertables import apply_column, infer_column, read_frame, row_keys

    train_path, test_path = Path(train_path), Path(test_path)
    train_df, _ = read_frame(train_path, "--features")
    test_df, _ = read_frame(test_path, "--test")
    if train_df.empty:
        raise UserError(f"{train_path}: the training file has no rows")
    if test_df.empty:
        raise UserError(f"{test_path}: the test file has no rows")
    if target not in train_df.columns:
        raise UserError(f"{train_path}: target column {target!r} not found; columns are {list(train_df.columns)[:20]} (pass --target COL)")
    if list(train_df.columns) != list(test_df.columns):
        miss = [c for c in train_df.columns if c not in test_df.columns]
        extra = [c for c in test_df.columns if c not in train_df.columns]
        what = f"missing {miss[:10]}, extra {extra[:10]}" if miss or extra else "same names in another order"
        raise UserError(f"{test_path}: columns differ from {train_path} ({what}); both files need the same columns")
    unknown = [c for c in keep_columns if c not in train_df.columns or c == target]
    if unknown:
        raise UserError(f"--keep-column {unknown[0]!r} is not a feature column of {train_path}; columns are {[c for c in train_df.columns if c != target][:20]}")
    y_train = _binary_target(train_df[target], target, str(train_path))
    y_test = _binary_target(test_df[target], target, str(test_path))
    train_df[target], test_df[target] = y_train, y_test
    n, bad = len(y_train), int(y_train.sum())
    if n < MIN_TRAIN_ROWS or (0 < bad < MIN_TRAIN_DEFAULTS) or (0 < n - bad < MIN_TRAIN_DEFAULTS):
        raise UserError(
            f"{train_path}: {n:,} rows with {bad:,} defaults ({target}=1) and {n - bad:,} non-defaults; training needs at least "
            f"{MIN_TRAIN_ROWS} rows and {MIN_TRAIN_DEFAULTS} of each class (the minimum: fewer leave the model's groups without defaults, "
            "so what it learns is noise); add rows or pool more history"
        )
    warnings: list[str] = []
    columns: dict[str, dict] = {target: {"use": "target", "kind": "binary 0/1"}}
    candidates = []
    for c in train_df.columns:
        if c == target:
            continue
        ctype = infer_column(train_df[c])
        info: dict = {"kind": ctype.kind}
        if ctype.note:
            info["note"] = ctype.note
        if ctype.kind == "date" and c not in keep_columns:
            columns[c] = {**info, "use": "excluded", "reason": "a date: derive a number from it (e.g. days since) to use it"}
            continue
        kind = "categorical" if ctype.kind == "date" else ctype.kind
        converted, n_train, ex_train = apply_column(train_df[c], kind)
        why = None if c in keep_columns else id_like(c, converted, "numeric" if kind == "numeric_text" else kind)
        if why:
            columns[c] = {**info, "use": "excluded", "reason": f"looks like an identifier: {why}; pass --keep-column {c} to use it as a feature"}
            continue
        train_df[c] = converted
        test_df[c], n_test, ex_test = apply_column(test_df[c], kind)
        info["use"] = "feature"
        if n_train or n_test:
            info["coerced_to_missing"] = {"train": n_train, "test": n_test, "examples": list(dict.fromkeys(ex_train + ex_test))[:3]}
            _warn(warnings, f"column {c!r}: {n_train:,} training and {n_test:,} test value(s) are not numbers and were read as missing "
                            f"(e.g. {info['coerced_to_missing']['examples']})")
        columns[c] = info
        candidates.append(c)
    excluded = [c for c, i in columns.items() if i["use"] == "excluded"]
    for c in excluded:
        log.warning("column %r not used: %s", c, columns[c]["reason"])
    for c, i in columns.items():
        if i.get("kind") == "numeric_text" and i["use"] == "feature":
            log.info("column %r: %s", c, i["note"])
    if not candidates:
        why = "; ".join(f"{c}: {columns[c]['reason']}" for c in excluded[:5])
        raise UserError(f"{train_path}: no feature column left ({why})")
    features = usable_features(train_df, candidates, f"training file {train_path}")
    for c in candidates:
        if c not in features:
            columns[c] = {**columns[c], "use": "excluded", "reason": "constant or all missing in the training file"}

    if len(np.unique(y_test)) < 2:
        _warn(warnings, f"{test_path}: the test file holds only class {int(y_test[0])} of {target!r}: its AUC, KS and Gini cannot be computed")
    same_file = train_path.resolve() == test_path.resolve() or (train_path.exists() and test_path.exists() and os.path.samefile(train_path, test_path))
    keys_train = row_keys(train_df, [*features, target])
    keys_test = row_keys(test_df, [*features, target])
    overlap = int(np.isin(keys_test, keys_train).sum())
    if same_file or (len(train_df) == len(test_df) and overlap == len(test_df)):
        _warn(warnings, f"{test_path} holds the same rows as {train_path}: the test metrics measure the fit, not how the model predicts new cases")
    elif overlap:
        _warn(warnings, f"{overlap:,} of {len(test_df):,} test rows ({overlap / len(test_df):.1%}) are identical to training rows: "
                        "the test metrics are optimistic; split the data so no row is in both")
    return ByoTables(train_df, test_df, features, columns, warnings)


def prepare_byo(train_path: str | Path, test_path: str | Path, target: str, keep_columns: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(train, test, features)`` of :func:`read_byo` (numbers as float64, text as categories)."""
    t = read_byo(train_path, test_path, target, keep_columns)
    return t.train, t.test, t.features


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
    **kwargs,
) -> dict:
    """Dispatch: ``train(data_dir, model, ...)`` for a data hub, ``train(features=, test=, target=)`` for BYO."""
    if data_dir is not None:
        if features is not None or test is not None:
            raise UserError("give either --data (a data-hub directory) or --features/--test/--target (your own tables), not both")
        if model is None:
            raise UserError(f"--model is required with --data; choose one of: {', '.join(MODEL_NAMES)}")
        if keep_columns:
            raise UserError("--keep-column applies to --features/--test only; with --data the features come from the feature catalog")
        return train_generated(data_dir, model, experiment or DEFAULT_EXPERIMENT, features_file=features_file, **kwargs)
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


def fit(estimator, model: str, train_df: pd.DataFrame, test_df: pd.DataFrame, features: list[str], target: str, catalog: pd.DataFrame) -> Fitted:
    """Fit ``estimator`` on the training rows, wrap it as a CreditModel and predict both sets."""
    X_train, X_test = train_df[features], test_df[features]
    y_train = train_df[target].to_numpy(dtype="int64")
    y_test = test_df[target].to_numpy(dtype="int64")
    t0 = time.perf_counter()
    estimator.fit(X_train, y_train)
    t1 = time.perf_counter()
    credit_model = make_credit_model(estimator, features, catalog, model)
    pred_train = credit_model.predict_grades(X_train)
    pred_test = credit_model.predict_grades(X_test)
    seconds = {"seconds_fit": t1 - t0, "seconds_predict": time.perf_counter() - t1}
    return Fitted(model, estimator, credit_model, features, X_train, X_test, y_train, y_test, pred_train, pred_test, seconds)


def evaluate(fitted: Fitted, test_df: pd.DataFrame, truth: pd.DataFrame | None) -> tuple[ev.Evaluation, dict[str, float]]:
    """The out-of-time evaluation of a fitted model and its metrics (with the AUC on start-ups, the
    borrowers technology-flow lending is for, and the seconds each step took)."""
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
    if result.grades is not None:
        run.log_table(result.grades, "bad_rate_by_grade.csv")
    monitoring.log_training_reference(run, monitoring.training_reference(f.X_train, f.features, f.pred_train, f.y_train, cut_date))
    t1 = time.perf_counter()
    name, version = run.log_model(f.credit_model, f.X_train, registered_name)
    return name, version, {"seconds_artifacts": t1 - t0, "seconds_log_model": time.perf_counter() - t1}


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
) -> dict:
    """:func:`fit`, :func:`evaluate` and :func:`log_to_run` one model inside one MLflow run (FAILED if
    anything raises); returns the training summary. ``warnings`` (the data's) are logged as the run's
    tag ``riskmodel.warnings`` and returned in ``summary["warnings"]`` with those of the fit (a
    train–test AUC gap above :data:`AUC_GAP_WARNING`)."""
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
        fitted = fit(estimator, model, train_df, test_df, features, target, catalog)
        result, metrics = evaluate(fitted, test_df, truth)
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
        "low_auc_segments": result.segments.loc[result.segments["flag"] == "low_auc", ["segment", "value", "count", "auc"]].to_dict("records"),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "store_lock": {
            "wait_seconds": round(tracking.lock_stats["wait_seconds"] - lock0["wait_seconds"], 3),
            "held_seconds": round(tracking.lock_stats["held_seconds"] - lock0["held_seconds"], 3),
            "retries": int(tracking.lock_stats["retries"] - lock0["retries"]),
        },
    }
