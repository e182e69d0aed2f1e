"""Scale-out scoring on Spark with the same registered model and the same validation rules.

The model runs through ``mlflow.pyfunc.spark_udf`` (via :mod:`riskmodel.tracking`) with a struct
result, so a cluster scores with exactly the artifact a pandas batch job loads. Row validation reuses
:func:`riskmodel.scoring.validate_chunk` inside ``mapInPandas``; duplicate ids are found with a window
over the whole input first, so the first row carrying an id wins, as in the pandas path. Outputs
(Parquet directories) follow the one output rule (:mod:`features.files`): checked before any work,
written into the temporary folders of two :class:`~features.files.AtomicOutput` (locked, so a
concurrent run on the same targets is refused) and renamed into place at the end.

Here Spark runs in local mode (``local[2]``); on a cluster set ``SPARK_MASTER`` (or build the session
yourself and call :func:`score_dataframe`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel.errors import ScoringError
from features.files import AtomicOutput, check_outputs
from riskmodel.scoring import ID_COLUMN, PASS_THROUGH, REJECT_REASONS, ScoreSummary, check_columns, read_columns, rejects_path, validate_chunk

ROW = "__row"
DUP = "__dup"
CODE = "__reject_code"
REASON = "__reject_reason"


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
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        # pandas writes nanosecond timestamps, which Spark's Parquet reader refuses; read them as
        # longs and convert the pass-through date columns back (see ``_read_features``).
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    return builder.getOrCreate()


def _read_features(spark, path: Path):
    """Read a Parquet feature file; nanosecond timestamps (read as longs) become timestamps again."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    sdf = spark.read.parquet(str(path))
    for c in PASS_THROUGH:
        if c in sdf.columns and isinstance(sdf.schema[c].dataType, T.LongType):
            sdf = sdf.withColumn(c, F.timestamp_micros(F.floor(F.col(c) / 1000).cast("long")))
    return sdf


def _with_row_numbers(df):
    """Attach each row's position in the input (0-based), as the pandas path reports it."""
    from pyspark.sql import types as T

    schema = T.StructType(df.schema.fields + [T.StructField(ROW, T.LongType(), False)])
    rdd = df.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1]))
    return df.sparkSession.createDataFrame(rdd, schema)


def score_dataframe(sdf, model_uri: str, credit_model, spark_udf):
    """Validate and score a Spark DataFrame; returns ``(scores, rejects)`` Spark DataFrames.

    ``spark_udf`` is the pyfunc UDF (``tracking.spark_udf``) returning the model's output struct.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.window import Window

    spec = credit_model.input_spec()
    numeric, categorical, bounds = spec["numeric"], spec["categorical"], spec["lower_bounds"]
    required = numeric + categorical
    check_columns(sdf.columns, required, "input")
    passthrough = [c for c in PASS_THROUGH if c in sdf.columns]

    df = _with_row_numbers(sdf.select(ID_COLUMN, *passthrough, *required))
    first = Window.partitionBy(ID_COLUMN).orderBy(ROW)
    nonempty = F.col(ID_COLUMN).isNotNull() & (F.trim(F.col(ID_COLUMN).cast("string")) != "")
    df = df.withColumn(DUP, nonempty & (F.row_number().over(first) > 1))

    out_fields = [T.StructField(ID_COLUMN, T.StringType())]
    out_fields += [sdf.schema[c] for c in passthrough]
    out_fields += [T.StructField(c, T.DoubleType()) for c in numeric]
    out_fields += [T.StructField(c, T.StringType()) for c in categorical]
    out_fields += [T.StructField(ROW, T.LongType()), T.StructField(CODE, T.StringType()), T.StructField(REASON, T.StringType())]
    out_schema = T.StructType(out_fields)

    def validate(batches):
        for pdf in batches:
            res = validate_chunk(pdf, numeric, categorical, bounds, None, 0, duplicate=pdf[DUP].to_numpy(dtype=bool))
            rows = pdf[ROW].to_numpy()
            clean = res.clean.copy()
            clean[ROW] = rows[clean.index.to_numpy() - pdf.index[0]] if len(clean) else np.array([], dtype="int64")
            clean[CODE] = None
            clean[REASON] = None
            rej = pdf.loc[pdf.index[res.rejects["row"].to_numpy()] if len(res.rejects) else [], [ID_COLUMN, *passthrough, ROW]].copy()
            for c in numeric:
                rej[c] = np.nan
            for c in categorical:
                rej[c] = None
            rej[CODE] = res.rejects["reject_code"].to_numpy()
            rej[REASON] = res.rejects["reject_reason"].to_numpy()
            both = pd.concat([clean, rej], ignore_index=True)
            # Arrow-backed pandas strings arrive as chunked arrays, which Spark's Arrow writer refuses:
            # hand it plain object columns.
            for c in both.columns:
                if not (pd.api.types.is_numeric_dtype(both[c]) or pd.api.types.is_datetime64_any_dtype(both[c])):
                    both[c] = both[c].astype(object).where(both[c].notna(), None)
            yield both[[f.name for f in out_fields]]

    checked = df.mapInPandas(validate, out_schema).cache()
    good = checked.filter(F.col(CODE).isNull())
    udf = spark_udf
    scored = good.withColumn("__out", udf(F.struct(*[F.col(c) for c in required])))
    out_type = scored.schema["__out"].dataType
    # mlflow's spark_udf casts a string field with astype(str) whenever its batch holds any value, so a
    # missing reason (None) arrives as the text "None": restore the null the pandas path writes.
    out = [
        F.when(F.col("__out")[f.name] != "None", F.col("__out")[f.name]).alias(f.name)
        if isinstance(f.dataType, T.StringType) else F.col("__out")[f.name].alias(f.name)
        for f in out_type.fields
    ]
    scores = scored.select(ID_COLUMN, *passthrough, *out, ROW).orderBy(ROW).drop(ROW)
    rejects = (
        checked.filter(F.col(CODE).isNotNull())
        .select(F.col(ID_COLUMN), F.col(ROW).alias("row"), F.col(CODE).alias("reject_code"), F.col(REASON).alias("reject_reason"))
        .orderBy("row")
    )
    return scores, rejects, checked


def score_spark(model_uri: str, features: str | Path, out: str | Path, rejects: str | Path | None = None, spark=None) -> ScoreSummary:
    """Score a Parquet feature file on Spark; writes Parquet directories at ``out`` and ``rejects``."""
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
        credit_model, name, version = tracking.load_credit_model(model_uri)
        own = spark is None
        spark = spark or spark_session()
        checked = None
        try:
            sdf = _read_features(spark, features)
            udf = tracking.spark_udf(spark, model_uri, credit_model)
            scores, rej, checked = score_dataframe(sdf, model_uri, credit_model, udf)
            from pyspark.sql import functions as F

            scores = scores.withColumn("model_name", F.lit(name)).withColumn("model_version", F.lit(version))
            scores.write.mode("overwrite").parquet(str(tmp_out))
            rej.write.mode("overwrite").parquet(str(tmp_rej))
            n_scored = spark.read.parquet(str(tmp_out)).count()
            by_code = {r["reject_code"]: int(r["count"]) for r in spark.read.parquet(str(tmp_rej)).groupBy("reject_code").count().collect()}
            rows_in = sdf.count()
            if rows_in != n_scored + sum(by_code.values()):
                raise ScoringError(f"row accounting failed: {rows_in} in, {n_scored} scored, {sum(by_code.values())} rejected")
            for t in targets:
                t.commit()
        finally:
            if checked is not None:
                checked.unpersist()
            if own:
                spark.stop()
    finally:
        for t in targets:
            t.abort()  # removes what is left of an unfinished run; nothing for a committed target
    return ScoreSummary(
        rows_in=rows_in,
        scored=n_scored,
        rejected=sum(by_code.values()),
        rejects_by_reason={k: by_code[k] for k in REJECT_REASONS if k in by_code},
        model_uri=model_uri,
        model_name=name,
        model_version=version,
        output=str(out),
        rejects=str(rejects_out),
    )
