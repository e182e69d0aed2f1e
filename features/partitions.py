"""Feature builds larger than memory: the hub in firm partitions, two passes, the output streamed.

A firm's rows never split. Partition ``p`` of ``n`` holds every row of the firms whose id hashes to
``p`` (:func:`firm_partition`: FNV-1a, 64 bits, of the id's UTF-8 bytes, modulo ``n``); a hub that
``riskmodel generate`` wrote in aligned parts (``manifest.json`` ``"partitioning"``, every table a
folder of the same part files) uses its parts as the partitions instead.

:func:`build_hub` runs three steps, each one partition (or one table) at a time:

1. **prepare**: every table is read in pieces, validated with the rules of ``load_tables``
   (:class:`features.tables.TableCheck`: rows numbered in their file, one message per file), and
   the columns the build uses (never an L4 one) are written per partition to Arrow IPC files (LZ4)
   in a work folder. Aligned parts are validated and written part by part; any other hub goes
   through a bucketing pass that streams each table once and appends each piece's rows to their
   firms' partitions. The key rule: a key without ``firm_id`` (certificate, patent, award and
   application ids) is checked over the whole table by hashing first
   (:func:`features.tables.find_duplicates`); a key with ``firm_id`` inside the partition that holds
   all of the firm's rows (the part file, or the buckets, whose rows remember their file and row).
   Aligned parts are checked to be firm-disjoint.
2. **pass 1**: each partition's cross-firm quantities (:func:`features.build.part_stats`; the peer
   statistics spilled to ``.npy`` files) are combined into one :class:`features.hubstats.HubStats`.
3. **pass 2**: :func:`features.build.build_features` on each partition with that ``HubStats``; the
   frames are appended to one Parquet file as row groups (``features.files.AtomicOutput``).

The output equals the in-memory build (:func:`features.build.build_features` on
``load_tables``) row for row; its rows come partition by partition, each partition's applications
in the order they appear in the applications table. A hub of at most ``PARTITION_FIRMS`` firms
that is not in aligned parts is one partition, built in memory.

Memory is set by the partition size: one partition's tables and features (plus, in step 1, 8 bytes
per row of the tables whose key lacks ``firm_id``). Steps 1 to 3 can run ``workers`` partitions (or
tables) at a time in separate processes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.build import build_features, part_stats, stat_requests
from features.contract import DATE
from features.errors import UserError
from features.files import AtomicOutput, work_folder
from features.hubstats import HubStats, PartStats
from features.signals import load_all
from features.tables import (
    REQUIRED_TABLES,
    SCHEMAS,
    TABLE_NAMES,
    LoadReport,
    TableCheck,
    TableError,
    Violation,
    dataset_end,
    file_columns,
    file_rows,
    find_duplicates,
    key_frame,
    position_masks,
    load_tables,
    read_pieces,
    read_table,
    table_files,
    text_dates,
    write_table,
)

log = logging.getLogger(__name__)

PARTITION_FIRMS = 50_000
"""Firms per partition when a hub is bucketed (the generator's chunk size, so both kinds of hub
have partitions of one size)."""
PIECE_ROWS = 1_000_000
"""Rows read at a time when a file is streamed."""
BUILD_TABLES: tuple[str, ...] = tuple(t for t in TABLE_NAMES if t != "outcomes")
"""Tables the feature build reads (``outcomes`` is validated, not used)."""
GLOBAL_KEY_TABLES: tuple[str, ...] = tuple(t for t in TABLE_NAMES if "firm_id" not in SCHEMAS[t].key)
"""Tables whose key does not contain ``firm_id``: their key rule is checked over the whole table."""
_FILE, _ROW, _KEEP = "__file", "__row", "__keep"  # where a bucketed row came from, and whether it passed
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")  # the cheapest to write and read back (zstd: half the size, twice the CPU)
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


# ------------------------------------------------------------------------------------------------
# Which partition a firm is in
# ------------------------------------------------------------------------------------------------


def _fnv1a(strings: pa.Array) -> np.ndarray:
    """FNV-1a (64 bits) of the UTF-8 bytes of each string (a null hashes as the empty string)."""
    strings = strings.cast(pa.large_string())
    n = len(strings)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    _, off_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[strings.offset : strings.offset + n + 1]
    if data_buf is None:
        return h
    data = np.frombuffer(data_buf, dtype=np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max()) if n else 0):
            live = np.flatnonzero(lengths > j)
            h[live] = (h[live] ^ data[starts[live] + j].astype(np.uint64)) * _FNV_PRIME
    return h


def firm_hash(firm_ids) -> np.ndarray:
    """FNV-1a (64 bits) of each firm id's UTF-8 bytes: a stable hash, the same on every machine and
    in every version (each distinct id is hashed once)."""
    arr = pa.array(firm_ids, type=pa.large_string(), from_pandas=True) if not isinstance(firm_ids, (pa.Array, pa.ChunkedArray)) else firm_ids
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(enc.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    uniq = _fnv1a(enc.dictionary)
    if not len(uniq):
        return np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    return uniq[codes]


def firm_partition(firm_ids, n: int) -> np.ndarray:
    """The partition (0 .. n - 1) of each firm id: :func:`firm_hash` modulo ``n``."""
    return (firm_hash(firm_ids) % np.uint64(n)).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# The hub's layout
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where a hub's tables are: the files of each present table, and the number of aligned firm
    parts (0: the tables are not partitioned by firm, or not all alike)."""

    directory: Path
    files: dict[str, list[Path]]
    aligned: int = 0

    def rows(self, name: str) -> list[int]:
        return [file_rows(f) for f in self.files.get(name, [])]


def manifest_parts(directory: str | Path) -> int:
    """Parts the hub's ``manifest.json`` says every table is split into by firm (0: none said)."""
    path = Path(directory) / "manifest.json"
    try:
        part = json.loads(path.read_text()).get("partitioning") or {}
    except (OSError, ValueError, AttributeError):
        return 0
    if not isinstance(part, dict) or part.get("by") != "firm_id":
        return 0
    n = part.get("parts")
    return int(n) if isinstance(n, int) and n > 0 else 0


def hub_layout(directory: str | Path) -> Layout:
    """The layout of the hub at ``directory`` (required tables checked)."""
    directory = Path(directory)
    if not directory.exists():
        raise UserError(f"data directory {directory} does not exist (run `riskmodel generate --out {directory}` or point --data at your tables)")
    if not directory.is_dir():
        raise UserError(f"{directory} is a file; --data expects a directory of <table>.parquet files or <table>/ folders of part files")
    files = {name: f for name in TABLE_NAMES if (f := table_files(directory, name))}
    for name in REQUIRED_TABLES:
        if name not in files:
            raise UserError(f"{directory / f'{name}.parquet'}: required table '{name}' is missing from {directory}")
    parts = manifest_parts(directory)
    if parts:
        names = [[p.name for p in f] for f in files.values()]
        folders = all(f[0].parent != directory for f in files.values())
        if folders and all(len(n) == parts and n == names[0] for n in names):
            return Layout(directory, files, parts)
        log.info("%s: manifest.json says %d parts by firm, but the tables are not all folders of the same %d part files; bucketing instead", directory, parts, parts)
    return Layout(directory, files, 0)


# ------------------------------------------------------------------------------------------------
# Partitions on disk
# ------------------------------------------------------------------------------------------------


def _stored_columns(name: str) -> list[str]:
    """Columns a partition keeps of a table: every column but the L4 (restricted) ones."""
    return [c.name for c in SCHEMAS[name].columns if c.grade != "L4"]


def _storable(clean: pd.DataFrame, name: str) -> pd.DataFrame:
    """The kept columns with one dtype per column whatever the piece (int columns as float64: a
    rejected row may hold a missing int)."""
    out = clean[_stored_columns(name)].copy()
    for col in SCHEMAS[name].columns:
        if col.dtype == "int" and col.name in out.columns:
            out[col.name] = out[col.name].astype("float64")
    return out


class _Writers:
    """One Arrow IPC file writer (LZ4) per (partition, table), opened on first write."""

    def __init__(self, work: Path):
        self.work = work
        self._open: dict[tuple[int, str], pa.ipc.RecordBatchFileWriter] = {}
        self._sinks: dict[tuple[int, str], pa.OSFile] = {}
        self._schemas: dict[tuple[int, str], pa.Schema] = {}

    def write(self, k: int, name: str, table: pa.Table) -> None:
        key = (k, name)
        if key not in self._open:
            path = partition_file(self.work, k, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sinks[key] = sink = pa.OSFile(str(path), "wb")
            self._open[key] = pa.ipc.new_file(sink, table.schema, options=_IPC)
            self._schemas[key] = table.schema
        writer, schema = self._open[key], self._schemas[key]
        if table.schema != schema:  # validated pieces share types; a column all missing in one may not
            try:
                table = table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                diff = [f"{f.name} ({f.type} vs {schema.field(f.name).type})" for f in table.schema
                        if f.name in schema.names and f.type != schema.field(f.name).type]
                raise TableError([Violation(name, f"{name} (part files)", ", ".join(diff) or "columns",
                                            f"the part files disagree on column types and cannot be combined ({str(exc).splitlines()[0][:100]})", 0)]) from None
        writer.write_table(table)

    def close(self) -> None:
        for w in self._open.values():
            w.close()
        for s in self._sinks.values():
            s.close()
        self._open.clear()
        self._sinks.clear()


def partition_file(work: Path, k: int, name: str) -> Path:
    return Path(work) / f"partition-{k:05d}" / f"{name}.arrow"


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def read_partition(work: str | Path, k: int, tables: Iterable[str] = BUILD_TABLES, columns: dict[str, Iterable[str]] | None = None) -> dict[str, pd.DataFrame]:
    """The validated tables of partition ``k`` (only ``columns[table]`` where given), dtypes as
    ``load_tables`` returns them. A table without a file in the partition is absent from the result
    (the hub lacks it) unless another partition has it, in which case it is empty here."""
    work = Path(work)
    present = set(json.loads((work / "tables.json").read_text()))
    out: dict[str, pd.DataFrame] = {}
    for name in tables:
        if name not in present:
            continue
        path = partition_file(work, k, name)
        if not path.exists():
            out[name] = _empty(name)
            if columns and name in columns:
                out[name] = out[name][[c for c in _stored_columns(name) if c in set(columns[name])]]
            continue
        with pa.memory_map(str(path)) as src:
            reader = pa.ipc.open_file(src)
            names = reader.schema.names
            wanted = None
            if columns and name in columns:
                keep = set(columns[name]) | {_KEEP}
                wanted = [i for i, c in enumerate(names) if c in keep]
                reader = pa.ipc.open_file(src, options=pa.ipc.IpcReadOptions(included_fields=wanted))
            frame = reader.read_all().to_pandas()
        out[name] = partition_frame(frame, name)
    return out


def partition_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A partition's rows of table ``name`` as bucketed (:func:`bucket_piece`) made a validated frame:
    the rows that passed, without the bookkeeping columns, int columns as int64."""
    if _KEEP in frame.columns:
        keep = frame[_KEEP].to_numpy(dtype=bool)
        frame = frame.loc[keep] if not keep.all() else frame
        frame = frame.drop(columns=[c for c in (_FILE, _ROW, _KEEP) if c in frame.columns]).reset_index(drop=True)
    for col in SCHEMAS[name].columns:
        if col.dtype == "int" and col.name in frame.columns:
            frame[col.name] = frame[col.name].astype("int64")
    return frame


def empty_frame(name: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Table ``name`` with no rows, as a partition without rows of it holds it (only ``columns``)."""
    frame = _empty(name)
    return frame if columns is None else frame[[c for c in _stored_columns(name) if c in set(columns)]]


def _empty(name: str) -> pd.DataFrame:
    from features.asof import empty_table

    frame = empty_table(name)[_stored_columns(name)]
    for col in SCHEMAS[name].columns:
        if col.dtype == "category" and col.name in frame.columns:
            frame[col.name] = frame[col.name].astype(pd.CategoricalDtype(list(col.categories)))
        if col.dtype == "int" and col.name in frame.columns:
            frame[col.name] = frame[col.name].astype("int64")
    return frame


# ------------------------------------------------------------------------------------------------
# Step 1: prepare (validate, partition)
# ------------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """What preparing one table (bucketed) or one part (aligned) found."""

    report: LoadReport
    home: pa.Array | None = None  # aligned: the part's firms (registry and applications)
    foreign: dict[str, pa.Array] = field(default_factory=dict)  # aligned: firms of other tables' rows not in home
    stats: tuple[PartStats, dict] | None = None  # aligned: the part's pass-1 statistics (peers spilled)


def _global_duplicates(files: list[Path], name: str) -> list[np.ndarray] | None:
    """Per file, which rows repeat a key seen earlier in the table (keys without firm_id), or None
    when a file lacks a key column (validation then reports the missing column)."""
    schema = SCHEMAS[name]
    key = list(schema.key)
    for f in files:
        if any(c not in file_columns(f) for c in key):
            return None
    sizes = [file_rows(f) for f in files]

    def keys() -> Iterator[pd.DataFrame]:
        for f in files:
            for _, piece in read_pieces(f, PIECE_ROWS, columns=key):
                yield key_frame(piece, schema)

    return position_masks(find_duplicates(keys), sizes)


def _application_months(files: list[Path], as_of) -> np.ndarray:
    """Month indexes of every application date (pass 1 computes peer norms for each), read before
    validation: a date validation rejects only adds a month no application asks for. With ``as_of``,
    its month."""
    if as_of is not None:
        return as_of_months(as_of)
    found = [np.zeros(0, dtype=np.int64)]
    for f in files:
        if DATE not in file_columns(f):
            continue  # validation reports the missing column
        for _, piece in read_pieces(f, PIECE_ROWS, columns=[DATE]):
            found.append(months_of(piece[DATE]))
    return np.unique(np.concatenate(found))


def as_of_months(as_of) -> np.ndarray:
    """The month index of ``as_of`` (the only application month of an as-of build)."""
    try:
        day = pd.Timestamp(as_of).normalize()
    except (ValueError, TypeError):
        raise UserError(f"as_of {as_of!r} is not a date; use YYYY-MM-DD") from None
    return np.array([np.datetime64(day.to_datetime64(), "M").astype(np.int64)])


def months_of(dates: pd.Series) -> np.ndarray:
    """The distinct month indexes (months since 1970-01) of raw application dates (ISO 8601 text or
    dates, :func:`features.tables.text_dates`; unreadable ones skipped)."""
    d = text_dates(dates).to_numpy(dtype="datetime64[ns]")
    return np.unique(d[~np.isnat(d)].astype("datetime64[M]").astype(np.int64))


def _write_ipc(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=_IPC) as w:
        w.write_table(table)


def _firm_ids(frame: pd.DataFrame) -> pa.Array:
    return pc.unique(pa.array(frame["firm_id"], type=pa.large_string(), from_pandas=True).drop_null())


def _prepare_aligned(directory: str, work: str, k: int, errors: str, dups: dict[str, np.ndarray], months: np.ndarray, as_of,
                     features: Sequence[str] | None) -> _Prepared:
    """Part ``k`` of every table: validate each part file whole (the key rule of a key with firm_id
    is complete inside it; other keys come checked over the table in ``dups``), write it as
    partition ``k``, and compute the part's pass-1 statistics from the validated frames."""
    report = LoadReport()
    max_date = dataset_end(Path(directory))
    result = _Prepared(report)
    requests = stat_requests(signals_of(features))
    kept: dict[str, pd.DataFrame] = {}
    ids: dict[str, pa.Array] = {}
    for name in TABLE_NAMES:
        files = table_files(directory, name)
        if not files:
            continue
        f = files[k]
        check = TableCheck(name, report, max_date=max_date, errors=errors)
        raw = read_table(f)
        check.begin_file(str(f), raw.columns, len(raw))
        clean, keep = check.check(raw, str(f), 0, dups.get(name))
        check.end_file()
        del raw
        clean = check.kept(clean, keep)
        check.finish()
        if name not in BUILD_TABLES:
            continue
        _write_ipc(partition_file(Path(work), k, name), _arrow(_storable(clean, name)))
        ids[name] = _firm_ids(clean)
        if name in ("firms", "applications") or name in requests.tables():
            kept[name] = clean
    home = [ids[t] for t in ("firms", "applications") if t in ids]
    result.home = pc.unique(pa.concat_arrays(home)) if home else pa.array([], type=pa.large_string())
    for name, found in ids.items():
        if name not in ("firms", "applications"):
            result.foreign[name] = pc.filter(found, pc.invert(pc.is_in(found, value_set=result.home)))
    part = part_stats(kept, requests, months, as_of=as_of)
    del kept
    result.stats = (part, spill_peers(part, Path(work), k))
    return result


def spill_peers(part: PartStats, work: Path, k: int) -> dict:
    """Write the part's peer values to .npy files (read back memory-mapped when combined)."""
    paths = {}
    for i, (key, values) in enumerate(sorted(part.peers.items())):
        path = work / f"peers-{k:05d}-{i}.npy"
        np.save(path, np.ascontiguousarray(values.values))
        values.values = np.zeros((len(values.months), 0))
        paths[key] = str(path)
    return paths


def _prepare_buckets(directory: str, work: str, name: str, n: int, errors: str, dups: list[np.ndarray] | None) -> _Prepared:
    """Stream table ``name`` once: validate each piece, append its rows to their firms' partitions
    (all rows, with their file, row and whether they passed, so the key rule of a key with firm_id
    can be checked per partition afterwards, with the rows rejected for other rules included as a
    whole-table check includes them)."""
    report = LoadReport()
    files = table_files(directory, name)
    check = TableCheck(name, report, max_date=dataset_end(Path(directory)), errors=errors)
    writers = _Writers(Path(work))
    firm_keyed = name not in GLOBAL_KEY_TABLES
    try:
        for i, f in enumerate(files):
            check.begin_file(str(f), file_columns(f), file_rows(f))
            failed = False
            for offset, raw in read_pieces(f, PIECE_ROWS):
                d = dups[i][offset : offset + len(raw)] if dups is not None else (np.zeros(len(raw), dtype=bool) if firm_keyed else None)
                clean, keep = check.check(raw, str(f), offset, d)
                failed = failed or check.broken
                if failed:  # raised by end_file once the whole file is checked
                    continue
                check.report.rows_kept[name] += int(keep.sum())
                if name not in BUILD_TABLES:
                    continue
                for k, table in bucket_piece(clean, keep, name, n, i, offset):
                    writers.write(k, name, table)
            check.end_file()
    finally:
        writers.close()
    if firm_keyed and name in BUILD_TABLES:
        _bucket_keys(Path(work), name, n, [str(f) for f in files], check)
    check.finish()
    return _Prepared(report)


def bucket_piece(clean: pd.DataFrame, keep: np.ndarray, name: str, n: int, file_index: int, offset: int) -> Iterator[tuple[int, pa.Table]]:
    """A checked piece of table ``name`` (rows ``offset`` on of its ``file_index``-th file) cut by
    firm partition: ``(k, rows of partition k)``, in row order, with each row's file, row and
    whether it passed validation (:func:`partition_frame` makes them a validated frame again)."""
    frame = _storable(clean, name)
    frame[_FILE] = np.int32(file_index)
    frame[_ROW] = np.arange(offset, offset + len(frame), dtype=np.int64)
    frame[_KEEP] = keep
    part = firm_partition(pa.array(clean["firm_id"], type=pa.large_string(), from_pandas=True), n)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n + 1))
    table = _arrow(frame).take(pa.array(order))
    for k in range(n):
        if bounds[k + 1] > bounds[k]:
            yield k, table.slice(bounds[k], bounds[k + 1] - bounds[k])


def _bucket_keys(work: Path, name: str, n: int, files: list[str], check: TableCheck) -> None:
    """The key rule of a key with firm_id over every partition of a bucketed table: a row repeating
    a key seen earlier in its partition (rows there keep the table's order) is a duplicate. Raises,
    or marks the rows rejected (rewriting only the partitions that hold one)."""
    flagged: list[pd.DataFrame] = []
    for k in range(n):
        path = partition_file(work, k, name)
        if not path.exists():
            continue
        with pa.memory_map(str(path)) as src:
            frame = pa.ipc.open_file(src).read_all().to_pandas()
        found = partition_key_rule(frame, name)
        if found is None:
            continue
        flagged.append(found)
        if check.errors == "reject":
            table = _arrow(frame)
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=_IPC) as w:
                w.write_table(table)
    report_key_rule(name, files, flagged, check)


def partition_key_rule(frame: pd.DataFrame, name: str) -> pd.DataFrame | None:
    """The key rule of table ``name`` (a key with ``firm_id``) in one partition's bucketed rows, in
    table order: a row repeating a key seen earlier is a duplicate. Marks the duplicates not kept in
    ``frame`` and returns them (file, row, whether they had passed, their columns), or None."""
    dup = frame[list(SCHEMAS[name].key)].duplicated(keep="first").to_numpy()
    if not dup.any():
        return None
    found = frame.loc[dup].copy()
    frame[_KEEP] = frame[_KEEP].to_numpy() & ~dup
    return found


def report_key_rule(name: str, files: Sequence[str], flagged: Sequence[pd.DataFrame], check: TableCheck) -> None:
    """The duplicates :func:`partition_key_rule` found in every partition of table ``name``, as
    loading the whole table reports them: a TableError (``errors="raise"``), or the rows that had
    passed the other rules rejected with the rule as their reason."""
    flagged = [f for f in flagged if f is not None and len(f)]
    if not flagged:
        return
    key = list(SCHEMAS[name].key)
    rule = f"duplicate key ({', '.join(key)})"
    rows = pd.concat(flagged, ignore_index=True).sort_values([_FILE, _ROW], kind="stable")
    violations = []
    for i, group in rows.groupby(_FILE, sort=True):
        r = tuple(int(x) for x in group[_ROW].to_numpy()[:5])
        violations.append(Violation(name, str(files[int(i)]), ",".join(key), rule, len(group), r))
    if check.errors == "raise":
        raise TableError(violations)
    for part in flagged:
        rejected = part.loc[part[_KEEP].to_numpy(dtype=bool)]
        if len(rejected):
            rej = rejected.drop(columns=[_FILE, _ROW, _KEEP])
            rej.index = rejected[_ROW].to_numpy()
            rej["reject_column"] = ",".join(key)
            rej["reject_rule"] = rule
            check._rejects.append(rej)
            check.report.rows_kept[name] -= len(rej)
    for v in violations:
        msg = f"rejected: {v}"
        check.report.warnings.append(msg)
        log.warning(msg)


def _merge_reports(reports: Iterable[LoadReport]) -> LoadReport:
    out = LoadReport()
    rejects: dict[str, list[pd.DataFrame]] = {}
    for r in reports:
        for k, v in r.rows_read.items():
            out.rows_read[k] = out.rows_read.get(k, 0) + v
        for k, v in r.rows_kept.items():
            out.rows_kept[k] = out.rows_kept.get(k, 0) + v
        for k, v in r.rejects.items():
            rejects.setdefault(k, []).append(v)
        out.warnings += r.warnings
    out.rejects = {k: pd.concat(v) if len(v) > 1 else v[0] for k, v in rejects.items()}
    return out


def _check_aligned(layout: Layout, results: list[_Prepared]) -> None:
    """Aligned parts must be firm-disjoint: every firm of the registry or the applications in one
    part only, and no row in a part other than its firm's (a row of a firm in neither table is
    dropped by every build alike)."""
    home = [r.home for r in results]
    every = pa.concat_arrays(home) if home else pa.array([], type=pa.large_string())
    part_of = np.repeat(np.arange(len(home)), [len(h) for h in home])
    values = every.to_numpy(zero_copy_only=False)
    dup = pd.Series(values).duplicated(keep=False).to_numpy()
    if dup.any():
        firm = values[int(np.flatnonzero(dup)[0])]
        parts = sorted(set(part_of[values == firm].tolist()))
        raise UserError(f"{layout.directory}: firm {firm} is in parts {parts} of the firms or applications tables; "
                        "a hub partitioned by firm (manifest.json \"partitioning\") keeps each firm in one part "
                        "(remove \"partitioning\" from manifest.json to have the tables re-partitioned)")
    for k, res in enumerate(results):
        for name, foreign in res.foreign.items():
            elsewhere = pc.filter(foreign, pc.is_in(foreign, value_set=every)) if len(foreign) else foreign
            if len(elsewhere):
                firm = elsewhere[0].as_py()
                j = int(part_of[np.flatnonzero(values == firm)[0]])
                raise UserError(f"{layout.files[name][k]}: firm {firm} has rows here but is a firm of part {j}; a hub partitioned "
                                "by firm (manifest.json \"partitioning\") keeps all of a firm's rows in one part (remove "
                                "\"partitioning\" from manifest.json to have the tables re-partitioned)")


# ------------------------------------------------------------------------------------------------
# Steps 2 and 3
# ------------------------------------------------------------------------------------------------


def _stats_part(work: str, k: int, months: np.ndarray, as_of, features: Sequence[str] | None) -> tuple[PartStats, dict]:
    """Pass 1 on partition ``k``: its PartStats, the peer values spilled to .npy files in ``work``."""
    requests = stat_requests(signals_of(features))
    columns = {t: requests.columns(t) for t in requests.tables()}
    columns["firms"] = {"firm_id", "industry", "region", "founding_date", "available_date"}
    tables = read_partition(work, k, ("firms", "applications", *sorted(requests.tables())), columns=columns)
    part = part_stats(tables, requests, months, as_of=as_of)
    return part, spill_peers(part, Path(work), k)


def _features_part(work: str, k: int, stats: HubStats, as_of, features: Sequence[str] | None) -> pd.DataFrame:
    """Pass 2 on partition ``k``: its rows of the feature matrix."""
    tables = read_partition(work, k)
    return build_features(tables, as_of=as_of, features=features, stats=stats)


def signals_of(features: Sequence[str] | None):
    reg = load_all()
    if features is None:
        return list(reg.values())
    from features.build import _resolve

    return _resolve(features, reg)


def _exit_with_parent(parent: int) -> None:
    """A pool worker's initializer: end the worker when its parent is gone. A worker outlives a
    parent killed by SIGKILL otherwise, blocked for ever writing a result nobody reads."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class _Runner:
    """Runs tasks in this process (``workers=1``) or in a pool of worker processes, results in the
    order the tasks were given (so errors, too, surface in that order)."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Runner:
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"),
                                             initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable, tasks: Sequence[tuple], done: Callable[[int], None] | None = None) -> Iterator:
        if self._pool is None:
            for i, args in enumerate(tasks):
                result = fn(*args)
                if done:
                    done(i + 1)
                yield result
            return
        futures: list[Future] = []
        ahead = 2 * self.workers  # at most this many results wait in memory
        it = iter(tasks)
        for args in it:
            futures.append(self._pool.submit(fn, *args))
            if len(futures) >= ahead:
                break
        i = 0
        while i < len(futures):
            result = futures[i].result()
            futures[i] = None  # type: ignore[call-overload]
            i += 1
            if done:
                done(i)
            nxt = next(it, None)
            if nxt is not None:
                futures.append(self._pool.submit(fn, *nxt))
            yield result


# ------------------------------------------------------------------------------------------------
# The build
# ------------------------------------------------------------------------------------------------


@dataclass
class BuildSummary:
    """What :func:`build_hub` did."""

    rows: int
    features: int
    partitions: int
    layout: str  # "memory" (one partition), "aligned" (the hub's own parts) or "buckets"
    workers: int
    report: LoadReport
    seconds: dict[str, float] = field(default_factory=dict)


def n_partitions(layout: Layout, partition_firms: int = PARTITION_FIRMS) -> int:
    """Partitions a bucketed build of this hub uses: one per ``partition_firms`` firms (rows of the
    firms table), at least one."""
    firms = sum(layout.rows("firms"))
    return max(1, -(-firms // max(1, int(partition_firms))))


def build_hub(
    directory: str | Path,
    out: str | Path,
    *,
    errors: str = "raise",
    as_of=None,
    features: Sequence[str] | None = None,
    partitions: int | None = None,
    partition_firms: int = PARTITION_FIRMS,
    workers: int = 1,
    work_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BuildSummary:
    """Build the feature matrix of the hub at ``directory`` into the Parquet file ``out`` with memory
    set by the partition size (see the module doc); the same values as ``build_features`` on
    ``load_tables``, rows partition by partition.

    ``partitions`` forces a bucketed build into that many partitions (default: the hub's aligned
    parts, else one per ``partition_firms`` firms). ``workers`` processes run partitions (and, while
    preparing, tables or parts) at once. The work folder (default: a hidden folder beside ``out``) is
    removed at the end. ``progress(step, done, total)`` is called as partitions finish; the steps
    are ``"validate"``, ``"pass 1"`` and ``"features"``."""
    directory, out = Path(directory), Path(out)
    if errors not in ("raise", "reject"):
        raise UserError(f"errors must be 'raise' or 'reject', got {errors!r}")
    layout = hub_layout(directory)
    if features is not None:
        signals_of(features)  # an unknown name fails before any work
    n = int(partitions) if partitions is not None else (layout.aligned or n_partitions(layout, partition_firms))
    if n < 1:
        raise UserError(f"partitions must be at least 1, got {n}")
    mode = "aligned" if (partitions is None and layout.aligned) else ("memory" if n == 1 else "buckets")
    workers = max(1, min(int(workers), n))
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with AtomicOutput(out) as tmp:  # the target's lock from the start: a concurrent build is refused before any work
        if mode == "memory":
            tables, report = load_tables(directory, errors=errors)
            seconds["validate"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            matrix = build_features(tables, as_of=as_of, features=features)
            del tables
            if as_of is not None and matrix.empty:
                raise UserError(no_firm_known(directory, as_of))
            write_table(matrix, tmp)
            seconds["features"] = time.perf_counter() - t1
            if progress:
                progress("features", 1, 1)
            return BuildSummary(len(matrix), matrix.shape[1] - 8, 1, mode, 1, report, seconds)

        parent = Path(work_dir) if work_dir is not None else out.absolute().parent
        with work_folder(parent, out.name) as work, _Runner(workers) as runner:
            months = _application_months(layout.files["applications"], as_of)
            report, parts = _prepare(layout, work, n, mode, errors, runner, progress, months, as_of, features)
            seconds["validate"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            if parts is None:  # bucketed: pass 1 reads the partitions
                tasks = [(str(work), k, months, as_of, features) for k in range(n)]
                parts = list(runner.map(_stats_part, tasks, _tick(progress, "pass 1", n)))
            for part, paths in parts:
                for key, path in paths.items():
                    part.peers[key].values = np.load(path, mmap_mode="r")
            stats = HubStats.combine([p for p, _ in parts])
            del parts
            seconds["pass 1"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            tasks = [(str(work), k, stats, as_of, features) for k in range(n)]
            rows, n_features = write_frames(tmp, runner.map(_features_part, tasks, _tick(progress, "features", n)),
                                            empty_error=no_firm_known(directory, as_of) if as_of is not None else None)
            seconds["features"] = time.perf_counter() - t2
    return BuildSummary(rows, n_features, n, mode, workers, report, seconds)


def _tick(progress, step: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    progress(step, 0, total)
    return lambda done: progress(step, done, total)


def _prepare(layout: Layout, work: Path, n: int, mode: str, errors: str, runner: _Runner, progress, months: np.ndarray, as_of,
             features: Sequence[str] | None) -> tuple[LoadReport, list | None]:
    """Step 1: validate every table and write the partitions. Returns the load report and, for
    aligned parts, each part's pass-1 statistics (None when bucketed: pass 1 runs afterwards)."""
    names = [t for t in TABLE_NAMES if t in layout.files]
    (work / "tables.json").write_text(json.dumps([t for t in names if t in BUILD_TABLES]))
    dups = {name: _global_duplicates(layout.files[name], name) for name in names if name in GLOBAL_KEY_TABLES}
    parts = None
    if mode == "aligned":
        tasks = [(str(layout.directory), str(work), k, errors, {t: d[k] for t, d in dups.items() if d is not None}, months, as_of, features)
                 for k in range(n)]
        results = list(runner.map(_prepare_aligned, tasks, _tick(progress, "validate", n)))
        _check_aligned(layout, results)
        parts = [r.stats for r in results]
    else:
        tasks = [(str(layout.directory), str(work), name, n, errors, dups.get(name)) for name in names]
        results = list(runner.map(_prepare_buckets, tasks, _tick(progress, "validate", len(tasks))))
    report = _merge_reports(r.report for r in results)
    report.missing_tables = [t for t in TABLE_NAMES if t not in layout.files]
    for t in report.missing_tables:
        log.warning("table %s is missing from %s: its signals will be NaN", t, layout.directory)
    return report, parts


def no_firm_known(directory: Path, as_of) -> str:
    return f"--as-of {as_of}: no firm of {directory} is known on that date; choose a date inside the hub's data window"


def write_frames(tmp: Path, frames: Iterable[pd.DataFrame | pa.Table], empty_error: str | None = None) -> tuple[int, int]:
    """Append each frame (or Arrow table) to the Parquet file ``tmp`` as row groups (the settings of
    ``features.tables.write_table``): ``tmp`` is the temporary file of the caller's
    ``features.files.AtomicOutput``, opened when the build starts so that a second build of the same
    target is refused before it does any work. With ``empty_error``, no rows at all raise it (the
    caller's ``AtomicOutput`` then leaves the target as it was)."""
    rows, n_features = 0, 0
    writer = None
    try:
        for frame in frames:
            table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata(None)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(str(tmp), schema, compression="zstd", write_statistics=True)
                n_features = table.num_columns - 8
            elif table.schema != schema:
                table = table.cast(schema)
            if table.num_rows:
                writer.write_table(table, row_group_size=1_000_000)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if rows == 0 and empty_error is not None:
        raise UserError(empty_error)
    return rows, n_features
