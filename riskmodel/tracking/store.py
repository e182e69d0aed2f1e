"""MLflow tracking for riskmodel: the only module that imports mlflow.

- Store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlruns.db``; resolved at every call,
  never at import. A team points ``MLFLOW_TRACKING_URI`` at an ``mlflow server``.
- Runs: :func:`training_run` opens a run and guarantees it ends FINISHED, or FAILED (KILLED on
  Ctrl-C) when the body raises; it never stays RUNNING.
- Model: the fitted :class:`riskmodel.creditmodel.CreditModel` is pickled as an artifact of a small
  pyfunc (:class:`CreditModelPyfunc`) whose ``predict`` returns ``CreditModel.predict`` plus
  ``model_name`` and ``model_version`` columns. Requirements are passed explicitly (no slow
  inference subprocess); the deployment environment installs the riskmodel package itself.
- Several processes on one SQLite file: SQLite has one writer at a time, and MLflow's transactions
  can fail with "database is locked" when two processes upgrade read locks at once. Every store
  write here runs under an advisory file lock next to the database (``mlruns.db.lock``); every
  call is retried with exponential backoff on "database is locked"; the database is switched to
  WAL journal mode, so reads (compare, loading a model) and artifact files need no lock. The first process also migrates a fresh store under the
  lock, so concurrent first runs do not race on schema creation. Fits run outside the lock, so
  concurrent trainings only queue for the short logging calls.
- Messages: MLflow prints a few lines with ``print`` to stderr rather than logging them ("Successfully
  registered model ..."); :func:`configure` sends them to the ``mlflow.eprint`` logger, so they follow
  the logging setup like MLflow's other lines (``riskmodel.logs``: the log file, terminal with --verbose).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import pickle
import random
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils import logging_utils as mlflow_logging_utils
from mlflow.utils.logging_utils import MlflowLoggingStream

from riskmodel.errors import ScoringError, UserError

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "riskmodel"
MODEL_ARTIFACT = "credit_model"  # key of the pickled CreditModel inside the pyfunc
MODEL_NAME_IN_RUN = "model"  # name of the logged pyfunc inside a run
CHAMPION = "champion"
_RETRIES = 12
_CORE_DEPS = ("numpy", "pandas", "scikit-learn", "lightgbm", "pyarrow", "mlflow", "cloudpickle")


# --------------------------------------------------------------------------------------------
# Store location, locking and retries
# --------------------------------------------------------------------------------------------


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<absolute cwd>/mlruns.db`` (read at call time)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{(Path.cwd() / 'mlruns.db').resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


_lock_state = threading.local()
_thread_lock = threading.RLock()
_prepared: set[str] = set()
# Seconds this process spent waiting for / holding the store lock, and lock-error retries (for figures).
lock_stats: dict[str, float] = {"wait_seconds": 0.0, "held_seconds": 0.0, "acquisitions": 0, "retries": 0}


@contextlib.contextmanager
def _store_lock(uri: str | None = None) -> Iterator[None]:
    """Exclusive advisory lock on ``<db>.lock`` for a SQLite store (re-entrant; no-op for servers)."""
    uri = uri or tracking_uri()
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on retries only
        yield
        return
    with _thread_lock:
        depth = getattr(_lock_state, "depth", 0)
        if depth:
            _lock_state.depth = depth + 1
            try:
                yield
            finally:
                _lock_state.depth -= 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(f"{path}.lock", "a+")
        try:
            t0 = time.perf_counter()
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            t1 = time.perf_counter()
            _lock_state.depth = 1
            try:
                yield
            finally:
                _lock_state.depth = 0
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                lock_stats["wait_seconds"] += t1 - t0
                lock_stats["held_seconds"] += time.perf_counter() - t1
                lock_stats["acquisitions"] += 1
        finally:
            fh.close()


def _is_locked_error(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 5:
        text = str(exc).lower()
        if "database is locked" in text or "database table is locked" in text or "database is busy" in text:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _retry(fn: Callable[..., Any], *args, _lock: bool = True, **kwargs) -> Any:
    """Call ``fn`` under the store lock, retrying with exponential backoff on SQLite lock errors."""
    delay = 0.05
    for attempt in range(_RETRIES):
        try:
            with _store_lock() if _lock else contextlib.nullcontext():
                return fn(*args, **kwargs)
        except Exception as exc:
            if not _is_locked_error(exc) or attempt == _RETRIES - 1:
                raise
            lock_stats["retries"] += 1
            log.warning("tracking store busy (%s); retry %d/%d in %.2fs", type(exc).__name__, attempt + 1, _RETRIES, delay)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _read(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """A read-only store call or an artifact write: retried, but not under the store lock (in WAL
    mode readers never wait for the writer, and artifact files do not touch the database)."""
    return _retry(fn, *args, _lock=False, **kwargs)


class _PrintsToLog(MlflowLoggingStream):
    """MLflow prints some messages with ``eprint`` straight to stderr instead of logging them
    ("Successfully registered model ...", "Created version ..."). Put in place of MLflow's stream,
    this turns each printed line into an INFO record of the ``mlflow.eprint`` logger, so those
    messages follow the logging configuration like MLflow's other messages (the CLI: log file only,
    terminal with ``--verbose``)."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self._buffer = ""
        self._log = logging.getLogger("mlflow.eprint")

    def write(self, text) -> None:
        if not self.enabled:
            return
        self._buffer += str(text)
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                self._log.info("%s", line)

    def flush(self) -> None:
        if self._buffer.strip():
            self._log.info("%s", self._buffer)
        self._buffer = ""


def _route_mlflow_prints() -> None:
    if not isinstance(mlflow_logging_utils.MLFLOW_LOGGING_STREAM, _PrintsToLog):
        mlflow_logging_utils.MLFLOW_LOGGING_STREAM = _PrintsToLog(mlflow_logging_utils.MLFLOW_LOGGING_STREAM.enabled)


def configure() -> str:
    """Point mlflow at :func:`tracking_uri` and make sure a SQLite store is migrated and in WAL mode.

    Called by every public function here (cheap after the first call per URI and process)."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr readable
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage data leaves a bank's machine
    _route_mlflow_prints()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri in _prepared:
        return uri
    path = _sqlite_path(uri)
    if path is not None:
        fresh = _needs_migration(path)
        # Creating the stores runs the schema migrations of a fresh file: do that under the lock so
        # simultaneous first runs do not race. A migrated store only needs reads here (no lock).
        with _store_lock(uri) if fresh else contextlib.nullcontext():
            client = MlflowClient(uri, registry_uri=uri)
            _retry(client.search_experiments, max_results=1, _lock=fresh)
            _retry(client.search_registered_models, max_results=1, _lock=fresh)
        if fresh or _journal_mode(path) != "wal":
            with _store_lock(uri):
                _enable_wal(path)
    _prepared.add(uri)
    return uri


def _needs_migration(path: Path) -> bool:
    """True when ``path`` is not yet an MLflow database (missing, empty, or no schema version)."""
    if not path.is_file() or path.stat().st_size == 0:
        return True
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 0
        finally:
            con.close()
    except sqlite3.Error:
        return True


def _journal_mode(path: Path) -> str:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            con.close()
    except sqlite3.Error:
        return ""


def _enable_wal(path: Path) -> None:
    try:
        con = sqlite3.connect(str(path), timeout=30)
        try:
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error as exc:  # a read-only file or a busy store: retries still protect us
        log.warning("could not switch %s to WAL journal mode: %s", path, exc)


def client() -> MlflowClient:
    """An MlflowClient on the configured store."""
    uri = configure()
    return MlflowClient(uri, registry_uri=uri)


# --------------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------------


def get_or_create_experiment(name: str = DEFAULT_EXPERIMENT, artifact_location: str | None = None) -> str:
    """Experiment id of ``name``, creating it (optionally with ``artifact_location``) if needed."""
    c = client()

    def _get_or_create() -> str:
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise UserError(f"experiment {name!r} was deleted in {tracking_uri()}; restore it (`mlflow experiments restore`) or use another --experiment")
            return exp.experiment_id
        try:
            return c.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            return c.get_experiment_by_name(name).experiment_id

    return _retry(_get_or_create)


def _require_experiment(name: str):
    exp = _read(client().get_experiment_by_name, name)
    if exp is None or exp.lifecycle_stage == "deleted":
        names = [e.name for e in _read(client().search_experiments, max_results=50)]
        known = f" Experiments in this store: {', '.join(sorted(names))}." if names else " The store has no experiments yet."
        raise UserError(
            f"experiment {name!r} does not exist in {tracking_uri()}; train into it first "
            f"(`riskmodel train ... --experiment {name}`) or check MLFLOW_TRACKING_URI.{known}"
        )
    return exp


# --------------------------------------------------------------------------------------------
# The pyfunc wrapper
# --------------------------------------------------------------------------------------------


class CreditModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a pickled ``CreditModel``.

    ``predict(feature rows)`` returns ``CreditModel.predict`` (pd, score, grade, reason codes and
    their Chinese/English texts) plus ``model_name`` and ``model_version``. Name and version come
    from ``model_config`` (set at logging time to the registered name and version; a caller may
    override them with ``mlflow.pyfunc.load_model(uri, model_config=...)``).
    """

    def load_context(self, context) -> None:
        with open(context.artifacts[MODEL_ARTIFACT], "rb") as fh:
            self.credit_model = pickle.load(fh)
        cfg = dict(context.model_config or {})
        self.model_name = str(cfg.get("model_name", ""))
        self.model_version = str(cfg.get("model_version", ""))
        requirement_mismatches(cfg.get("requirements", ()))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        out = self.credit_model.predict(model_input)
        # Plain object columns for every text output: categorical and Arrow-backed strings break
        # consumers that convert the frame themselves (Spark's Arrow writer, JSON serving).
        text = {c: out[c].astype(object).where(out[c].notna(), None) for c in out.columns if c not in ("pd", "score")}
        out = out.assign(**text)
        out["model_name"] = self.model_name
        out["model_version"] = self.model_version
        return out


def pip_requirements() -> list[str]:
    """The project package at its version plus the installed versions of the core dependencies."""
    from importlib.metadata import PackageNotFoundError, version

    import riskmodel

    reqs = [f"riskmodel=={riskmodel.__version__}"]
    for dist in _CORE_DEPS:
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:  # pragma: no cover
            reqs.append(dist)
    return reqs


def requirement_mismatches(requirements) -> list[str]:
    """Warn about (and return) the pinned ``name==version`` requirements the installed packages do
    not match. Loading calls this instead of MLflow's own check, which scans every installed
    distribution (the largest part of a model load in a profile of ``riskmodel score``)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for req in requirements:
        name, _, wanted = str(req).partition("==")
        if not wanted:
            continue
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        if have != wanted:
            found.append(f"{name}=={wanted} (installed: {have})")
    if found:
        log.warning("the model was logged with %s; predictions may differ", ", ".join(found))
    return found


def input_example(X: pd.DataFrame, n: int = 2) -> pd.DataFrame:
    """A synthetic input example: the column medians (and upper quartiles) of ``X``, no real row.

    Logging real rows would copy individual firms' data into every model artifact."""
    rows = []
    for q in (0.5, 0.75)[:n]:
        row = {}
        for c in X.columns:
            s = X[c]
            if pd.api.types.is_bool_dtype(s):
                row[c] = bool(s.mode().iloc[0]) if s.notna().any() else False
            elif pd.api.types.is_numeric_dtype(s):
                v = s.quantile(q)
                row[c] = float(v) if pd.notna(v) else 0.0
            else:
                m = s.dropna().astype(str).mode()
                row[c] = str(m.iloc[0]) if len(m) else ""
        rows.append(row)
    ex = pd.DataFrame(rows, columns=list(X.columns))
    for c in X.columns:
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c]):
            ex[c] = ex[c].astype("float64")
    return ex


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    """Handle on an active run: log params, metrics, tables, figures and the model."""

    run_id: str
    experiment_id: str
    registered_name: str | None = None
    registered_version: str | None = None
    artifacts: list[str] = field(default_factory=list)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        _retry(mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        clean = {}
        for k, v in params.items():
            text = v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
            clean[k] = text[:6000]
        _retry(mlflow.log_params, clean)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        clean = {}
        for k, v in metrics.items():
            if v is None or isinstance(v, (str, bytes)):
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                continue
            if np.isfinite(f):
                clean[k] = f
        _retry(mlflow.log_metrics, clean)

    def log_table(self, frame: pd.DataFrame, path: str) -> None:
        """Log a DataFrame as CSV (``.csv``) or Parquet (``.parquet``) at artifact ``path``."""
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            if path.endswith(".parquet"):
                frame.to_parquet(local, index=False)
            else:
                frame.to_csv(local, index=False)
            self._log_file(local, str(Path(path).parent) if Path(path).parent != Path(".") else None)
        self.artifacts.append(path)

    def log_dict(self, obj: Any, path: str) -> None:
        _read(mlflow.log_text, json.dumps(obj, indent=2, ensure_ascii=False, default=str, sort_keys=True), path)
        self.artifacts.append(path)

    def log_figure(self, fig, path: str) -> None:
        import matplotlib.pyplot as plt

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            fig.savefig(local, dpi=90)
            self._log_file(local, str(Path(path).parent) if Path(path).parent != Path(".") else None)
        plt.close(fig)
        self.artifacts.append(path)

    def _log_file(self, local: Path, artifact_dir: str | None) -> None:
        _read(mlflow.log_artifact, str(local), artifact_dir)

    def log_model(self, credit_model, X: pd.DataFrame, registered_name: str | None = None) -> tuple[str | None, str | None]:
        """Log ``credit_model`` as a pyfunc with signature and input example; register it.

        Returns ``(registered_name, version)`` (``(None, None)`` without a name). The version is
        written into the pyfunc's ``model_config`` so predictions carry it; on a SQLite store the
        store lock makes "next version" exact even with concurrent trainings.
        """
        from mlflow.models import infer_signature

        example = input_example(X)
        pred = credit_model.predict(example)
        pred = pred.assign(model_name=registered_name or "", model_version="")
        signature = infer_signature(example, pred)
        used = set(getattr(credit_model, "used_features", example.columns))
        if signature.inputs is not None and not used >= set(example.columns):
            # features the model does not use (a scorecard's unselected ones) may be left out
            from mlflow.types.schema import ColSpec, Schema

            signature.inputs = Schema([ColSpec(c.type, c.name, required=c.name in used) for c in signature.inputs.inputs])
        with tempfile.TemporaryDirectory() as tmp:
            pkl = Path(tmp) / "credit_model.pkl"
            with _store_lock():
                version = None
                if registered_name:
                    version = str(_next_version(registered_name))
                # The pickled model records its registered name and version (CreditModel.name/version).
                stamped = copy.copy(credit_model)
                if registered_name and hasattr(stamped, "name"):
                    stamped.name = registered_name
                if hasattr(stamped, "version"):
                    stamped.version = version
                with open(pkl, "wb") as fh:
                    pickle.dump(stamped, fh, protocol=pickle.HIGHEST_PROTOCOL)
                reqs = pip_requirements()
                cfg = {"model_name": registered_name or "", "model_version": version or self.run_id, "requirements": reqs}
                info = _retry(
                    mlflow.pyfunc.log_model,
                    name=MODEL_NAME_IN_RUN,
                    python_model=CreditModelPyfunc(),
                    artifacts={MODEL_ARTIFACT: str(pkl)},
                    signature=signature,
                    input_example=example,
                    pip_requirements=reqs,
                    model_config=cfg,
                )
                if registered_name:
                    mv = _retry(mlflow.register_model, info.model_uri, registered_name, await_registration_for=0)
                    if str(mv.version) != version:
                        log.warning(
                            "registered %s as version %s but the model carries version %s (another writer registered meanwhile)",
                            registered_name, mv.version, version,
                        )
                    version = str(mv.version)
                    _retry(client().set_model_version_tag, registered_name, version, "run_id", self.run_id)
        self.registered_name, self.registered_version = registered_name, version
        self.model_uri = info.model_uri
        return registered_name, version


def _next_version(name: str) -> int:
    c = client()
    try:
        versions = c.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return 1
    return max((int(v.version) for v in versions), default=0) + 1


@contextlib.contextmanager
def training_run(
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    artifact_location: str | None = None,
) -> Iterator[TrainingRun]:
    """Open a run in ``experiment``; end it FINISHED, or FAILED if the body raises (KILLED on Ctrl-C,
    or SIGTERM when the caller turns it into SystemExit as ``riskmodel train`` does).

    The exception is re-raised after the run is closed, so the caller still sees it."""
    exp_id = get_or_create_experiment(experiment, artifact_location)
    while mlflow.active_run() is not None:  # a run left open by a previous caller in this process
        _retry(mlflow.end_run, status="FAILED")
    run = _retry(mlflow.start_run, experiment_id=exp_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()})
    handle = TrainingRun(run_id=run.info.run_id, experiment_id=exp_id)
    try:
        yield handle
    except (KeyboardInterrupt, SystemExit):
        _end_quietly("KILLED")
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):
            mlflow.set_tag("riskmodel.error", f"{type(exc).__name__}: {exc}"[:5000])
        _end_quietly("FAILED")
        raise
    else:
        _retry(mlflow.end_run, status="FINISHED")


def _end_quietly(status: str) -> None:
    try:
        _retry(mlflow.end_run, status=status)
    except Exception:  # the store itself is broken: nothing more we can do, the original error matters
        log.exception("could not mark the run %s", status)


def run_status(run_id: str) -> str:
    """Status of a run (RUNNING, FINISHED, FAILED, KILLED)."""
    return _read(client().get_run, run_id).info.status


# --------------------------------------------------------------------------------------------
# Registry: promote, load, compare
# --------------------------------------------------------------------------------------------


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


def spark_udf(spark, uri: str, credit_model=None):
    """``mlflow.pyfunc.spark_udf`` for a riskmodel URI returning a struct of the model's output columns
    (pd, score as double; grade, reasons, model_name, model_version as string). Uses the current
    Python environment (``env_manager="local"``): riskmodel must be installed on the workers."""
    from pyspark.sql import types as T

    if credit_model is None:
        credit_model = load_credit_model(uri)[0]
    try:
        from riskmodel.creditmodel import output_columns

        cols = output_columns(getattr(credit_model, "n_reasons", 3))
    except ImportError:  # pragma: no cover
        cols = ["pd", "score", "grade"] + [f"reason_{i}{s}" for s in ("", "_zh", "_en") for i in (1, 2, 3)]
    fields = [T.StructField(c, T.DoubleType() if c in ("pd", "score") else T.StringType(), True) for c in [*cols, "model_name", "model_version"]]
    configure()
    try:
        return _read(mlflow.pyfunc.spark_udf, spark, uri, result_type=T.StructType(fields), env_manager="local")
    except MlflowException as exc:
        raise ScoringError(f"cannot load model {uri!r} for Spark: {str(exc).splitlines()[0][:300]}") from None


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


# --------------------------------------------------------------------------------------------
# Hashes and plots (used when logging)
# --------------------------------------------------------------------------------------------


def frame_hash(frame: pd.DataFrame, n: int = 16) -> str:
    """Stable content hash of a small DataFrame (CSV bytes, columns sorted), first ``n`` hex digits."""
    buf = io.StringIO()
    frame.reindex(sorted(frame.columns), axis=1).to_csv(buf, index=False)
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()[:n]


def file_hash(paths, n: int = 16) -> str:
    """sha256 over the bytes of one or more files (in the given order), first ``n`` hex digits."""
    h = hashlib.sha256()
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:n]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc_ks(roc: pd.DataFrame, auc: float, ks: float, title: str = ""):
    """ROC curve and the KS gap (TPR - FPR along the thresholds) side by side."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot(roc["fpr"], roc["tpr"], lw=1.5, label=f"AUC {auc:.3f}")
    a.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    a.set_xlabel("false positive rate (goods)")
    a.set_ylabel("true positive rate (bads)")
    a.set_title("ROC, test set")
    a.legend(loc="lower right")
    share = roc["share"].to_numpy() if "share" in roc.columns else np.linspace(0, 1, len(roc))
    gap = roc["tpr"].to_numpy() - roc["fpr"].to_numpy()
    b.plot(share, roc["tpr"], label="bads (cumulative)")
    b.plot(share, roc["fpr"], label="goods (cumulative)")
    i = int(np.argmax(gap)) if len(gap) else 0
    if len(gap):
        b.vlines(share[i], roc["fpr"].iloc[i], roc["tpr"].iloc[i], colors="red", label=f"KS {ks:.3f}")
    b.set_xlabel("share of applications, highest PD first")
    b.set_title("KS")
    b.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.86 if title else 0.9, wspace=0.25)
    return fig


def plot_calibration(table: pd.DataFrame, title: str = ""):
    """Mean predicted PD against the observed default rate per PD decile."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    hi = float(max(table["mean_pd"].max(), table["observed_rate"].max(), 1e-3)) * 1.1 if len(table) else 1.0
    ax.plot([0, hi], [0, hi], ls="--", color="grey", lw=0.8)
    ax.plot(table["mean_pd"], table["observed_rate"], marker="o")
    ax.set_xlabel("mean predicted PD")
    ax.set_ylabel("observed default rate")
    ax.set_title(title or "calibration by PD decile, test set")
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.12, top=0.92)
    return fig


def plot_importance(table: pd.DataFrame, value: str = "importance", label: str = "feature", top: int = 25):
    """Horizontal bar chart of the ``top`` largest importances."""
    plt = _pyplot()
    t = table.sort_values(value, ascending=False).head(top).iloc[::-1]
    height = 0.25 * len(t) + 1.2
    fig, ax = plt.subplots(figsize=(7.5, height))
    names = [n if len(n) <= 38 else n[:36] + ".." for n in t[label].astype(str)]
    ax.barh(names, t[value])
    ax.set_xlabel(f"{value} (mean |log-odds contribution|)" if value == "importance" else value)
    ax.set_title("feature importance")
    fig.subplots_adjust(left=0.42, right=0.97, bottom=0.7 / height, top=1 - 0.4 / height)
    return fig


# --------------------------------------------------------------------------------------------
# Reports (riskmodel.report): read a finished run, attach files to it
# --------------------------------------------------------------------------------------------


def run_info(run_id: str) -> dict:
    """``run_id, experiment, status, start_time, params, metrics, tags`` of a run; UserError if unknown."""
    c = client()
    try:
        r = _read(c.get_run, run_id)
    except MlflowException:
        raise UserError(f"run {run_id!r} not found in {tracking_uri()}; list runs with `riskmodel compare --experiment NAME`") from None
    try:
        exp = _read(c.get_experiment, r.info.experiment_id).name
    except MlflowException:
        exp = r.info.experiment_id
    return {
        "run_id": r.info.run_id,
        "experiment": exp,
        "status": r.info.status,
        "start_time": pd.Timestamp(r.info.start_time, unit="ms") if r.info.start_time else None,
        "params": dict(r.data.params),
        "metrics": dict(r.data.metrics),
        "tags": dict(r.data.tags),
    }


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


# --------------------------------------------------------------------------------------------
# Monitoring (riskmodel.monitoring): the training reference stored with a model
# --------------------------------------------------------------------------------------------

MONITORING_ARTIFACTS = ("feature_profile.csv", "score_profile.csv", "reference.json")


def load_training_reference(uri: str) -> dict:
    """The population summary the training run of model ``uri`` logged under ``monitoring/``:
    ``feature_profile`` and ``score_profile`` (DataFrames: bins and training shares), ``reference``
    (dict from reference.json), plus ``run_id``, ``experiment`` and ``artifact_location`` of that run's
    experiment (monitoring runs go to the experiment ``<experiment>-monitoring`` beside it)."""
    run_id = run_of_model(uri)
    c = client()
    info = run_info(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(_read(c.download_artifacts, run_id, "monitoring", tmp))
        except (MlflowException, OSError) as exc:
            raise UserError(f"model {uri!r} (run {run_id}) has no monitoring reference: {str(exc).splitlines()[0][:200]}; retrain it with `riskmodel train`") from None
        missing = [f for f in MONITORING_ARTIFACTS if not (local / f).is_file()]
        if missing:
            raise UserError(f"model {uri!r} (run {run_id}) lacks monitoring/{', monitoring/'.join(missing)}; retrain it with `riskmodel train`")
        feature_profile = pd.read_csv(local / "feature_profile.csv", keep_default_na=False, na_values=[""])
        score_profile = pd.read_csv(local / "score_profile.csv", keep_default_na=False, na_values=[""])
        reference = json.loads((local / "reference.json").read_text(encoding="utf-8"))
    exp = _read(c.get_experiment, _read(c.get_run, run_id).info.experiment_id)
    return {
        "run_id": run_id,
        "experiment": info["experiment"],
        "artifact_location": exp.artifact_location,
        "feature_profile": feature_profile,
        "score_profile": score_profile,
        "reference": reference,
    }
