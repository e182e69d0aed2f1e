"""The feature build on Spark (``riskmodel features --engine spark``): the partitioned build's steps
(:mod:`features.partitions`) as Spark jobs, the same functions in every task.

1. **Keys.** The key rule of a key without ``firm_id`` (certificate, patent, award, application ids)
   over the whole table: tasks hash each row's key as :func:`features.tables.find_duplicates` does,
   a Spark aggregation (``groupBy(table, hash)``) finds the hashes held by more than one row, and the
   driver checks those few rows on their values.
2. **Validate and partition.** One task per share of a file (consecutive row groups, about
   ``PIECE_ROWS`` rows), read with pyarrow as the pandas build reads it
   (:func:`features.tables.read_pieces`), checked with :class:`features.tables.TableCheck` (rows
   numbered in their file) and cut by firm partition (:func:`features.partitions.bucket_piece`:
   FNV-1a of the firm id modulo the number of partitions, the pandas build's hash, computed in the
   task). Each task emits one row per partition it holds rows of (the rows as an LZ4 Arrow IPC
   stream) and one row with its violations, counts and rejects. ``repartition(part)`` brings a
   partition's rows together; the result is persisted on disk for the two passes. The driver
   merges the violations per file (:func:`features.tables.merge_violations`) and raises or reports
   them as loading the whole table does.
3. **Pass 1.** ``groupBy(part).applyInArrow``: each partition's tables, in table order, get the key
   rule of keys with ``firm_id`` (:func:`features.partitions.partition_key_rule`) and their
   cross-firm quantities (:func:`features.build.part_stats`; peer values spilled to ``.npy`` files
   in the work folder, as the pandas build does). The driver combines them
   (:meth:`features.hubstats.HubStats.combine`) and broadcasts the result.
4. **Pass 2.** ``groupBy(part).applyInArrow`` again: :func:`features.build.build_features` with
   the hub's statistics, each partition's rows written as one Parquet file in the work folder; the
   driver appends them, in partition order, to ``--out`` as row groups
   (:func:`features.partitions.write_frames`, through ``features.files.AtomicOutput``).

Why the tasks read the files themselves rather than ``spark.read.parquet``: the pandas build's
reader gives the frames ``validate_frame`` was written for, so dtypes, values and messages (file,
column, row, rule) are the same by construction; Spark's reader would hand over its own types
(nanosecond timestamps as longs, dictionaries as strings) and cost a conversion per row.

The output is the pandas build's file: one Parquet file, rows partition by partition and, inside a
partition, in the order of the applications table; with the same number of partitions the two
builds give the same file row for row (``--partitions``). The work folder (beside ``--out``, or
``--work-dir``) and the hub must be on storage the driver and every executor see at the same path.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.build import build_features, part_stats, stat_requests
from features.contract import DATE
from features.errors import UserError
from features.files import AtomicOutput, work_folder
from features.hubstats import HubStats, PartStats
from features.partitions import _FILE, _KEEP, _ROW  # the columns bucket_piece marks each row with
from features.partitions import (
    BUILD_TABLES,
    GLOBAL_KEY_TABLES,
    PIECE_ROWS,
    BuildSummary,
    as_of_months,
    bucket_piece,
    empty_frame,
    hub_layout,
    months_of,
    n_partitions,
    no_firm_known,
    partition_frame,
    partition_key_rule,
    report_key_rule,
    signals_of,
    spill_peers,
    write_frames,
)
from features.tables import (
    SCHEMAS,
    TABLE_NAMES,
    LoadReport,
    TableCheck,
    TableError,
    Violation,
    dataset_end,
    file_columns,
    file_rows,
    key_frame,
    merge_violations,
    read_pieces,
)

SHARE_ROWS = PIECE_ROWS
# Firms per partition. Smaller than the pandas build's: ``groupBy(part).applyInArrow`` holds a whole
# partition in the executor's JVM before Python sees it (Spark's documented behaviour for grouped
# maps), so at 50,000 firms (about 8.5 million rows) a 1 GiB local heap ran out at 100,000 firms.
SPARK_PARTITION_FIRMS = 10_000
"""Rows of a file one validation task reads (whole row groups; a larger row group is one share)."""
DATA_SCHEMA = "part int, seq int, table string, payload binary"
RESULT_SCHEMA = "part int, payload binary"
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")


@dataclass(frozen=True)
class Share:
    """Consecutive row groups of one file of a table: what one validation task reads."""

    seq: int
    table: str
    file_index: int
    path: str
    row_groups: tuple[int, ...]
    first_row: int
    rows: int


def plan_shares(files: dict[str, list[Path]], tables: Sequence[str], rows: int = SHARE_ROWS) -> list[Share]:
    """The shares of every file of ``tables`` (in table order, file order, row order), from the
    files' footers: consecutive row groups until at least ``rows`` rows."""
    shares: list[Share] = []
    for name in tables:
        for i, f in enumerate(files.get(name, [])):
            meta = pq.ParquetFile(f).metadata
            group: list[int] = []
            start = n = 0
            for g in range(meta.num_row_groups):
                size = meta.row_group(g).num_rows
                if size == 0:
                    continue
                if not group:
                    first = start
                group.append(g)
                n += size
                start += size
                if n >= rows:
                    shares.append(Share(len(shares), name, i, str(f), tuple(group), first, n))
                    group, n = [], 0
            if group:
                shares.append(Share(len(shares), name, i, str(f), tuple(group), first, n))
    return shares


@dataclass
class _Context:
    """What every task of a build needs (pickled into the tasks)."""

    n: int
    errors: str
    max_date: pd.Timestamp | None
    as_of: object
    features: Sequence[str] | None
    present: list[str]  # build tables the hub has
    work: str
    duplicates: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # global keys: rows repeating an earlier key


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _unipc(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def _batch(rows: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)


_DATA = pa.schema([("part", pa.int32()), ("seq", pa.int32()), ("table", pa.string()), ("payload", pa.binary())])
_RESULT = pa.schema([("part", pa.int32()), ("payload", pa.binary())])
_KEYS = pa.schema([("t", pa.int32()), ("f", pa.int32()), ("r", pa.int64()), ("h", pa.int64())])


def _threads() -> None:
    from riskmodel.spark import _task_threads

    _task_threads()


# ---- step 1: keys without firm_id -----------------------------------------------------------------


def _key_hashes(share: Share) -> pa.RecordBatch:
    """The 64-bit hash of each row's key (as :func:`features.tables.find_duplicates` hashes it)."""
    schema = SCHEMAS[share.table]
    out = []
    for offset, piece in read_pieces(Path(share.path), SHARE_ROWS, columns=list(schema.key), row_groups=list(share.row_groups)):
        h = pd.util.hash_pandas_object(key_frame(piece, schema), index=False).to_numpy().view(np.int64)
        out.append(pa.RecordBatch.from_arrays(
            [pa.array(np.full(len(h), TABLE_NAMES.index(share.table), dtype=np.int32)), pa.array(np.full(len(h), share.file_index, dtype=np.int32)),
             pa.array(np.arange(share.first_row + offset, share.first_row + offset + len(h), dtype=np.int64)), pa.array(h)], schema=_KEYS))
    return pa.Table.from_batches(out, schema=_KEYS).combine_chunks().to_batches()[0] if out else pa.RecordBatch.from_pylist([], schema=_KEYS)


def global_duplicates(spark, shares: list[Share], files: dict[str, list[Path]]) -> dict[tuple[str, int], np.ndarray]:
    """Rows (per table and file index) repeating a key seen earlier in the table, for the tables
    whose key lacks ``firm_id``: hashes in the tasks, a Spark aggregation for the hashes held by
    more than one row, then those rows compared on their values on the driver."""
    from pyspark.sql import functions as F

    shares = [s for s in shares if s.table in GLOBAL_KEY_TABLES]
    if not shares:
        return {}

    def run(batches):
        _threads()
        for b in batches:
            for k in b.column("id").to_pylist():
                yield _key_hashes(shares[k])

    hashed = spark.range(0, len(shares), 1, len(shares)).mapInArrow(run, "t int, f int, r long, h long")
    shared = (hashed.groupBy("t", "h").agg(F.count(F.lit(1)).alias("n"), F.collect_list(F.struct("f", "r")).alias("at"))
              .filter(F.col("n") > 1).select("t", F.explode("at").alias("at")).select("t", "at.f", "at.r").toArrow())
    out: dict[tuple[str, int], np.ndarray] = {}
    if shared.num_rows == 0:
        return out
    frame = shared.to_pandas().sort_values(["t", "f", "r"])
    for t, rows in frame.groupby("t", sort=True):
        name = TABLE_NAMES[int(t)]
        schema = SCHEMAS[name]
        keys, at = [], []
        for f, fr in rows.groupby("f", sort=True):
            r = fr["r"].to_numpy()
            table = pq.read_table(files[name][int(f)], columns=list(schema.key)).take(pa.array(r))
            keys.append(key_frame(table.to_pandas(), schema))
            at += [(int(f), int(x)) for x in r]
        same = pd.concat(keys, ignore_index=True).duplicated(keep="first").to_numpy()
        for (f, r), d in zip(at, same):
            if d:
                out.setdefault((name, f), []).append(r)  # type: ignore[arg-type]
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


# ---- step 2: validate and partition ---------------------------------------------------------------


def validate_share(share: Share, ctx: _Context) -> Iterator[tuple]:
    """One share: checked piece by piece, its rows cut by firm partition. Yields ``(part, seq,
    table, payload)``: the rows of each partition (Arrow IPC), then ``part = -1`` with the share's
    violations, counts, rejects and application months (pickled)."""
    name = share.table
    check = TableCheck(name, LoadReport(), max_date=ctx.max_date, errors=ctx.errors)
    dups = ctx.duplicates.get((name, share.file_index))
    global_key = name in GLOBAL_KEY_TABLES
    pieces: dict[int, list[pa.Table]] = {}
    months = [np.zeros(0, dtype=np.int64)]
    result: dict = {}
    try:
        for offset, raw in read_pieces(Path(share.path), SHARE_ROWS, row_groups=list(share.row_groups)):
            first = share.first_row + offset
            d = np.zeros(len(raw), dtype=bool)
            if global_key and dups is not None:
                at = dups[(dups >= first) & (dups < first + len(raw))] - first
                d[at] = True
            clean, keep = check.check(raw, share.path, first, d)
            check.report.rows_kept[name] += int(keep.sum())
            if name == "applications" and ctx.as_of is None and DATE in raw.columns:
                months.append(months_of(raw[DATE]))
            if name in BUILD_TABLES and not check.broken:
                for k, table in bucket_piece(clean, keep, name, ctx.n, share.file_index, first):
                    pieces.setdefault(k, []).append(table)
        result["violations"] = check.take_found()
        check.finish()
        result["report"] = check.report
        result["months"] = np.unique(np.concatenate(months))
    except UserError as exc:  # an unreadable row group: reported by the driver in table order
        result = {"error": exc}
        pieces = {}
    for k in sorted(pieces):
        yield k, share.seq, name, _ipc(pa.concat_tables(pieces[k], promote_options="permissive"))
    yield -1, share.seq, name, pickle.dumps(result)


# ---- steps 3 and 4: one partition --------------------------------------------------------------


def partition_tables(group: pa.Table, ctx: _Context, full: Sequence[str]) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """A partition's validated tables (those in ``full``, every column) from its rows of the shuffle,
    and the rows the key rule of keys with ``firm_id`` flags in each of the tables it holds (every
    table is checked; the others only read their key columns, or whole rows when rejecting)."""
    order = np.lexsort((group.column("seq").to_numpy(),))
    names = group.column("table").to_pylist()
    payloads = group.column("payload")
    chunks: dict[str, list[pa.Table]] = {}
    for i in order:
        chunks.setdefault(names[i], []).append(_unipc(payloads[int(i)].as_py()))
    tables: dict[str, pd.DataFrame] = {}
    flagged: dict[str, pd.DataFrame] = {}
    for name in ctx.present:
        if name not in chunks:
            if name in full:
                tables[name] = empty_frame(name)
            continue
        table = pa.concat_tables(chunks.pop(name), promote_options="permissive")
        firm_keyed = name not in GLOBAL_KEY_TABLES
        if name not in full and not firm_keyed:
            continue
        cols = table.column_names if name in full else [*SCHEMAS[name].key, _FILE, _ROW, _KEEP]
        frame = table.select(cols).to_pandas()
        if firm_keyed:
            found = partition_key_rule(frame, name)
            if found is not None:
                if name not in full and ctx.errors == "reject":
                    found = table.take(pa.array(found.index.to_numpy())).to_pandas()
                flagged[name] = found
        if name in full:
            tables[name] = partition_frame(frame, name)
    return tables, flagged


def _result(part: int, value) -> pa.Table:
    return pa.Table.from_batches([_batch([(part, pickle.dumps(value))], _RESULT)])


def pass1(group: pa.Table, ctx: _Context, months: np.ndarray) -> pa.Table:
    """Pass 1 on one partition: ``(PartStats, peer files, key-rule rows)`` or ``{"error": ...}``."""
    _threads()
    k = int(group.column("part")[0].as_py())
    try:
        requests = stat_requests(signals_of(ctx.features))
        tables, flagged = partition_tables(group, ctx, ("firms", "applications", *sorted(requests.tables())))
        part = part_stats(tables, requests, months, as_of=ctx.as_of)
        value = (part, spill_peers(part, Path(ctx.work), k), flagged)
    except UserError as exc:
        value = {"error": exc}
    return _result(k, value)


def pass2(group: pa.Table, ctx: _Context, stats) -> pa.Table:
    """Pass 2 on one partition: its feature rows written to ``<work>/features/part-<k>.parquet``;
    returns the rows written, or ``{"error": ...}``."""
    _threads()
    k = int(group.column("part")[0].as_py())
    try:
        tables, _ = partition_tables(group, ctx, BUILD_TABLES)
        matrix = build_features(tables, as_of=ctx.as_of, features=ctx.features, stats=stats.value)
        value = _write_part(matrix, Path(ctx.work), k)
    except UserError as exc:
        value = {"error": exc}
    return _result(k, value)


def _write_part(matrix: pd.DataFrame, work: Path, k: int) -> int:
    """The partition's rows as one Parquet file (written to a temporary name, then renamed: a task
    Spark runs again replaces it)."""
    folder = work / "features"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{k:05d}.parquet"
    tmp = folder / f".part-{k:05d}.{os.getpid()}.tmp"
    table = pa.Table.from_pandas(matrix, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    os.replace(tmp, path)
    return len(matrix)


def _values(rows: pa.Table) -> list[tuple[int, object]]:
    """Each task's ``(part, unpickled value)`` in partition order; the first error a task caught is raised."""
    out = sorted((int(p), pickle.loads(v)) for p, v in zip(rows.column("part").to_pylist(), rows.column("payload").to_pylist()))
    for _, v in out:
        if isinstance(v, dict) and "error" in v:
            raise v["error"]
    return out


# ---- the build ------------------------------------------------------------------------------------


def build_hub_spark(
    directory: str | Path,
    out: str | Path,
    *,
    errors: str = "raise",
    as_of=None,
    features: Sequence[str] | None = None,
    partitions: int | None = None,
    partition_firms: int = SPARK_PARTITION_FIRMS,
    work_dir: str | Path | None = None,
    spark=None,
) -> BuildSummary:
    """Build the feature matrix of the hub at ``directory`` into the Parquet file ``out`` on Spark
    (see the module doc): the values of :func:`features.partitions.build_hub`. ``partitions``
    (default: one per ``partition_firms`` firms, at least one per core) firm partitions; ``spark``:
    a session (default: :func:`riskmodel.spark.spark_session`, stopped at the end)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from riskmodel.spark import spark_session

    directory, out = Path(directory), Path(out)
    if errors not in ("raise", "reject"):
        raise UserError(f"errors must be 'raise' or 'reject', got {errors!r}")
    layout = hub_layout(directory)
    end = dataset_end(directory)  # the snapshot date: read once, before the session starts
    if features is not None:
        signals_of(features)  # an unknown name fails before any work
    months = as_of_months(as_of) if as_of is not None else None
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession

    output = AtomicOutput(out)
    tmp = output.open()  # the target's lock before the session starts: a concurrent build is refused at once
    own, cached = False, None
    try:
        own = spark is None and SparkSession.getActiveSession() is None  # a session this build starts, it stops
        spark = spark or spark_session(app_name="riskmodel-features")
        seconds["session"] = time.perf_counter() - t0
        parent = Path(work_dir) if work_dir is not None else out.absolute().parent
        with work_folder(parent, out.name) as work:
            cores = spark.sparkContext.defaultParallelism
            n = int(partitions) if partitions is not None else max(n_partitions(layout, partition_firms), cores)
            if n < 1:
                raise UserError(f"partitions must be at least 1, got {n}")
            t1 = time.perf_counter()
            report = LoadReport()
            names = [t for t in TABLE_NAMES if t in layout.files]
            checks = {name: TableCheck(name, report, max_date=end, errors=errors) for name in names}
            refused: dict[str, UserError] = {}  # a table whose files cannot be read or lack a column
            for name in names:
                for f in layout.files[name]:
                    try:
                        checks[name].begin_file(str(f), file_columns(f), file_rows(f))
                    except UserError as exc:
                        refused[name] = exc
                        break
            shares = plan_shares(layout.files, [t for t in names if t not in refused])
            ctx = _Context(n, errors, end, as_of, features, [t for t in names if t in BUILD_TABLES], str(work))
            ctx.duplicates = global_duplicates(spark, shares, layout.files)

            def validate(batches):
                _threads()
                for b in batches:
                    for k in b.column("id").to_pylist():
                        rows = list(validate_share(shares[k], ctx))
                        yield _batch(rows, _DATA)

            if shares:
                mapped = spark.range(0, len(shares), 1, len(shares)).mapInArrow(validate, DATA_SCHEMA)
                cached = mapped.repartition(n + 1, "part").persist(StorageLevel.DISK_ONLY)
                found = cached.filter(F.col("part") < 0).select("seq", "payload").toArrow()
                results = {int(s): pickle.loads(p) for s, p in zip(found.column("seq").to_pylist(), found.column("payload").to_pylist())}
            else:
                results = {}
            by_file: dict[tuple[str, int], list[Violation]] = {}
            all_months = [np.zeros(0, dtype=np.int64)]
            for share in shares:
                r = results[share.seq]
                if "error" in r:
                    refused.setdefault(share.table, r["error"])
                    continue
                by_file.setdefault((share.table, share.file_index), []).extend(r["violations"])
                for mine, theirs in ((report.rows_read, r["report"].rows_read), (report.rows_kept, r["report"].rows_kept)):
                    mine[share.table] = mine.get(share.table, 0) + theirs.get(share.table, 0)
                if share.table in r["report"].rejects:
                    checks[share.table]._rejects.append(r["report"].rejects[share.table])
                all_months.append(r["months"])
            for name in names:  # as load_tables: table by table, the first broken file
                if name in refused:
                    raise refused[name]
                for i, f in enumerate(layout.files[name]):
                    merged = merge_violations(by_file.get((name, i), []))
                    if merged and errors == "raise":
                        raise TableError(merged)
                    for v in merged:
                        report.warnings.append(f"rejected: {v}")
            if months is None:
                months = np.unique(np.concatenate(all_months))
            seconds["validate"] = time.perf_counter() - t1

            t2 = time.perf_counter()
            grouped = cached.filter(F.col("part") >= 0).groupBy("part") if cached is not None else None
            parts: list[PartStats] = []
            flagged: dict[str, list[pd.DataFrame]] = {}
            if grouped is not None:
                for _, (part, paths, found_keys) in _values(grouped.applyInArrow(lambda g: pass1(g, ctx, months), RESULT_SCHEMA).toArrow()):
                    for key, path in paths.items():
                        part.peers[key].values = np.load(path, mmap_mode="r")
                    parts.append(part)
                    for name, rows in found_keys.items():
                        flagged.setdefault(name, []).append(rows)
            for name in names:
                report_key_rule(name, [str(f) for f in layout.files[name]], flagged.get(name, []), checks[name])
                checks[name].finish()
            report.missing_tables = [t for t in TABLE_NAMES if t not in layout.files]
            if not parts:  # no partition holds a row: the statistics of empty tables
                empty = {name: empty_frame(name) for name in ctx.present}
                parts = [part_stats(empty, stat_requests(signals_of(features)), months, as_of=as_of)]
            stats = HubStats.combine(parts)
            del parts
            seconds["pass 1"] = time.perf_counter() - t2

            t3 = time.perf_counter()
            if grouped is not None:
                bc = spark.sparkContext.broadcast(stats)
                _values(grouped.applyInArrow(lambda g: pass2(g, ctx, bc), RESULT_SCHEMA).toArrow())
            files = sorted((work / "features").glob("part-*.parquet")) if (work / "features").is_dir() else []
            frames = (pq.read_table(p) for p in files) if files else [  # no partition holds a row: the columns, no rows
                build_features({name: empty_frame(name) for name in ctx.present}, as_of=as_of, features=features, stats=stats)]
            rows, n_features = write_frames(tmp, frames, empty_error=no_firm_known(directory, as_of) if as_of is not None else None)
            seconds["features"] = time.perf_counter() - t3
        output.commit()
    except BaseException:
        output.abort()
        raise
    finally:
        # a JVM that died (out of memory, killed) must not hide the error that ended the build
        with contextlib.suppress(Exception):
            if cached is not None:
                cached.unpersist()
        if own:
            with contextlib.suppress(Exception):
                spark.stop()
    return BuildSummary(rows, n_features, n, "spark", cores, report, seconds)
