"""Model quality on a generated 50,000-firm data hub, out-of-time test (issue 4, "Quality targets").

One process: generate the hub once (``--firms``, seed 0, default settings; cached in
``data/synthetic/bench-models-<firms>``, gitignored), then train the four models through
:func:`riskmodel.train.train_generated` (features built or read from the hub's cache, default
out-of-time cut: the last ~30% of labelled applications are the test) into a throwaway MLflow
store (SQLite in a temp directory). Each registered model is loaded back from MLflow and scored on
the same test rows; the AUC recomputed from the loaded model must equal the one the run logged.

Reported on the OOT test, per model: AUC, KS, Brier, ECE, AUC for firms under three years old
(``lifecycle_stage == "startup"``), bad rate by grade (and whether it rises with the grade, judged
on grades with >= 100 test rows, as ``riskmodel.evaluation.evaluate`` does), segments with >= 500
applications and AUC < 0.65 (which the run's segment table flags ``low_auc``), fit seconds.
Also the oracle AUC (true_pd from ``truth/``) on the same rows, and the targets:

* ``gbm_monotone`` AUC >= oracle AUC - 0.03;
* ``scorecard`` AUC within 0.015 of ``gbm_monotone``;
* the margin of each tech-flow model over ``financial_baseline``, overall and for startups, with a
  paired bootstrap 95% CI of the AUC difference (the same resampled test rows for both models);
* bad rate by grade monotone; every segment with >= 500 rows and AUC < 0.65 flagged.

    RISKMODEL_THREADS=1 .venv/bin/python benchmarks/bench_models.py

Writes ``benchmarks/results/models.json`` and ``benchmarks/results/models.md``. Timings are
wall-clock on a shared 2-core machine; the thread count and load average are recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("financial_baseline", "scorecard", "gbm_monotone", "gbm_additive")
TECH_FLOW = ("scorecard", "gbm_monotone", "gbm_additive")
TARGET_GAP_ORACLE = 0.03
TARGET_SCORECARD_GAP = 0.015
SEG_MIN_ROWS, SEG_MIN_AUC = 500, 0.65


APPROVAL_POLICY = "none"  # every application granted: the model comparison sees every applicant's outcome


def ensure_hub(out: Path, firms: int, seed: int) -> dict:
    """Generate the hub unless this generator version already wrote a complete one with these parameters.

    Approval policy ``none`` (generator 1.3.0 and later; before it every application was granted):
    the quality targets compare the models on every applicant. What a bank's approval policy does
    to them is measured by ``benchmarks/bench_reject_inference.py``."""
    from synthetic import GENERATOR_VERSION, GeneratorParams, generate

    params = GeneratorParams(firms=firms, seed=seed, approval_policy=APPROVAL_POLICY)
    manifest = out / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("generator_version") == GENERATOR_VERSION and m.get("parameters") == params.to_dict() and (out / "truth" / "truth.parquet").is_file():
            return {"status": "reused", "seconds": 0.0}
    t0 = time.perf_counter()
    generate(params, out)
    return {"status": "generated", "seconds": round(time.perf_counter() - t0, 2)}


def split_rows(data_dir: Path, cut: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled train and test rows exactly as ``train_generated`` builds them (features from its cache)."""
    from riskmodel import dataset

    ls = dataset.load_labelled(data_dir, cut=pd.Timestamp(cut))
    assert ls.info.cache_status == "hit", ls.info
    return ls.train.reset_index(drop=True), ls.test.reset_index(drop=True)


def feature_ceiling(train: pd.DataFrame, test: pd.DataFrame, features: list[str], truth: pd.Series) -> dict:
    """How much of the true PD the features can reveal at all (a diagnostic, never a model).

    LightGBM regression of logit(true_pd) on the model features, fitted on the training rows before
    a validation cut (the last 25% of training dates, the OOT test untouched), boosting rounds
    chosen by early stopping on the validation rows. With the noise-free target the estimate of
    E[true logit | features] is close to the best any model of these features could learn from
    default labels; its test AUC against the observed defaults is the ceiling for our models."""
    import lightgbm as lgb

    from riskmodel import config
    from riskmodel import evaluation as ev

    fit, val, vcut = ev.oot_split(train, "application_date", None, 0.25)
    def z(df):
        p = df["application_id"].map(truth).to_numpy(dtype="float64")
        return np.log(p / (1 - p))
    params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
              "num_threads": config.threads(), "deterministic": True, "seed": 0, "verbosity": -1}
    dfit = lgb.Dataset(fit[features].to_numpy("float64"), z(fit))
    dval = lgb.Dataset(val[features].to_numpy("float64"), z(val), reference=dfit)
    b = lgb.train(params, dfit, 3000, valid_sets=[dval], callbacks=[lgb.early_stopping(100, verbose=False)])
    pt = b.predict(test[features].to_numpy("float64"), num_iteration=b.best_iteration)
    pv = b.predict(val[features].to_numpy("float64"), num_iteration=b.best_iteration)
    y = test["default_12m"].to_numpy()
    st = (test["lifecycle_stage"].astype("string") == "startup").to_numpy()
    return {
        "auc": round(ev.auc(y, pt), 4),
        "auc_startup": round(ev.auc(y[st], pt[st]), 4),
        "validation_cut": str(vcut.date()),
        "rounds": int(b.best_iteration),
        "r2_validation": round(1 - float(np.mean((pv - z(val)) ** 2) / np.var(z(val))), 4),
    }


def grade_reversals(table: list[dict]) -> list[dict]:
    """Adjacent judged grades whose bad rate falls, with a one-sided Fisher exact p-value (is the
    better grade's bad rate really higher?). A 1-default reversal in grades holding a few defaults
    is noise; p < 0.05 would be a real ranking fault."""
    from scipy.stats import fisher_exact

    judged = [g for g in table if g["judged"]]
    out = []
    for a, b in zip(judged[:-1], judged[1:]):
        if b["bad_rate"] < a["bad_rate"]:
            _, pval = fisher_exact([[a["bads"], a["count"] - a["bads"]], [b["bads"], b["count"] - b["bads"]]], alternative="greater")
            out.append({"better": a["grade"], "worse": b["grade"], "bads": [a["bads"], b["bads"]], "counts": [a["count"], b["count"]], "p_value": round(float(pval), 4)})
    return out


def vs_baseline(y: np.ndarray, p: np.ndarray, baseline: np.ndarray, n_boot: int) -> dict:
    """AUC difference against the baseline with its paired bootstrap 95% CI
    (:func:`riskmodel.evaluation.paired_bootstrap`, seed 0), rounded for the results file."""
    from riskmodel.evaluation import paired_bootstrap

    r = paired_bootstrap(y, p, baseline, n_boot=n_boot, seed=0)
    return {
        "diff": round(r["diff"], 4),
        "ci95": [round(v, 4) for v in r["ci95"]],
        "share_positive": round(r["share_positive"], 4),
        "n_boot": r["n_boot"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the AUC-difference CIs")
    ap.add_argument("--data", type=Path, default=None, help="hub directory (default data/synthetic/bench-models-<firms>)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite models.md from an existing models.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.markdown_only:
        (args.out / "models.md").write_text(markdown(json.loads((args.out / "models.json").read_text())))
        return

    data_dir = args.data or ROOT / "data" / "synthetic" / f"bench-models-{args.firms}"
    load_start = os.getloadavg()
    hub = ensure_hub(data_dir, args.firms, args.seed)
    print(f"hub {data_dir}: {hub}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlruns.db'}"
        from riskmodel import config, tracking
        from riskmodel import evaluation as ev
        from riskmodel.train import train_generated

        tracking.configure()  # migrate the fresh store outside the timings
        summaries, preds, models = {}, {}, {}
        for name in MODELS:
            t0 = time.perf_counter()
            s = train_generated(data_dir, name, "bench-models", artifact_location=str(Path(tmp) / "artifacts"))
            s["seconds_wall"] = round(time.perf_counter() - t0, 2)
            summaries[name] = s
            print(f"{name}: test AUC {s['metrics']['test_auc']:.4f}, fit {s['seconds']['seconds_fit']:.1f}s", flush=True)
        client = tracking.client()
        cut = client.get_run(summaries["scorecard"]["run_id"]).data.params["cut_date"]
        cache_status = {n: client.get_run(summaries[n]["run_id"]).data.params.get("features_cache") for n in MODELS}
        train, test = split_rows(data_dir, cut)
        gm_features = client.get_run(summaries["gbm_monotone"]["run_id"]).data.params.get("n_features")
        y = test["default_12m"].to_numpy(dtype="int64")
        startup = (test["lifecycle_stage"].astype("string") == "startup").to_numpy()
        for name in MODELS:
            cm, _, _ = tracking.load_credit_model(summaries[name]["model_uri"])
            models[name] = cm
            preds[name] = cm.predict_pd(test)
            logged = summaries[name]["metrics"]["test_auc"]
            again = ev.auc(y, preds[name])
            assert len(y) == summaries[name]["n_test"] and abs(again - logged) < 1e-6, (name, again, logged)

    truth = ev.load_truth(data_dir)
    true_pd = test["application_id"].map(truth.set_index("application_id")["true_pd"]).to_numpy(dtype="float64")
    oracle = ev.auc(y, true_pd)
    oracle_startup = ev.auc(y[startup], true_pd[startup])
    ceiling = feature_ceiling(train, test, list(models["gbm_monotone"].features), truth.set_index("application_id")["true_pd"])
    assert int(gm_features) == len(models["gbm_monotone"].features)

    per_model = {}
    for name in MODELS:
        s, cm, p = summaries[name], models[name], preds[name]
        m = ev.binary_metrics(y, p)
        grades = cm.master_scale.grade(p)
        gtab, mono = ev.bad_rate_by_grade(grades, y, p, order=list(cm.master_scale.labels), min_count=100, min_expected_bads=5)
        seg = ev.segment_metrics(test, y, p, min_rows=SEG_MIN_ROWS, min_auc=SEG_MIN_AUC)
        big_low = seg[(seg["count"] >= SEG_MIN_ROWS) & (seg["auc"] < SEG_MIN_AUC)]
        flagged_in_run = {(r["segment"], r["value"]) for r in s["low_auc_segments"]}
        per_model[name] = {
            "n_features": s["n_features"],
            "auc": round(m["auc"], 4),
            "ks": round(m["ks"], 4),
            "brier": round(m["brier"], 5),
            "ece": round(m["ece"], 5),
            "mean_pd": round(m["mean_pd"], 4),
            "auc_startup": round(ev.auc(y[startup], p[startup]), 4),
            "gap_to_oracle": round(oracle - m["auc"], 4),
            "grades_monotone": bool(mono),
            "grade_reversals": grade_reversals([
                {"grade": r.grade, "count": int(r.count), "bads": int(r.bads), "bad_rate": float(r.bad_rate), "judged": bool(r.judged)}
                for r in gtab.itertuples()
            ]),
            "gap_to_feature_ceiling": round(ceiling["auc"] - m["auc"], 4),
            "grades_monotone_logged": bool(s["metrics"].get("grades_monotone", float("nan")) == 1.0),
            "bad_rate_by_grade": [
                {"grade": r.grade, "count": int(r.count), "bads": int(r.bads), "bad_rate": round(float(r.bad_rate), 4), "judged": bool(r.judged)}
                for r in gtab.itertuples()
            ],
            "low_auc_segments": [
                {"segment": r.segment, "value": r.value, "count": int(r.count), "auc": round(float(r.auc), 4), "flagged_in_run": (r.segment, r.value) in flagged_in_run}
                for r in big_low.itertuples()
            ],
            "seconds_fit": s["seconds"]["seconds_fit"],
            "seconds_run": s["seconds"].get("seconds_run"),
            "seconds_train_generated": s["seconds_wall"],
            "run_logged_test_auc": s["metrics"]["test_auc"],
        }
        if name in TECH_FLOW:
            b = preds["financial_baseline"]
            per_model[name]["vs_financial_baseline"] = {
                "overall": vs_baseline(y, p, b, args.boot),
                "startup": vs_baseline(y[startup], p[startup], b[startup], args.boot),
            }

    gm, sc = per_model["gbm_monotone"], per_model["scorecard"]
    targets = {
        "gbm_monotone_within_0.03_of_oracle": {"value": round(oracle - gm["auc"], 4), "limit": TARGET_GAP_ORACLE, "met": oracle - gm["auc"] <= TARGET_GAP_ORACLE},
        "scorecard_within_0.015_of_gbm_monotone": {"value": round(gm["auc"] - sc["auc"], 4), "limit": TARGET_SCORECARD_GAP, "met": gm["auc"] - sc["auc"] <= TARGET_SCORECARD_GAP},
        "tech_flow_beats_baseline_overall": {
            "value": {k: per_model[k]["vs_financial_baseline"]["overall"]["diff"] for k in TECH_FLOW},
            "met": all(per_model[k]["vs_financial_baseline"]["overall"]["ci95"][0] > 0 for k in TECH_FLOW),
            "rule": "lower end of the paired-bootstrap 95% CI of the AUC difference > 0",
        },
        "tech_flow_beats_baseline_startup": {
            "value": {k: per_model[k]["vs_financial_baseline"]["startup"]["diff"] for k in TECH_FLOW},
            "met": all(per_model[k]["vs_financial_baseline"]["startup"]["ci95"][0] > 0 for k in TECH_FLOW),
            "rule": "lower end of the paired-bootstrap 95% CI of the AUC difference > 0",
        },
        "bad_rate_rises_with_grade": {
            "value": {k: per_model[k]["grades_monotone"] for k in MODELS},
            "met": all(per_model[k]["grades_monotone"] for k in MODELS),
            "rule": "strict: non-decreasing over grades with >= 100 test rows (as the run logs grades_monotone)",
        },
        "no_significant_grade_reversal": {
            "value": {k: min([x["p_value"] for x in per_model[k]["grade_reversals"]], default=None) for k in MODELS},
            "met": all(x["p_value"] >= 0.05 for k in MODELS for x in per_model[k]["grade_reversals"]),
            "rule": "every fall in bad rate between adjacent judged grades has one-sided Fisher p >= 0.05 (smallest p shown)",
        },
        "low_auc_segments_flagged": {
            "value": {k: len(per_model[k]["low_auc_segments"]) for k in MODELS},
            "met": all(x["flagged_in_run"] for k in MODELS for x in per_model[k]["low_auc_segments"]),
        },
    }
    result = {
        "benchmark": "models",
        "command": f"RISKMODEL_THREADS={config.threads()} .venv/bin/python benchmarks/bench_models.py"
        + (f" --firms {args.firms}" if args.firms != 50_000 else "") + (f" --seed {args.seed}" if args.seed else ""),
        "threads": config.threads(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "firms": args.firms,
        "seed": args.seed,
        "hub": {"dir": str(data_dir.relative_to(ROOT)) if data_dir.is_relative_to(ROOT) else str(data_dir), **hub},
        "features_cache": cache_status,
        "cut_date": cut,
        "n_train": summaries["scorecard"]["n_train"],
        "train_bads": int(train["default_12m"].sum()),
        "n_test": int(len(y)),
        "test_bads": int(y.sum()),
        "test_bad_rate": round(float(y.mean()), 4),
        "n_test_startup": int(startup.sum()),
        "test_bads_startup": int(y[startup].sum()),
        "oracle_auc": round(oracle, 4),
        "oracle_auc_startup": round(oracle_startup, 4),
        "feature_ceiling": ceiling,
        "n_boot": args.boot,
        "models": per_model,
        "targets": targets,
        "all_targets_met": all(t["met"] for t in targets.values()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    (args.out / "models.md").write_text(markdown(result))
    print(json.dumps(targets, indent=2, default=str))


def markdown(r: dict) -> str:
    L = [
        "# Model quality on a generated hub (out-of-time test)",
        "",
        f"Produced by `{r['command']}` (threads: {r['threads']}; load average at start "
        f"{r['load_average_start'][0]}, end {r['load_average_end'][0]}); numbers from `models.json`.",
        "",
        f"Hub: `{r['hub']['dir']}` ({r['hub']['status']}; the same files as `riskmodel generate --firms {r['firms']} --seed {r['seed']} "
        f"--approval-policy {APPROVAL_POLICY} --out {r['hub']['dir']}`: every application granted). Models trained by `riskmodel.train.train_generated` (default out-of-time cut, features "
        "from the hub's cache) into a throwaway SQLite MLflow store, loaded back from the registry and scored on the test rows.",
        "",
        f"{r['firms']:,} firms, seed {r['seed']}; cut {r['cut_date']}: {r['n_train']:,} training and {r['n_test']:,} test "
        f"applications ({r['test_bads']} defaults, {r['test_bad_rate']:.2%}); startups (< 3 years) in test: "
        f"{r['n_test_startup']:,} ({r['test_bads_startup']} defaults). Oracle AUC (true PD on the same rows): "
        f"**{r['oracle_auc']:.4f}** (startups {r['oracle_auc_startup']:.4f}).",
        "",
        f"Feature ceiling: **{r['feature_ceiling']['auc']:.4f}** (startups {r['feature_ceiling']['auc_startup']:.4f}), the test AUC of "
        "LightGBM regressing the noise-free logit(true_pd) on the model features (training rows only, rounds chosen "
        f"on a validation cut at {r['feature_ceiling']['validation_cut']} inside the training period; validation R² "
        f"{r['feature_ceiling']['r2_validation']:.3f}): an estimate of the best AUC a model of these features can reach, since "
        "the true PD depends on latent technology, financial and health factors that the data show only with noise.",
        "",
        "| model | features | AUC | gap to oracle | gap to ceiling | KS | Brier | ECE | AUC startups | Δ AUC vs baseline [95% CI] | Δ AUC startups [95% CI] | grades monotone | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|:-:|---:|",
    ]
    for name, m in r["models"].items():
        vb = m.get("vs_financial_baseline")
        fmt = lambda d: f"{d['diff']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"  # noqa: E731
        L.append(
            f"| {name} | {m['n_features']} | {m['auc']:.4f} | {m['gap_to_oracle']:.4f} | {m['gap_to_feature_ceiling']:.4f} | {m['ks']:.4f} | {m['brier']:.5f} | {m['ece']:.5f} | "
            f"{m['auc_startup']:.4f} | {fmt(vb['overall']) if vb else '—'} | {fmt(vb['startup']) if vb else '—'} | "
            f"{'yes' if m['grades_monotone'] else 'NO'} | {m['seconds_fit']:.1f} |"
        )
    L += ["", "## Targets", "", "| target | value | met |", "|---|---|:-:|"]
    for k, t in r["targets"].items():
        v = t["value"]
        v = ", ".join(f"{a}: {b}" for a, b in v.items()) if isinstance(v, dict) else f"{v} (limit {t.get('limit')})"
        L.append(f"| {k} | {v} | {'yes' if t['met'] else 'NO'} |")
    t = r["targets"]["gbm_monotone_within_0.03_of_oracle"]
    if not t["met"]:
        c, gm = r["feature_ceiling"]["auc"], r["models"]["gbm_monotone"]["auc"]
        L += ["", f"**Oracle target missed**: gbm_monotone is {r['oracle_auc'] - gm:.4f} below the oracle. The feature ceiling "
              f"itself is {r['oracle_auc'] - c:.4f} below it" + (" (more than 0.03), so no model of the current feature matrix can be "
              "expected to meet this target; closing it needs features that reveal more of the latent state (feature layer), not model tuning."
              if r['oracle_auc'] - c > TARGET_GAP_ORACLE else ".")
              + f" gbm_monotone is {c - gm:.4f} below the ceiling: what remains for estimation from {r['n_train']:,} training "
              f"applications and their {r['train_bads']} defaults."]
    L += ["", f"Bootstrap: {r['n_boot']} paired resamples of the test rows (startups resampled within startups; `riskmodel.evaluation.paired_bootstrap`, seed 0).", ""]
    L += ["## Segments with >= 500 test applications and AUC < 0.65", ""]
    any_low = False
    for name, m in r["models"].items():
        for s in m["low_auc_segments"]:
            any_low = True
            L.append(f"- {name}: {s['segment']} = {s['value']} ({s['count']} rows), AUC {s['auc']:.4f}, flagged `low_auc` in the run's segments.csv: {'yes' if s['flagged_in_run'] else 'NO'}")
    if not any_low:
        L.append("- none for any model")
    L += ["", "## Bad rate by grade (test; judged: grades with >= 100 rows)", ""]
    for name, m in r["models"].items():
        cells = ", ".join(f"{g['grade']}: {g['bad_rate']:.2%} ({g['count']})" + ("" if g["judged"] else "*") for g in m["bad_rate_by_grade"])
        L.append(f"- {name}: {cells}")
    L += ["", "(*) fewer than 100 rows: listed, not judged.", "", "Falls in bad rate between adjacent judged grades (one-sided Fisher exact p):", ""]
    falls = [(name, x) for name, m in r["models"].items() for x in m["grade_reversals"]]
    for name, x in falls:
        L.append(f"- {name}: {x['better']} {x['bads'][0]}/{x['counts'][0]} vs {x['worse']} {x['bads'][1]}/{x['counts'][1]}, p = {x['p_value']:.3f}")
    if not falls:
        L.append("- none")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
