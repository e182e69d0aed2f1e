"""Memory and time of the two ways batch scoring finds duplicate application ids.

``riskmodel score`` reads its input in chunks; to reject an id repeated anywhere in the batch it
must know every id before it. Two ways, each measured alone in a fresh process per size (the peak
resident memory, VmHWM, of a process that only finds duplicates, minus the same process's peak
before it starts), on ids like ``B000000001`` in chunks of 100,000, all distinct:

* ``ledger``: :class:`riskmodel.ids.IdLedger` keeps every id seen in memory as the chunks pass
  (used when the input can be read only once: ``--data``, Spark, a stream of frames);
* ``two_pass``: :func:`riskmodel.ids.find_duplicates` hashes the ids into bucket files on disk,
  then checks one bucket at a time (used for a feature file, which scoring can read twice).

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
import tempfile
from pathlib import Path
from riskmodel.ids import IdLedger, empty_ids, find_duplicates

def hwm_kib():
    return [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]

method, rows, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
clock = [0.0]

def chunks():  # the ids; the time spent making them is taken off the clock
    for start in range(0, rows, chunk):
        t = time.perf_counter()
        ids = pa.array([f"B{i:09d}" for i in range(start, min(rows, start + chunk))], type=pa.large_string())
        clock[0] -= time.perf_counter() - t
        yield ids

first = pa.array([f"B{i:09d}" for i in range(chunk)], type=pa.large_string())  # warm the imports
IdLedger().check(first, empty_ids(first))
with tempfile.TemporaryDirectory() as work:
    find_duplicates(iter([first]), Path(work), chunk)
    before = hwm_kib()
    t = time.perf_counter()
    if method == "ledger":
        ledger = IdLedger()
        duplicates = 0
        for ids in chunks():
            duplicates += int(ledger.check(ids, empty_ids(ids)).sum())
    else:
        duplicates = len(find_duplicates(chunks(), Path(work), rows))
    seconds = time.perf_counter() - t + clock[0]
print(json.dumps({"method": method, "rows": rows, "duplicates": duplicates, "seconds": seconds, "peak_growth_mib": (hwm_kib() - before) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--chunk-size", type=int, default=100_000)
    args = ap.parse_args()
    runs = []
    for method, n in ((m, n) for m in ("ledger", "two_pass") for n in args.rows):
        proc = subprocess.run([sys.executable, "-c", CHILD, method, str(n), str(args.chunk_size)], capture_output=True, text=True, check=True)
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
