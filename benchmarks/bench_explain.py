"""Cost of explanations: bare PD versus PD + contributions + top-3 reason codes, same run.

On ``--rows`` (default 1,000,000) synthetic rows with ``--features`` (default 40) numeric features
plus one string column (``riskmodel.creditdata.synthetic_credit``), for gbm_additive, scorecard and
gbm_monotone, each trained on the first ``--train-rows`` (default 50,000) rows:

  * ``predict_s``: ``estimator.predict_proba(X)`` on all rows (bare PD);
  * ``explain_s``: ``estimator.contributions(X)`` + ``riskmodel.reasons.reason_codes`` (top 3);
  * ``credit_model_s``: ``CreditModel.predict(X)``: PD, score, grade and 3 reasons with texts;
  * ratios ``explain_s / predict_s`` and ``credit_model_s / predict_s``;
  * ``holdout_auc`` on 200,000 rows after the training rows (same synthetic distribution).

gbm_monotone's TreeSHAP (``pred_contrib``) is timed on a ``--shap-rows`` sample (default 20,000)
and extrapolated linearly to all rows (marked ``extrapolated: true``); the tabulated models are
timed on every row. For reference the booster's own predict of gbm_additive is timed too.

    RISKMODEL_THREADS=2 .venv/bin/python benchmarks/bench_explain.py
    (quick check: --rows 100000)

Writes benchmarks/results/explain.json. Timings are wall-clock on a shared 2-core machine (the
load average at start and end is recorded); the steps are run interleaved ``--repeat`` times and each
one's fastest run kept (gbm_monotone once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--train-rows", type=int, default=50_000)
    ap.add_argument("--shap-rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "explain.json"))
    args = ap.parse_args(argv)

    from riskmodel import config
    from riskmodel.creditmodel import CreditModel
    from riskmodel.creditdata import synthetic_credit
    from riskmodel.models import make_model
    from riskmodel.reasons import reason_codes
    from sklearn.metrics import roc_auc_score

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    X, y, directions = synthetic_credit(args.rows, args.features, seed=2024)
    gen_s = time.perf_counter() - t0
    Xtr, ytr = X.iloc[: args.train_rows], y[: args.train_rows]
    results: dict = {
        "command": "RISKMODEL_THREADS=%d .venv/bin/python benchmarks/bench_explain.py --rows %d --features %d"
        % (config.threads(), args.rows, args.features),
        "rows": args.rows,
        "features": args.features + 1,
        "train_rows": args.train_rows,
        "threads": config.threads(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "generate_s": round(gen_s, 2),
        "models": {},
    }
    for name in ("gbm_additive", "scorecard", "gbm_monotone"):
        t = time.perf_counter()
        est = make_model(name, directions=directions).fit(Xtr, ytr)
        fit_s = time.perf_counter() - t
        cm = CreditModel.from_estimator(est, name=name)
        r: dict = {"fit_s": round(fit_s, 2)}
        # interleave the timed steps and keep each one's fastest run: the machine is shared, so
        # load changes during a run and hits every step alike
        times: dict[str, float] = {"predict": np.inf, "explain": np.inf, "credit_model": np.inf}
        if name == "gbm_monotone":
            n = min(args.shap_rows, args.rows)
            target = X.iloc[:n]
        else:
            n, target = args.rows, X
        for _ in range(args.repeat):
            t_, p = _best(lambda: est.predict_proba(X)[:, 1], 1)
            times["predict"] = min(times["predict"], t_)
            used = list(getattr(est, "selected_", est.columns_))  # as CreditModel: a scorecard's unused features are 0
            t_, _ = _best(lambda: reason_codes(est.contributions(target)[used]), 1)
            times["explain"] = min(times["explain"], t_)
            t_, out = _best(lambda: cm.predict(target), 1)
            times["credit_model"] = min(times["credit_model"], t_)
            if name == "gbm_monotone":
                break  # TreeSHAP and the booster's predict are slow and steady: once is enough
        hold = slice(args.train_rows, min(args.rows, args.train_rows + 200_000))
        r["holdout_auc"] = float(roc_auc_score(y[hold], p[hold]))
        r["features_used"] = len(used)
        r["predict_s"] = times["predict"]
        r["predict_rows_per_s"] = args.rows / times["predict"]
        r["explain_s"] = times["explain"] * args.rows / n
        r["credit_model_s"] = times["credit_model"] * args.rows / n
        r["explain_timed_rows"] = n
        r["extrapolated"] = n < args.rows
        assert np.allclose(out["pd"].to_numpy(), p[:n])
        r["rows_with_reason_1"] = float(out["reason_1"].notna().mean())
        if name == "gbm_monotone":
            r["trees"] = est.n_iter_
        if name == "gbm_additive":
            M = est._matrix(est._validate(X)[0])
            b_s, _ = _best(lambda: est.booster_.predict(M, raw_score=True, num_threads=config.threads()), 1)
            r["booster_predict_s"] = b_s
            r["trees"] = est.n_iter_
        r["explain_over_predict"] = r["explain_s"] / r["predict_s"]
        r["credit_model_over_predict"] = r["credit_model_s"] / r["predict_s"]
        r["reason_rows_per_s"] = args.rows / r["explain_s"]
        results["models"][name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
        print(name, json.dumps(results["models"][name]), flush=True)
    results["loadavg_start"] = [round(v, 2) for v in load_start]
    results["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    results["total_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
