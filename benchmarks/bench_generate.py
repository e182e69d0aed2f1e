"""Benchmark the synthetic data generator: wall time and peak memory for 100,000 firms over five years.

    .venv/bin/python benchmarks/bench_generate.py                 # 100,000 firms -> results/generate.json
    .venv/bin/python benchmarks/bench_generate.py --firms 1000000 # -> results/generate_1000000.json

Targets (issue 2): under 60 s and under 4 GiB peak resident memory on the 2-core machine. Peak memory
is the process's maximum resident set size (``resource.getrusage``), which includes the interpreter
and the imported libraries. The machine is shared, so the result also records the process's CPU time
and the load average: wall time under contention can be several times the CPU time. After the timed run, the dataset's default rate and oracle AUC (true PD
against default_12m on labelled applications) are measured from truth/truth.parquet; the dataset is
written to a temporary directory and deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_SECONDS = 60.0
TARGET_GIB = 4.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", default="2021-01")
    ap.add_argument("--end", default="2025-12")
    args = ap.parse_args(argv)

    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score

    from synthetic import CHUNK_SIZE, GENERATOR_VERSION, GeneratorParams, generate

    params = GeneratorParams(firms=args.firms, seed=args.seed, start=args.start, end=args.end)
    load_start = round(os.getloadavg()[0], 2)  # the machine is shared: record how busy it was
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        manifest = generate(params, workdir / "ds")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
        truth = pq.read_table(workdir / "ds" / "truth" / "truth.parquet", columns=["labelled", "default_12m", "true_pd", "age_years"]).to_pandas()
        lab = truth[truth["labelled"]]
        young = lab["age_years"] < 3
        total_bytes = sum(f["bytes"] for f in manifest["files"].values())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    months = int((np.datetime64(args.end, "M") - np.datetime64(args.start, "M")).astype(int)) + 1
    result = {
        "benchmark": "generate",
        "command": "python benchmarks/bench_generate.py" + ("" if args.firms == 100_000 else f" --firms {args.firms}"),
        "generator_version": GENERATOR_VERSION,
        "firms": args.firms,
        "months": months,
        "start": args.start,
        "end": args.end,
        "seed": args.seed,
        "chunk_size": CHUNK_SIZE,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),  # user + system CPU of this process: the cost without contention
        "firms_per_second": round(args.firms / wall, 1),
        "peak_rss_gib": round(peak_gib, 3),
        # the time target is for 100,000 firms; other sizes only check that memory stays under the target
        "target_seconds": TARGET_SECONDS if args.firms == 100_000 else None,
        "target_gib": TARGET_GIB,
        "meets_targets": bool((args.firms != 100_000 or wall < TARGET_SECONDS) and peak_gib < TARGET_GIB),
        "rows": manifest["rows"],
        "total_rows": int(sum(manifest["rows"].values())),
        "dataset_mib": round(total_bytes / 1024**2, 1),
        "labelled_applications": int(len(lab)),
        "default_rate": round(float(lab["default_12m"].mean()), 5),
        "oracle_auc": round(float(roc_auc_score(lab["default_12m"], lab["true_pd"])), 4),
        "oracle_auc_startups": round(float(roc_auc_score(lab.loc[young, "default_12m"], lab.loc[young, "true_pd"])), 4),
        "oracle_auc_older": round(float(roc_auc_score(lab.loc[~young, "default_12m"], lab.loc[~young, "true_pd"])), 4),
        "share_startup_applications": round(float(young.mean()), 4),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "load_average_1m_at_start": load_start,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "nice": os.nice(0),
        },
    }
    out = HERE / "results" / ("generate.json" if args.firms == 100_000 else f"generate_{args.firms}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("firms", "wall_seconds", "peak_rss_gib", "meets_targets", "default_rate", "oracle_auc")}))
    return result


if __name__ == "__main__":
    main()
