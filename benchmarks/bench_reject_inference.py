"""Reject inference (issue 20): how much of the selection bias each method removes, on generated hubs.

A generated hub knows what no bank knows: the outcome every declined applicant would have had. So
each model is trained four ways on the training period of the same hub and judged on every
applicant of the out-of-time window (through the door), with the truth's outcomes:

* ``approved_only``: the granted loans before the cut (what a bank has; ``riskmodel train``);
* ``reweight``, ``augment``, ``self_label``: the granted loans plus the declined applications'
  features (``riskmodel train --reject-inference METHOD``, :mod:`riskmodel.rejects`);
* ``oracle``: every applicant before the cut with the outcome the truth knows (unattainable: the
  ceiling reject inference aims at).

Per method: AUC on all applicants of the test window, on the declined ones, and on first
applications of firms under three years (首贷), the calibration (ECE, mean PD against the default
rate), the AUC difference to ``approved_only`` and the share of the gap between ``approved_only`` and
``oracle`` it closes, with 95% percentile intervals from ``--boot`` paired bootstrap resamples of the
test applicants (:func:`riskmodel.evaluation.bootstrap_aucs`: every model on the same resampled
rows). The hub: ``--firms`` (50,000) firms, seed 0, under each ``--policies`` approval policy
(cached in ``data/synthetic/bench-books-<firms>`` for the default policy and
``bench-books-<firms>-<policy>`` for the others).

    RISKMODEL_THREADS=1 .venv/bin/python benchmarks/bench_reject_inference.py

Writes ``benchmarks/results/reject_inference.json`` and ``reject_inference.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("scorecard", "gbm_monotone", "gbm_additive")
METHODS = ("reweight", "augment", "self_label")
WAYS = ("approved_only", *METHODS, "oracle")
POPULATIONS = ("all", "rejected", "young_first")


def hub_dir(firms: int, policy: str) -> Path:
    from synthetic.world import DEFAULT_APPROVAL_POLICY

    suffix = "" if policy == DEFAULT_APPROVAL_POLICY else f"-{policy}"
    return ROOT / "data" / "synthetic" / f"bench-books-{firms}{suffix}"


def ensure_hub(out: Path, firms: int, seed: int, policy: str) -> str:
    from synthetic import GENERATOR_VERSION, GeneratorParams, generate

    params = GeneratorParams(firms=firms, seed=seed, approval_policy=policy)
    manifest = out / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("generator_version") == GENERATOR_VERSION and m.get("parameters") == params.to_dict():
            return "reused"
    generate(params, out)
    return "generated"


def _interval(draws: np.ndarray) -> list[float]:
    draws = draws[np.isfinite(draws)]
    return [round(float(np.quantile(draws, 0.025)), 4), round(float(np.quantile(draws, 0.975)), 4)] if draws.size else [None, None]


def run_policy(policy: str, firms: int, models, n_boot: int) -> dict:
    from features.contract import TARGET
    from riskmodel import dataset, rejects
    from riskmodel import evaluation as ev
    from riskmodel.train import build_estimator, features_for_model, usable_features

    data_dir = hub_dir(firms, policy)
    status = ensure_hub(data_dir, firms, 0, policy)
    print(f"hub {data_dir}: {status}", flush=True)
    ls = dataset.load_labelled(data_dir)
    truth = ev.load_truth(data_dir).set_index("application_id")
    rejected = ls.rejected()
    pop = ls.population()
    # the test window through the door: every applicant whose 12 months have passed
    closed = pop["application_id"].map(truth["window_closed"]).fillna(False).to_numpy(dtype=bool)
    pop = pop.loc[closed].reset_index(drop=True)
    y_pop = pop["application_id"].map(truth["default_12m"]).to_numpy(dtype="int64")
    groups = {"all": np.ones(len(pop), dtype=bool), **dataset.population_groups(pop)}
    # the oracle's training rows: every applicant before the cut whose window closed, with the truth's outcome
    before = ls.features.assign(application_date=pd.to_datetime(ls.features["application_date"]))
    before = before[(before["application_date"] < ls.cut).to_numpy()]
    before = before[before["application_id"].astype("string").map(truth["window_closed"]).fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)
    y_before = before["application_id"].astype("string").map(truth["default_12m"]).to_numpy(dtype="int64")
    out = {
        "policy": policy, "hub": str(data_dir.relative_to(ROOT)), "hub_status": status, "cut": str(ls.cut.date()),
        "train_granted": len(ls.train), "train_granted_defaults": int(ls.train[TARGET].sum()),
        "train_declined": len(rejected), "train_everyone": len(before), "train_everyone_defaults": int(y_before.sum()),
        "test_applicants": {g: {"n": int(m.sum()), "defaults": int(y_pop[m].sum())} for g, m in groups.items()},
        "models": {},
    }
    print(f"  train: {len(ls.train):,} granted ({int(ls.train[TARGET].sum())} defaults), {len(rejected):,} declined; "
          f"test window: {len(pop):,} applicants ({int(y_pop.sum())} defaults)", flush=True)
    for model in models:
        feats = usable_features(ls.train, features_for_model(model, ls.train, ls.catalog))
        directions = {str(r.name): int(r.direction) for r in ls.catalog.itertuples() if r.name in feats}
        est = build_estimator(model, directions, 42, None)
        preds, info, secs = {}, {}, {}
        for way in WAYS:
            t0 = time.perf_counter()
            if way == "approved_only":
                m = build_estimator(model, directions, 42, None).fit(ls.train[feats], ls.train[TARGET].to_numpy(dtype="int64"))
            elif way == "oracle":
                m = build_estimator(model, directions, 42, None).fit(before[feats], y_before)
            else:
                m, info[way] = rejects.fit_with_rejects(way, est, ls.train[feats], ls.train[TARGET].to_numpy(dtype="int64"), rejected[feats], seed=0)
            secs[way] = round(time.perf_counter() - t0, 1)
            preds[way] = m.predict_proba(pop[feats])[:, 1]
            print(f"  {model} {way}: AUC through the door {ev.auc(y_pop, preds[way]):.4f} ({secs[way]}s)", flush=True)
        res = {"features": len(feats), "seconds_fit": secs, "reject_inference": info, "populations": {}}
        for g in POPULATIONS:
            mask = groups[g]
            yy = y_pop[mask]
            draws = ev.bootstrap_aucs(yy, {w: p[mask] for w, p in preds.items()}, n_boot=n_boot, seed=0)
            gap = draws["oracle"] - draws["approved_only"]
            rows = {}
            for way in WAYS:
                p = preds[way][mask]
                a = ev.auc(yy, p)
                row = {"auc": round(a, 4), "ece": round(ev.expected_calibration_error(yy, p), 5), "mean_pd": round(float(p.mean()), 5)}
                if way != "approved_only":
                    d = draws[way] - draws["approved_only"]
                    row["diff"] = round(a - ev.auc(yy, preds["approved_only"][mask]), 4)
                    row["diff_ci95"] = _interval(d)
                if way in METHODS:
                    full_gap = ev.auc(yy, preds["oracle"][mask]) - ev.auc(yy, preds["approved_only"][mask])
                    row["gap_closed"] = round(row["diff"] / full_gap, 3) if full_gap > 0 else None
                    with np.errstate(divide="ignore", invalid="ignore"):
                        row["gap_closed_ci95"] = _interval(np.where(gap > 0, d / gap, np.nan))
                rows[way] = row
            res["populations"][g] = {"n": int(mask.sum()), "defaults": int(yy.sum()), "default_rate": round(float(yy.mean()), 5),
                                     "n_boot": int(len(draws["oracle"])), "gap_ci95": _interval(gap), "ways": rows}
        out["models"][model] = res
    return out


def markdown(r: dict) -> str:
    names = {"all": "all applicants", "rejected": "declined applicants", "young_first": "first applications of firms under 3 years"}
    L = ["# Reject inference on generated hubs", "",
         f"Produced by `RISKMODEL_THREADS=1 .venv/bin/python benchmarks/bench_reject_inference.py` at commit `{r['commit']}` "
         f"(threads {r['threads']}; load average {r['load_average'][0]} at start, {r['load_average'][1]} at the end); numbers from `reject_inference.json`.", "",
         "Every model is judged on all applicants of the out-of-time window, with the outcome each had or would have had "
         "(the generator's truth: generated data only). Δ: AUC minus `approved_only`'s on the same rows; gap closed: Δ divided by "
         "`oracle` minus `approved_only`. Intervals: 95% percentile intervals of " f"{r['boot']} paired bootstrap resamples of the test applicants "
         "(the training is not resampled). ECE: expected calibration error over ten PD bins.", ""]
    for p in r["policies"]:
        L += [f"## Policy `{p['policy']}`", "",
              f"Hub `{p['hub']}`, cut {p['cut']}: trained on {p['train_granted']:,} granted loans ({p['train_granted_defaults']} defaults) "
              f"and {p['train_declined']:,} declined applications; the oracle on all {p['train_everyone']:,} applicants ({p['train_everyone_defaults']} defaults). "
              "Test window: " + ", ".join(f"{names[g]} {v['n']:,} ({v['defaults']} defaults)" for g, v in p["test_applicants"].items() if g in names) + ".", ""]
        for model, m in p["models"].items():
            L += [f"### {model}", "", "| way | population | AUC | Δ vs approved_only [95%] | gap closed [95%] | ECE | mean PD / default rate |",
                  "|---|---|---:|---|---|---:|---:|"]
            for g, pop in m["populations"].items():
                for way, w in pop["ways"].items():
                    delta = "—" if "diff" not in w else f"{w['diff']:+.4f} [{w['diff_ci95'][0]:+.4f}, {w['diff_ci95'][1]:+.4f}]"
                    closed = "—" if w.get("gap_closed") is None else f"{w['gap_closed']:+.0%} [{w['gap_closed_ci95'][0]:+.0%}, {w['gap_closed_ci95'][1]:+.0%}]"
                    L.append(f"| {way} | {names[g]} | {w['auc']:.4f} | {delta} | {closed} | {w['ece']:.4f} | {w['mean_pd']:.4f} / {pop['default_rate']:.4f} |")
            L += ["", "What the methods did: " + "; ".join(f"{k}: {v}" for k, v in m["reject_inference"].items()), ""]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=50_000)
    ap.add_argument("--policies", default="traditional,tech_aware")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.markdown_only:
        (args.out / "reject_inference.md").write_text(markdown(json.loads((args.out / "reject_inference.json").read_text())))
        return
    from riskmodel import config

    load0 = os.getloadavg()[0]
    result = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
              "threads": config.threads(), "firms": args.firms, "boot": args.boot, "policies": []}
    for policy in args.policies.split(","):
        result["policies"].append(run_policy(policy, args.firms, args.models.split(","), args.boot))
    result["load_average"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reject_inference.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "reject_inference.md").write_text(markdown(result))
    print((args.out / "reject_inference.md").read_text())


if __name__ == "__main__":
    main()
