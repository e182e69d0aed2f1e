"""The end-to-end demo a new user runs first (``make demo``): a risk analyst's whole path.

generate data -> build features point-in-time -> train every model out of time -> compare them
against the financial-only baseline -> promote the best technology-flow model to ``champion`` ->
score the applications that have no outcome yet -> write the reviewer report. Its models are
registered as ``demo-<model>`` (:data:`DEMO_MODEL_PREFIX`), so the demo never touches an alias
(``riskmodel-<model>@champion``) that other work scores with, even in a shared store. Each step calls the
same library function the CLI command of that step calls; this module only sequences them, and
measures what the comparison needs: each registered model is loaded back from MLflow and scored on
the out-of-time test rows, and its AUC uplift over the baseline gets a paired bootstrap 95%
interval (:func:`riskmodel.evaluation.paired_bootstrap`), overall and for firms under three years.

The generated hub has the default approval policy, so its out-of-time test rows are the loans the
bank granted. Because the data is generated, the demo also compares the models through the door:
on every applicant of the test window, the declined ones included, with the outcome the
generator's truth knows (generated data only), overall and for first applications of firms under
three years (首贷), the applicants the policy declines most.

The default size (:data:`DEFAULT_FIRMS`) is chosen so that the out-of-time test window holds a few
hundred defaults through the door (171 among the granted loans at seed 0): with a few dozen, the
intervals are too wide to tell the models apart.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from features.contract import STARTUP, TARGET

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEMO_MODELS = ("financial_baseline", "scorecard", "gbm_monotone", "gbm_additive")
BASELINE = "financial_baseline"
DEFAULT_FIRMS = 50_000
N_BOOT = 1000
FEW_DEFAULTS = 250  # below this many test defaults the demo says its intervals are wide
#: the files the demo writes into its data folder (beside the hub's own files)
DEMO_OUTPUTS = ("features.parquet", "applications_to_score.parquet", "scores.parquet", "scores.rejects.parquet")


#: prefix of the registered models the demo trains and promotes (``demo-scorecard``, ...): the demo
#: never moves an alias of ``riskmodel-<model>``, the names ``riskmodel train`` registers, whatever
#: its store or experiment
DEMO_MODEL_PREFIX = "demo-"


def demo_model_name(model: str) -> str:
    """The registered-model name of a demo run of ``model``."""
    return f"{DEMO_MODEL_PREFIX}{model}"


def _manifest_matches(out: Path, firms: int, seed: int) -> bool:
    """True when ``out`` holds data this generator version wrote with these parameters (reuse it)."""
    from synthetic import GENERATOR_VERSION, GeneratorParams

    manifest = out / "manifest.json"
    if not manifest.is_file():
        return False
    meta = json.loads(manifest.read_text())
    return meta.get("generator_version") == GENERATOR_VERSION and meta.get("parameters") == GeneratorParams(firms=firms, seed=seed).to_dict()


def _finite(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _verdict(r: dict) -> str:
    """``beats`` (interval above 0), ``not_shown`` (includes 0), ``worse`` (below 0), ``no_data``."""
    lo, hi = r["ci95"]
    if r["n_boot"] == 0 or not (math.isfinite(lo) and math.isfinite(hi)):
        return "no_data"
    return "beats" if lo > 0 else ("worse" if hi < 0 else "not_shown")


def _rows(preds: dict, y, young, n_boot: int, seed: int) -> list[dict]:
    """Per model: AUC overall and on ``young``, and the paired-bootstrap uplift over the baseline on each."""
    from riskmodel import evaluation as ev

    base = preds[BASELINE]
    rows = []
    for model, p in preds.items():
        row = {"model": model, "auc": _finite(ev.auc(y, p)), "auc_young": _finite(ev.auc(y[young], p[young]))}
        if model != BASELINE:
            for key, mask in (("uplift", slice(None)), ("uplift_young", young)):
                b = ev.paired_bootstrap(y[mask], p[mask], base[mask], n_boot=n_boot, seed=seed)
                row[key] = {"diff": _finite(b["diff"]), "ci95": [_finite(v) for v in b["ci95"]], "n_boot": b["n_boot"], "verdict": _verdict(b)}
        rows.append(row)
    return rows


def uplift_table(runs: list[dict], test: pd.DataFrame, target: str = TARGET, n_boot: int = N_BOOT, seed: int = 0,
                 population: pd.DataFrame | None = None, truth: pd.DataFrame | None = None) -> dict:
    """Each model's out-of-time AUC and its uplift over the baseline, overall and for young firms.

    ``runs``: training summaries (``model``, ``model_uri``, ``metrics.test_auc``). Each model is
    loaded back from MLflow and scored on ``test`` (the out-of-time rows of its run); its AUC must
    equal the one the run logged. Uplift: :func:`riskmodel.evaluation.paired_bootstrap` of
    AUC(model) - AUC(baseline) with ``n_boot`` resamples and ``seed``.

    With ``population`` (every application of the test window with the bank's decisions,
    :meth:`riskmodel.dataset.LabelledSet.population`) and a ``truth`` holding outcomes, the same
    comparison through the door (``through_the_door``): every applicant whose 12 months have passed,
    with the truth's outcome, young meaning a first application of a firm under three years."""
    import numpy as np

    from riskmodel import dataset
    from riskmodel import evaluation as ev
    from riskmodel import tracking

    y = test[target].to_numpy(dtype="int64")
    young = (test["lifecycle_stage"].astype("string") == STARTUP).to_numpy(dtype=bool)
    preds, models = {}, {}
    for r in runs:
        cm, _, _ = tracking.load_credit_model(r["model_uri"])
        models[r["model"]] = cm
        preds[r["model"]] = p = np.asarray(cm.predict_pd(test), dtype="float64")
        logged = r["metrics"].get("test_auc")
        if logged is not None and abs(ev.auc(y, p) - logged) > 2e-6:
            raise RuntimeError(f"{r['model_uri']} loaded back gives test AUC {ev.auc(y, p):.6f}, the run logged {logged:.6f}: the registered model is not the one evaluated")
    rows = _rows(preds, y, young, n_boot, seed)
    ttd = None
    outcomes = ev.truth_outcomes(truth, population["application_id"]) if population is not None and len(population) else None
    if outcomes is not None and outcomes[1].any():
        pop = population.loc[outcomes[1]].reset_index(drop=True)
        y_pop = outcomes[0][outcomes[1]].astype("int64")
        first_young = dataset.population_groups(pop)["young_first"]
        declined = dataset.population_groups(pop)["rejected"]
        p_pop = {m: np.asarray(cm.predict_pd(pop), dtype="float64") for m, cm in models.items()}
        ttd = {"note": ev.TTD_NOTE, "n": int(y_pop.size), "defaults": int(y_pop.sum()), "n_declined": int(declined.sum()),
               "n_young": int(first_young.sum()), "defaults_young": int(y_pop[first_young].sum()),
               "young": "first application of a firm under three years", "models": _rows(p_pop, y_pop, first_young, n_boot, seed)}
    return {
        "baseline": BASELINE,
        "n_test": int(y.size),
        "test_defaults": int(y.sum()),
        "n_test_young": int(young.sum()),
        "test_defaults_young": int(y[young].sum()),
        "young": f"lifecycle_stage == {STARTUP!r} (firms under three years)",
        "bootstrap": {"n_boot": n_boot, "seed": seed, "interval": "percentile 95%, paired: both models on the same resampled test rows"},
        "models": rows,
        "through_the_door": ttd,
    }


def run_demo(
    out: str | Path = "data/synthetic/demo",
    *,
    firms: int = DEFAULT_FIRMS,
    seed: int = 0,
    experiment: str = "demo",
    report_dir: str | Path = "reports/demo",
    models: tuple[str, ...] = DEMO_MODELS,
    n_boot: int = N_BOOT,
    echo: Callable[[str], None] = log.info,
) -> dict:
    """Run the demo; returns a summary dict (paths, uplift table, champion, score counts, seconds per step)."""
    from features.files import atomic_output, check_outputs
    from features.tables import hub_paths, write_table
    from riskmodel import dataset, tracking
    from riskmodel import train as tr
    from riskmodel.scoring import score
    from synthetic import GeneratorParams, generate

    if BASELINE not in models or len(models) < 2:
        raise ValueError(f"the demo compares models with {BASELINE}; got {models}")
    out, report_dir = Path(out), Path(report_dir)
    # Before generating or training anything: every output the demo writes can be written and
    # overwrites neither a file of the hub nor another output.
    check_outputs({"--out": out, "--report-dir": report_dir}, directories=("--out", "--report-dir"))
    outputs = {name: out / name for name in DEMO_OUTPUTS} | {"report": report_dir / "index.html"}
    check_outputs(outputs, hub_paths(out))
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    summary: dict = {"data": str(out), "firms": firms, "seed": seed}

    def lap(step: str, since: float) -> float:
        steps[step] = round(time.perf_counter() - since, 2)
        return time.perf_counter()

    t = time.perf_counter()
    if _manifest_matches(out, firms, seed):
        echo(f"[1/6] data: reusing {out} ({firms:,} firms, seed {seed})")
    else:
        echo(f"[1/6] data: generating {firms:,} firms (seed {seed}) into {out}")
        for name in DEMO_OUTPUTS:  # the previous demo's outputs of another dataset: generate keeps no foreign file
            (out / name).unlink(missing_ok=True)
        generate(GeneratorParams(firms=firms, seed=seed), out)
    t = lap("data", t)

    echo("[2/6] features: building the feature matrix point-in-time for every application")
    # Built once into the training cache: every training run and the report read it from there.
    ls = dataset.load_labelled(out)
    matrix = ls.features
    features_path = outputs["features.parquet"]
    with atomic_output(features_path) as tmp:
        write_table(matrix, tmp)
    ids = matrix["application_id"].astype("string")
    labelled = ids.isin(ls.labelled["application_id"]).to_numpy()
    # the bank's declined applications never get an outcome and need no score
    declined = ids.isin(ls.decisions.loc[ls.decisions["approved"].eq(False).fillna(False), "application_id"]).to_numpy()
    to_score = ~labelled & ~declined
    to_score_path = outputs["applications_to_score.parquet"]
    with atomic_output(to_score_path) as tmp:
        write_table(matrix.loc[to_score], tmp)
    summary |= {"features": str(features_path), "labelled": int(labelled.sum()), "declined": int(declined.sum()), "to_score": int(to_score.sum())}
    t = lap("features", t)

    # Without a writable cache (read-only data directory) each run reads the matrix written above.
    given = None if ls.info.cache_status in ("hit", "written") else features_path
    runs = []
    for i, model in enumerate(models):
        echo(f"[3/6] train {model} ({i + 1}/{len(models)}): out-of-time split, MLflow run, registered model")
        runs.append(tr.train_generated(out, model, experiment, features_file=given, registered_name=demo_model_name(model)))
        t = lap(f"train {model}", t)
    cuts = {r["cut_date"] for r in runs}
    if len(cuts) != 1:
        raise RuntimeError(f"the demo's runs were split at different dates {sorted(cuts)}; they must share one test window")
    summary["runs"] = [{k: r.get(k) for k in ("run_id", "model", "registered_name", "registered_version", "oracle_auc")} | {"test_auc": r["metrics"].get("test_auc")} for r in runs]

    # The same out-of-time test rows the runs were evaluated on.
    _, test, cut_ts = dataset.split(ls.labelled, cuts.pop())
    echo(f"[4/6] compare: each model against {BASELINE} on {len(test):,} out-of-time applications "
         f"({int(test[TARGET].sum())} defaults), paired bootstrap of the AUC difference ({n_boot} resamples)")
    from riskmodel import evaluation as ev

    uplift = uplift_table(runs, test.reset_index(drop=True), TARGET, n_boot=n_boot, population=ls.population(), truth=ev.load_truth(out))
    uplift["cut_date"] = str(cut_ts.date())
    oracle = [r["oracle_auc"] for r in runs if r.get("oracle_auc") is not None]
    uplift["oracle_auc"] = oracle[0] if oracle else None
    tech = [r for r in runs if r["model"] != BASELINE]
    best = max(tech, key=lambda r: r["metrics"].get("test_auc", float("-inf")))
    promoted = tracking.promote(best["registered_name"], best["registered_version"], "champion")
    summary["champion"] = promoted | {"model": best["model"], "run_id": best["run_id"]}
    for row in uplift["models"]:
        row["champion"] = row["model"] == best["model"]
    summary["uplift"] = uplift
    table = tracking.compare(experiment).astype(object)
    summary["compare"] = table.where(table.notna(), None).to_dict(orient="records")  # NaN -> null: strict JSON
    echo(f"      champion: {best['model']} ({promoted['uri']}), OOT AUC {best['metrics']['test_auc']:.3f}")
    t = lap("compare", t)

    scores_path = outputs["scores.parquet"]
    s = score(promoted["uri"], scores_path, features=to_score_path, rejects=outputs["scores.rejects.parquet"])
    summary["scoring"] = s.to_dict()
    echo(f"[5/6] scored {s.scored:,} of {s.rows_in:,} applications without an outcome yet, the declined ones left out ({s.rejected:,} rejected by the checks) -> {scores_path}")
    t = lap("score", t)

    from riskmodel.report import write_report

    index = write_report(best["run_id"], report_dir)["path"]  # write_report returns a summary dict
    summary["report"] = str(index)
    echo(f"[6/6] report for the champion run: {index}")
    lap("report", t)
    summary["seconds_by_step"] = steps
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["features_cache"] = ls.info.cache_status
    return summary


def _ci(u: dict | None) -> str:
    if not u or u["diff"] is None:
        return "-"
    lo, hi = u["ci95"]
    if lo is None:
        return f"{u['diff']:+.3f}"
    return f"{u['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _table_and_verdicts(models: list[dict], base: str, young: str, young_col: str, where_label: str = "") -> list[str]:
    """One comparison block: the table, then one plain sentence per model (``young``: how the young
    group is named in the sentences; ``where_label`` prefixes each sentence's place, e.g. through the door)."""
    cols = ["model", "AUC", f"uplift vs {base} [95% CI]", f"AUC {young_col}", f"uplift {young_col} [95% CI]"]
    rows = []
    for m in sorted(models, key=lambda m: (m["model"] == base, -(m["auc"] or 0))):
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        rows.append([m["model"] + (" *" if m.get("champion") else ""), fmt(m["auc"]),
                     "(baseline)" if m["model"] == base else _ci(m.get("uplift")), fmt(m["auc_young"]),
                     "(baseline)" if m["model"] == base else _ci(m.get("uplift_young"))])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()  # noqa: E731
    L = [line(cols), *(line(r) for r in rows), ""]
    where = {"uplift": f"overall{where_label}", "uplift_young": f"{young}{where_label}"}
    verdicts_text = []
    for m in models:
        if m["model"] == base:
            continue
        verdicts = {k: m[k]["verdict"] for k in where}
        if all(v == "beats" for v in verdicts.values()):
            verdicts_text.append(f"{m['model']} beats {base} overall and {young}{where_label} (both intervals above 0).")
            continue
        for k, v in verdicts.items():
            u = m[k]
            if v == "beats":
                verdicts_text.append(f"{m['model']} beats {base} {where[k]} (interval above 0).")
            elif v == "no_data":
                verdicts_text.append(f"{m['model']} cannot be compared with {base} {where[k]}: the test window holds no default there.")
            else:
                lo, hi = u["ci95"]
                how = "lies below 0: it is worse" if v == "worse" else "includes 0"
                verdicts_text.append(f"{m['model']} does NOT beat {base} {where[k]}: its interval [{lo:+.3f}, {hi:+.3f}] {how}.")
    return L, verdicts_text


def format_uplift(uplift: dict) -> str:
    """The comparison as text for the terminal: a table, then one plain sentence per model; then the
    same through the door when the data is generated."""
    base = uplift["baseline"]
    head = (f"Out-of-time test from {uplift['cut_date']}: {uplift['n_test']:,} applications, {uplift['test_defaults']} defaults; "
            f"firms under three years: {uplift['n_test_young']:,}, {uplift['test_defaults_young']} defaults.")
    if uplift.get("oracle_auc") is not None:
        head += f" Oracle AUC (true PD): {uplift['oracle_auc']:.3f}."
    table, verdicts = _table_and_verdicts(uplift["models"], base, "for firms under three years", "<3y")
    L = [head, "", *table, "* champion (best out-of-time AUC among the technology-flow models)"]
    b = uplift["bootstrap"]
    L.append(f"Uplift: AUC minus {base}'s AUC on the same rows; 95% interval from a paired bootstrap of the test rows ({b['n_boot']} resamples, seed {b['seed']}).")
    L += ["", *verdicts]
    if uplift["test_defaults"] < FEW_DEFAULTS:
        L.append(f"note: only {uplift['test_defaults']} defaults in the test window, so the intervals are wide; a larger hub (--firms) narrows them.")
    t = uplift.get("through_the_door")
    if t:
        L += ["", f"Through the door ({t['note']}): all {t['n']:,} applicants of the test window, {t['n_declined']:,} of them declined by the bank, "
                  f"{t['defaults']} defaults; first applications of firms under three years: {t['n_young']:,}, {t['defaults_young']} defaults.", ""]
        table, verdicts = _table_and_verdicts(t["models"], base, "for first applications of firms under three years", "<3y 1st", " through the door")
        L += [*table, *verdicts]
    return "\n".join(L)
