"""LightGBM fits with OpenMP's default, active and passive wait policy, on an idle and a busy machine.

Why ``riskmodel`` sets ``OMP_WAIT_POLICY=PASSIVE`` (``riskmodel.config.openmp_defaults``): the two
LightGBM models of the demo are fitted on the 50,000-firm hub (seed 0; the one ``bench_models.py``
uses, generated if missing) with ``RISKMODEL_THREADS=2``, each fit in a fresh process (the OpenMP
runtime reads the policy once), with ``OMP_WAIT_POLICY`` unset (the runtime's default: spin a
while, then sleep), ``active`` and ``passive``; with nothing else of ours running, then while one
and two busy-looping processes of ours compete for the cores (as other jobs on a shared 2-core
machine do). Each fit reports wall and CPU seconds, boosting rounds and the out-of-time test AUC,
which must not depend on the policy.

    .venv/bin/python benchmarks/bench_openmp_wait.py

Writes ``benchmarks/results/openmp_wait.json``. Other jobs on the machine add their own load; the
load average at start and end is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = ("gbm_monotone", "gbm_additive")
POLICIES = ("default", "active", "passive")


def worker(data_dir: Path, model: str) -> dict:
    """Fit ``model`` on the hub's default out-of-time training rows; wall/CPU seconds of the fit."""
    from features.contract import TARGET
    from riskmodel import dataset
    from riskmodel import evaluation as ev
    from riskmodel import train as tr

    ls = dataset.load_labelled(data_dir)
    train, test, catalog = ls.train, ls.test, ls.catalog
    cols = tr.usable_features(train, tr.features_for_model(model, train, catalog))
    est = tr.build_estimator(model, {str(r.name): int(r.direction) for r in catalog.itertuples() if r.name in cols}, 42, None)
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(train[cols], train[TARGET].to_numpy())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    auc = ev.auc(test[TARGET].to_numpy(), est.predict_proba(test[cols])[:, 1])
    return {"wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "rounds": int(est.n_iter_), "test_auc": round(auc, 6)}


def fit_in_process(data_dir: Path, model: str, policy: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")} | {"RISKMODEL_THREADS": "2"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, __file__, "--worker", model, "--data", str(data_dir)], env=env,
                         capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=50_000)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--worker", choices=MODELS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    data_dir = args.data or ROOT / "data" / "synthetic" / f"bench-models-{args.firms}"
    if args.worker:
        print(json.dumps(worker(data_dir, args.worker)))
        return
    from bench_models import ensure_hub

    from riskmodel import dataset

    ensure_hub(data_dir, args.firms, 0)
    dataset.feature_matrix(data_dir)  # build the feature cache outside the timings
    load_start = os.getloadavg()
    runs = []
    for n_busy in (0, 1, 2):
        # bounded: each ends by itself after 15 minutes, and is stopped below
        busy = [subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 900: pass"]) for _ in range(n_busy)]
        try:
            for policy in POLICIES:
                for model in MODELS:
                    r = {"busy_processes": n_busy, "policy": policy, "model": model, **fit_in_process(data_dir, model, policy)}
                    runs.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            for b in busy:
                b.kill()
                b.wait()
    aucs = {m: {r["test_auc"] for r in runs if r["model"] == m} for m in MODELS}
    result = {
        "benchmark": "openmp_wait",
        "command": ".venv/bin/python benchmarks/bench_openmp_wait.py" + (f" --firms {args.firms}" if args.firms != 50_000 else ""),
        "firms": args.firms,
        "threads": 2,
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "same_auc_for_every_policy": all(len(v) == 1 for v in aucs.values()),
        "wall_seconds": {  # model -> busy processes -> policy -> seconds
            m: {n: {r["policy"]: r["wall_seconds"] for r in runs if r["model"] == m and r["busy_processes"] == n} for n in (0, 1, 2)}
            for m in MODELS
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "openmp_wait.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("same_auc_for_every_policy", "wall_seconds")}))


if __name__ == "__main__":
    main()
