"""Health of the tracking store, checked and repaired by ``riskmodel doctor``.

Each check returns :class:`Finding` records: what was looked at, whether it is ``ok``, what was
``repaired`` (or ``would_repair`` with ``dry_run``), or a ``problem`` riskmodel cannot repair by
itself (the finding says what to do).

* **store**: a SQLite store opens, passes ``PRAGMA quick_check``, carries MLflow's current schema
  and runs in WAL mode (switched on when it is not: several processes share the file); a server
  store answers.
* **runs**: runs left RUNNING whose process is gone, or older than ``stale_hours`` without a
  process on this machine, end FAILED (:func:`~riskmodel.tracking.runs.reap_orphaned_runs`).
* **aliases**: every alias of every registered model names a version that exists (else the alias is
  deleted: it can only fail) and whose model files are still there (else reported: promote another
  version).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

from riskmodel.errors import StoreError
from riskmodel.tracking.runs import reap_orphaned_runs
from riskmodel.tracking.store import _enable_wal, _journal_mode, _read, _retry, _sqlite_path, check_sqlite_file, client, tracking_uri

log = logging.getLogger(__name__)


@dataclass
class Finding:
    check: str  # store | runs | aliases | cache
    status: str  # ok | repaired | would_repair | problem
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def _schema(path: Path) -> tuple[str | None, str]:
    """(the store's alembic revision or None, the revision this MLflow expects)."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    head = _get_latest_schema_revision()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        row = None
    finally:
        con.close()
    return (row[0] if row else None), head


def store_absent() -> bool:
    """The store is a SQLite file that does not exist (yet): nothing to check, and opening it with
    MLflow would create it (and its folder), so the other checks must not run."""
    path = _sqlite_path(tracking_uri())
    return path is not None and not path.is_file()


def check_store(dry_run: bool = False) -> list[Finding]:
    """The store opens and is intact, migrated and (SQLite) in WAL mode."""
    uri = tracking_uri()
    path = _sqlite_path(uri)
    if path is None:
        try:
            _read(client().search_experiments, max_results=1)
        except StoreError as exc:
            return [Finding("store", "problem", str(exc))]
        return [Finding("store", "ok", f"{uri} answers")]
    if not path.is_file():
        hint = "" if path.parent.is_dir() else f"; its folder {path.parent} does not exist either: check MLFLOW_TRACKING_URI for a typo"
        return [Finding("store", "ok", f"{path} does not exist yet (the first training creates it); nothing created{hint}")]
    try:
        check_sqlite_file(path)
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            result = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
        finally:
            con.close()
    except StoreError as exc:
        return [Finding("store", "problem", str(exc))]
    except sqlite3.Error as exc:
        return [Finding("store", "problem", f"{path} cannot be checked ({exc}); move it aside (mv {path} {path}.broken) or restore a backup")]
    if result != ["ok"]:
        return [Finding("store", "problem", f"{path} fails SQLite's integrity check ({'; '.join(result[:3])}); restore it from a backup, "
                                            f"or move it aside (mv {path} {path}.broken) to start a new store")]
    found = [Finding("store", "ok", f"{path} opens and passes SQLite's integrity check")]
    current, head = _schema(path)
    if current is None:
        found.append(Finding("store", "problem", f"{path} is a SQLite file but not an MLflow store (no schema version); point MLFLOW_TRACKING_URI at the store"))
        return found
    if current != head:
        found.append(Finding("store", "problem", f"{path} has MLflow schema {current}, this MLflow expects {head}: back it up, then run `mlflow db upgrade {uri}`"))
        return found
    found.append(Finding("store", "ok", f"schema {head} (current)"))
    mode = _journal_mode(path)
    if mode == "wal":
        found.append(Finding("store", "ok", "WAL journal mode (readers do not wait for the writer)"))
    elif dry_run:
        found.append(Finding("store", "would_repair", f"journal mode {mode or 'unknown'}: would switch to WAL"))
    else:
        _enable_wal(path)
        mode = _journal_mode(path)
        found.append(Finding("store", "repaired" if mode == "wal" else "problem", f"journal mode switched to {mode or 'unknown'}"))
    return found


def check_runs(stale_hours: float, dry_run: bool = False) -> list[Finding]:
    """Runs left RUNNING by a killed process (or older than ``stale_hours``) end FAILED."""
    reaped = reap_orphaned_runs(stale_hours=stale_hours, dry_run=dry_run)
    if not reaped:
        return [Finding("runs", "ok", "no run left RUNNING by a process that is gone")]
    status = "would_repair" if dry_run else "repaired"
    verb = "would mark" if dry_run else "marked"
    return [Finding("runs", status, f"{verb} run {r['run_id']} FAILED: {r['reason']}") for r in reaped]


def _model_files_present(c, name: str, version: str) -> bool | None:
    """True/False when the version's model files are on this machine's disk; None when they live
    elsewhere (a server, object storage) and are not checked here."""
    try:
        uri = _read(c.get_model_version_download_uri, name, version)
    except MlflowException:
        return False
    local = uri[len("file://"):] if uri.startswith("file://") else (uri if "://" not in uri else None)
    if local is None:
        return None
    return (Path(local) / "MLmodel").is_file()


def check_aliases(dry_run: bool = False) -> list[Finding]:
    """Every alias names a version that exists and whose model files are there."""
    c = client()
    found = []
    models = _read(c.search_registered_models, max_results=1000)
    for rm in models:
        for alias, version in sorted((rm.aliases or {}).items()):
            label = f"{rm.name}@{alias} -> version {version}"
            try:
                _read(c.get_model_version, rm.name, str(version))
            except MlflowException:
                if dry_run:
                    found.append(Finding("aliases", "would_repair", f"{label}: the version does not exist; would delete the alias"))
                else:
                    _retry(c.delete_registered_model_alias, rm.name, alias)
                    found.append(Finding("aliases", "repaired", f"{label}: the version does not exist; alias deleted"))
                continue
            present = _model_files_present(c, rm.name, str(version))
            if present is False:
                found.append(Finding("aliases", "problem", f"{label}: its model files are missing; promote another version "
                                                           f"(`riskmodel promote --name {rm.name} --version V --alias {alias}`)"))
    if not found:
        n = sum(len(rm.aliases or {}) for rm in models)
        found.append(Finding("aliases", "ok", f"{n} alias(es) on {len(models)} registered model(s) point at existing versions"))
    return found
