"""Memory and time of the duplicate-id ledger (riskmodel.ids.IdLedger) that batch scoring keeps.

``riskmodel score`` reads its input in chunks, so its memory would not grow with the input, except
for one structure: to reject an id repeated anywhere in the batch it must remember every id seen.
This measures that structure alone, in a fresh process per size (the peak resident memory,
VmHWM, of a process that builds only the ledger, minus the same process's peak before it starts):
ids like ``B000000001`` in chunks of 100,000, all distinct.

    .venv/bin/python benchmarks/bench_ids.py [--rows 1000000 4000000]

Writes benchmarks/results/ids.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ids.json"

CHILD = r"""
import json, sys, time
import pyarrow as pa
from riskmodel.ids import IdLedger, empty_ids

def hwm_kib():
    return [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]

rows, chunk = int(sys.argv[1]), int(sys.argv[2])
first = pa.array([f"B{i:09d}" for i in range(chunk)], type=pa.large_string())  # warm the imports
IdLedger().check(first, empty_ids(first))
before = hwm_kib()
ledger, seconds = IdLedger(), 0.0
for start in range(0, rows, chunk):
    ids = pa.array([f"B{i:09d}" for i in range(start, min(rows, start + chunk))], type=pa.large_string())
    t = time.perf_counter()
    ledger.check(ids, empty_ids(ids))
    seconds += time.perf_counter() - t
print(json.dumps({"rows": rows, "ids_kept": len(ledger), "seconds": seconds, "peak_growth_mib": (hwm_kib() - before) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--chunk-size", type=int, default=100_000)
    args = ap.parse_args()
    runs = []
    for n in args.rows:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.chunk_size)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["peak_growth_bytes_per_id"] = round(r["peak_growth_mib"] * 2**20 / n, 1)
        r["seconds"] = round(r["seconds"], 3)
        r["peak_growth_mib"] = round(r["peak_growth_mib"], 1)
        runs.append(r)
        print(json.dumps(r), flush=True)
    out = {
        "benchmark": "ids",
        "command": "python benchmarks/bench_ids.py " + " ".join(sys.argv[1:]),
        "chunk_size": args.chunk_size,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
