"""scorecardpy's documented German-credit pipeline, run inside ``.venv-scorecardpy`` (pandas 2).

Called by ``bench_peers.py`` (scorecardpy does not work under pandas 3):

    .venv-scorecardpy/bin/python benchmarks/_scorecardpy_worker.py IN.parquet OUT.json TARGET SCORE_ROWS EXPLAIN_ROWS

IN.parquet holds the data set plus ``_test`` (bool: test row of the 70/30 split) and ``_fold``
(0-4: the CV fold). Pipeline, as in scorecardpy's README: ``var_filter`` -> ``woebin`` ->
``woebin_ply`` -> ``LogisticRegression(penalty="l1", C=0.9, solver="saga")`` -> ``scorecard``;
PD from the regression on the WoE columns; scoring 1M rows = the faster of ``scorecard_ply``
(total points) and WoE + ``predict_proba``; explain = ``scorecard_ply(only_total_score=False)``.
``no_cores`` is ``OMP_NUM_THREADS`` (the benchmark's thread budget). Writes a JSON dict.
"""

import json
import math
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

warnings.simplefilter("ignore")
CORES = int(os.environ.get("OMP_NUM_THREADS", "1"))


def ks_stat(y, p):
    y = np.asarray(y)
    order = np.argsort(-np.asarray(p, dtype="float64"), kind="mergesort")
    ys = y[order]
    tpr = np.cumsum(ys) / max(ys.sum(), 1)
    fpr = np.cumsum(1 - ys) / max((1 - ys).sum(), 1)
    return float(np.max(np.abs(tpr - fpr)))


def timed(fn, max_runs=3, budget=0.5):
    best, total, runs, out = math.inf, 0.0, 0, None
    while True:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best, total, runs = min(best, dt), total + dt, runs + 1
        if runs >= max_runs or total >= budget:
            return out, best


class Pipe:
    def fit(self, train, target):
        import scorecardpy as sc

        self.sc, self.target = sc, target
        dt_s = sc.var_filter(train, y=target)
        self.bins = sc.woebin(dt_s, y=target, no_cores=CORES)
        woe = sc.woebin_ply(dt_s, self.bins, no_cores=CORES)
        self.cols = [c for c in woe.columns if c != target]
        self.lr = LogisticRegression(penalty="l1", C=0.9, solver="saga")
        self.lr.fit(woe[self.cols], woe[target])
        self.card = sc.scorecard(self.bins, self.lr, self.cols)
        return self

    def proba(self, X):
        woe = self.sc.woebin_ply(X, self.bins, no_cores=CORES)
        return self.lr.predict_proba(woe[self.cols])[:, 1]

    def points(self, X, total=True):
        return self.sc.scorecard_ply(X, self.card, only_total_score=total, print_step=0)

    def n_vars(self):
        return int((self.lr.coef_[0] != 0).sum())


def main():
    inp, out, target, score_rows, explain_rows = sys.argv[1:6]
    score_rows, explain_rows = int(score_rows), int(explain_rows)
    import scorecardpy

    df = pd.read_parquet(inp)
    test_mask = df.pop("_test").to_numpy(dtype=bool)
    fold = df.pop("_fold").to_numpy()
    train, test = df[~test_mask], df[test_mask]
    res = {"scorecardpy": getattr(scorecardpy, "__version__", ""), "pandas": pd.__version__}
    fitted, res["fit_s"] = timed(lambda: Pipe().fit(train, target))
    X_te = test.drop(columns=[target])
    p = fitted.proba(X_te)
    y_te = test[target].to_numpy()
    res["test_auc"] = float(roc_auc_score(y_te, p))
    res["test_ks"] = ks_stat(y_te, p)
    res["n_vars"] = fitted.n_vars()
    res["vars_label"] = str(res["n_vars"])
    big = X_te.iloc[np.resize(np.arange(len(X_te)), score_rows)].reset_index(drop=True)
    _, t1 = timed(lambda: fitted.points(big), max_runs=1)
    _, t2 = timed(lambda: fitted.proba(big), max_runs=1)
    res["score_1m_s"] = min(t1, t2)
    del big
    mid = X_te.iloc[np.resize(np.arange(len(X_te)), explain_rows)].reset_index(drop=True)
    expl, res["explain_100k_s"] = timed(lambda: fitted.points(mid, total=False), max_runs=2)
    res["explain_shape"] = list(expl.shape)
    aucs = []
    for k in range(int(fold.max()) + 1):
        tr, va = df[fold != k], df[fold == k]
        f = Pipe().fit(tr, target)
        aucs.append(float(roc_auc_score(va[target], f.proba(va.drop(columns=[target])))))
    res["cv_auc"] = aucs
    res["cv_auc_mean"] = float(np.mean(aucs))
    res["cv_auc_sd"] = float(np.std(aucs, ddof=1))
    res["status"] = "ok"
    with open(out, "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main()
