"""The labelled training set of a data hub, in one place.

A data hub (``riskmodel generate``, or a bank's own tables) is a folder of source tables with an
``outcomes`` table. Training, the report, federated training and the demo all need the same three
steps, done here and nowhere else:

1. the feature matrix of every application (``features.partitions.build_hub``: one partition of
   firms at a time, so memory stays flat in the hub's size), cached in
   ``DIR/cache/features-<data fingerprint>-<feature code version>.parquet``, its rows put in the
   order of the applications table (a partitioned build writes them partition by partition);
2. the outcomes joined on ``application_id`` (ids compared as strings, at most one outcome per
   application and one feature row per application, else a :class:`UserError`), dates parsed;
3. the out-of-time split by application date (:func:`riskmodel.evaluation.oot_split`);
4. the bank's own record of every application (:func:`decisions`): whether it was approved and
   whether it was the firm's first, which reject inference and the through-the-door evaluation use.

The cache key is content, never a name: the **data fingerprint** is a sha256 over the bytes of
``manifest.json`` and of every table file (``<table>.parquet``, or each part file of a table folder
``<table>/part-*.parquet``), and the **feature code version**
(``feature_code_version()``) hashes the catalog and the source of the feature layer. Editing a
table, or a signal's formula without touching its catalog text, gives another key, so the matrix is
built again. Hashing a large hub takes a while, so each file's sha256 is remembered in
``DIR/cache/fingerprints.json`` together with the file's size, modification time (ns) and inode; a
file whose three still match is not read again (the same trust ``make`` and ``rsync`` put in a
modification time). A cache file that cannot be read is built again, not a traceback. Cache files
are written atomically (``features.files.AtomicOutput``), so a process reading the cache never sees
a partial file and two processes building at once do not corrupt it.

The other labelled sets live here too: a user's own training and test tables, read and checked
(:func:`read_byo`, ``riskmodel train --features --test``: minimum sizes, identifier-like columns,
one type per column, warnings), the rows a tracked run was trained
and tested on, rebuilt from its parameters (:func:`run_labelled_set`: the report and
``riskmodel validate`` read them), and a later labelled batch (:func:`labelled_batch`: a feature
file joined with an outcomes file, the monitoring case of ``riskmodel validate``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from features.catalog import catalog as build_catalog, feature_code_version
from features.contract import CATALOG_COLUMNS, DATE, FIRM, ID_COLUMNS, KEY, SEGMENT_COLUMNS, STARTUP, TARGET
from features.errors import OutputError
from features.files import write_text
from features.partitions import build_hub
from features.tables import TABLE_NAMES, load_tables, read_table, table_files
from riskmodel import evaluation as ev
from riskmodel.errors import UserError

log = logging.getLogger(__name__)

CACHE_DIR = "cache"
FINGERPRINT_MEMO = "fingerprints.json"


# --------------------------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------------------------


def file_hash(paths, n: int = 16) -> str:
    """sha256 over the bytes of one or more files (in the given order), first ``n`` hex digits."""
    h = hashlib.sha256()
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:n]


def frame_hash(frame: pd.DataFrame, n: int = 16) -> str:
    """Stable content hash of a small DataFrame (CSV bytes, columns sorted), first ``n`` hex digits."""
    buf = io.StringIO()
    frame.reindex(sorted(frame.columns), axis=1).to_csv(buf, index=False)
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()[:n]


def catalog_version(catalog: pd.DataFrame) -> str:
    """Hash of a feature catalog's text: changes whenever a feature, its direction or its text changes
    (logged with every run; the cache key is the feature code version, which also sees formulas)."""
    return frame_hash(catalog.sort_values("name").reset_index(drop=True).astype(str))


def hub_files(data_dir: Path) -> list[Path]:
    """The files a feature build reads: ``manifest.json`` (it dates the snapshot the tables are
    validated against) and the files of every table present (``features.tables.table_files``),
    in a fixed order."""
    files = [data_dir / "manifest.json"] if (data_dir / "manifest.json").is_file() else []
    for t in TABLE_NAMES:
        files += [f for f in table_files(data_dir, t) if f.is_file()]
    return files


def data_fingerprint(data_dir: str | Path, *, remember: bool = True) -> str:
    """sha256 over the names and contents of :func:`hub_files` (first 16 hex digits); ``"none"`` for
    a folder without any. Each file's hash is remembered in ``cache/fingerprints.json`` by size,
    modification time and inode (``remember=False``: read the memo, never write it)."""
    data_dir = Path(data_dir)
    files = hub_files(data_dir)
    if not files:
        return "none"
    memo_path = data_dir / CACHE_DIR / FINGERPRINT_MEMO
    memo = _read_memo(memo_path)
    changed = False
    h = hashlib.sha256()
    for f in files:
        name = f.relative_to(data_dir).as_posix()  # <table>.parquet, or <table>/part-00000.parquet
        st = f.stat()
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
        known = memo.get(name)
        if isinstance(known, dict) and all(known.get(k) == v for k, v in stamp.items()) and isinstance(known.get("sha256"), str):
            digest = known["sha256"]
        else:
            digest = file_hash(f, n=64)
            memo[name] = {**stamp, "sha256": digest}
            changed = True
        h.update(name.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
    if changed and remember:
        try:
            write_text(memo_path, json.dumps({k: memo[k] for k in sorted(memo)}, indent=1) + "\n")
        except (OutputError, OSError) as exc:  # read-only hub, or another process writing it now
            log.info("features: could not remember the table hashes in %s (%s)", memo_path, exc)
    return h.hexdigest()[:16]


def _read_memo(path: Path) -> dict:
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


# --------------------------------------------------------------------------------------------
# The feature matrix and its cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixInfo:
    """Where a feature matrix came from: the keys of its cache entry and what happened to it."""

    data_fingerprint: str  # content of the hub's tables and manifest (see module doc)
    manifest_hash: str  # sha256 of manifest.json ("none" without one): the generator's record
    code_version: str  # feature_code_version() of the code that reads it now
    catalog_version: str  # catalog_version() of the catalog
    cache_status: str  # hit | written | given | disabled (use_cache=False) | not_written (write_cache=False) | unwritable
    cache_path: str
    seconds_build: float | None = None  # when built here

    @property
    def cache(self) -> dict:
        """``{"status", "path"}``: what a training summary reports."""
        return {"status": self.cache_status, "path": self.cache_path}


def cache_path(data_dir: str | Path, fingerprint: str, code_version: str) -> Path:
    """Where the feature matrix of ``data_dir`` is cached for this content and this feature code."""
    return (Path(data_dir) / CACHE_DIR / f"features-{fingerprint}-{code_version}.parquet").resolve()


def _read_cache(path: Path) -> pd.DataFrame | None:
    """The cached matrix, or None (with a warning) when the file is not a readable feature matrix."""
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a truncated or foreign file
        log.warning("features: the cache %s cannot be read (%s); building the features again", path, " ".join(str(exc).split())[:200])
        return None
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        log.warning("features: the cache %s lacks %s; building the features again", path, missing)
        return None
    return frame


def _build(data_dir: Path, cache: Path | None) -> tuple[pd.DataFrame, str]:
    """Build the feature matrix (``features.partitions.build_hub``) into ``cache`` and read it back;
    into a temporary folder when ``cache`` is None or cannot be written. Returns the matrix and
    whether the cache was ``written`` or ``unwritable``."""
    if cache is not None:
        try:
            build_hub(data_dir, cache)
            return pd.read_parquet(cache), "written"
        except (OutputError, OSError) as exc:
            log.warning("features: built but not cached (%s)", exc)
    with tempfile.TemporaryDirectory(prefix="riskmodel-features-") as tmp:
        target = Path(tmp) / "features.parquet"
        build_hub(data_dir, target)
        return pd.read_parquet(target), "unwritable"


def application_order(frame: pd.DataFrame, applications: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per application, any order) in the order of the applications table; rows
    of ids the table lacks come last, in their own order."""
    ids = frame[KEY].astype("string").to_numpy()
    order = applications[KEY].astype("string").to_numpy()
    if len(ids) == len(order) and (ids == order).all():
        return frame
    pos = pd.Index(order).get_indexer(ids)
    pos = np.where(pos < 0, len(order) + np.arange(len(ids)), pos)
    return frame.iloc[np.argsort(pos, kind="stable")].reset_index(drop=True)


def cache_health(data_dir: str | Path, *, dry_run: bool = False) -> list[dict]:
    """Check the feature cache of a hub (``riskmodel doctor --data DIR``) and remove what no run can
    use: entries for other table contents or feature code (stale: a later build writes a new one),
    entries that cannot be read (corrupt), an unreadable fingerprint memo, and temporary files a
    killed writer left behind (only when no process holds their target's lock). One dict per file:
    ``path``, ``problem``, ``action`` (``removed`` or, with ``dry_run``, ``would remove``)."""
    from features.files import orphaned_temporaries

    data_dir = _hub(data_dir)
    folder = data_dir / CACHE_DIR
    if not folder.is_dir():
        return []
    current = cache_path(data_dir, data_fingerprint(data_dir, remember=not dry_run), feature_code_version())
    found: list[tuple[Path, str]] = []
    for path in sorted(folder.glob("features-*.parquet")):
        if path.resolve() != current:
            found.append((path, "stale: built from other table contents or another feature code version"))
            continue
        try:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            pq.ParquetFile(path).metadata  # noqa: B018 - reads the footer
        except Exception as exc:  # noqa: BLE001 - any unreadable file is corrupt for the cache
            found.append((path, f"corrupt: {' '.join(str(exc).split())[:100]}"))
            continue
        if [c for c in ID_COLUMNS if c not in names]:
            found.append((path, "corrupt: not a feature matrix (id columns missing)"))
    memo = folder / FINGERPRINT_MEMO
    if memo.is_file():
        try:
            json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found.append((memo, "corrupt: the fingerprint memo is not JSON (it is rebuilt from the tables)"))
    for tmp in orphaned_temporaries([data_dir, folder]):
        found.append((tmp, "left behind by a writer that was killed"))
    out = []
    for path, problem in found:
        action = "would remove" if dry_run else "removed"
        if not dry_run:
            try:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError as exc:
                action = f"could not remove ({exc.strerror or exc})"
        out.append({"path": str(path), "problem": problem, "action": action})
    return out


def _load(data_dir: Path, names: Sequence[str] | None) -> dict[str, pd.DataFrame]:
    tables, _ = load_tables(data_dir, list(names) if names is not None else None)
    return tables


def _matrix(
    data_dir: Path, features_file: str | Path | None, use_cache: bool, write_cache: bool, need: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, MatrixInfo, dict[str, pd.DataFrame]]:
    """The feature matrix (rows in the order of the applications table), the catalog, its info, and
    the loaded tables ``need`` and ``applications``."""
    catalog = build_catalog()
    fingerprint = data_fingerprint(data_dir, remember=use_cache and write_cache)
    manifest = data_dir / "manifest.json"
    keys = {
        "data_fingerprint": fingerprint,
        "manifest_hash": file_hash(manifest) if manifest.is_file() else "none",
        "code_version": feature_code_version(),
        "catalog_version": catalog_version(catalog),
    }
    need = sorted({*need, "applications"})
    if features_file is not None:
        path = Path(features_file)
        tables = _load(data_dir, need)
        frame = read_table(path)
        check_features_file(frame, path, data_dir, tables["applications"], catalog)
        frame = application_order(frame, tables["applications"])
        return frame, catalog, MatrixInfo(**keys, cache_status="given", cache_path=str(path.resolve())), tables
    cache = cache_path(data_dir, fingerprint, keys["code_version"])
    if use_cache and cache.is_file():
        frame = _read_cache(cache)
        if frame is not None:
            log.info("features: read from cache %s", cache)
            tables = _load(data_dir, need)
            frame = application_order(frame, tables["applications"])
            return frame, catalog, MatrixInfo(**keys, cache_status="hit", cache_path=str(cache)), tables
    t0 = time.perf_counter()
    frame, status = _build(data_dir, cache if use_cache and write_cache else None)
    seconds = round(time.perf_counter() - t0, 3)
    if not use_cache:
        status = "disabled"
    elif not write_cache:
        status = "not_written"
    elif status == "written":
        log.info("features: built in %.1fs and cached at %s", seconds, cache)
    tables = _load(data_dir, need)
    frame = application_order(frame, tables["applications"])
    return frame, catalog, MatrixInfo(**keys, cache_status=status, cache_path=str(cache), seconds_build=seconds), tables


def feature_matrix(
    data_dir: str | Path, *, features_file: str | Path | None = None, use_cache: bool = True, write_cache: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, MatrixInfo]:
    """``(features, catalog, info)``: the feature matrix of every application in ``data_dir``.

    Reads ``features_file`` when given (after :func:`check_features_file`), else the cache entry of
    this content and this feature code (``use_cache``), else builds it and writes the cache
    (``write_cache``; skipped with a warning when the folder is read-only)."""
    data_dir = _hub(data_dir)
    frame, catalog, info, _ = _matrix(data_dir, features_file, use_cache, write_cache, need=())
    return frame, catalog, info


def check_features_file(frame: pd.DataFrame, path: Path, data_dir: Path, applications: pd.DataFrame, catalog: pd.DataFrame) -> None:
    """A feature file given for a hub must be that hub's matrix: the same applications (id, firm and
    date of each) and the catalog's features, else a UserError that says which rule failed."""
    redo = f"build it from this hub with `riskmodel features --data {data_dir} --out FILE`"
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: not a feature matrix (no column {', '.join(missing)}); {redo}")
    allowed = {*ID_COLUMNS, *SEGMENT_COLUMNS, *catalog["name"]}
    unknown = [c for c in frame.columns if c not in allowed]
    if unknown:
        raise UserError(f"{path}: column(s) {unknown[:10]} are not features of the catalog (`riskmodel catalog`); {redo}")
    absent = [c for c in catalog["name"] if c not in frame.columns]
    if absent:
        raise UserError(f"{path}: {len(absent)} feature(s) of the catalog are missing ({', '.join(absent[:10])}); "
                        f"it was built by another version of the feature code; {redo}")
    mine = _id_frame(frame)
    hub = _id_frame(applications)
    both = mine.merge(hub, on=KEY, how="left", suffixes=("", "_hub"), indicator=True)
    foreign = both["_merge"] == "left_only"
    if foreign.any():
        first = both.loc[foreign, KEY].iloc[0]
        raise UserError(f"{path}: {int(foreign.sum())} of {len(both)} application_id(s) are not applications of {data_dir} "
                        f"(first: {first}); the file was built from another data hub; {redo}")
    differ = (both[FIRM] != both[f"{FIRM}_hub"]) | (both[DATE] != both[f"{DATE}_hub"])
    if differ.any():
        r = both.loc[differ].iloc[0]
        raise UserError(f"{path}: {int(differ.sum())} application(s) have another firm or date than in {data_dir} "
                        f"(first: {r[KEY]}: {r[FIRM]} on {r[DATE].date()} in the file, {r[f'{FIRM}_hub']} on "
                        f"{r[f'{DATE}_hub'].date()} in the hub); the file was built from another data hub; {redo}")
    lacking = ~hub[KEY].isin(mine[KEY])
    if lacking.any():
        raise UserError(f"{path}: {int(lacking.sum())} application(s) of {data_dir} are not in the file "
                        f"(first: {hub.loc[lacking, KEY].iloc[0]}); {redo}")


def _id_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        KEY: frame[KEY].astype("string").to_numpy(),
        FIRM: frame[FIRM].astype("string").to_numpy(),
        DATE: pd.to_datetime(frame[DATE]).dt.normalize().to_numpy(dtype="datetime64[ns]"),
    })


# --------------------------------------------------------------------------------------------
# Labels and the out-of-time split
# --------------------------------------------------------------------------------------------


def join_outcomes(
    features: pd.DataFrame, outcomes: pd.DataFrame, where: str | Path, *, target: str = TARGET, dated: bool = True, names: tuple[str, str] | None = None
) -> pd.DataFrame:
    """The applications of ``features`` that have an outcome, with the target column and
    ``application_date`` parsed. Ids are compared as strings; a duplicated id on either side, or no
    labelled application at all, is a UserError (``where`` names the hub in the message).
    ``dated=False``: the date column is optional (a later batch of a bring-your-own model);
    ``names``: how the messages call the two frames (default: the hub's feature matrix and outcomes)."""
    missing = [c for c in ((KEY, DATE) if dated else (KEY,)) if c not in features.columns]
    if missing:
        raise UserError(f"feature matrix lacks {missing}; rebuild it with `riskmodel features --data {where}`")
    feats = features.copy()
    feats[KEY] = feats[KEY].astype("string")
    labels = outcomes[[KEY, target]].copy()
    labels[KEY] = labels[KEY].astype("string")
    names = names or (f"the feature matrix of {where}", f"{where}/outcomes.parquet")
    for frame, what in zip((feats, labels), names):
        dup = frame[KEY].duplicated()
        if dup.any():
            raise UserError(f"{what} has {int(dup.sum())} duplicate application_id(s) (first: {frame.loc[dup, KEY].iloc[0]}); "
                            "each application needs exactly one row")
    labelled = feats.merge(labels, on=KEY, how="inner", validate="one_to_one")
    if labelled.empty:
        raise UserError(f"{where}: no application has an outcome yet; nothing to train on")
    if DATE in labelled.columns:
        labelled[DATE] = pd.to_datetime(labelled[DATE])
    return labelled


def split(labelled: pd.DataFrame, cut: str | pd.Timestamp | None = None, test_share: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """``(train, test, cut)``: :func:`riskmodel.evaluation.oot_split` by application date, with its
    complaints as UserErrors."""
    try:
        return ev.oot_split(labelled, DATE, cut, test_share)
    except ValueError as exc:
        raise UserError(f"out-of-time split: {exc}") from None


def decisions(applications: pd.DataFrame) -> pd.DataFrame:
    """The bank's record of each application: ``application_id``, ``approved`` (nullable boolean:
    True granted, False rejected, NA not recorded; all NA when the table has no ``approved``
    column) and ``first_application`` (no earlier application of the firm in the table)."""
    ids = applications[KEY].astype("string")
    if "approved" in applications.columns:
        approved = applications["approved"].astype("boolean")
    else:
        approved = pd.Series(pd.NA, index=applications.index, dtype="boolean")
    order = pd.DataFrame({FIRM: applications[FIRM].astype("string"), DATE: pd.to_datetime(applications[DATE]), KEY: ids})
    order = order.sort_values([FIRM, DATE, KEY], kind="mergesort")
    first = ~order[FIRM].duplicated()
    return pd.DataFrame({
        KEY: ids.to_numpy(),
        "approved": approved.to_numpy(),
        "first_application": first.reindex(applications.index).to_numpy(dtype=bool),
    }).astype({KEY: "string", "approved": "boolean"})


#: The groups of applicants the through-the-door evaluation reports besides all of them.
POPULATION_GROUPS = {
    "approved": "granted by the bank",
    "rejected": "declined by the bank (no outcome in its book)",
    "young_first": "first application of a firm under three years (首贷)",
}


def population_groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks over the rows of ``frame`` (features with the :func:`decisions` columns) for
    :data:`POPULATION_GROUPS`, from what the bank knows: its decision, the firm's earlier
    applications and the firm's age (``lifecycle_stage``)."""
    approved = frame["approved"].astype("boolean")
    young = frame["lifecycle_stage"].astype("string").eq(STARTUP).fillna(False).to_numpy(dtype=bool) if "lifecycle_stage" in frame.columns else np.zeros(len(frame), dtype=bool)
    return {
        "approved": approved.eq(True).fillna(False).to_numpy(dtype=bool),
        "rejected": approved.eq(False).fillna(False).to_numpy(dtype=bool),
        "young_first": young & frame["first_application"].to_numpy(dtype=bool),
    }


@dataclass
class LabelledSet:
    """The labelled training set of a data hub."""

    features: pd.DataFrame  # the feature matrix of every application, labelled or not
    labelled: pd.DataFrame  # the applications with an outcome: features plus TARGET
    train: pd.DataFrame  # labelled rows before the cut
    test: pd.DataFrame  # labelled rows from the cut on (out of time)
    cut: pd.Timestamp
    catalog: pd.DataFrame
    info: MatrixInfo
    decisions: pd.DataFrame | None = None  # :func:`decisions` of every application

    def _with_decisions(self, rows: pd.DataFrame) -> pd.DataFrame:
        d = self.decisions if self.decisions is not None else decisions(self.features[list(ID_COLUMNS)])
        out = rows.assign(**{KEY: rows[KEY].astype("string")}).merge(d, on=KEY, how="left", validate="one_to_one")
        out[DATE] = pd.to_datetime(out[DATE])
        return out

    def rejected(self) -> pd.DataFrame:
        """Features of the applications the bank declined before the cut: the unlabelled rows
        reject inference learns from (they never have an outcome)."""
        rows = self._with_decisions(self.features)
        keep = rows["approved"].eq(False).fillna(False).to_numpy(dtype=bool) & (rows[DATE] < self.cut).to_numpy()
        return rows.loc[keep].reset_index(drop=True)

    def population(self) -> pd.DataFrame:
        """Features of every application from the cut on, approved or not, with the
        :func:`decisions` columns: the through-the-door population of the out-of-time window."""
        rows = self._with_decisions(self.features)
        return rows.loc[(rows[DATE] >= self.cut).to_numpy()].reset_index(drop=True)


def _hub(data_dir: str | Path) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "is a file" if data_dir.exists() else "does not exist"
        raise UserError(f"data directory {data_dir} {what}; give a data-hub directory (`riskmodel generate --out DIR`)")
    return data_dir


def load_labelled(
    data_dir: str | Path,
    *,
    cut: str | pd.Timestamp | None = None,
    test_share: float = 0.3,
    features_file: str | Path | None = None,
    use_cache: bool = True,
    write_cache: bool = True,
) -> LabelledSet:
    """The labelled set of ``data_dir``: the feature matrix (see :func:`feature_matrix`), the
    outcomes joined (:func:`join_outcomes`) and the out-of-time split at ``cut`` (default: the last
    ``test_share`` of labelled applications by date)."""
    data_dir = _hub(data_dir)
    if not table_files(data_dir, "outcomes"):
        raise UserError(f"{data_dir}: outcomes.parquet is missing; training needs labelled applications ({TARGET})")
    features, catalog, info, tables = _matrix(data_dir, features_file, use_cache, write_cache, need=("outcomes", "applications"))
    labelled = join_outcomes(features, tables["outcomes"], data_dir)
    train, test, cut_ts = split(labelled, cut, test_share)
    return LabelledSet(features, labelled, train, test, cut_ts, catalog, info, decisions(tables["applications"]))


# --------------------------------------------------------------------------------------------
# Bring-your-own tables: a user's training and test files, already split
# --------------------------------------------------------------------------------------------


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


def _binary_target(series: pd.Series, target: str, file: str) -> np.ndarray:
    """The target as 0/1: numbers 0 and 1, booleans, or the text true/false (any case: a CSV's
    spelling of a Parquet boolean column)."""
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        words = series.astype("string").str.strip().str.lower()
        series = series.where(~words.isin(["true", "false"]), words.map({"true": "1", "false": "0"}))
    vals = pd.to_numeric(series, errors="coerce")
    missing = int(series.isna().sum())
    if missing:
        raise UserError(f"{file}: target column {target!r} has {missing} missing value(s); drop those rows or fill them with 0/1")
    bad = ~vals.isin([0, 1])
    if bad.any():
        seen = sorted(map(str, pd.unique(series[bad.to_numpy()])))[:5]
        raise UserError(f"{file}: target column {target!r} must be binary 0/1 (1 = default); found {seen}; recode it (e.g. bad -> 1, good -> 0)")
    return vals.to_numpy(dtype="int64")


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
    elif min(int(y_test.sum()), len(y_test) - int(y_test.sum())) < MIN_TRAIN_DEFAULTS:
        bad = int(y_test.sum())
        _warn(warnings, f"{test_path}: the test file holds {bad} default(s) and {len(y_test) - bad} non-default(s) of {target!r}: "
                        f"with fewer than {MIN_TRAIN_DEFAULTS} of a class its AUC, KS and Gini are noise; test on more rows")
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


# --------------------------------------------------------------------------------------------
# The labelled set of a tracked training run
# --------------------------------------------------------------------------------------------


@dataclass
class RunLabelledSet:
    """The labelled rows a training run was fitted (``train``) and tested out of time (``test``) on,
    rebuilt from the run's parameters, and what came with them."""

    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    catalog: pd.DataFrame
    source: str  # "data_hub" (riskmodel train --data) or "byo" (--features/--test)
    manifest: dict | None = None  # the generator's manifest.json, when the hub has one
    truth: pd.DataFrame | None = None  # the generator's true PDs, when the hub has them
    population: pd.DataFrame | None = None  # every application of the test window, when the hub has a truth (LabelledSet.population)


def run_labelled_set(info: Mapping, data: str | Path | None = None, catalog: pd.DataFrame | None = None) -> RunLabelledSet:
    """The labelled set of a finished training run, from its ``info`` (``riskmodel.tracking.finished_run``).

    A data-hub run reads the hub recorded in its ``data`` parameter (``data`` overrides it when the
    hub moved), through the feature cache when it is there (never writing into the hub), and
    redoes the split at the run's ``cut_date``; the hub must be the one the run was trained on
    (its data fingerprint, or the manifest hash for runs logged before fingerprints). A
    bring-your-own run reads its two tables again with :func:`prepare_byo`; ``catalog`` (the
    model's own catalog rows, which carry its directions) replaces the generic BYO rows. Rows come
    back in file order with a fresh index."""
    run_id, params = info["run_id"], info["params"]
    source = params.get("source", "data_hub")
    target = params.get("target", TARGET)
    manifest = truth = population = None
    if source == "byo":
        if data is not None:
            raise UserError("--data applies to runs trained with --data; a bring-your-own run reads the tables recorded in the run")
        paths = [p.strip() for p in params.get("data", "").split("|")]
        if len(paths) != 2 or not all(Path(p).is_file() for p in paths):
            raise UserError(f"run {run_id}: its training tables {params.get('data')!r} are not readable here; they are needed to rebuild its rows")
        recorded, now = params.get("manifest_hash"), file_hash(paths)  # the two files' hash, recorded at training
        if recorded and now != recorded:
            raise UserError(f"run {run_id}: {paths[0]} and {paths[1]} are not the tables the run was trained on (file hash {now} != {recorded}); "
                            "restore them, or validate on a labelled batch with --features and --outcomes")
        keep = json.loads(params.get("keep_columns") or "[]")  # the training's --keep-column: the same columns again
        train_df, test_df, cols = prepare_byo(paths[0], paths[1], target, keep)
        catalog = catalog.copy() if catalog is not None else byo_catalog(cols, {})
    else:
        data_dir = Path(data) if data is not None else Path(params.get("data", ""))
        if not table_files(data_dir, "outcomes"):
            raise UserError(f"run {run_id}: data directory {str(data_dir)!r} has no outcomes.parquet; pass --data DIR with the run's data hub")
        ls = load_labelled(data_dir, cut=params.get("cut_date"), test_share=float(params.get("test_share", 0.3)), write_cache=False)
        # runs logged before the data fingerprint existed recorded the manifest hash only
        key = "data_fingerprint" if params.get("data_fingerprint") else "manifest_hash"
        now = getattr(ls.info, key)
        if params.get(key) and now != params[key]:
            raise UserError(f"{data_dir} is not the data run {run_id} was trained on ({key.replace('_', ' ')} {now} != {params[key]})")
        train_df, test_df, catalog = ls.train, ls.test, ls.catalog
        manifest_file = data_dir / "manifest.json"
        manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else None
        truth = ev.load_truth(data_dir)
        population = ls.population() if truth is not None else None
    return RunLabelledSet(train_df.reset_index(drop=True), test_df.reset_index(drop=True), target, catalog, source, manifest, truth, population)


def labelled_batch(features: pd.DataFrame, outcomes: pd.DataFrame, target: str, names: tuple[str, str]) -> tuple[pd.DataFrame, dict]:
    """A later labelled batch (the monitoring case): the rows of ``features`` (a feature file the
    model can score) whose ``application_id`` has an outcome in ``outcomes`` (``application_id``
    and the 0/1 ``target``), joined as :func:`join_outcomes` joins a hub's. ``names`` are the two
    files, for messages. Returns the labelled rows (file order of ``features``) and the counts:
    ``feature_rows``, ``outcome_rows``, ``labelled``, ``without_outcome`` (feature rows not yet
    labelled: left out) and ``outcomes_unmatched`` (outcomes of applications not in the file)."""
    f_name, o_name = names
    if KEY not in features.columns:
        raise UserError(f"{f_name}: no {KEY} column; the features and the outcomes are joined on it")
    for col in (KEY, target):
        if col not in outcomes.columns:
            raise UserError(f"{o_name}: required column {col!r} is missing; outcomes need {KEY} and the 0/1 target {target!r}")
    _binary_target(outcomes[target], target, o_name)
    feats = features.drop(columns=[target]) if target in features.columns else features
    ids_f = set(feats[KEY].astype("string").dropna())
    ids_o = set(outcomes[KEY].astype("string").dropna())
    if not ids_f & ids_o:
        raise UserError(f"no {KEY} of {f_name} has an outcome in {o_name}; nothing to validate (are they from the same batch?)")
    labelled = join_outcomes(feats, outcomes, f_name, target=target, dated=False, names=names)
    labelled[target] = labelled[target].astype("int64")
    counts = {
        "feature_rows": len(feats),
        "outcome_rows": len(outcomes),
        "labelled": len(labelled),
        "without_outcome": len(feats) - len(labelled),
        "outcomes_unmatched": len(ids_o - ids_f),
    }
    return labelled.reset_index(drop=True), counts
