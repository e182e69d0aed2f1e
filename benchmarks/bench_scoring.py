"""Batch scoring speed and memory (issue 5).

In one run, on the same model and rows:
  (a) the bare model: ``CreditModel.predict_pd`` on N feature rows already in memory;
  (b) ``riskmodel score`` end to end (read Parquet by chunks, validate, PD + score + grade + three
      reason codes with texts, write scores and rejects atomically), as a subprocess.
Reported as the ratio (b)/(a), per model. Peak memory of (b) is measured for N and 4N rows to show
it stays flat with input size. The Spark path's rows per second are measured on a smaller file.

    .venv/bin/python benchmarks/bench_scoring.py [--rows 1000000] [--big 4000000] [--spark-rows 200000]

Writes benchmarks/results/scoring.json. The machine is shared: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scoring.json"
MODELS = ("gbm_additive", "scorecard")

CHILD = r"""
import json, resource, sys, time
from riskmodel.scoring import score
t = time.perf_counter()
s = score(sys.argv[1], sys.argv[3], features=sys.argv[2], chunk_size=int(sys.argv[4]))
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows_in": s.rows_in, "scored": s.scored, "rejected": s.rejected}))
"""


def replicate(matrix: pd.DataFrame, rows: int, path: Path, row_group: int = 100_000) -> None:
    """Write ``rows`` feature rows sampled from ``matrix`` with unique ids, one row group at a time."""
    rng = np.random.default_rng(0)
    writer = None
    written = 0
    while written < rows:
        n = min(row_group, rows - written)
        part = matrix.iloc[rng.integers(0, len(matrix), n)].reset_index(drop=True)
        part["application_id"] = [f"B{written + i:09d}" for i in range(n)]
        table = pa.Table.from_pandas(part, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table.cast(writer.schema))
        written += n
    writer.close()


def run_child(uri: str, features: Path, out: Path, chunk: int, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, uri, str(features), str(out), str(chunk)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=4_000_000)
    ap.add_argument("--spark-rows", type=int, default=200_000)
    ap.add_argument("--chunk-size", type=int, default=100_000)
    ap.add_argument("--firms", type=int, default=5000)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns.db'}"}
    os.environ.update(env)
    from riskmodel import tracking
    from riskmodel.synthetic import GeneratorParams, generate
    from riskmodel.train import train_generated

    try:
        hub = work / "hub"
        generate(GeneratorParams(firms=args.firms, seed=0), hub)
        tracking.get_or_create_experiment("bench-scoring", artifact_location=(work / "artifacts").as_uri())
        results: dict = {
            "benchmark": "scoring",
            "command": "python benchmarks/bench_scoring.py " + " ".join(sys.argv[1:]),
            "rows": args.rows,
            "big_rows": args.big,
            "chunk_size": args.chunk_size,
            "threads": os.environ.get("RISKMODEL_THREADS", "2"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "load_avg_start": os.getloadavg()},
            "models": {},
        }
        matrix = None
        files: dict[int, Path] = {}
        for model in MODELS:
            r = train_generated(hub, model, "bench-scoring", registered_name=f"bench-{model}")
            uri = f"models:/bench-{model}/{r['registered_version']}"
            if matrix is None:
                matrix = pd.read_parquet(next((hub / "cache").glob("features-*.parquet")))
                for n in (args.rows, args.big):
                    if n:
                        files[n] = work / f"features-{n}.parquet"
                        replicate(matrix, n, files[n])
            cm, _, _ = tracking.load_credit_model(uri)
            X = pd.read_parquet(files[args.rows], columns=cm.features)
            cm.predict_pd(X.head(1000))  # warm up
            t = time.perf_counter()
            cm.predict_pd(X)
            bare = time.perf_counter() - t
            del X
            end_to_end = run_child(uri, files[args.rows], work / "scores.parquet", args.chunk_size, env)
            entry = {
                "uri": uri,
                "bare_predict_pd_seconds": round(bare, 3),
                "score_end_to_end_seconds": round(end_to_end["seconds"], 3),
                "ratio_end_to_end_over_bare": round(end_to_end["seconds"] / bare, 2),
                "rows_per_second_end_to_end": round(args.rows / end_to_end["seconds"]),
                "peak_rss_mib": {str(args.rows): round(end_to_end["peak_rss_mib"])},
                "accounting": {k: end_to_end[k] for k in ("rows_in", "scored", "rejected")},
                "oot_auc": r["metrics"].get("test_auc"),
            }
            if args.big:
                big = run_child(uri, files[args.big], work / "scores-big.parquet", args.chunk_size, env)
                entry["peak_rss_mib"][str(args.big)] = round(big["peak_rss_mib"])
                entry["peak_rss_ratio_big_over_rows"] = round(big["peak_rss_mib"] / end_to_end["peak_rss_mib"], 2)
                entry["score_big_seconds"] = round(big["seconds"], 3)
            results["models"][model] = entry
            print(model, json.dumps(entry), flush=True)

        if args.spark_rows:
            from riskmodel.spark import score_spark, spark_session

            uri = results["models"][MODELS[0]]["uri"]
            small = work / "features-spark.parquet"
            replicate(matrix, args.spark_rows, small)
            spark = spark_session()
            try:
                t = time.perf_counter()
                s = score_spark(uri, small, work / "spark-scores.parquet", spark=spark)
                secs = time.perf_counter() - t
            finally:
                spark.stop()
            results["spark"] = {"rows": args.spark_rows, "seconds": round(secs, 2), "rows_per_second": round(args.spark_rows / secs), "scored": s.scored, "rejected": s.rejected, "master": "local[2]"}
            print("spark", json.dumps(results["spark"]), flush=True)
        results["machine"]["load_avg_end"] = os.getloadavg()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
