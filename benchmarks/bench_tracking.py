"""Cost of a tracked training run, and four concurrent `riskmodel train` processes on one SQLite store.

Part 1, in process, on a fresh SQLite store (migrated first, not timed): German credit BYO
(700/300 rows) with financial_baseline and scorecard, and a generated hub (``--firms``, default
3,000) with scorecard, each ``--repeat`` times. Reported per run: ``seconds_total`` (read, check,
fit, evaluate, log, register), ``seconds_fit``, ``seconds_log_model`` (pickle + pyfunc + signature
+ input example + registration) and ``overhead_s`` = total - fit (what tracking and evaluation add).

Part 2: four ``riskmodel train --features ... --model financial_baseline`` processes started at
once against one store that does not exist yet (so they also race on creating the schema).
Reported: exit codes, runs recorded, registered versions (must be 1..4, each model carrying its own
version), wall time, and the store-lock wait/hold and retries each process saw.

    RISKMODEL_THREADS=1 .venv/bin/python benchmarks/bench_tracking.py

Writes benchmarks/results/tracking.json. Wall-clock on a shared 2-core machine: the load average
at start and end is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def part1(tmp: Path, firms: int, repeat: int) -> list[dict]:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'bench.db'}"
    from riskmodel import tracking
    from riskmodel.creditdata import TARGET, german_credit, split_stratified
    from synthetic import GeneratorParams, generate
    from riskmodel.train import train

    tracking.configure()  # migrate the fresh store outside the timings
    tr, te = split_stratified(german_credit(), TARGET)
    tr.to_parquet(tmp / "german_train.parquet", index=False)
    te.to_parquet(tmp / "german_test.parquet", index=False)
    generate(GeneratorParams(firms=firms, seed=5), tmp / "hub")
    train(tmp / "hub", "financial_baseline", "warmup")  # builds the feature cache, imports matplotlib
    out = []
    cases = [
        ("german_credit", "financial_baseline", dict(features=tmp / "german_train.parquet", test=tmp / "german_test.parquet", target=TARGET)),
        ("german_credit", "scorecard", dict(features=tmp / "german_train.parquet", test=tmp / "german_test.parquet", target=TARGET)),
        (f"generated_{firms}_firms", "scorecard", dict(data_dir=tmp / "hub")),
    ]
    for data, model, kw in cases:
        for i in range(repeat):
            s = train(model=model, experiment="bench", **kw)
            out.append(
                {
                    "data": data,
                    "model": model,
                    "repeat": i,
                    "n_train": s["n_train"],
                    "n_features": s["n_features"],
                    "seconds_total": s["seconds_total"],
                    "seconds_fit": s["seconds"]["seconds_fit"],
                    "seconds_log_model": s["seconds"]["seconds_log_model"],
                    "overhead_s": round(s["seconds_total"] - s["seconds"]["seconds_fit"], 3),
                    "stages": s["seconds"],
                    "test_auc": s["metrics"]["test_auc"],
                }
            )
            print(json.dumps(out[-1]), flush=True)
    return out


def part2(tmp: Path, n: int = 4) -> dict:
    store = tmp / "concurrent" / "mlruns.db"
    store.parent.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "RISKMODEL_THREADS": "1"}
    exe = str(Path(sys.executable).parent / "riskmodel")
    cmd = [exe, "train", "--features", str(tmp / "german_train.parquet"), "--test", str(tmp / "german_test.parquet"),
           "--target", "default", "--model", "financial_baseline", "--experiment", "concurrent", "--json"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    results = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    codes = [p.returncode for p in procs]
    summaries = [json.loads(o) for (o, _), c in zip(results, codes) if c == 0]
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{store}"
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    carried = {}
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_registry_uri(uri)
    mlflow.set_tracking_uri(uri)
    row = pd.read_parquet(tmp / "german_test.parquet").head(1)
    for s in summaries:
        carried[s["registered_version"]] = mlflow.pyfunc.load_model(s["model_uri"]).predict(row)["model_version"].item()
    return {
        "processes": n,
        "exit_codes": codes,
        "runs_recorded": len(runs),
        "run_statuses": sorted(r.info.status for r in runs),
        "registered_versions": sorted(s["registered_version"] for s in summaries),
        "versions_carried_by_models_match": all(k == v for k, v in carried.items()) and len(carried) == n,
        "wall_seconds": round(wall, 2),
        "per_process_seconds_total": [s["seconds_total"] for s in summaries],
        "store_lock": [s["store_lock"] for s in summaries],
        "stderr_tail_of_failures": [e.strip().splitlines()[-1:] for (_, e), c in zip(results, codes) if c != 0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tracking.json"))
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        runs = part1(tmp, args.firms, args.repeat)
        conc = part2(tmp)
    result = {
        "benchmark": "bench_tracking",
        "threads": os.environ.get("RISKMODEL_THREADS", "2"),
        "load_average_start": [round(x, 2) for x in load0],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "concurrent_train": conc,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(conc, indent=2))


if __name__ == "__main__":
    main()
