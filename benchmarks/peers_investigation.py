"""Why we lose where we lose in the peer benchmark: the measurements behind the fixes we propose.

Writes benchmarks/results/peers_investigation.json and peers_investigation.md (included in
peers.md by ``bench_peers.py --render``). Three questions:

1. Text columns: how much of our scoring / explaining time is ``riskmodel.binning.category_codes``
   on pandas 3's Arrow-backed string columns? Measured by timing the models as they are and with
   a ``pd.factorize``-based ``category_codes`` swapped in (same outputs, checked).
2. Variables: what does our scorecard's CV AUC do when ``min_iv`` is raised to use as few
   variables as the scorecard libraries (optbinning 9, toad 8 on German credit)?
3. gbm_additive on small tables: 800 rounds with no early stopping below 10,000 rows; what does
   early stopping give in CV (German credit)?

    .venv/bin/python benchmarks/peers_investigation.py
"""

from __future__ import annotations

import os

os.environ.setdefault("RISKMODEL_THREADS", "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import riskmodel.binning as binning  # noqa: E402
import riskmodel.models as models  # noqa: E402
from riskmodel.creditdata import split_stratified  # noqa: E402
from riskmodel.models import make_model  # noqa: E402
from riskmodel.creditdata import TARGET, load  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def category_codes_factorize(values, categories) -> np.ndarray:
    """Proposed ``category_codes``: factorize once (Arrow does it natively for pandas 3 strings),
    then map the few distinct values to ``categories``; -1 for missing and unseen, as now."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    index = pd.Index([str(c) for c in categories], dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    own = index.get_indexer(pd.Index([str(u) for u in uniques], dtype=object))
    return np.where(codes >= 0, np.append(own, -1)[codes], -1).astype("int64")


def _swap(fn) -> None:
    binning.category_codes = fn
    models.category_codes = fn


def text_speed(name: str = "german_credit", rounds: int = 2) -> list[dict]:
    df = load(name)
    tr, te = split_stratified(df, TARGET)
    X, y = tr.drop(columns=[TARGET]), tr[TARGET].to_numpy()
    Xte = te.drop(columns=[TARGET])
    big = Xte.iloc[np.resize(np.arange(len(Xte)), 1_000_000)].reset_index(drop=True)
    mid = big.iloc[:100_000].copy()
    original = binning.category_codes
    fitted = {m: make_model(m).fit(X, y) for m in ("scorecard", "gbm_additive")}
    rows = []
    try:
        for _ in range(rounds):  # alternate, so load drift hits both variants alike
            for variant, fn in (("current", original), ("factorize", category_codes_factorize)):
                _swap(fn)
                for m, est in fitted.items():
                    t0 = time.perf_counter()
                    p = est.predict_proba(big)[:, 1]
                    t1 = time.perf_counter()
                    est.contributions(mid)
                    t2 = time.perf_counter()
                    rows.append({"data": name, "model": m, "variant": variant, "score_1m_s": t1 - t0, "explain_100k_s": t2 - t1,
                                 "pd_checksum": float(p.sum())})
    finally:
        _swap(original)
    return rows


def cv_sweep(name: str, model: str, grid: list[dict]) -> list[dict]:
    df = load(name)
    X, y = df.drop(columns=[TARGET]), df[TARGET].to_numpy()
    folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=42).split(X, y))
    out = []
    for params in grid:
        aucs, nvars, t0 = [], [], time.perf_counter()
        for tr, va in folds:
            m = make_model(model, **params).fit(X.iloc[tr], y[tr])
            aucs.append(float(roc_auc_score(y[va], m.predict_proba(X.iloc[va])[:, 1])))
            nvars.append(len(m.selected_) if model == "scorecard" else int((m.feature_importances_ > 0).sum()))
        out.append({"data": name, "model": model, "params": params, "cv_auc_mean": float(np.mean(aucs)),
                    "cv_auc_sd": float(np.std(aucs, ddof=1)), "vars_mean": float(np.mean(nvars)),
                    "seconds_5_fits": time.perf_counter() - t0})
    return out


def summarise_speed(rows: list[dict]) -> list[dict]:
    t = pd.DataFrame(rows).groupby(["data", "model", "variant"])[["score_1m_s", "explain_100k_s"]].min().reset_index()
    out = []
    for (d, m), g in t.groupby(["data", "model"]):
        cur, new = g.set_index("variant").loc["current"], g.set_index("variant").loc["factorize"]
        out.append({"data": d, "model": m, "score_1m_s_current": cur["score_1m_s"], "score_1m_s_factorize": new["score_1m_s"],
                    "explain_100k_s_current": cur["explain_100k_s"], "explain_100k_s_factorize": new["explain_100k_s"],
                    "score_speedup": cur["score_1m_s"] / new["score_1m_s"], "explain_speedup": cur["explain_100k_s"] / new["explain_100k_s"]})
    return out


def render(res: dict) -> str:
    lines = ["### Investigation (`benchmarks/peers_investigation.py`, results in `peers_investigation.json`)", ""]
    lines += ["**1. Text columns are where our scoring time goes.** Our models as they are against the same models with a "
              "`pd.factorize`-based `riskmodel.binning.category_codes` (identical PDs; best of "
              f"{res['speed_rounds']} alternating runs, German credit, 13 text columns):", "",
              "| model | score 1M s now | with factorize | speed-up | explain 100k s now | with factorize | speed-up |", "|---|---|---|---|---|---|---|"]
    for r in res["text_speed_summary"]:
        lines.append(f"| {r['model']} | {r['score_1m_s_current']:.2f} | {r['score_1m_s_factorize']:.2f} | {r['score_speedup']:.1f}x | "
                     f"{r['explain_100k_s_current']:.3f} | {r['explain_100k_s_factorize']:.3f} | {r['explain_speedup']:.1f}x |")
    lines += ["", "**2. Variables against AUC (our scorecard, 5-fold CV as in the benchmark).**", "",
              "| data | params | CV AUC | sd | variables (mean over folds) |", "|---|---|---|---|---|"]
    for r in res["scorecard_min_iv"]:
        lines.append(f"| {r['data']} | {r['params'] or 'defaults'} | {r['cv_auc_mean']:.4f} | {r['cv_auc_sd']:.4f} | {r['vars_mean']:.1f} |")
    lines += ["", "**3. gbm_additive rounds on small tables (5-fold CV).**", "",
              "| data | params | CV AUC | sd | rounds | seconds for 5 fits |", "|---|---|---|---|---|---|"]
    for r in res["gbm_additive_rounds"]:
        lines.append(f"| {r['data']} | {r['params'] or 'defaults'} | {r['cv_auc_mean']:.4f} | {r['cv_auc_sd']:.4f} | "
                     f"{r['params'].get('n_estimators', 800) if not r['params'].get('early_stopping') else 'early stop'} | {r['seconds_5_fits']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> dict:
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    res = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "threads": os.environ["RISKMODEL_THREADS"],
        "speed_rounds": 2,
        "scorecard_min_iv": [
            r for name in ("german_credit", "credit_data")
            for r in cv_sweep(name, "scorecard", [{}, {"min_iv": 0.05}, {"min_iv": 0.1}])
        ],
        "gbm_additive_rounds": cv_sweep("german_credit", "gbm_additive", [{}, {"early_stopping": True}]),
    }
    speed = text_speed("german_credit", rounds=2)  # last: the timing part wants the machine as quiet as it gets
    res["text_speed"] = speed
    res["text_speed_summary"] = summarise_speed(speed)
    res["seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers_investigation.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (RESULTS / "peers_investigation.md").write_text(render(res))
    print(render(res))
    return res


if __name__ == "__main__":
    main()
