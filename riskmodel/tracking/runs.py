"""Training runs: open a run, log to it, end it FINISHED, or FAILED (KILLED on Ctrl-C) when the body
raises; it never stays RUNNING. :meth:`TrainingRun.log_model` logs and registers the pyfunc."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import pickle
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from riskmodel.tracking.pyfunc import MODEL_ARTIFACT, MODEL_NAME_IN_RUN, CreditModelPyfunc, input_example, pip_requirements
from riskmodel.tracking.store import DEFAULT_EXPERIMENT, _read, _retry, _store_lock, client, get_or_create_experiment

log = logging.getLogger(__name__)


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
        used = set(credit_model.used_features)
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
                if registered_name:
                    stamped.name = registered_name
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
    try:  # runs whose process was killed (kill -9, a power cut) end FAILED now, not RUNNING forever
        reap_orphaned_runs()
    except Exception as exc:  # noqa: BLE001 - housekeeping must never stop a training
        log.warning("could not check for runs left RUNNING by killed processes: %s", exc)
    run_tags = {PROCESS_TAG: process_identity(), **{k: str(v) for k, v in (tags or {}).items()}}
    run = _retry(mlflow.start_run, experiment_id=exp_id, run_name=run_name, tags=run_tags)
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


#: tag on every run riskmodel opens: ``host:pid:start`` of the process that runs it
PROCESS_TAG = "riskmodel.process"
#: tag set on a run riskmodel ended on behalf of a process that can no longer end it
ENDED_TAG = "riskmodel.ended_by"


def _start_ticks(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), '' when unknown;
    with the pid it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_identity(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (or of ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def process_gone(identity: str) -> bool | None:
    """True when the process named by a :func:`process_identity` has ended, False while it runs,
    None when this machine cannot tell (another host, or a malformed tag)."""
    try:
        host, pid_text, start = identity.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        pass
    now = _start_ticks(pid)
    return bool(start and now and now != start)  # the pid now belongs to another process


def running_runs() -> list:
    """Every run in the store whose status is RUNNING (all experiments, deleted ones included)."""
    from mlflow.entities import ViewType

    c = client()
    ids = [e.experiment_id for e in _read(c.search_experiments, view_type=ViewType.ALL, max_results=50_000)]
    found = []
    for i in range(0, len(ids), 100):
        found += _read(c.search_runs, ids[i:i + 100], filter_string="attributes.status = 'RUNNING'", run_view_type=ViewType.ALL, max_results=50_000)
    return found


def reap_orphaned_runs(*, stale_hours: float | None = None, dry_run: bool = False) -> list[dict]:
    """End as FAILED the RUNNING runs no process will end: those whose process (tag
    :data:`PROCESS_TAG`) is gone from this machine and, with ``stale_hours``, those of any origin
    started longer ago than that. Each gets the tag :data:`ENDED_TAG` saying why. Returns one dict per
    run (``run_id, experiment_id, started, reason``); ``dry_run`` changes nothing."""
    now_ms = time.time() * 1000
    done = []
    for r in running_runs():
        identity = r.data.tags.get(PROCESS_TAG, "")
        gone = process_gone(identity) if identity else None
        age_h = (now_ms - (r.info.start_time or now_ms)) / 3.6e6
        if gone:
            reason = f"its process {identity} is gone (killed, or the machine restarted)"
        elif stale_hours is not None and age_h > stale_hours and gone is None:
            reason = f"RUNNING for {age_h:.1f} h, longer than {stale_hours:g} h, and no process on this machine owns it"
        else:
            continue
        done.append({"run_id": r.info.run_id, "experiment_id": r.info.experiment_id, "started_hours_ago": round(age_h, 2), "reason": reason})
        if not dry_run:
            c = client()
            _retry(c.set_tag, r.info.run_id, ENDED_TAG, f"riskmodel marked this run FAILED: {reason}")
            _retry(c.set_terminated, r.info.run_id, "FAILED")
            log.warning("run %s was left RUNNING: marked FAILED (%s)", r.info.run_id, reason)
    return done


def run_status(run_id: str) -> str:
    """Status of a run (RUNNING, FINISHED, FAILED, KILLED)."""
    return _read(client().get_run, run_id).info.status
