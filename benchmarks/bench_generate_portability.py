"""How often do last-bit differences between CPUs reach the generator's written data?

    .venv/bin/python benchmarks/bench_generate_portability.py              # 100,000 firms, about 5 minutes
    .venv/bin/python benchmarks/bench_generate_portability.py --firms 20000 # -> results/generate_portability_20000.json

numpy's exp, log and power give different last bits on different CPUs. This benchmark generates one
dataset normally and then again under ``synthetic.other_cpu(ulps)``, which perturbs every
np.exp/log/log1p/expm1/power the generator calls by up to ``ulps`` units in the last place, for a
ladder of ``ulps``. For each it counts, with ``synthetic.differences``:

- float values whose written (rounded) value changed at all, and those beyond the tolerance of
  ``compare_datasets`` (1.5 units in the last written place + 1e-9 relative);
- values in exact columns (integers, dates, strings, categories, booleans) that changed, and files
  whose row count changed (a date moved across the snapshot, a count changed): "exact changes".

A change needs the unrounded value to lie within the perturbation of a rounding or comparison
boundary, so counts grow in proportion to ``ulps`` while they are small; the count at the smallest
``ulps`` where it is nonzero is scaled down to 4 units (a generous bound on what CPUs differ by) and
to 100,000 firms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPU_ULPS = 4.0  # measured differences between CPUs are 1 to 4 units in the last place (data/synthetic/README.md)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ulps", default="4,1e4,1e6,1e7,1e8,1e9", help="comma-separated perturbation sizes, in units in the last place")
    args = ap.parse_args(argv)

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthetic import GENERATOR_VERSION, GeneratorParams, differences, generate, other_cpu

    params = GeneratorParams(firms=args.firms, seed=args.seed)
    key = b"portability-benchmark"
    work = Path(tempfile.mkdtemp(prefix="bench-portability-"))
    t0 = time.perf_counter()
    try:
        generate(params, work / "ref", key=key)
        float_cells = exact_cells = 0
        for f in sorted((work / "ref").rglob("*.parquet")):
            meta = pq.ParquetFile(f)
            n = meta.metadata.num_rows
            for field in meta.schema_arrow:
                if pa.types.is_floating(field.type):
                    float_cells += n
                else:
                    exact_cells += n
        ladder = []
        for ulps in (float(u) for u in args.ulps.split(",")):
            with other_cpu(ulps=ulps, seed=1):
                generate(params, work / "other", key=key)
            changed = differences(work / "ref", work / "other", rtol=0.0, atol=0.0)
            beyond = differences(work / "ref", work / "other")
            exact = [d for d in changed if d.exact and d.rows]
            rows_changed = [d for d in changed if d.file.endswith(".parquet") and not d.rows]
            row = {
                "ulps": ulps,
                "float_values_changed": sum(d.rows for d in changed if not d.exact),
                "float_values_beyond_tolerance": sum(d.rows for d in beyond if not d.exact),
                "exact_values_changed": sum(d.rows for d in exact),
                "exact_columns_changed": sorted(f"{d.file}:{d.column}" for d in exact),
                "files_with_other_changes": len(rows_changed),  # row counts, columns: cells not comparable
                "exact_changes": sum(d.rows for d in exact) + len(rows_changed),
                "other_differences": [str(d) for d in changed if not d.rows],
            }
            ladder.append(row)
            print(json.dumps({k: row[k] for k in ("ulps", "float_values_changed", "float_values_beyond_tolerance", "exact_changes")}), flush=True)
            shutil.rmtree(work / "other")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def scaled(field: str):
        """The smallest nonzero count on the ladder, scaled linearly to CPU_ULPS and 100,000 firms."""
        for row in ladder:
            if row[field] > 0:
                return row[field] * (CPU_ULPS / row["ulps"]) * (100_000 / args.firms)
        return None

    result = {
        "benchmark": "generate_portability",
        "command": "python benchmarks/bench_generate_portability.py" + ("" if args.firms == 100_000 else f" --firms {args.firms}"),
        "generator_version": GENERATOR_VERSION,
        "firms": args.firms,
        "seed": args.seed,
        "float_values": float_cells,
        "exact_values": exact_cells,
        "ladder": ladder,
        # expected counts for a 100,000-firm dataset generated on a CPU whose exp/log/power differ by CPU_ULPS
        # units. Not for floats beyond the tolerance: those need an error larger than the tolerance itself
        # (1e-9 relative, about 1e7 units), so they do not scale down to a few units.
        "expected_per_100k_firms_at_4_ulps": {
            "float_values_changed": scaled("float_values_changed"),
            "exact_changes": scaled("exact_changes"),
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__},
    }
    out = HERE / "results" / ("generate_portability.json" if args.firms == 100_000 else f"generate_portability_{args.firms}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["expected_per_100k_firms_at_4_ulps"]))
    return result


if __name__ == "__main__":
    main()
