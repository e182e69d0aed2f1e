"""Scale-out scoring on Spark: the pandas path's chunk code in every Spark task.

Spark finds the repeated ids and runs one task per share of the input; each task does to its rows
what :func:`riskmodel.scoring.score_frames` does to a chunk: it checks them with
:func:`~riskmodel.scoring.validate_chunk`, predicts with the registered model's
:class:`~riskmodel.creditmodel.CreditModel` (the artifact inside the registered pyfunc, loaded once
on the driver and broadcast to the executors) and writes its scores and its rejects as one part
file each through :class:`~riskmodel.scoring.AtomicParquetWriter`: the columns, types and Parquet
settings of the pandas path's files. No row is a pickled Python object and no row goes back to the
JVM: a task returns one line of counts.

Two ways in, one task body (:func:`_score_frames`):

* a Parquet file (:func:`score_file`, behind ``riskmodel score --engine spark``): each task reads
  its row groups with pyarrow, as the pandas path reads a file (:func:`~riskmodel.scoring.iter_chunks`);
  a file with fewer row groups than cores has its row groups cut into row ranges. A row's number
  is its position in the file, from the row-group sizes in the footer;
* a Spark DataFrame (:func:`score_dataframe`, inside your own Spark job): the rows reach the tasks
  as Arrow batches (``mapInArrow``, ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows). A row's
  number is a column you name, or its position in partition order (:func:`with_row_numbers`).

Why the tasks read and write themselves: in ``benchmarks/bench_spark.py --profile``, handing the
rows of a million-row file from Spark's reader to Python cost more CPU than the whole pandas path,
and handing the scores back to Spark's Parquet writer cost about as much again (the reason texts are
long strings).

Order and repeated ids, without a global sort:

* part files are named by task (``part-NNNNNN.parquet``) and each task holds a contiguous run of rows
  in input order, so read in name order (as pandas and pyarrow read a folder) the scores and the
  rejects are in input order. For a DataFrame the plan from the input to the tasks is narrow; when
  it has fewer partitions than cores its rows are sent to contiguous row ranges
  (``repartitionById``) and sorted by row number inside each;
* repeated ids are found by one Spark aggregation of the id column (``groupBy(id)``: the first row
  of each repeated id). Its result, one row per repeated id and usually empty, is broadcast to the
  tasks: the first row carrying an id wins, as in the pandas path.

Outputs are Parquet folders of part files and follow the one output rule (:mod:`features.files`):
checked before any work, written into the temporary folders of two
:class:`~features.files.AtomicOutput` (locked, so a concurrent run on the same targets is refused)
and renamed into place at the end. The summary (:class:`~riskmodel.scoring.ScoreSummary`) has the
pandas path's fields and meaning; counts, grade counts and the PD sum are summed from the tasks'
lines and checked against the input's row count.

Here Spark runs in local mode (``local[2]``); on a cluster set ``SPARK_MASTER`` (or build the session
yourself and call :func:`score_file` or :func:`score_dataframe`). The executors need this package
installed (they unpickle the model and run its code) and the input and output folders on storage
that the driver and every executor see at the same path; they do not need the MLflow server.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.errors import OutputError
from features.files import AtomicOutput, check_outputs
from riskmodel.errors import ScoringError
from riskmodel.scoring import (
    ID_COLUMN,
    PASS_THROUGH,
    REJECT_REASONS,
    AtomicParquetWriter,
    ScoreSummary,
    check_columns,
    columns_read,
    empty_rejects,
    iter_chunks,
    read_columns,
    rejects_path,
    validate_chunk,
)
from riskmodel.scoring import _empty_scores as empty_scores
from riskmodel.scoring import _scores_table as scores_table

ROW = "__row"  # a row's position in the input (0-based), as the pandas path numbers rejects
FIRST = "__first_row"  # the first row carrying a repeated id
ARROW_BATCH_ROWS = 100_000  # rows per batch a task checks and scores: the pandas path's chunk (Spark's Arrow default is 10,000)
MIN_TASK_ROWS = 50_000  # below this many rows per core, more tasks cost more than they save


def spark_session(master: str | None = None, app_name: str = "riskmodel-score"):
    """A SparkSession for scoring: local mode bound to 127.0.0.1 unless ``SPARK_MASTER`` says otherwise."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    master = master or os.environ.get("SPARK_MASTER", "local[2]")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
        .config("spark.sql.session.timeZone", "UTC")
        # pandas writes nanosecond timestamps, which Spark's Parquet reader refuses; read them as
        # longs (``read_features`` converts the pass-through date columns back).
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
    )
    if master.startswith("local"):
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", "4")  # a cluster keeps its own setting
            # local mode runs the tasks in the driver's JVM: Spark's 1g default heap is for a driver
            # alone (SPARK_DRIVER_MEMORY overrides, as for spark-submit)
            .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "2g"))
        )
    return builder.getOrCreate()


def read_features(spark, path: str | Path):
    """A Parquet feature file as a Spark DataFrame with each row's number in the file (``ROW``,
    Spark's ``_metadata.row_index``). Nanosecond timestamps (read as longs) become timestamps
    without a time zone again, as pandas holds them."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    sdf = spark.read.parquet(str(path))
    for c in PASS_THROUGH:
        if c in sdf.columns and isinstance(sdf.schema[c].dataType, T.LongType):
            sdf = sdf.withColumn(c, F.timestamp_micros(F.floor(F.col(c) / 1000).cast("long")).cast("timestamp_ntz"))
    return sdf.select("*", F.col("_metadata.row_index").alias(ROW))


def with_row_numbers(sdf):
    """``sdf`` with each row's position in partition order (``ROW``, 0-based), for a DataFrame that
    does not carry one. One small job counts the rows of each partition; a row's number is then its
    partition's offset plus its place in the partition (``monotonically_increasing_id`` holds the
    latter in its low 33 bits). ``sdf`` must give the same partitions each time it is computed (a
    file scan does; a plan with a shuffle may not)."""
    from pyspark.sql import functions as F

    pid = F.spark_partition_id()
    counts = dict(sdf.groupBy(pid.alias("p")).count().collect())
    offsets, total = [], 0
    for p in range(max(counts, default=-1) + 1):
        offsets.append(total)
        total += counts.get(p, 0)
    if not offsets:
        return sdf.withColumn(ROW, F.lit(0).cast("long"))
    local = F.monotonically_increasing_id().bitwiseAND((1 << 33) - 1)
    return sdf.withColumn(ROW, F.array(*[F.lit(o).cast("long") for o in offsets])[pid] + local)


def repeated_ids(sdf) -> pa.Table:
    """The ids occurring more than once in ``sdf`` (columns ``ID_COLUMN`` and ``ROW``), each with its
    first row (``FIRST``): one Spark aggregation, its (small) result collected as an Arrow table."""
    from pyspark.sql import functions as F

    return (
        sdf.select(ID_COLUMN, ROW)
        .groupBy(ID_COLUMN)
        .agg(F.min(ROW).alias(FIRST), F.count(F.lit(1)).alias("__n"))
        .filter(F.col("__n") > 1)
        .select(ID_COLUMN, FIRST)
        .toArrow()
    )


def duplicate_rows(ids: pd.Series, rows: np.ndarray, repeated: pa.Table) -> np.ndarray:
    """True where a row's id is one of ``repeated`` (:func:`repeated_ids`) and an earlier row carries it."""
    if repeated.num_rows == 0:
        return np.zeros(len(rows), dtype=bool)
    values = pa.array(ids, from_pandas=True)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    keys = repeated.column(ID_COLUMN).combine_chunks()
    at = pc.index_in(values, value_set=keys if keys.type == values.type else keys.cast(values.type))
    found = at.is_valid().to_numpy(zero_copy_only=False)
    first = np.full(len(rows), np.iinfo(np.int64).max)
    first[found] = repeated.column(FIRST).to_numpy()[at.drop_null().to_numpy()]
    return rows > first


@dataclass
class TaskCounts:
    """What one task (or all of them, summed) read and wrote."""

    rows_in: int = 0
    scored: int = 0
    pd_sum: float = 0.0
    grade_counts: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    scores_files: int = 0
    rejects_files: int = 0

    def add(self, other: TaskCounts) -> None:
        self.rows_in += other.rows_in
        self.scored += other.scored
        self.pd_sum += other.pd_sum
        self.scores_files += other.scores_files
        self.rejects_files += other.rejects_files
        for mine, theirs in ((self.grade_counts, other.grade_counts), (self.rejects_by_reason, other.rejects_by_reason)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n


@dataclass
class _Job:
    """What every task of a scoring run needs (pickled into the tasks; the model and the repeated
    ids travel as Spark broadcasts)."""

    model: object  # Broadcast of the CreditModel
    repeated: object  # Broadcast of the repeated ids (pa.Table)
    scores_dir: Path
    rejects_dir: Path
    model_name: str
    model_version: str

    def spec(self) -> dict:
        return self.model.value.input_spec()


def _task_threads() -> None:
    """A task's model code uses the cores Spark gave the task (``spark.task.cpus``), not the
    machine's: several tasks run at once on an executor."""
    from pyspark import TaskContext

    from riskmodel import config

    ctx = TaskContext.get()
    os.environ["RISKMODEL_THREADS"] = str(ctx.cpus() if ctx is not None else 1)
    config.openmp_defaults()


def _score_frames(job: _Job, frames: Iterable[tuple[pd.DataFrame, np.ndarray]], part: int) -> TaskCounts:
    """One task: check, score and write its frames (each with its rows' numbers in the input) as
    ``part-<part>.parquet`` in the scores and rejects folders."""
    _task_threads()
    model, spec = job.model.value, job.spec()
    required = spec["numeric"] + spec["categorical"]
    name = f"part-{part:06d}.parquet"
    counts = TaskCounts()
    writers: dict[str, AtomicParquetWriter] = {}
    try:
        for frame, rows in frames:
            duplicate = duplicate_rows(frame[ID_COLUMN], rows, job.repeated.value)
            res = validate_chunk(frame, spec["numeric"], spec["categorical"], spec["lower_bounds"], None, 0, duplicate=duplicate)
            counts.rows_in += len(frame)
            if len(res.rejects):
                if "rejects" not in writers:
                    writers["rejects"] = AtomicParquetWriter(job.rejects_dir / name)
                writers["rejects"].write(res.rejects.assign(row=rows[res.rejects["row"].to_numpy()]))
                for code, n in res.rejects["reject_code"].value_counts().items():
                    counts.rejects_by_reason[str(code)] = counts.rejects_by_reason.get(str(code), 0) + int(n)
            if len(res.clean):
                predicted = model.predict(res.clean[required], check_input=False)  # validate_chunk checked it
                if "scores" not in writers:
                    writers["scores"] = AtomicParquetWriter(job.scores_dir / name)
                writers["scores"].write_table(scores_table(res.ids, res.clean, predicted, job.model_name, job.model_version))
                counts.scored += len(predicted)
                counts.pd_sum += float(predicted["pd"].sum())
                for g, n in predicted["grade"].value_counts(sort=False).items():
                    if n:
                        counts.grade_counts[str(g)] = counts.grade_counts.get(str(g), 0) + int(n)
        for w in writers.values():
            w.commit(None)  # a writer exists only once it has written a chunk
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    counts.scores_files, counts.rejects_files = int("scores" in writers), int("rejects" in writers)
    return counts


def _counts_batch(counts: TaskCounts) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"counts": [json.dumps(asdict(counts))]})


def _collect_counts(lines) -> TaskCounts:
    """Run the tasks (``lines``: the DataFrame of their count lines) and sum their counts. A task
    that failed on a user-fixable error (an unreadable file, a full disk) fails the run with its
    one-line message."""
    total = TaskCounts()
    try:
        collected = lines.collect()
    except Exception as exc:  # noqa: BLE001 - a task's error arrives wrapped in Spark's exception
        found = re.findall(r"(ScoringError|OutputError|UserError): (.+)", str(exc))
        if not found:
            raise
        kind, message = found[-1]
        raise (OutputError if kind == "OutputError" else ScoringError)(message.strip()) from None
    for r in collected:
        total.add(TaskCounts(**json.loads(r["counts"])))
    return total


def _finish(job: _Job, total: TaskCounts, credit_model, passthrough: list[str]) -> None:
    """A folder without a part file is not a Parquet data set: write one with the columns and no rows."""
    if not total.scores_files:
        AtomicParquetWriter(job.scores_dir / "part-000000.parquet").commit(empty_scores(credit_model, [ID_COLUMN, *passthrough]))
    if not total.rejects_files:
        AtomicParquetWriter(job.rejects_dir / "part-000000.parquet").commit(empty_rejects())


def _job(spark, credit_model, repeated: pa.Table, scores_dir, rejects_dir, model_name: str, model_version: str) -> _Job:
    sc = spark.sparkContext
    return _Job(sc.broadcast(credit_model), sc.broadcast(repeated), Path(scores_dir), Path(rejects_dir), model_name, model_version)


COUNTS_SCHEMA = "counts string"


def file_tasks(meta: pq.FileMetaData, cores: int, batch_rows: int = ARROW_BATCH_ROWS) -> list[dict]:
    """The shares of a Parquet file, in file order: one per row group, or, when the file has fewer row
    groups than the ``cores`` it could keep busy (at ``MIN_TASK_ROWS`` rows each), each row group cut
    into runs of whole batches (each such task reads its row group and skips the batches before its
    run). Each share: ``row_groups``, ``first_row`` (the number of its first row read),
    ``batch_rows``, ``skip`` and ``batches`` (batches to skip, then to take; None: all)."""
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    wanted = max(1, min(cores, math.ceil(sum(sizes) / MIN_TASK_ROWS)))
    cuts = math.ceil(wanted / len(sizes)) if 0 < len(sizes) < wanted else 1
    tasks, start = [], 0
    for i, n in enumerate(sizes):
        if n == 0:
            continue
        batches = math.ceil(n / batch_rows)
        per = math.ceil(batches / min(cuts, batches))
        for skip in range(0, batches, per):
            tasks.append({"row_groups": [i], "first_row": start, "batch_rows": batch_rows, "skip": skip, "batches": per if cuts > 1 else None})
        start += n
    return tasks


def _file_frames(path: str, task: dict, columns: list[str]) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The frames of one share of a Parquet file (:func:`file_tasks`) with their rows' numbers."""
    row = task["first_row"]
    end = None if task["batches"] is None else task["skip"] + task["batches"]
    for i, frame in enumerate(iter_chunks(Path(path), task["batch_rows"], columns=columns, row_groups=task["row_groups"])):
        if end is not None and i >= end:
            return
        if i >= task["skip"]:
            yield frame, np.arange(row, row + len(frame), dtype=np.int64)
        row += len(frame)


def file_repeated_ids(spark, features: str | Path) -> pa.Table:
    """:func:`repeated_ids` of a Parquet file (Spark reads its id column and row index)."""
    from pyspark.sql import functions as F

    return repeated_ids(spark.read.parquet(str(features)).select(ID_COLUMN, F.col("_metadata.row_index").alias(ROW)))


def score_file(
    spark,
    features: str | Path,
    credit_model,
    scores_dir: str | Path,
    rejects_dir: str | Path,
    model_name: str = "",
    model_version: str = "",
    batch_rows: int = ARROW_BATCH_ROWS,
    repeated: pa.Table | None = None,
) -> tuple[int, TaskCounts, list[str]]:
    """Score a Parquet feature file with ``credit_model``: part files into the existing folders
    ``scores_dir`` and ``rejects_dir``, read ``batch_rows`` rows at a time. ``repeated``: the file's
    :func:`file_repeated_ids` when already found. Returns ``(rows_in, counts, extra_columns)``: the
    file's row count (its footer), the tasks' summed counts and the input columns the model does not
    use."""
    features = Path(features)
    spec = credit_model.input_spec()
    columns = read_columns(features)
    extra = check_columns(columns, spec["numeric"] + spec["categorical"], str(features))
    passthrough = [c for c in PASS_THROUGH if c in columns]
    meta = pq.ParquetFile(features).metadata
    if repeated is None:
        repeated = file_repeated_ids(spark, features)
    job = _job(spark, credit_model, repeated, scores_dir, rejects_dir, model_name, model_version)
    tasks = file_tasks(meta, spark.sparkContext.defaultParallelism, batch_rows)
    total = TaskCounts()
    if tasks:
        path, wanted = str(features), columns_read(spec)

        def run(batches):
            for batch in batches:
                for k in batch.column("id").to_pylist():
                    yield _counts_batch(_score_frames(job, _file_frames(path, tasks[k], wanted), k))

        # one share per partition, in order: spark.range cuts 0..n-1 into n partitions of one number each
        total = _collect_counts(spark.range(0, len(tasks), 1, len(tasks)).mapInArrow(run, COUNTS_SCHEMA))
    _finish(job, total, credit_model, passthrough)
    return meta.num_rows, total, extra


def score_dataframe(sdf, credit_model, scores_dir: str | Path, rejects_dir: str | Path, model_name: str = "", model_version: str = "", row: str | None = None) -> tuple[int, TaskCounts, list[str]]:
    """Score a Spark DataFrame of feature rows with ``credit_model``: part files into the existing
    folders ``scores_dir`` and ``rejects_dir``. ``row``: a column holding each row's number in the
    input (default: numbered in partition order, :func:`with_row_numbers`). Returns ``(rows_in,
    counts, extra_columns)``: Spark's count of the rows, the tasks' summed counts and the input
    columns the model does not use."""
    from pyspark.sql import functions as F

    spec = credit_model.input_spec()
    required = spec["numeric"] + spec["categorical"]
    extra = check_columns([c for c in sdf.columns if c not in (ROW, row)], required, "input")
    passthrough = [c for c in PASS_THROUGH if c in sdf.columns]
    spark = sdf.sparkSession
    if row is None:
        sdf = with_row_numbers(sdf)
    elif row != ROW:
        sdf = sdf.withColumnRenamed(row, ROW)
    df = sdf.select(ID_COLUMN, *passthrough, *required, F.col(ROW).cast("long").alias(ROW))
    rows_in = df.count()
    job = _job(spark, credit_model, repeated_ids(df), scores_dir, rejects_dir, model_name, model_version)
    # Enough tasks for every core: an input with fewer partitions than cores is cut into contiguous
    # row ranges (a shuffle, then a sort by row number inside each range: the order is kept).
    tasks = max(1, min(spark.sparkContext.defaultParallelism, math.ceil(rows_in / MIN_TASK_ROWS)))
    if df.rdd.getNumPartitions() < tasks:
        df = df.repartitionById(tasks, (F.col(ROW) * tasks / F.lit(max(rows_in, 1))).cast("int")).sortWithinPartitions(ROW)

    def run(batches):
        from pyspark import TaskContext

        frames = ((b.to_pandas(split_blocks=True), b.column(ROW).to_numpy()) for b in batches)
        yield _counts_batch(_score_frames(job, frames, TaskContext.get().partitionId()))

    total = _collect_counts(df.mapInArrow(run, COUNTS_SCHEMA))
    _finish(job, total, credit_model, passthrough)
    return rows_in, total, extra


def score_spark(model_uri: str, features: str | Path, out: str | Path, rejects: str | Path | None = None, spark=None) -> ScoreSummary:
    """Score a Parquet feature file on Spark; writes Parquet folders at ``out`` and ``rejects``."""
    from riskmodel import tracking

    features, out = Path(features), Path(out)
    rejects_out = rejects_path(out, rejects)
    check_outputs({"--out": out, "--rejects": rejects_out}, [features], suffixes={"--out": (".parquet",), "--rejects": (".parquet",)})
    if features.suffix.lower() == ".csv":
        raise ScoringError(f"{features}: the Spark engine reads Parquet; convert the CSV or use --engine pandas")
    read_columns(features)
    targets = [AtomicOutput(out, directory=True), AtomicOutput(rejects_out, directory=True)]
    try:
        tmp_out, tmp_rej = [t.open() for t in targets]  # both locks before any work
        own = spark is None
        spark = spark or spark_session()
        try:
            group = f"riskmodel-ids-{os.getpid()}-{id(targets)}"

            def find() -> pa.Table:
                spark.sparkContext.setJobGroup(group, "repeated application ids", interruptOnCancel=True)
                return file_repeated_ids(spark, features)

            with ThreadPoolExecutor(1, thread_name_prefix="riskmodel-ids") as pool:
                found = pool.submit(find)  # a Spark job while the model loads
                try:
                    credit_model, name, version = tracking.load_credit_model(model_uri)
                except BaseException:
                    spark.sparkContext.cancelJobGroup(group)  # the batch cannot go on
                    raise
                repeated = found.result()
            rows_in, counts, extra = score_file(spark, features, credit_model, tmp_out, tmp_rej, name, version, repeated=repeated)
        finally:
            if own:
                spark.stop()
        rejected = sum(counts.rejects_by_reason.values())
        if not rows_in == counts.rows_in == counts.scored + rejected:
            raise ScoringError(f"row accounting failed: {rows_in} in, {counts.rows_in} read by the tasks, {counts.scored} scored, {rejected} rejected")
        for t in targets:
            t.commit()
    finally:
        for t in targets:
            t.abort()  # removes what is left of an unfinished run; nothing for a committed target
    return ScoreSummary(
        rows_in=rows_in,
        scored=counts.scored,
        rejected=rejected,
        rejects_by_reason={k: counts.rejects_by_reason[k] for k in REJECT_REASONS if k in counts.rejects_by_reason},
        model_uri=model_uri,
        model_name=name,
        model_version=version,
        output=str(out),
        rejects=str(rejects_out),
        extra_columns=extra,
        grade_counts=dict(sorted(counts.grade_counts.items())),
        mean_pd=counts.pd_sum / counts.scored if counts.scored else None,
    )
