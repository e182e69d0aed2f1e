"""Scoring through the exported SQL in DuckDB against `riskmodel score` and optbinning (issue 19).

German credit (``riskmodel.creditdata``, stratified 70/30, ``random_state=42``): our scorecard and
``gbm_additive`` are trained through the bring-your-own path (``riskmodel train --features --test``:
registered in a temporary MLflow store), optbinning's scorecard as ``bench_peers.py`` builds it
(``BinningProcess`` + ``LogisticRegression`` + ``Scorecard``) on the same training rows. The rows to
score are the 300 test rows repeated to ``--rows`` (default 1,000,000), with unique ids, in one
Parquet file of 100,000-row row groups. In one run, each timed ``--repeat`` times (fastest kept),
the tasks taking turns so that load drift hits them alike:

end to end (Parquet in, Parquet out):
  * ``riskmodel score`` (pandas engine): read, check every row, PD + score + grade + three reasons
    with both texts, write scores and rejects; in process, model loaded from the registry;
  * ``riskmodel score --engine duckdb``: the same reading and checks, the exported SQL in DuckDB;
  * the exported SQL alone in DuckDB, as a warehouse runs it: ``COPY (SELECT ...) TO`` Parquet over
    ``read_parquet`` (no row checks), with 1 and with 2 DuckDB threads;
  * optbinning: ``pd.read_parquet`` + ``Scorecard.score`` (points; its PD call is slower) + write.
in memory (the 1,000,000 rows already a DataFrame):
  * ``CreditModel.predict_pd`` (bare PD), ``CreditModel.predict`` (with reasons), the exported SQL in
    DuckDB over the frame (with reasons, one thread), optbinning ``Scorecard.score``.

Ratios are to ``riskmodel score`` (end to end) and to ``CreditModel.predict`` (in memory), per model.
The SQL's PDs, grades and reasons are checked against ``riskmodel score``'s on every row. Threads:
``RISKMODEL_THREADS`` (default 1 here) for LightGBM and the DuckDB engine. The machine is shared:
read the ratios, and the load average recorded at start and end.

    .venv/bin/python benchmarks/bench_sql.py [--rows 1000000] [--repeat 3]

Needs optbinning (the ``bench`` extra: ``make bench-peers``, or ``pip install -c constraints.txt
optbinning``). Writes benchmarks/results/sql.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("RISKMODEL_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", os.environ["RISKMODEL_THREADS"])

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "sql.json"
MODELS = ("scorecard", "gbm_additive")
ROW_GROUP = 100_000


def machine() -> dict:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "os": platform.platform(), "riskmodel_threads": int(os.environ["RISKMODEL_THREADS"])}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "pandas", "pyarrow", "duckdb", "scikit-learn", "lightgbm", "optbinning", "riskmodel"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def replicate(test: pd.DataFrame, rows: int, path: Path) -> None:
    """``rows`` rows cycling through ``test`` (features only), ids ``B000000000``..., in row groups."""
    writer = None
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        part = test.iloc[np.arange(start, start + n) % len(test)].reset_index(drop=True)
        part.insert(0, "application_id", [f"B{start + i:09d}" for i in range(n)])
        table = pa.Table.from_pandas(part, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table.cast(writer.schema))
    writer.close()


class Optbinning:
    """optbinning's scorecard as benchmarks/bench_peers.py builds it (text attributes as object)."""

    def fit(self, X: pd.DataFrame, y: np.ndarray):
        from optbinning import BinningProcess, Scorecard
        from sklearn.linear_model import LogisticRegression

        from riskmodel.binning import is_categorical

        X = self.prep(X)
        cats = [c for c in X.columns if is_categorical(X[c])]
        bp = BinningProcess(list(X.columns), categorical_variables=cats,
                            selection_criteria={"iv": {"min": 0.02, "max": 1}, "quality_score": {"min": 0.01}})
        self.m = Scorecard(binning_process=bp, estimator=LogisticRegression(solver="lbfgs"),
                           scaling_method="min_max", scaling_method_params={"min": 300, "max": 850}).fit(X, y)
        return self

    @staticmethod
    def prep(X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        for c in X.columns:
            if not pd.api.types.is_numeric_dtype(X[c]):
                X[c] = X[c].astype(object)
        return X

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return self.m.score(X)


def best(fn, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), [round(x, 3) for x in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlruns.db'}"
    os.environ.setdefault("RISKMODEL_LOG_DIR", str(work / "logs"))

    import duckdb

    from riskmodel import creditdata, tracking
    from riskmodel.scoring import score
    from riskmodel.sql import DuckDBScorer, duckdb_parquet_view, export_sql
    from riskmodel.train import prepare_byo, train_byo

    tr_path, te_path = creditdata.to_parquet_splits("german_credit", work)
    train_df, test_df, cols = prepare_byo(tr_path, te_path, creditdata.TARGET)
    features = pd.read_parquet(te_path).drop(columns=[creditdata.TARGET])
    big = work / "rows.parquet"
    replicate(features, args.rows, big)
    X_mem = pd.read_parquet(big)
    print(f"{args.rows:,} rows to score ({big.stat().st_size / 1e6:.1f} MB Parquet), load average {load_start[0]:.2f}", flush=True)

    opt = Optbinning().fit(train_df[cols], train_df[creditdata.TARGET].to_numpy())
    X_opt = Optbinning.prep(X_mem[cols])
    opt_out = work / "optbinning.parquet"

    def optbinning_end_to_end():
        frame = pd.read_parquet(big)
        points = opt.score(Optbinning.prep(frame[cols]))
        pd.DataFrame({"application_id": frame["application_id"], "score": points}).to_parquet(opt_out, index=False)

    results: dict = {"rows": args.rows, "data": "german_credit test rows (300) repeated, stratified 70/30 split, random_state=42", "models": {}}
    for model in MODELS:
        s = train_byo(tr_path, te_path, creditdata.TARGET, model, "bench-sql")
        uri = s["model_uri"]
        cm, _, _ = tracking.load_credit_model(uri)
        sql = export_sql(cm, table="features", dialect="duckdb", key_columns=("application_id",))
        outs = {k: work / f"{model}-{k}.parquet" for k in ("pandas", "duckdb", "sql1", "sql2")}

        def sql_alone(threads: int, out: Path):
            con = duckdb.connect()
            con.execute(f"SET threads TO {threads}")
            con.execute(duckdb_parquet_view(big))
            con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
            con.close()

        scorer = DuckDBScorer(cm, threads=1)
        X_model = X_mem[cm.used_features]
        end_to_end = {
            "riskmodel_score_pandas": lambda: score(uri, outs["pandas"], features=big),
            "riskmodel_score_duckdb": lambda: score(uri, outs["duckdb"], features=big, engine="duckdb"),
            "sql_in_duckdb_1_thread": lambda: sql_alone(1, outs["sql1"]),
            "sql_in_duckdb_2_threads": lambda: sql_alone(2, outs["sql2"]),
            "optbinning_read_score_write": optbinning_end_to_end,
        }
        in_memory = {
            "predict_pd": lambda: cm.predict_pd(X_model),
            "predict_with_reasons": lambda: cm.predict(X_model),
            "sql_in_duckdb_with_reasons": lambda: scorer(X_model),
            "optbinning_score": lambda: opt.score(X_opt),
        }
        timings: dict = {"end_to_end": {}, "in_memory": {}}
        runs: dict = {"end_to_end": {k: [] for k in end_to_end}, "in_memory": {k: [] for k in in_memory}}
        for _ in range(args.repeat):  # take turns: each round runs every task once
            for part, tasks in (("end_to_end", end_to_end), ("in_memory", in_memory)):
                for name, fn in tasks.items():
                    sec, _ = best(fn, 1)
                    runs[part][name].append(round(sec, 3))
        for part in runs:
            timings[part] = {k: min(v) for k, v in runs[part].items()}
        scorer.close()

        # the SQL's answers against riskmodel score's, every row
        ref = pd.read_parquet(outs["pandas"])
        got = pd.read_parquet(outs["sql1"])
        assert got["application_id"].tolist() == ref["application_id"].tolist()
        same = {c: int((ref[c].astype(object).fillna("") == got[c].astype(object).fillna("")).sum()) for c in ref.columns if c.startswith(("grade", "reason"))}
        duck = pd.read_parquet(outs["duckdb"])
        e2e, mem = timings["end_to_end"], timings["in_memory"]
        results["models"][model] = {
            "model_uri": uri,
            "test_auc": s["metrics"].get("test_auc"),
            "features_read": len(cm.used_features),
            "sql_lines": sql.count("\n"),
            "seconds": timings,
            "runs": runs,
            "ratio_to_riskmodel_score": {k: round(v / e2e["riskmodel_score_pandas"], 3) for k, v in e2e.items()},
            "ratio_to_predict_with_reasons": {k: round(v / mem["predict_with_reasons"], 3) for k, v in mem.items()},
            "rows_per_second": {k: round(args.rows / v) for k, v in e2e.items()},
            "sql_vs_riskmodel_score": {
                "max_abs_pd_difference": float(np.abs(got["pd"].to_numpy() - ref["pd"].to_numpy()).max()),
                "rows_with_equal_text": same,
                "rows": len(ref),
                "duckdb_engine_max_abs_pd_difference": float(np.abs(duck["pd"].to_numpy() - ref["pd"].to_numpy()).max()),
            },
        }
        print(json.dumps({model: {"seconds": timings, "ratio_to_riskmodel_score": results["models"][model]["ratio_to_riskmodel_score"],
                                  "ratio_to_predict_with_reasons": results["models"][model]["ratio_to_predict_with_reasons"]}}, indent=1), flush=True)

    optb = {"variables": int(len(opt.m.binning_process_.get_support(names=True)))}
    results["optbinning"] = optb
    results["machine"] = machine() | {"load_avg_at_start": [round(x, 2) for x in load_start], "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]}
    results["versions"] = versions()
    results["started"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() - (time.perf_counter() - t_start)))
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
