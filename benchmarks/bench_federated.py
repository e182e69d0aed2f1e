"""Benchmark the federated protocol: time per epoch (one pass of the vertical LR over all rows).

    .venv/bin/python benchmarks/bench_federated.py                   # -> results/federated.json
    .venv/bin/python benchmarks/bench_federated.py --rows 2000 --rows-2048 500   # quick
    .venv/bin/python benchmarks/bench_federated.py --skip-timing --data DIR ...   # accuracy only (added to the json)

Accuracy (``--data``): on a generated hub, the federated scorecard (plaintext twin of the protocol:
the same messages and fixed-point arithmetic, which the tests show gives the encrypted run's
numbers) against the centralized pipeline, with exact residuals (15 epochs) and with Hardy's Taylor
residuals (40 epochs of preconditioned gradient descent).

In one process and one run: the same protocol in plaintext (no encryption, same messages: the
baseline), with Paillier 1024-bit keys, and with 2048-bit keys. The data is
``riskmodel.creditdata.synthetic_credit`` (9 numeric features: 3 at the bank, 6 at the hub, all rows
aligned). One epoch is measured (``max_epochs=1``); binning (once per training) is reported
apart. Per party, the seconds spent in encryption (``encrypt``: fresh ``r^n``), re-randomisation
(``obfuscate``), decryption, homomorphic additions and scalar multiplications, and channel
encode/decode+MAC are recorded. A 2048-bit epoch over 10,000 rows takes a quarter of an hour on
this 2-core machine, so by default the 2048-bit run uses ``--rows-2048`` rows and the result also
gives the linear extrapolation to ``--rows`` (the per-epoch cost is linear in rows: every
expensive operation is per row), labelled as such.

Reference (docs/federated.md): FATE 2.0 reports 2 min 22 s per epoch for 100,000 rows (guest 30,
host 300 features) with Paillier on two 16-core machines, 19 s in plaintext.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _one(X, y, dirs, bank, hub, keys, key_bits, plaintext, batch_size):
    from riskmodel.federated.run import federated_fit

    r = federated_fit(X[bank], keys, y, X[hub], keys, dirs, key_bits=key_bits or 1024, plaintext=plaintext,
                      batch_size=batch_size, max_epochs=1, seed=0)
    hist = r["fit"]["history"]
    ch = r["channel"].summary()
    n = len(y)
    epoch = hist[0]["seconds"]
    where: dict[str, float] = {}
    for party, ops in r["timers"].items():
        for op, v in ops.items():
            if op == "keygen":
                continue
            where[f"{party}.{op}"] = v["seconds"]
    return {
        "rows": n, "key_bits": key_bits, "plaintext": plaintext, "batch_size": batch_size,
        "features": {"bank": len(r["own_features"]), "hub": len(r["host_features"])},
        "seconds_per_epoch": round(epoch, 3), "ms_per_row_per_epoch": round(1000 * epoch / n, 4),
        "seconds_binning": round(r["phases"]["binning"], 3), "seconds_alignment": round(r["phases"]["alignment"], 3),
        "bytes_total": ch["bytes"], "bytes_sent": {p: d["bytes_sent"] for p, d in ch["parties"].items()},
        "messages": ch["messages"], "ciphertexts": ch["ciphertexts"],
        "seconds_by_party_and_operation (binning + 1 epoch)": {k: round(v, 3) for k, v in sorted(where.items(), key=lambda kv: -kv[1])},
        "timers": r["timers"],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rows-2048", type=int, default=2_000, help="rows for the 2048-bit run (extrapolated to --rows)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE / "results" / "federated.json"))
    ap.add_argument("--data", action="append", default=[],
                    help="generated data hub(s): also compare exact vs Taylor residuals against the centralized "
                         "pipeline on the out-of-time split (plaintext twin of the protocol; repeatable)")
    ap.add_argument("--skip-timing", action="store_true", help="only the --data accuracy comparison (keeps earlier runs)")
    args = ap.parse_args(argv)

    from riskmodel.creditdata import synthetic_credit
    import pandas as pd

    accuracy = []
    for d in args.data:
        from riskmodel.federated.run import federated_train

        for mode, epochs in (("exact", 15), ("taylor", 40)):
            s = federated_train(d, plaintext=True, log_mlflow=False, mode=mode, max_epochs=epochs)
            keep = ("n_train", "n_test", "federated_auc", "centralized_auc", "auc_gap", "max_coef_gap", "features", "epochs")
            accuracy.append({"data": d, "mode": mode, **{k: s[k] for k in keep}})
            print(json.dumps(accuracy[-1]), flush=True)
    if args.skip_timing:
        path = Path(args.out)
        out = json.loads(path.read_text()) if path.is_file() else {}
        out["accuracy"] = accuracy
        out["accuracy_command"] = "python benchmarks/bench_federated.py " + " ".join(argv if argv is not None else sys.argv[1:])
        path.write_text(json.dumps(out, indent=2, default=str))
        return out
    X, y, dirs = synthetic_credit(n_rows=args.rows, n_features=9, seed=0, categorical=False)
    bank, hub = ["x0", "x1", "x2"], [f"x{j}" for j in range(3, 9)]
    keys = pd.Series([f"F{i:08d}|2024-01-01" for i in range(len(X))])
    runs = []
    t0 = time.perf_counter()
    for bits, plain, rows in ((None, True, args.rows), (1024, False, args.rows), (2048, False, args.rows_2048)):
        Xs, ys, ks = X.iloc[:rows], y[:rows], keys.iloc[:rows]
        res = _one(Xs, ys, dirs, bank, hub, ks, bits, plain, args.batch_size)
        if rows != args.rows:
            res["extrapolated_seconds_per_epoch_at_rows"] = {"rows": args.rows, "seconds": round(res["seconds_per_epoch"] * args.rows / rows, 1),
                                                              "how": "linear in rows (measured ms per row x rows)"}
        runs.append(res)
        print(json.dumps({k: v for k, v in res.items() if k != "timers"}, indent=1), flush=True)
    previous = Path(args.out)
    if not accuracy and previous.is_file():  # keep an earlier --data comparison
        old = json.loads(previous.read_text())
        accuracy = old.get("accuracy", [])
    out = {
        "benchmark": "federated vertical LR, one epoch",
        "command": "python benchmarks/bench_federated.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "note": "2 cores shared with other jobs; single-threaded protocol"},
        "phe_gmpy2": True,
        "runs": runs,
        "accuracy": accuracy,
        "accuracy_command": json.loads(previous.read_text()).get("accuracy_command") if previous.is_file() and not args.data else None,
        "seconds_total": round(time.perf_counter() - t0, 1),
        "reference_fate_2_0": {"rows": 100_000, "seconds_per_epoch_paillier": 142, "seconds_per_epoch_plaintext": 19,
                               "machines": "2 x 16 cores", "features": "guest 30, host 300"},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
