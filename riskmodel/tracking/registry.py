"""The model registry and finished runs: promote, load, compare, look up a run, attach or fetch
files of a run."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from riskmodel.errors import ScoringError, UserError
from riskmodel.tracking.pyfunc import CreditModelPyfunc
from riskmodel.tracking.store import DEFAULT_EXPERIMENT, _read, _require_experiment, _retry, client, configure, tracking_uri

log = logging.getLogger(__name__)

CHAMPION = "champion"


def promote(name: str, version: str | int, alias: str = CHAMPION) -> dict:
    """Set ``alias`` (default ``champion``) on version ``version`` of registered model ``name``."""
    c = client()
    try:
        _read(c.get_registered_model, name)
    except MlflowException:
        raise UserError(f"registered model {name!r} does not exist in {tracking_uri()}; train one with `riskmodel train ... --model ...` (it registers as riskmodel-<model>)") from None
    try:
        _read(c.get_model_version, name, str(version))
    except MlflowException:
        versions = sorted(int(v.version) for v in _read(c.search_model_versions, f"name = '{name}'"))
        raise UserError(f"registered model {name!r} has no version {version}; existing versions: {versions}") from None
    _retry(c.set_registered_model_alias, name, alias, str(version))
    return {"name": name, "version": str(version), "alias": alias, "uri": f"models:/{name}@{alias}"}


def load_model(uri: str):
    """Load a riskmodel pyfunc from any MLflow model URI (``runs:/..``, ``models:/NAME@alias``, ...).

    Raises :class:`ScoringError` with a clear message when the URI, model, version or alias is unknown."""
    configure()
    try:
        # our own requirement check runs in load_context (see requirement_mismatches)
        return _read(mlflow.pyfunc.load_model, uri, suppress_warnings=True)
    except MlflowException as exc:
        first = str(exc).splitlines()[0][:300]
        hint = ""
        if uri.startswith("models:/") and "@" in uri:
            hint = f" (is the alias set? `riskmodel promote --name {uri[8:].split('@')[0]} --version V --alias {uri.split('@')[1]}`)"
        raise ScoringError(f"cannot load model {uri!r} from {tracking_uri()}: {first}{hint}") from None
    except OSError as exc:
        raise ScoringError(f"cannot load model {uri!r}: {exc}") from None


def load_credit_model(uri: str):
    """``(CreditModel, model_name, model_version)`` behind a riskmodel pyfunc URI.

    Batch scoring calls the CreditModel directly (chunked, validated) instead of going through
    pyfunc schema enforcement per chunk; name and version are the ones stamped at registration."""
    model = load_model(uri)
    try:
        inner = model.unwrap_python_model()
    except Exception:
        inner = None
    if not isinstance(inner, CreditModelPyfunc):
        raise ScoringError(f"{uri!r} is not a riskmodel model (no CreditModel inside); train one with `riskmodel train`")
    return inner.credit_model, inner.model_name, inner.model_version


COMPARE_METRICS = ("test_auc", "test_auc_startup", "test_gini", "test_ks", "test_brier", "test_log_loss", "test_ece", "psi_score", "train_auc", "oracle_auc")


def compare(experiment: str = DEFAULT_EXPERIMENT, alias: str = CHAMPION) -> pd.DataFrame:
    """One row per run in ``experiment``: model, status, registered name/version, OOT metrics, champion.

    Sorted by out-of-time AUC (``test_auc``), best first; runs without it (failed) at the end.
    ``champion`` is True for the model version carrying ``alias`` in its registered model."""
    exp = _require_experiment(experiment)
    c = client()
    runs = _read(c.search_runs, [exp.experiment_id], max_results=5000)
    rows = []
    for r in runs:
        row = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "model": r.data.params.get("model") or r.data.tags.get("riskmodel.model", ""),
            "status": r.info.status,
            "start_time": pd.Timestamp(r.info.start_time, unit="ms") if r.info.start_time else pd.NaT,
            "registered_name": r.data.tags.get("riskmodel.registered_name", ""),
            "registered_version": r.data.tags.get("riskmodel.registered_version", ""),
        }
        for m in COMPARE_METRICS:
            row[m] = r.data.metrics.get(m, np.nan)
        rows.append(row)
    cols = ["run_id", "run_name", "model", "status", "start_time", "registered_name", "registered_version", *COMPARE_METRICS]
    table = pd.DataFrame(rows, columns=cols)
    champions: dict[str, str] = {}
    for name in sorted({n for n in table["registered_name"] if n}):
        try:
            mv = _read(c.get_model_version_by_alias, name, alias)
            champions[name] = str(mv.version)
        except MlflowException:
            pass
    table["champion"] = [champions.get(n) == v and bool(v) for n, v in zip(table["registered_name"], table["registered_version"])]
    table = table.sort_values(["test_auc", "start_time"], ascending=[False, False], na_position="last", kind="mergesort")
    return table.reset_index(drop=True)


def run_info(run_id: str) -> dict:
    """``run_id, experiment, artifact_location`` (of the experiment), ``status, start_time, params,
    metrics, tags`` of a run; UserError if unknown."""
    c = client()
    try:
        r = _read(c.get_run, run_id)
    except MlflowException:
        raise UserError(f"run {run_id!r} not found in {tracking_uri()}; list runs with `riskmodel compare --experiment NAME`") from None
    try:
        exp = _read(c.get_experiment, r.info.experiment_id)
        name, location = exp.name, exp.artifact_location
    except MlflowException:
        name, location = r.info.experiment_id, None
    return _info(r, name, location)


def _info(r, experiment: str, artifact_location: str | None) -> dict:
    return {
        "run_id": r.info.run_id,
        "experiment": experiment,
        "artifact_location": artifact_location,
        "status": r.info.status,
        "start_time": pd.Timestamp(r.info.start_time, unit="ms") if r.info.start_time else None,
        "params": dict(r.data.params),
        "metrics": dict(r.data.metrics),
        "tags": dict(r.data.tags),
    }


def finished_run(run_id: str) -> dict:
    """:func:`run_info` of a run that ended FINISHED; a UserError for a failed, killed or running one
    (its model and its files may be missing or partial)."""
    info = run_info(run_id)
    if info["status"] != "FINISHED":
        raise UserError(f"run {run_id} is {info['status']}, not FINISHED; use a finished run (`riskmodel compare --experiment {info['experiment']}`)")
    return info


def run_of_model(uri: str) -> str:
    """Run id behind a model URI: ``runs:/RUN/...`` or ``models:/NAME/VERSION`` / ``models:/NAME@ALIAS``."""
    if uri.startswith("runs:/"):
        return uri[len("runs:/"):].split("/")[0]
    if not uri.startswith("models:/"):
        raise UserError(f"model URI {uri!r} must start with runs:/ or models:/")
    rest = uri[len("models:/"):]
    c = client()
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            mv = _read(c.get_model_version_by_alias, name, alias)
        else:
            name, version = rest.split("/", 1)
            mv = _read(c.get_model_version, name, version)
    except (MlflowException, ValueError):
        raise UserError(f"cannot resolve model {uri!r} in {tracking_uri()}; check the name, version or alias (`riskmodel compare`)") from None
    return str(mv.run_id)


def log_artifacts_to_run(run_id: str, local_dir: str | Path, artifact_path: str) -> str:
    """Attach every file under ``local_dir`` to (finished) run ``run_id`` at ``artifact_path``; returns
    the artifact URI of that folder."""
    c = client()
    _read(c.log_artifacts, run_id, str(local_dir), artifact_path)
    return f"{_read(c.get_run, run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"


def log_metrics_to_run(run_id: str, metrics: dict, tags: dict | None = None) -> None:
    """Add ``metrics`` (finite numbers only; None, NaN and text are left out) and ``tags`` to
    (finished) run ``run_id``. A metric logged again keeps its history: MLflow shows the latest."""
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    clean = []
    for k, v in metrics.items():
        if v is None or isinstance(v, (str, bytes)):
            continue
        f = float(v)
        if np.isfinite(f):
            clean.append(Metric(k, f, now, 0))
    _retry(client().log_batch, run_id, metrics=clean, tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])


def find_runs(experiment: str, params: dict, status: str = "FINISHED") -> list[dict]:
    """:func:`run_info` of the runs of ``experiment`` whose parameters equal ``params`` (text
    compared exactly) and whose status is ``status``, newest first; [] when the experiment does not
    exist."""
    c = client()
    exp = _read(c.get_experiment_by_name, experiment)
    if exp is None:
        return []
    values = {k: str(v) for k, v in params.items()}
    odd = {k: v for k, v in values.items() if "'" in v}
    if odd:
        raise ValueError(f"find_runs cannot search parameter values holding a quote: {odd}")
    where = " and ".join([f"params.{k} = '{v}'" for k, v in values.items()] + [f"attributes.status = '{status}'"])
    runs = _read(c.search_runs, [exp.experiment_id], where, max_results=1000, order_by=["attributes.start_time DESC"])
    return [_info(r, exp.name, exp.artifact_location) for r in runs]


def download_artifacts(run_id: str, path: str, dst: str | Path) -> Path:
    """Copy artifact ``path`` (a file or a folder) of run ``run_id`` into the local folder ``dst``;
    returns the local path. A UserError naming the run and the path when it cannot be fetched."""
    try:
        return Path(_read(client().download_artifacts, run_id, path, str(dst)))
    except (MlflowException, OSError) as exc:
        raise UserError(f"run {run_id} has no artifact {path!r} ({str(exc).splitlines()[0][:200]})") from None
