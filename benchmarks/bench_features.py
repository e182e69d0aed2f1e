"""Benchmark the feature layer: build every feature for 100,000 firms, against the time to read the tables.

    .venv/bin/python benchmarks/bench_features.py                  # 100,000 firms -> results/features.json
    .venv/bin/python benchmarks/bench_features.py --firms 20000    # -> results/features_20000.json

The dataset is generated once (in a subprocess, so its memory does not count) into
data/synthetic/bench-features-<firms>/ and reused by later runs with the same parameters.
Then, in one process:

* read floor: every source table the features use, Parquet -> pandas, nothing else (warm cache: the
  files are read once before timing);
* load: ``features.tables.load_tables`` (read + schema validation), what ``riskmodel features`` does;
* build: ``features.build.build_features`` on the loaded tables, one row per application.

Targets (issue 3): build time at most 5 x the read floor; peak resident memory under 8 GiB (the
process's maximum RSS from ``resource.getrusage``, interpreter and libraries included). Wall-clock
seconds are reported with the CPU seconds of the process and the machine's load average: on a shared
2-core machine wall time inflates with other work, and the ratio of the two CPU times is the steadier
figure (Parquet reading is multi-threaded, so its CPU time can exceed its wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_RATIO = 5.0
TARGET_GIB = 8.0


def _dataset(firms: int, seed: int) -> Path:
    out = ROOT / "data" / "synthetic" / f"bench-features-{firms}"
    manifest = out / "manifest.json"
    if manifest.exists():
        params = json.loads(manifest.read_text()).get("parameters", {})
        if params.get("firms") == firms and params.get("seed") == seed:
            return out
    cmd = [sys.executable, "-m", "riskmodel.cli", "generate", "--firms", str(firms), "--seed", str(seed), "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    data = _dataset(args.firms, args.seed)

    import numpy as np
    import pyarrow.parquet as pq

    from features.build import build_features
    from features.catalog import catalog
    from features.tables import TABLE_NAMES, load_tables

    tables_used = [t for t in TABLE_NAMES if t != "outcomes"]
    files = [data / f"{t}.parquet" for t in tables_used]
    for f in files:  # warm the page cache so the floor is the best case
        pq.read_table(f)

    t0, c0 = time.perf_counter(), time.process_time()
    raw = {f.stem: pq.read_table(f).to_pandas() for f in files}
    read_s, read_cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = {k: int(len(v)) for k, v in raw.items()}
    del raw

    t0 = time.perf_counter()
    tables, report = load_tables(data, tables=tables_used)
    load_s = time.perf_counter() - t0

    timings: dict = {}
    t0, c0 = time.perf_counter(), time.process_time()
    X = build_features(tables, timings=timings)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux

    n_features = int(len(catalog()))
    slowest = sorted(timings["signals_s"].items(), key=lambda kv: -kv[1])[:5]
    result = {
        "benchmark": "features",
        "command": "python benchmarks/bench_features.py" + ("" if args.firms == 100_000 else f" --firms {args.firms}"),
        "firms": args.firms,
        "seed": args.seed,
        "applications": int(len(X)),
        "features": n_features,
        "source_rows": int(sum(rows.values())),
        "rows": rows,
        "read_seconds": round(read_s, 2),
        "load_validate_seconds": round(load_s, 2),
        "build_seconds": round(build_s, 2),
        "build_to_read_ratio": round(build_s / read_s, 2),
        "build_to_load_ratio": round(build_s / load_s, 2),
        "read_cpu_seconds": round(read_cpu, 2),
        "build_cpu_seconds": round(build_cpu, 2),
        "build_to_read_cpu_ratio": round(build_cpu / read_cpu, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "windows_seconds": round(timings["windows_s"], 2),
        "slowest_features_seconds": {k: round(v, 2) for k, v in slowest},
        "nonnull_share": round(float(X[catalog()["name"]].notna().to_numpy().mean()), 3),
        "applications_per_second": round(len(X) / build_s, 1),
        "peak_rss_gib": round(peak_gib, 3),
        "target_ratio": TARGET_RATIO,
        "target_gib": TARGET_GIB,
        "meets_targets": bool(build_s <= TARGET_RATIO * read_s and peak_gib < TARGET_GIB),
        "load_warnings": len(report.warnings),
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    name = "features.json" if args.firms == 100_000 else f"features_{args.firms}.json"
    out = HERE / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
