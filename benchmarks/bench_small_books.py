"""Small books (issue 20): every model against a one-hot logistic regression on few loans and few defaults.

Target: on German credit, credit_data and small samples of a generated hub (2,000 and 5,000 granted
loans), every model's AUC is within 0.01 of a plain one-hot logistic regression's, or above it.
Two harder books made from credit_data are reported beside them (not part of the target): its bads
thinned at random to 6% of the rows (a low-default book: 3,404 rows, 204 bad), and the same with a
``profile`` column crossing Home, Marital, Job, Records and an age band (a few hundred levels, the
high-cardinality text column a bank's own table often has).

The reference ``onehot_lr`` is scikit-learn only: numbers median-imputed with a missing indicator and
standardised, text one-hot encoded (unknown categories ignored), ``LogisticRegression(C=1)``.
``lgbm_plain`` (LightGBM with its default settings) is listed for comparison, not held to the target.
Every model gets the same columns (on the hub: the numeric catalog features; ``financial_baseline``
is the estimator here, not the finance-only model of ``riskmodel train``).

Noise must not decide, so each figure is an average over many fits:

* German credit and credit_data: repeated stratified 5-fold cross-validation (5 repeats, 25 folds,
  ``random_state=0``); the AUC of each fold's held-out rows, averaged. The difference to the
  reference is averaged over the same folds; its standard error is the folds' standard deviation
  over sqrt(25), which understates the uncertainty a little (the folds share rows).
* Hub samples: ``--samples`` (5) random samples of N granted loans from the training period of a
  generated hub (``--firms`` 50,000, seed 0, default approval policy; cached in
  ``data/synthetic/bench-books-<firms>``), each model fitted on each sample and evaluated on the
  whole out-of-time test window of granted loans (the same rows for every model and sample);
  standard error over the samples.

    RISKMODEL_THREADS=1 .venv/bin/python benchmarks/bench_small_books.py

Writes ``benchmarks/results/small_books.json`` and ``small_books.md`` (``--markdown-only`` rewrites the
markdown from the JSON). When ``small_books_before.json`` is there (the same script run on the
defaults before issue 20: LightGBM with 400/800 rounds and no early stopping below 10,000 rows, 15/8
leaves of at least 50 rows, LightGBM's own categorical splits), the markdown shows it beside.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("onehot_lr", "financial_baseline", "scorecard", "gbm_monotone", "gbm_additive", "lgbm_plain")
REFERENCE = "onehot_lr"
HELD = ("financial_baseline", "scorecard", "gbm_monotone", "gbm_additive")  # the models the target is for
TARGET_GAP = 0.01
SIZES = (2000, 5000)


def onehot_lr():
    """The reference: scikit-learn's one-hot logistic regression."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    cat = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"), OneHotEncoder(handle_unknown="ignore"))
    ct = ColumnTransformer([("num", num, make_column_selector(dtype_include="number")),
                            ("cat", cat, make_column_selector(dtype_exclude="number"))])
    return make_pipeline(ct, LogisticRegression(C=1.0, max_iter=5000))


class PlainLightGBM:
    """LightGBM with its default settings (text columns as pandas categories)."""

    def fit(self, X, y):
        import lightgbm as lgb

        from riskmodel import config

        self.cats_ = {c: sorted(X[c].dropna().astype(str).unique()) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])}
        self.m_ = lgb.LGBMClassifier(verbosity=-1, random_state=0, n_jobs=config.threads()).fit(self._frame(X), y)
        return self

    def _frame(self, X):
        X = X.copy()
        for c, cats in self.cats_.items():
            X[c] = pd.Categorical(X[c].astype("string").astype(object), categories=cats)
        return X

    def predict_proba(self, X):
        return self.m_.predict_proba(self._frame(X))


def make(name: str, directions: dict, seed: int):
    from riskmodel.models import make_model

    if name == REFERENCE:
        return onehot_lr()
    if name == "lgbm_plain":
        return PlainLightGBM()
    est = make_model(name, directions=directions)
    if "random_state" in est.get_params():
        est.set_params(random_state=seed)
    return est


def fit_auc(name: str, directions: dict, Xtr, ytr, Xte, yte, seed: int) -> tuple[float, float, dict]:
    from riskmodel.evaluation import auc

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = make(name, directions, seed).fit(Xtr, ytr)
    sec = time.perf_counter() - t0
    extra = {k: getattr(m, k) for k in ("n_iter_",) if hasattr(m, k) and name.startswith("gbm")}
    return auc(yte, m.predict_proba(Xte)[:, 1]), sec, extra


def summarise(aucs: dict[str, list[float]], secs: dict[str, list[float]], extra: dict[str, list]) -> dict:
    ref = np.asarray(aucs[REFERENCE])
    out = {}
    for name, v in aucs.items():
        v = np.asarray(v)
        d = v - ref
        row = {"auc": round(float(v.mean()), 4), "auc_sd": round(float(v.std(ddof=1)), 4), "fits": int(v.size),
               "seconds_per_fit": round(float(np.mean(secs[name])), 3)}
        if name != REFERENCE:
            row |= {"diff": round(float(d.mean()), 4), "diff_se": round(float(d.std(ddof=1) / np.sqrt(d.size)), 4)}
            if name in HELD:
                row["meets_target"] = bool(d.mean() >= -TARGET_GAP)
        if extra.get(name):
            row["boosting_rounds_median"] = int(np.median([e["n_iter_"] for e in extra[name]]))
        out[name] = row
    return out


LOW_DEFAULT_RATE = 0.06


def load_case(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """A public credit data set, or one of the two harder books made from credit_data."""
    from riskmodel.creditdata import xy

    if name in ("german_credit", "credit_data"):
        return xy(name)
    X, y = xy("credit_data")
    rng = np.random.default_rng(0)
    good, bad = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    keep = np.sort(np.r_[good, rng.choice(bad, size=int(LOW_DEFAULT_RATE / (1 - LOW_DEFAULT_RATE) * len(good)), replace=False)])
    X, y = X.iloc[keep].reset_index(drop=True), y[keep]
    if name == "credit_data_low_profile":
        age = pd.cut(X["Age"], [0, 25, 30, 35, 40, 50, 60, 120]).astype(str)
        parts = [X[c].fillna("na") for c in ("Home", "Marital", "Job", "Records")] + [age]
        X["profile"] = parts[0].str.cat(parts[1:], sep="|").astype(object)
    return X, y


CASES = {
    "german_credit": "German credit",
    "credit_data": "credit_data",
    "credit_data_low": f"credit_data, bads thinned to {LOW_DEFAULT_RATE:.0%} (not in the target)",
    "credit_data_low_profile": f"credit_data, bads thinned to {LOW_DEFAULT_RATE:.0%}, with a high-cardinality profile column (not in the target)",
}


def public_set(name: str, repeats: int, models) -> dict:
    """Repeated stratified 5-fold CV on a public credit data set (or a book made from one)."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    X, y = load_case(name)
    aucs, secs, extra = ({m: [] for m in models} for _ in range(3))
    for k, (tr, te) in enumerate(RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=0).split(X, y)):
        for m in models:
            a, s, e = fit_auc(m, {}, X.iloc[tr], y[tr], X.iloc[te], y[te], seed=k)
            aucs[m].append(a)
            secs[m].append(s)
            if e:
                extra[m].append(e)
        print(f"  {name} fold {k + 1}: " + ", ".join(f"{m} {aucs[m][-1]:.3f}" for m in models), flush=True)
    levels = {c: int(X[c].nunique()) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])}
    return {"rows": int(len(y)), "defaults": int(y.sum()), "text_columns_levels": levels,
            "protocol": f"repeated stratified 5-fold CV, {repeats} repeats, random_state=0", "models": summarise(aucs, secs, extra)}


def hub_samples(data_dir: Path, sizes, n_samples: int, models) -> dict:
    from features.contract import TARGET
    from riskmodel import dataset
    from riskmodel.train import features_for_model, usable_features

    ls = dataset.load_labelled(data_dir)
    feats = usable_features(ls.train, features_for_model("gbm_monotone", ls.train, ls.catalog))
    directions = {str(r.name): int(r.direction) for r in ls.catalog.itertuples() if r.name in feats}
    Xte, yte = ls.test[feats], ls.test[TARGET].to_numpy(dtype="int64")
    out = {"hub": str(data_dir.relative_to(ROOT)) if data_dir.is_relative_to(ROOT) else str(data_dir), "cut": str(ls.cut.date()),
           "training_pool": len(ls.train), "test_rows": int(len(yte)), "test_defaults": int(yte.sum()), "features": len(feats), "sizes": {}}
    for n in sizes:
        aucs, secs, extra = ({m: [] for m in models} for _ in range(3))
        defaults = []
        for s in range(n_samples):
            rows = np.random.default_rng(s).choice(len(ls.train), size=min(n, len(ls.train)), replace=False)
            tr = ls.train.iloc[np.sort(rows)]
            ytr = tr[TARGET].to_numpy(dtype="int64")
            defaults.append(int(ytr.sum()))
            for m in models:
                a, sec, e = fit_auc(m, directions if m != REFERENCE else {}, tr[feats], ytr, Xte, yte, seed=s)
                aucs[m].append(a)
                secs[m].append(sec)
                if e:
                    extra[m].append(e)
            print(f"  hub {n} sample {s + 1}: " + ", ".join(f"{m} {aucs[m][-1]:.3f}" for m in models), flush=True)
        out["sizes"][str(n)] = {"samples": n_samples, "defaults_per_sample": defaults, "models": summarise(aucs, secs, extra)}
    return out


def markdown(r: dict, before: dict | None = None) -> str:
    L = ["# Small books: every model against a one-hot logistic regression", "",
         f"Produced by `RISKMODEL_THREADS=1 .venv/bin/python benchmarks/bench_small_books.py` at commit `{r['commit']}` "
         f"(threads {r['threads']}; load average {r['load_average'][0]} at start, {r['load_average'][1]} at the end); numbers from `small_books.json`.", "",
         f"Target: every model ({', '.join(HELD)}) within {TARGET_GAP} AUC of `{REFERENCE}` or above it. `lgbm_plain` is LightGBM with "
         "default settings, for comparison. Δ: mean AUC difference to the reference over the same folds or samples, ± its standard error.", ""]
    if before:
        L += [f"Δ before: the same script at commit `{before['commit']}`, with the defaults before issue 20 (`small_books_before.json`).", ""]
    cases = []
    for key, title in CASES.items():
        c = r[key]
        text = ", ".join(f"{k} {v}" for k, v in c.get("text_columns_levels", {}).items())
        cases.append((f"{title} ({c['rows']:,} rows, {c['defaults']:,} bad)", c["protocol"] + (f"; text columns (levels): {text}" if text else ""), c["models"],
                      (before or {}).get(key, {}).get("models", {})))
    h = r["hub"]
    for n, v in h["sizes"].items():
        d = v["defaults_per_sample"]
        cases.append((f"Hub sample of {int(n):,} granted loans ({min(d)}-{max(d)} defaults)",
                      f"{v['samples']} samples from the {h['training_pool']:,} training loans of `{h['hub']}`; test: {h['test_rows']:,} out-of-time loans ({h['test_defaults']} defaults) from {h['cut']}",
                      v["models"], (before or {}).get("hub", {}).get("sizes", {}).get(n, {}).get("models", {})))
    failed = []
    for title, protocol, models, old in cases:
        held = "not in the target" not in title
        L += [f"## {title}", "", protocol + ".", "", "| model | AUC | Δ vs onehot_lr | target | Δ before | s per fit | rounds |", "|---|---:|---:|:-:|---:|---:|---:|"]
        for name, m in models.items():
            delta = "—" if name == REFERENCE else f"{m['diff']:+.4f} ± {m['diff_se']:.4f}"
            ok = "" if "meets_target" not in m else ("yes" if m["meets_target"] else "**NO**")
            if m.get("meets_target") is False and held:
                failed.append(f"{name} on {title}")
            was = old.get(name, {})
            prior = "" if "diff" not in was else f"{was['diff']:+.4f}" + (" (NO)" if was.get("meets_target") is False else "")
            L.append(f"| {name} | {m['auc']:.4f} | {delta} | {ok} | {prior} | {m['seconds_per_fit']:.2f} | {m.get('boosting_rounds_median', '')} |")
        L.append("")
    L += ["## Verdict", "", ("Every model meets the target on German credit, credit_data and both hub sample sizes." if not failed
                              else "Missed: " + "; ".join(failed) + "."), ""]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5, help="CV repeats on the public sets")
    ap.add_argument("--only", choices=(*CASES, "hub"), default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    before_file = args.out / "small_books_before.json"
    before = json.loads(before_file.read_text()) if before_file.is_file() else None
    if args.markdown_only:
        (args.out / "small_books.md").write_text(markdown(json.loads((args.out / "small_books.json").read_text()), before))
        return
    from riskmodel import config

    load0 = os.getloadavg()[0]
    result = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
              "threads": config.threads(), "python": platform.python_version(), "target_gap": TARGET_GAP}
    for name in CASES:
        if args.only in (None, name):
            result[name] = public_set(name, args.repeats, MODELS)
    if args.only in (None, "hub"):
        from bench_reject_inference import ensure_hub, hub_dir  # the same hub (default approval policy)
        from synthetic.world import DEFAULT_APPROVAL_POLICY

        hub = hub_dir(args.firms, DEFAULT_APPROVAL_POLICY)
        print(f"hub {hub}: {ensure_hub(hub, args.firms, 0, DEFAULT_APPROVAL_POLICY)}", flush=True)
        result["hub"] = hub_samples(hub, SIZES, args.samples, MODELS)
    result["load_average"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    if args.only is not None:
        print(json.dumps(result, indent=1))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "small_books.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "small_books.md").write_text(markdown(result, before))
    print((args.out / "small_books.md").read_text())


if __name__ == "__main__":
    main()
