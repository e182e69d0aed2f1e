"""The whole chain at 100,000, 300,000 and 1,000,000 firms (issue 18): time, memory, throughput.

    .venv/bin/python benchmarks/bench_scale.py                        # 100k and 300k firms
    .venv/bin/python benchmarks/bench_scale.py --firms 1000000        # add (or redo) one size
    .venv/bin/python benchmarks/bench_scale.py --firms 100000 --steps read,features

Each size's hub is generated once into data/synthetic/bench-scale-<firms>/ (in firm parts, the
generator's default above 50,000 firms) and reused while its manifest matches. Every step runs
as ``riskmodel ...`` in a child process, one step at a time:

* ``generate``: ``riskmodel generate --firms N`` (timed only when the hub is made in this run);
* ``read``: the baseline, reading every source table's files with pyarrow into pandas, one table
  at a time (the page cache is warmed first, for this step and for ``features``);
* ``features``: ``riskmodel features --workers W`` for W = 1 and 2;
* ``train_scorecard``, ``train_gbm_additive``: ``riskmodel train --features-file`` (the matrix of
  the features step; MLflow store in a temporary folder; ``RISKMODEL_THREADS=1``);
* ``score``: ``riskmodel score`` of the scorecard on that matrix;
* ``spark_features``: ``riskmodel features --engine spark`` on Spark ``local[2]`` (driver, JVM and
  Python workers in the memory figures) and, separately, the start-up of a session
  (:func:`spark_steps`); its rows per second per core are set against the pandas build's.

Per step: wall seconds; CPU seconds of the child and its workers; ``peak_rss_gib``, the child's
``VmHWM`` (as benchmarks/bench_scoring.py reads it); ``workers_peak_rss_gib``, the largest peak of
its worker processes (``RUSAGE_CHILDREN``); ``tree_peak_rss_gib``, the largest sum of resident
memory over the child and its workers, sampled every 0.2 s (the memory the step needs at once);
``rows_per_second_per_core`` (rows / wall / cores the step uses) and ``rows_per_cpu_second``.
The 1-minute load average before and after each step is recorded: the machine is shared, so wall
times inflate with other work; CPU seconds are the steadier figure.

Targets (issue 18): features peak memory (tree) at 1M firms at most 4 GiB and at most 1.3 x the
100k figure; features wall time at most 3 x the read time. Results: benchmarks/results/scale.json
(sizes merged into an existing file).
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
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "scale.json"
SIZES = (100_000, 300_000)
STEPS = ("generate", "read", "features", "train_scorecard", "train_gbm_additive", "score", "spark_features")
TARGET_GIB = 4.0
TARGET_GROWTH = 1.3
TARGET_READ_RATIO = 3.0
GIB = 1024**3

# Runs ``riskmodel ARGS`` in this process and, at exit, writes its VmHWM and the largest peak of
# its (reaped) worker processes to $BENCH_STATS. VmHWM, not ru_maxrss: on Linux ru_maxrss survives
# exec, so a child of a large process would report the parent's memory at fork time.
WRAP = r"""
import atexit, json, os, resource, sys, time
t0 = time.perf_counter()
def _stats():
    hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["BENCH_STATS"], "w") as fh:
        json.dump({"vmhwm_kib": hwm[0] if hwm else me.ru_maxrss, "children_maxrss_kib": kids.ru_maxrss,
                   "cpu_seconds": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                   "seconds_in_process": time.perf_counter() - t0}, fh)
atexit.register(_stats)
from riskmodel.cli import main
sys.argv = ["riskmodel", *sys.argv[1:]]
main()
"""

READ = r"""
import atexit, json, os, resource, sys, time
import pyarrow.parquet as pq
from features.tables import TABLE_NAMES, table_files
rows, t0 = 0, time.perf_counter()
for name in TABLE_NAMES:
    files = table_files(sys.argv[1], name)
    if files and name != "outcomes":
        frame = pq.read_table(files if len(files) > 1 else files[0]).to_pandas()
        rows += len(frame)
        del frame
seconds = time.perf_counter() - t0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
me = resource.getrusage(resource.RUSAGE_SELF)
with open(os.environ["BENCH_STATS"], "w") as fh:
    json.dump({"vmhwm_kib": hwm[0], "children_maxrss_kib": 0, "cpu_seconds": me.ru_utime + me.ru_stime, "rows": rows,
               "seconds_in_process": seconds}, fh)
"""


# A Spark session started (one job run, so the executors' Python is up) and stopped: the fixed cost
# every Spark command pays before its first task.
SESSION = r"""
import json, os, resource, time
t0 = time.perf_counter()
from riskmodel.spark import spark_session
spark = spark_session(app_name="bench-scale-session")
spark.range(0, 2, 1, 2).mapInArrow(lambda batches: batches, "id long").count()
seconds = time.perf_counter() - t0
spark.stop()
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
with open(os.environ["BENCH_STATS"], "w") as fh:
    json.dump({"vmhwm_kib": hwm[0], "children_maxrss_kib": kids.ru_maxrss, "seconds_in_process": seconds,
               "cpu_seconds": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}, fh)
"""
SPARK_CORES = 2  # local[2]


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_step(args: list[str], env: dict, *, code: str = WRAP, rows: int | None = None, cores: int = 1, cwd: Path = ROOT) -> dict:
    """Run a child (``code`` with ``args``), sample its tree's memory, return the step's figures."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        stats_path = Path(fh.name)
    env = {**env, "BENCH_STATS": str(stats_path)}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], sum(_rss_kib(p) for p in _descendants(proc.pid)))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{err[-3000:]}")
    stats = json.loads(stats_path.read_text())
    stats_path.unlink()
    rows = rows if rows is not None else stats.get("rows")
    result = {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(stats["cpu_seconds"], 2),
        "peak_rss_gib": round(stats["vmhwm_kib"] / 1024**2, 3),
        "workers_peak_rss_gib": round(stats["children_maxrss_kib"] / 1024**2, 3),
        "tree_peak_rss_gib": round(max(peak[0], stats["vmhwm_kib"]) / 1024**2, 3),
        "load_average_before": round(load0, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    if rows:
        result.update(rows=int(rows), cores=cores, rows_per_second_per_core=round(rows / seconds / cores, 1),
                      rows_per_cpu_second=round(rows / max(stats["cpu_seconds"], 1e-9), 1))
    result["stdout"] = out
    return result


def _hub(firms: int, seed: int, env: dict) -> tuple[Path, dict | None]:
    """The benchmark hub of ``firms`` firms, generated (and timed) unless it exists already."""
    out = ROOT / "data" / "synthetic" / f"bench-scale-{firms}"
    manifest = out / "manifest.json"
    if manifest.exists():
        from synthetic import GENERATOR_VERSION

        m = json.loads(manifest.read_text())
        params = m.get("parameters", {})
        if params.get("firms") == firms and params.get("seed") == seed and m.get("generator_version") == GENERATOR_VERSION:
            return out, None
    shutil.rmtree(out, ignore_errors=True)
    step = run_step(["generate", "--firms", firms, "--seed", seed, "--out", out], env)
    step.pop("stdout")
    m = json.loads(manifest.read_text())
    step.update(rows=sum(m["rows"].values()), cores=1)
    step["rows_per_second_per_core"] = round(step["rows"] / step["seconds"], 1)
    step["rows_per_cpu_second"] = round(step["rows"] / step["cpu_seconds"], 1)
    return out, step


def _warm(hub: Path) -> None:
    """Read every file of the hub once, so each step starts from the page cache."""
    for p in hub.rglob("*.parquet"):
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def spark_steps(hub: Path, matrix: Path, model_uri: str | None, env: dict) -> dict | None:
    """The Spark local[2] columns beside the pandas ones: ``session`` (start-up alone) and
    ``features`` (``riskmodel features --engine spark``; ``tree_peak_rss_gib`` covers the driver,
    the JVM and its Python workers, all descendants of the command). ``matches_pandas``: the Spark
    matrix holds the pandas matrix's rows (by application id) and values (within 1e-9), when the
    features step wrote one."""
    import numpy as np
    import pandas as pd

    env = {**env, "SPARK_MASTER": f"local[{SPARK_CORES}]"}
    manifest = json.loads((hub / "manifest.json").read_text())
    source_rows = sum(v for k, v in manifest["rows"].items() if k != "outcomes")
    out: dict = {"master": env["SPARK_MASTER"]}
    session = run_step([], env, code=SESSION)
    session.pop("stdout")
    out["session"] = session
    target = matrix.with_name("bench-features-spark.parquet")
    r = run_step(["features", "--engine", "spark", "--data", hub, "--out", target, "--json"], env, rows=source_rows, cores=SPARK_CORES)
    summary = _json(r.pop("stdout"))
    r["partitions"], r["steps_seconds"] = summary.get("partitions"), summary.get("seconds")
    # the JVM and its Python workers are not reaped by the command, so their CPU time is not in it
    r["cpu_seconds"] = r["rows_per_cpu_second"] = None
    if matrix.exists():
        a, b = pd.read_parquet(matrix), pd.read_parquet(target)
        same = len(a) == len(b) and list(a.columns) == list(b.columns)
        if same:
            b = b.set_index("application_id").loc[a["application_id"]].reset_index()
            num = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
            same = bool(np.allclose(a[num].to_numpy(), b[num].to_numpy(), rtol=1e-9, atol=0, equal_nan=True))
            same = same and all(a[c].astype("string").equals(b[c].astype("string")) for c in a.columns if c not in num)
        r["matches_pandas"] = same
    out["features"] = r
    return out


def bench_size(firms: int, seed: int, steps: list[str], workers: list[int]) -> dict:
    env = {**os.environ, "RISKMODEL_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    hub, generated = _hub(firms, seed, env)
    manifest = json.loads((hub / "manifest.json").read_text())
    source_rows = sum(v for k, v in manifest["rows"].items() if k != "outcomes")
    result: dict = {"firms": firms, "seed": seed, "source_rows": source_rows, "applications": manifest["rows"]["applications"],
                    "labelled_applications": manifest["labelled_applications"], "layout": "parts" if manifest.get("partitioning") else "files",
                    "parts": (manifest.get("partitioning") or {}).get("parts", 1)}
    if generated is not None:
        result["generate"] = generated
    _warm(hub)
    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{firms}-"))
    matrix = hub / "cache" / "bench-features.parquet"
    try:
        if "read" in steps:
            result["read"] = run_step([str(hub)], env, code=READ)
        if "features" in steps:
            result["features"] = {}
            for w in workers:
                r = run_step(["features", "--data", hub, "--out", matrix, "--workers", w, "--json"], env, rows=source_rows, cores=w)
                summary = _json(r.pop("stdout"))
                r["partitions"], r["steps_seconds"] = summary.get("partitions"), summary.get("seconds")
                result["features"][f"workers_{w}"] = r
        model_uri = None
        if any(s.startswith("train") or s == "score" for s in steps):
            if not matrix.exists():
                raise RuntimeError("train and score read the matrix of the features step: include it")
            env_ml = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns.db'}"}
            for model in ("scorecard", "gbm_additive"):
                if f"train_{model}" not in steps and not (model == "scorecard" and "score" in steps):
                    continue
                r = run_step(["train", "--data", hub, "--features-file", matrix, "--model", model, "--name", f"bench-scale-{model}", "--json"],
                             env_ml, rows=manifest["labelled_applications"], cwd=work)
                summary = _json(r.pop("stdout"))
                r["n_train"], r["n_test"], r["test_auc"] = summary.get("n_train"), summary.get("n_test"), summary.get("metrics", {}).get("test_auc")
                result[f"train_{model}"] = r
                if model == "scorecard":
                    model_uri = summary.get("model_uri")
            if "score" in steps and model_uri:
                r = run_step(["score", "--model", model_uri, "--features", matrix, "--out", work / "scores.parquet", "--json"],
                             env_ml, rows=manifest["rows"]["applications"], cwd=work)
                r.pop("stdout")
                result["score"] = r
        result.get("read", {}).pop("stdout", None)
        if "spark_features" in steps:
            result["spark"] = spark_steps(hub, matrix, model_uri, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _json(stdout: str) -> dict:
    """The JSON summary a ``--json`` command printed."""
    try:
        return json.loads(stdout)
    except ValueError:
        return {}


def judge(sizes: dict) -> dict:
    """The issue's targets, from the sizes measured (features with the fewest workers that meet them)."""
    out: dict = {}
    small, big = sizes.get("100000"), sizes.get("1000000")
    for key, size in sizes.items():
        if "features" in size and "read" in size:
            out[f"features_wall_over_read_{key}"] = {w: round(r["seconds"] / size["read"]["seconds"], 2) for w, r in size["features"].items()}
            out[f"features_cpu_over_read_cpu_{key}"] = {w: round(r["cpu_seconds"] / size["read"]["cpu_seconds"], 2) for w, r in size["features"].items()}
        spark = (size.get("spark") or {}).get("features")
        pandas = (size.get("features") or {}).get("workers_1")
        if spark and pandas and spark.get("rows_per_second_per_core"):
            out[f"spark_features_per_core_over_pandas_{key}"] = round(spark["rows_per_second_per_core"] / pandas["rows_per_second_per_core"], 3)
    if big and "features" in big:
        peaks = {w: r["tree_peak_rss_gib"] for w, r in big["features"].items()}
        out["features_peak_gib_1000000"] = peaks
        out["features_peak_at_most_4_gib"] = {w: p <= TARGET_GIB for w, p in peaks.items()}
        if small and "features" in small:
            out["features_peak_growth_100k_to_1m"] = {w: round(p / small["features"][w]["tree_peak_rss_gib"], 2) for w, p in peaks.items() if w in small["features"]}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)} (generate runs when the hub is missing)")
    ap.add_argument("--workers", default="1,2", help="worker counts for the features step")
    ap.add_argument("--render", action="store_true", help="only write benchmarks/results/scale.md from scale.json")
    args = ap.parse_args(argv)
    if args.render:
        RESULTS.with_suffix(".md").write_text(render(json.loads(RESULTS.read_text())))
        return {}
    steps = [s for s in args.steps.split(",") if s]
    workers = [int(w) for w in args.workers.split(",") if w]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("sizes", {})
    for firms in args.firms:
        print(f"bench_scale: {firms:,} firms", file=sys.stderr)
        new = bench_size(firms, args.seed, steps, workers)
        old = results["sizes"].get(str(firms), {})
        # a later run adds steps to a size (the hub is reused while its manifest matches): keep the others
        keep = old.get("seed") == new["seed"] and old.get("source_rows") == new["source_rows"] and "generate" not in new
        results["sizes"][str(firms)] = {**old, **new} if keep else new
        _save(results)
    return _save(results)


STEP_NAMES = {"generate": "generate (parts)", "read": "read every table (baseline)", "train_scorecard": "train scorecard",
              "train_gbm_additive": "train gbm_additive", "score": "score (scorecard)"}


def render(results: dict) -> str:
    """The README's table: one row per size and step, from ``scale.json``."""
    lines = ["| firms | source rows | step | wall s | CPU s | peak memory GiB | rows/s per core |", "|---:|---:|---|---:|---:|---:|---:|"]

    def row(firms: str, size: dict, name: str, r: dict, peak: str = "tree_peak_rss_gib") -> None:
        lines.append(f"| {int(firms):,} | {size['source_rows'] / 1e6:.1f}M | {name} | {r['seconds']:.1f} | {'–' if r.get('cpu_seconds') is None else format(r['cpu_seconds'], '.1f')} | "
                     f"{r.get(peak, float('nan')):.2f} | {r['rows_per_second_per_core']:,.0f} |")

    for firms, size in results["sizes"].items():
        for step in ("generate", "read"):
            if step in size:
                row(firms, size, STEP_NAMES[step], size[step])
        for w, r in (size.get("features") or {}).items():
            row(firms, size, f"features, {w.split('_')[1]} worker(s)", r)
        spark = size.get("spark") or {}
        if spark.get("features"):
            row(firms, size, "features, Spark local[2]", spark["features"])
        for step in ("train_scorecard", "train_gbm_additive", "score"):
            if step in size:
                row(firms, size, STEP_NAMES[step], size[step])
    lines += ["", "Wall seconds (peak GiB of the process tree), by size:", "", wide(results)]
    judged = results.get("judged", {})
    lines += ["", "Judged (targets: " + ", ".join(f"{k} {v}" for k, v in results.get("targets", {}).items()) + "):", ""]
    lines += [f"- `{k}`: {v}" for k, v in judged.items()]
    return "\n".join(lines) + "\n"


def wide(results: dict) -> str:
    """One row per step, one column per size: ``wall s (peak GiB)`` (the README's table)."""
    sizes = results["sizes"]
    rows: dict[str, dict[str, str]] = {}

    def cell(r: dict | None) -> str | None:
        return None if not r else f"{r['seconds']:.0f} ({r['tree_peak_rss_gib']:.2f})"

    for firms, size in sizes.items():
        spark = size.get("spark") or {}
        steps = {STEP_NAMES["generate"]: size.get("generate"), STEP_NAMES["read"]: size.get("read"),
                 **{f"features, {w.split('_')[1]} worker(s)": r for w, r in (size.get("features") or {}).items()},
                 "features, Spark local[2]": spark.get("features"), "Spark session start-up": spark.get("session"),
                 **{STEP_NAMES[k]: size.get(k) for k in ("train_scorecard", "train_gbm_additive", "score")}}
        for name, r in steps.items():
            if cell(r) is not None:
                rows.setdefault(name, {})[firms] = cell(r)
    head = "| step | " + " | ".join(f"{int(f):,} firms" for f in sizes) + " |"
    out = [head, "|---|" + "---:|" * len(sizes)]
    out += [f"| {name} | " + " | ".join(cells.get(f, "–") for f in sizes) + " |" for name, cells in rows.items()]
    return "\n".join(out)


def _save(results: dict) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    results.update(
        benchmark="scale",
        command="python benchmarks/bench_scale.py [--firms 100000 300000 1000000]",
        targets={"features_peak_gib_at_1m": TARGET_GIB, "features_peak_growth_100k_to_1m": TARGET_GROWTH, "features_wall_over_read": TARGET_READ_RATIO},
        judged=judge(results["sizes"]),
        machine={"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__,
                 "cpus": os.cpu_count(), "platform": platform.platform()},
    )
    results["sizes"] = dict(sorted(results["sizes"].items(), key=lambda kv: int(kv[0])))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    RESULTS.with_suffix(".md").write_text(render(results))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
