"""The validation of a tracked model: ``riskmodel validate`` and the report's Validation section.

:mod:`riskmodel.validation` holds the statistics; this module decides what they are run on, for a
model tracked in MLflow, and writes the result:

* **the sample**: the run's out-of-time test rows (rebuilt by :func:`riskmodel.dataset.run_labelled_set`),
  or a later labelled batch the user gives (a feature file joined with an outcomes file on
  ``application_id``, :func:`riskmodel.dataset.labelled_batch`: the monitoring case);
* **the AUC reference** of the ECB test: on a later batch, the out-of-time AUC logged at training
  (the AUC at initial validation), counted in the verdict; on the out-of-time rows themselves that
  comparison is 0 by construction, so the reference is the run's training AUC (the development
  sample), shown but not counted: an in-sample AUC is optimistic, more so for boosted trees;
* **the baseline** of the paired DeLong test: ``baseline`` (a model URI) when given, else the newest
  finished ``financial_baseline`` run of the same experiment trained on the same data (same data
  fingerprint and cut date, or the same two tables for bring-your-own runs);
* **migration**: each application's grade against its firm's previous grade: from ``previous``
  (earlier scores, ``riskmodel score --out``) when given, else, on the out-of-time rows, the
  model's grade of the firm's latest application before the cut (firms that applied in both
  windows). The latest previous row of a firm counts; rows without one are left out and counted;
* **stability**: PSI of the score and of every feature the model uses, and the concentration of
  grades, against the training population stored with the model (:mod:`riskmodel.monitoring`).

:func:`validate` runs it for the command: it writes ``validation.json`` and ``validation.html``
(``out``, through :mod:`features.files`) and logs metrics ``validation_<oot|batch>_*`` and both files
under ``validation/<oot|batch-HASH>/`` to the training run (:mod:`riskmodel.tracking`).
"""

from __future__ import annotations

import datetime
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import DATE, FIRM, TARGET
from riskmodel import evaluation as ev
from riskmodel import validation as va
from riskmodel.errors import UserError

log = logging.getLogger(__name__)

OOT, BATCH = "out_of_time", "batch"
BASELINE_MODEL = "financial_baseline"
TEST_NAMES = {
    "auc_vs_initial": "AUC against the reference AUC (ECB)",
    "auc_vs_baseline": "AUC against the financial baseline (paired DeLong)",
    "jeffreys": "Jeffreys test of the PD (ECB)",
    "binomial": "binomial test, independent defaults",
    "binomial_correlated": "binomial test with asset correlation",
    "hosmer_lemeshow": "Hosmer-Lemeshow",
    "spiegelhalter": "Spiegelhalter",
    "concentration_cv": "concentration across grades (ECB)",
    "psi": "population stability (PSI)",
}
_VERDICT_CODE = {va.NA: -1, va.GREEN: 0, va.YELLOW: 1, va.RED: 2}


@dataclass
class ModelValidation:
    """A validation battery run on one labelled sample of a tracked model, with what it was run on.

    ``model``: uri, name, version, run_id, experiment, kind; ``sample``: kind (``out_of_time`` or
    ``batch``), description, rows, defaults, dates, files; ``references``: the AUC reference, the
    baseline, the migration source and the training reference used; ``notes``: tests left out and why."""

    result: va.ValidationResult
    model: dict
    sample: dict
    references: dict
    notes: list[str] = field(default_factory=list)
    feature_names: dict = field(default_factory=dict)  # feature -> Chinese name (catalog), for the page

    @property
    def verdict(self) -> str:
        return self.result.verdict

    @property
    def tag(self) -> str:
        """``oot``, or ``batch-<hash of the two files>``: the artifact folder under ``validation/``."""
        return "oot" if self.sample["kind"] == OOT else f"batch-{self.sample['fingerprint']}"

    def counts(self) -> dict:
        """How many counted tests are green, yellow, red and n/a."""
        counted = self.result.summary.loc[self.result.summary["in_verdict"], "light"]
        return {lt: int((counted == lt).sum()) for lt in (va.GREEN, va.YELLOW, va.RED, va.NA)}

    def to_dict(self) -> dict:
        """Strict JSON (``json.dumps(..., allow_nan=False)`` works): the model, sample, references,
        notes and counts, then every table of :meth:`riskmodel.validation.ValidationResult.to_dict`."""
        head = va._jsonable({"model": self.model, "sample": self.sample, "references": self.references, "notes": self.notes, "counts": self.counts()})
        return {**head, **self.result.to_dict()}

    def metrics(self) -> dict:
        """The headline numbers as MLflow metrics ``validation_<oot|batch>_*`` (None when undefined)."""
        r = self.result
        d, port, conc = r.discrimination, r.portfolio, r.concentration
        c = self.counts()
        m = {
            "verdict": _VERDICT_CODE[r.verdict], "red": c[va.RED], "yellow": c[va.YELLOW],
            "rows": self.sample["rows"], "defaults": self.sample["defaults"],
            "auc": d["auc"], "auc_ci_low": d["auc_ci_low"], "auc_ci_high": d["auc_ci_high"], "gini": d["gini"],
            "ks": d["ks"], "accuracy_ratio": d["accuracy_ratio_cap"],
            "jeffreys_p": port["jeffreys_p"], "binomial_rho_p": port["binomial_rho_p"],
            "hosmer_lemeshow_p": port["hosmer_lemeshow"]["p_value"], "spiegelhalter_p": port["spiegelhalter"]["p_value"],
            "hhi": conc["hhi"], "concentration_p": conc.get("p_value"),
        }
        if "auc_vs_initial" in d:
            m["auc_vs_initial_p"] = d["auc_vs_initial"]["p_value"]
        if "auc_vs_baseline" in d:
            m["auc_vs_baseline_diff"] = d["auc_vs_baseline"]["difference"]
            m["auc_vs_baseline_p"] = d["auc_vs_baseline"]["p_a_worse"]
        if r.psi is not None and len(r.psi):
            score = r.psi[r.psi["variable"] == "score"]
            if len(score):
                m["psi_score"] = float(score["psi"].iloc[0])
            feats = r.psi.loc[r.psi["variable"] != "score", "psi"]
            if feats.notna().any():
                m["psi_feature_max"] = float(feats.max())
        if r.migration is not None:
            m |= {"migration_pairs": r.migration["n_pairs"], "mwb_upper": r.migration["mwb_upper"], "mwb_lower": r.migration["mwb_lower"]}
        prefix = "validation_oot_" if self.sample["kind"] == OOT else "validation_batch_"
        return {prefix + k: v for k, v in m.items()}


# --------------------------------------------------------------------------------------------
# What the battery runs on
# --------------------------------------------------------------------------------------------


def _date_range(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    if DATE not in frame.columns or not len(frame):
        return None, None
    d = pd.to_datetime(frame[DATE], errors="coerce")
    return (str(d.min().date()), str(d.max().date())) if d.notna().any() else (None, None)


def _registered_uri(info: dict) -> str:
    """``models:/NAME/VERSION`` of the model a training run registered, else ``runs:/RUN/model``."""
    from riskmodel import tracking

    name, version = info["tags"].get("riskmodel.registered_name"), info["tags"].get("riskmodel.registered_version")
    return f"models:/{name}/{version}" if name and version else f"runs:/{info['run_id']}/{tracking.MODEL_NAME_IN_RUN}"


def _same_data(params: dict) -> dict:
    """The parameters that say a run was trained on the same rows as a run with ``params``."""
    if params.get("source") == "byo":
        return {"source": "byo", "manifest_hash": params.get("manifest_hash", "")}
    key = "data_fingerprint" if params.get("data_fingerprint") else "manifest_hash"
    return {key: params.get(key, ""), "cut_date": params.get("cut_date", "")}


def find_baseline(info: dict) -> dict | None:
    """The newest finished :data:`BASELINE_MODEL` run of ``info``'s experiment trained on the same
    data (:func:`_same_data`), other than ``info``'s own run; None when there is none."""
    from riskmodel import tracking

    same = {k: v for k, v in _same_data(info["params"]).items() if v}
    runs = [r for r in tracking.find_runs(info["experiment"], {"model": BASELINE_MODEL, **same}) if r["run_id"] != info["run_id"]]
    return runs[0] if runs else None


def _baseline_pd(info: dict, frame: pd.DataFrame, baseline: str | None, notes: list[str]) -> tuple[np.ndarray | None, dict | None]:
    """PDs of the baseline model on ``frame``, and what the baseline was (None, None without one)."""
    from riskmodel import tracking

    if baseline is None:
        if info["params"].get("model") == BASELINE_MODEL:
            notes.append(f"no baseline comparison: the model is the {BASELINE_MODEL} itself")
            return None, None
        found = find_baseline(info)
        if found is None:
            notes.append(f"no baseline comparison: experiment {info['experiment']!r} has no finished {BASELINE_MODEL} run on the same data "
                         "(train one, or pass --baseline URI)")
            return None, None
        uri, run_id, how = _registered_uri(found), found["run_id"], "found in the experiment (same data)"
    else:
        uri, run_id, how = baseline, tracking.run_of_model(baseline), "given"
    cm, name, version = tracking.load_credit_model(uri)
    missing = [c for c in cm.used_features if c not in frame.columns]
    if missing:
        msg = f"the baseline {uri} needs {len(missing)} feature column(s) the sample lacks: {missing[:10]}"
        if baseline is not None:
            raise UserError(f"--baseline: {msg}")
        notes.append(f"no baseline comparison: {msg}")
        return None, None
    return cm.predict_pd(frame), {"uri": uri, "run_id": run_id, "name": name, "version": version, "how": how}


def _previous_grades(frame: pd.DataFrame, previous: pd.DataFrame, labels: list[str], source: str) -> np.ndarray:
    """Each row's previous grade: the grade of its firm's latest row in ``previous`` (None when the
    firm has none)."""
    from riskmodel.monitoring import latest_per_firm

    for col in (FIRM, "grade"):
        if col not in previous.columns:
            raise UserError(f"{source}: required column {col!r} is missing (give a scores file written by `riskmodel score`)")
    prev = latest_per_firm(previous.assign(**{FIRM: previous[FIRM].astype("string")}))
    unknown = sorted(set(prev["grade"].dropna().astype(str)) - set(labels))
    if unknown:
        raise UserError(f"{source}: grades {unknown[:5]} are not on the model's master scale {labels}; compare scores of the same model")
    by_firm = dict(zip(prev[FIRM], prev["grade"].astype(object)))
    return np.array([by_firm.get(f) for f in frame[FIRM].astype("string")], dtype=object)


def _psi_table(ref: dict, credit_model, frame: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    from riskmodel.monitoring import psi_against_reference

    st, ftab = psi_against_reference(ref, score, frame, credit_model.used_features, credit_model.catalog)
    value = float(st["psi"].sum())
    rows = pd.DataFrame({"variable": ["score"], "psi": [value], "band": [ev.psi_band(value)]})
    return pd.concat([rows, ftab.rename(columns={"feature": "variable"})[["variable", "psi", "band"]]], ignore_index=True)


def assess(
    credit_model,
    info: dict,
    model: dict,
    frame: pd.DataFrame,
    target: str,
    sample: dict,
    *,
    previous: pd.DataFrame | None = None,
    previous_source: str | None = None,
    baseline: str | None = None,
) -> ModelValidation:
    """Run the battery on the labelled rows ``frame`` (features and the 0/1 ``target``) of the model
    ``credit_model`` trained in run ``info`` (``tracking.run_info``); ``sample["kind"]`` says whether
    they are the run's out-of-time rows or a later batch, which decides the AUC reference (module
    doc). ``previous``: earlier grades of the same firms (``firm_id``, ``grade``, optionally
    ``application_date``), described by ``previous_source``. ``baseline``: a baseline model URI
    (default: found in the experiment)."""
    from riskmodel import monitoring, tracking

    notes: list[str] = []
    labels = list(credit_model.master_scale.labels)
    pred = credit_model.predict_grades(frame)
    y = frame[target].to_numpy(dtype="int64")
    p, score, grades = pred["pd"].to_numpy(), pred["score"].to_numpy(), pred["grade"].to_numpy(dtype=object)
    sample = {**sample, "rows": len(frame), "defaults": int(y.sum()), "default_rate": float(y.mean()) if len(y) else None}
    references: dict = {}
    if len(y) and y.min() == y.max():
        notes.append(f"discrimination not tested: the sample holds only {'defaults' if y[0] else 'non-defaults'}, so AUC, KS "
                     "and the CAP are undefined; the verdict rests on calibration and stability alone")

    metrics = info["metrics"]
    key = "train_auc" if sample["kind"] == OOT else "test_auc"
    auc_initial = metrics.get(key)
    if auc_initial is not None and np.isfinite(auc_initial):
        references["auc"] = {
            "metric": key, "value": float(auc_initial), "in_verdict": sample["kind"] != OOT,
            "what": ("the run's training AUC (development sample, in-sample: shown, not counted)" if sample["kind"] == OOT
                     else "the run's out-of-time AUC at training (initial validation)"),
        }
    else:
        auc_initial = None
        notes.append(f"no AUC reference: run {info['run_id']} has no {key} metric")

    pd_baseline, references["baseline"] = _baseline_pd(info, frame, baseline, notes)

    grades_previous = None
    if previous is not None:
        if FIRM not in frame.columns:
            notes.append(f"no migration: the sample has no {FIRM} column to match firms by")
        else:
            grades_previous = _previous_grades(frame, previous, labels, previous_source or "--previous")
            references["migration"] = {"source": previous_source, "pairs": int(sum(g is not None for g in grades_previous))}
            if not references["migration"]["pairs"]:
                notes.append(f"no migration: no firm of the sample has a previous grade in {previous_source}")
                grades_previous, references["migration"] = None, None
    else:
        notes.append("no migration: no previous grades (pass --previous SCORES)")

    psi = reference_grades = None
    try:
        ref = monitoring.load_training_reference(f"runs:/{info['run_id']}/{tracking.MODEL_NAME_IN_RUN}")
    except UserError as exc:
        notes.append(f"no PSI or concentration test: {exc}")
    else:
        psi = _psi_table(ref, credit_model, frame, score)
        reference_grades = ref["reference"].get("grade_shares") or None
        references["training"] = {"run_id": ref["run_id"], "rows": ref["reference"].get("n_train")}

    result = va.validation_battery(
        y, p, grades, labels, auc_initial=auc_initial, auc_initial_in_verdict=sample["kind"] != OOT,
        pd_baseline=pd_baseline, grades_previous=grades_previous, reference_grades=reference_grades, psi=psi,
    )
    names = {}
    if credit_model.catalog is not None and {"name", "name_zh"} <= set(credit_model.catalog.columns):
        names = dict(zip(credit_model.catalog["name"].astype(str), credit_model.catalog["name_zh"].astype(str)))
    return ModelValidation(result, model, sample, references, notes, names)


def describe_model(info: dict, uri: str | None = None, name: str | None = None, version: str | None = None) -> dict:
    """What a validation says about the model: its URI (default: the version the run registered),
    registered name and version (default: the run's tags), run, experiment and kind."""
    tags = info["tags"]
    return {"uri": uri or _registered_uri(info), "name": name if name is not None else tags.get("riskmodel.registered_name", ""),
            "version": version if version is not None else tags.get("riskmodel.registered_version", ""),
            "run_id": info["run_id"], "experiment": info["experiment"], "kind": info["params"].get("model", "")}


def out_of_time(credit_model, info: dict, model: dict, train: pd.DataFrame, test: pd.DataFrame, target: str, *, baseline: str | None = None) -> ModelValidation:
    """:func:`assess` on a run's out-of-time rows ``test`` (for a bring-your-own run: its test table);
    the previous grades for migration are the model's grades of the firms' latest applications in
    ``train`` (before the cut), when the rows carry a firm_id."""
    first, last = _date_range(test)
    if info["params"].get("source") == "byo":  # the user's own test table: split as the user split it, maybe not by time
        what = f"the test table of run {info['run_id'][:8]} ({Path(info['params'].get('data', '|').split('|')[-1].strip()).name})"
    else:
        what = f"the out-of-time test rows of run {info['run_id'][:8]}"
    sample = {"kind": OOT, "description": what, "first_date": first, "last_date": last, "cut_date": info["params"].get("cut_date")}
    prev = source = None
    if FIRM in train.columns:
        prev = train[[c for c in (FIRM, DATE) if c in train.columns]].assign(grade=credit_model.predict_grades(train)["grade"].to_numpy())
        source = "each firm's latest application before the cut, graded by the model"
    return assess(credit_model, info, model, test, target, sample, previous=prev, previous_source=source, baseline=baseline)


def validate_run(
    run: str | None = None,
    model: str | None = None,
    *,
    features: str | Path | None = None,
    outcomes: str | Path | None = None,
    previous: str | Path | None = None,
    baseline: str | None = None,
    data: str | Path | None = None,
) -> ModelValidation:
    """The validation of a tracked model (``run``: a training run id, or ``model``: a model URI) on
    its out-of-time rows, or on ``features`` joined with ``outcomes`` (module doc)."""
    from riskmodel import dataset, tracking
    from riskmodel.monitoring import read_frame

    if (run is None) == (model is None):
        raise UserError("give exactly one of --run RUN_ID or --model URI")
    if (features is None) != (outcomes is None):
        raise UserError("a later batch needs both --features FILE and --outcomes FILE (joined on application_id)")
    if features is not None and data is not None:
        raise UserError("--data applies to the run's own out-of-time rows; a batch is --features with --outcomes")
    run_id = run if run is not None else tracking.run_of_model(model)
    info = tracking.finished_run(run_id)
    uri = model if model is not None else _registered_uri(info)
    credit_model, name, version = tracking.load_credit_model(uri)
    described = describe_model(info, uri, name, version)
    if features is None:
        ls = dataset.run_labelled_set(info, data, catalog=credit_model.catalog)
        return out_of_time(credit_model, info, described, ls.train, ls.test, ls.target, baseline=baseline)
    target = info["params"].get("target") or TARGET
    feats, outs = read_frame(features, "--features"), read_frame(outcomes, "--outcomes")
    frame, counts = dataset.labelled_batch(feats, outs, target, (f"--features {features}", f"--outcomes {outcomes}"))
    missing = [c for c in credit_model.used_features if c not in frame.columns]
    if missing:
        raise UserError(f"--features {features}: {len(missing)} model feature column(s) missing: {missing[:10]}; build them with `riskmodel features`")
    first, last = _date_range(frame)
    sample = {"kind": BATCH, "description": f"{Path(features).name} joined with {Path(outcomes).name}", "first_date": first, "last_date": last,
              "features": str(features), "outcomes": str(outcomes), "fingerprint": dataset.file_hash([features, outcomes], n=12), **counts}
    prev = read_frame(previous, "--previous") if previous is not None else None
    return assess(credit_model, info, described, frame, target, sample, previous=prev,
                  previous_source=f"--previous {previous}" if previous is not None else None, baseline=baseline)


# --------------------------------------------------------------------------------------------
# Reading it: the terminal summary, the page section, the files
# --------------------------------------------------------------------------------------------


def _p(v) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.3g}" if v >= 0.001 else f"{v:.1e}"


def _num(v, digits: int = 4, sign: bool = False) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:{'+' if sign else ''}.{digits}f}"


def _pct(v, digits: int = 2) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}"


def _nan(v) -> float:
    return np.nan if v is None else float(v)


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def condensed_tests(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary condensed to one row per test and level kind: portfolio rows as they are; the
    per-grade rows of a test as one row (the smallest p-value, the worst light, the lights counted);
    the features' PSI as one row (the largest PSI, the worst band)."""
    rows = []
    for test, g in summary.groupby("test", sort=False):
        name = TEST_NAMES.get(test, test)
        if test == "psi":
            score, feats = g[g["level"] == "score"], g[g["level"] != "score"]
            for part, level in ((score, "score"), (feats, f"{len(feats)} features")):
                if len(part):
                    lights = part["light"].value_counts()
                    rows.append({"test": name, "level": level, "statistic": part["statistic"].max(), "p_value": np.nan,
                                 "light": va.worst_light(part["light"]), "counted": bool(part["in_verdict"].any()),
                                 "detail": ", ".join(f"{int(lights[lt])} {lt}" for lt in (va.GREEN, va.YELLOW, va.RED, va.NA) if lt in lights) if len(part) > 1 else ""})
            continue
        port, per = g[g["level"] == "portfolio"], g[g["level"] != "portfolio"]
        for _, r in port.iterrows():
            rows.append({"test": name, "level": "portfolio", "statistic": r["statistic"], "p_value": r["p_value"], "light": r["light"], "counted": bool(r["in_verdict"]), "detail": ""})
        if len(per):
            lights = per["light"].value_counts()
            worst = per.loc[per["p_value"].idxmin()] if per["p_value"].notna().any() else None
            rows.append({
                "test": name, "level": f"{len(per)} grades", "statistic": np.nan,
                "p_value": worst["p_value"] if worst is not None else np.nan, "light": va.worst_light(per["light"]),
                "counted": bool(per["in_verdict"].any()),
                "detail": ", ".join(f"{int(lights[lt])} {lt}" for lt in (va.GREEN, va.YELLOW, va.RED, va.NA) if lt in lights)
                + (f"; smallest p in {worst['level']}" if worst is not None else ""),
            })
    return pd.DataFrame(rows, columns=["test", "level", "statistic", "p_value", "light", "counted", "detail"])


def format_summary(mv: ModelValidation) -> str:
    """The readable terminal summary: what was validated, the verdict, then one block per section."""
    r, m, s = mv.result, mv.model, mv.sample
    d = r.discrimination
    c = mv.counts()
    out = [f"validation of {m['name'] or m['kind']} version {m['version']} ({m['uri']}; run {m['run_id'][:8]}, {m['kind']})"]
    span = f" from {s['first_date']} to {s['last_date']}" if s.get("first_date") else ""
    out.append(f"sample: {s['description']}: {s['rows']:,} applications{span}, {s['defaults']:,} defaults ({_pct(s['default_rate'])}%)")
    if s["kind"] == BATCH:
        out.append(f"        {s['without_outcome']:,} feature rows without an outcome left out; {s['outcomes_unmatched']:,} outcomes of applications not in the file")
    out.append(f"verdict: {r.verdict.upper()}  (counted tests: {c['green']} green, {c['yellow']} yellow, {c['red']} red, {c['n/a']} n/a)")
    out += ["", "discrimination",
            f"  AUC {_num(d['auc'])} [{_num(d['auc_ci_low'])}, {_num(d['auc_ci_high'])}] (DeLong {d['confidence']:.0%})   "
            f"Gini {_num(d['gini'])} [{_num(d['gini_ci_low'])}, {_num(d['gini_ci_high'])}]   KS {_num(d['ks'])}   AR (CAP) {_num(d['accuracy_ratio_cap'])}"]
    if "auc_vs_initial" in d:
        t, ref = d["auc_vs_initial"], mv.references["auc"]
        out.append(f"  vs {ref['metric']} {_num(ref['value'])}, {ref['what']}: S {_num(t['statistic'], 2)}  p {_p(t['p_value'])}  {t['light']}")
    if "auc_vs_baseline" in d:
        t, b = d["auc_vs_baseline"], mv.references["baseline"]
        out.append(f"  vs {BASELINE_MODEL} {b['uri']} (AUC {_num(t['auc_b'])}): difference {_num(t['difference'], sign=True)}, z {_num(t['statistic'], 2)}, "
                   f"p(worse than the baseline) {_p(t['p_a_worse'])}  {t['light']}")
    prm = r.parameters
    out += ["", f"calibration per grade (PD tested: {'the grade mean of the model PD' if prm['pd_source'] == 'mean_model_pd' else 'the master-scale PD'}; "
                f"correlated binomial with rho {prm['rho']:g}; Pluto-Tasche upper PD at {prm['gamma']:.0%})"]
    g = r.grades
    head = f"  {'grade':<6}{'n':>8}{'defaults':>9}{'DR %':>8}{'PD %':>8}   {'Jeffreys p':<17}{'binom-rho p':<17}{'binom p':>8}{'PT upper %':>12}"
    out.append(head)
    for _, row in g.iterrows():
        out.append(f"  {row['grade']:<6}{row['n']:>8,}{row['defaults']:>9,}{_pct(row['default_rate']):>8}{_pct(row['pd_tested']):>8}   "
                   f"{_p(row['jeffreys_p']):>7} {row['jeffreys_light']:<9}{_p(row['binomial_rho_p']):>7} {row['binomial_rho_light']:<9}"
                   f"{_p(row['binomial_p']):>8}{_pct(row['pt_upper_pd']):>12}")
    port = r.portfolio
    out.append(f"  {'all':<6}{port['n']:>8,}{port['defaults']:>9,}{_pct(port['default_rate']):>8}{_pct(port['pd_tested']):>8}   "
               f"{_p(port['jeffreys_p']):>7} {port['jeffreys_light']:<9}{_p(port['binomial_rho_p']):>7} {port['binomial_rho_light']:<9}{_p(port['binomial_p']):>8}")
    hl, sp = port["hosmer_lemeshow"], port["spiegelhalter"]
    out.append(f"  Hosmer-Lemeshow {_num(hl['statistic'], 2)} (df {hl['df']}) p {_p(hl['p_value'])} {hl['light']};  Spiegelhalter Z {_num(sp['statistic'], 2)} p {_p(sp['p_value'])} {sp['light']}")
    out += ["", "stability"]
    if r.psi is not None:
        score = r.psi[r.psi["variable"] == "score"].iloc[0]
        feats = r.psi[r.psi["variable"] != "score"].sort_values("psi", ascending=False, kind="mergesort", na_position="last")
        bands = feats["band"].value_counts()
        moved = ", ".join(f"{v} {p:.3f}" for v, p, b in zip(feats["variable"], feats["psi"], feats["band"]) if b in ("watch", "act"))
        out.append(f"  score PSI {score['psi']:.4f} ({score['band']}, {score['light']}) against the training population of run {mv.references['training']['run_id'][:8]}")
        out.append(f"  features: {int(bands.get('stable', 0))} stable, {int(bands.get('watch', 0))} watch, {int(bands.get('act', 0))} act (shown, not counted)"
                   + (f": {moved}" if moved else ""))
    conc = r.concentration
    line = f"  concentration: HHI {conc['hhi']:.3f}, HI {_num(conc['hi'], 3)}"
    if "p_value" in conc:
        line += f"; training HHI {conc['hhi_reference']:.3f}; ECB test p {_p(conc['p_value'])} {conc['light']}"
    out.append(line)
    if r.migration is not None:
        mg = r.migration
        out.append(f"  migration of {mg['n_pairs']:,} rows against {mv.references['migration']['source']}: unchanged {_pct(mg['share_unchanged'], 1)}%, "
                   f"matrix-weighted bandwidth down {_num(mg['mwb_upper'], 3)}, up {_num(mg['mwb_lower'], 3)}")
    flagged = r.summary[r.summary["in_verdict"] & r.summary["light"].isin([va.RED, va.YELLOW])]
    if len(flagged):
        out += ["", "counted tests that are not green:"]
        for _, row in flagged.iterrows():
            out.append(f"  {row['light']:<7}{TEST_NAMES.get(row['test'], row['test'])} ({row['level']}) p {_p(row['p_value'])}")
    for n in mv.notes:
        out.append(f"note: {n}")
    return "\n".join(out)


def validation_section(mv: ModelValidation) -> dict:
    """The Validation section's page data (``riskmodel/templates/report.html.j2``): KPIs, the tests
    condensed, discrimination with DeLong intervals, the CAP curve, the per-grade calibration table
    with the Jeffreys, binomial and Pluto-Tasche columns, portfolio tests, stability and migration."""
    from riskmodel import plots
    from riskmodel.pages import flag_rows, table_data

    r, d = mv.result, mv.result.discrimination
    kpis = [(r.verdict.upper(), "verdict"), (f"{_num(d['auc'], 3)} [{_num(d['auc_ci_low'], 3)}, {_num(d['auc_ci_high'], 3)}]", "AUC, DeLong 95%"),
            (f"{_num(d['gini'], 3)} [{_num(d['gini_ci_low'], 3)}, {_num(d['gini_ci_high'], 3)}]", "Gini, 95%"), (_num(d["ks"], 3), "KS"),
            (_num(d["accuracy_ratio_cap"], 3), "accuracy ratio (CAP)"), (f"{mv.sample['rows']:,} / {mv.sample['defaults']:,}", "rows / defaults")]
    disc = [{"measure": "AUC", "value": d["auc"], "ci_low": d["auc_ci_low"], "ci_high": d["auc_ci_high"], "p_value": np.nan, "light": "", "detail": f"DeLong standard error {_num(d['auc_se'])}"},
            {"measure": "Gini", "value": d["gini"], "ci_low": d["gini_ci_low"], "ci_high": d["gini_ci_high"], "p_value": np.nan, "light": "", "detail": "2 AUC - 1"},
            {"measure": "accuracy ratio (CAP)", "value": d["accuracy_ratio_cap"], "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "light": "", "detail": "equals the Gini"},
            {"measure": "KS", "value": d["ks"], "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "light": "", "detail": ""}]
    if "auc_vs_initial" in d:
        t, ref = d["auc_vs_initial"], mv.references["auc"]
        disc.append({"measure": f"AUC change vs {ref['metric']}", "value": _nan(t["auc_current"]) - t["auc_initial"], "ci_low": np.nan, "ci_high": np.nan,
                     "p_value": t["p_value"], "light": t["light"], "detail": f"reference {t['auc_initial']:.4f}: {ref['what']}; S = {_num(t['statistic'], 2)}"})
    if "auc_vs_baseline" in d:
        t, b = d["auc_vs_baseline"], mv.references["baseline"]
        half = _z(d["confidence"]) * t["se_difference"] if t["se_difference"] is not None and t["difference"] is not None else np.nan
        disc.append({"measure": f"AUC minus {BASELINE_MODEL}", "value": t["difference"], "ci_low": _nan(t["difference"]) - half,
                     "ci_high": _nan(t["difference"]) + half, "p_value": t["p_a_worse"], "light": t["light"],
                     "detail": f"{b['uri']} AUC {_num(t['auc_b'])}; z = {_num(t['statistic'], 2)}; p: the model is worse"})
    g = r.grades
    rho = f"binomial ρ={r.parameters['rho']:g} p"
    grades = pd.DataFrame({
        "grade": g["grade"], "n": g["n"], "defaults": g["defaults"], "DR %": g["default_rate"] * 100, "PD tested %": g["pd_tested"] * 100,
        "Jeffreys p": g["jeffreys_p"], "jeffreys_light": g["jeffreys_light"], rho: g["binomial_rho_p"], "binomial_rho_light": g["binomial_rho_light"],
        "binomial p": g["binomial_p"], "binomial_light": g["binomial_light"],
        f"DR {1 - r.parameters['yellow_below']:.1%} crit %": g["dr_crit_yellow"] * 100, f"DR {1 - r.parameters['red_below']:.1%} crit %": g["dr_crit_red"] * 100,
        f"Pluto-Tasche {r.parameters['gamma']:.0%} %": g["pt_upper_pd"] * 100,
    })
    p_cols = ("Jeffreys p", rho, "binomial p")
    port = r.portfolio
    ptab = pd.DataFrame([
        {"test": TEST_NAMES["jeffreys"], "statistic": np.nan, "p_value": port["jeffreys_p"], "light": port["jeffreys_light"], "detail": f"PD tested {_pct(port['pd_tested'])}%, default rate {_pct(port['default_rate'])}%"},
        {"test": TEST_NAMES["binomial_correlated"], "statistic": np.nan, "p_value": port["binomial_rho_p"], "light": port["binomial_rho_light"], "detail": f"rho {r.parameters['rho']:g}"},
        {"test": TEST_NAMES["binomial"], "statistic": np.nan, "p_value": port["binomial_p"], "light": port["binomial_light"], "detail": "shown, not counted"},
        {"test": TEST_NAMES["hosmer_lemeshow"], "statistic": port["hosmer_lemeshow"]["statistic"], "p_value": port["hosmer_lemeshow"]["p_value"], "light": port["hosmer_lemeshow"]["light"],
         "detail": f"{port['hosmer_lemeshow']['groups']} PD groups, df {port['hosmer_lemeshow']['df']}"},
        {"test": TEST_NAMES["spiegelhalter"], "statistic": port["spiegelhalter"]["statistic"], "p_value": port["spiegelhalter"]["p_value"], "light": port["spiegelhalter"]["light"], "detail": "Z"},
    ])
    conc = r.concentration
    ctab = pd.DataFrame([{"sample": "this sample", "hhi": conc["hhi"], "cv": conc["cv"], "hi": conc["hi"]}]
                        + ([{"sample": "training population", "hhi": conc["hhi_reference"], "cv": conc["cv_reference"], "hi": conc["hi_reference"]}] if "p_value" in conc else []))
    psi = None
    if r.psi is not None:
        top = pd.concat([r.psi.iloc[:1], r.psi.iloc[1:].sort_values("psi", ascending=False, kind="mergesort", na_position="last").head(15)], ignore_index=True)
        top.insert(1, "name_zh", [mv.feature_names.get(v, "") for v in top["variable"]])
        psi = table_data(top, digits={"psi": 4}, row_class=flag_rows("band", "act", "watch"))
    mig = None
    if r.migration is not None:
        counts = r.migration["counts"]
        keep = [g for g in counts.index if counts.loc[g].sum() or counts[g].sum()]
        mat = counts.loc[keep, keep].reset_index().rename(columns={"from": "from \\ to"})
        mig = {"table": table_data(mat, digits=dict.fromkeys(keep, 0)), "pairs": f"{r.migration['n_pairs']:,}", "unrated": f"{r.migration['n_unrated']:,}",
               "unchanged": _pct(r.migration["share_unchanged"], 1), "down": _num(r.migration["mwb_upper"], 3), "up": _num(r.migration["mwb_lower"], 3),
               "source": mv.references["migration"]["source"]}
    s = mv.sample
    span = f" from {s['first_date']} to {s['last_date']}" if s.get("first_date") else ""
    return {
        "verdict": r.verdict, "kpis": kpis,
        "sample": f"{s['description']}: {s['rows']:,} applications{span}, {s['defaults']:,} defaults",
        "tests": table_data(condensed_tests(r.summary), digits={"statistic": 3}, formats={"p_value": _p}),
        "discrimination": table_data(pd.DataFrame(disc), digits={"value": 4, "ci_low": 4, "ci_high": 4}, formats={"p_value": _p}),
        "cap": plots.plot_cap(r.cap, d["accuracy_ratio_cap"], s["default_rate"] or 0.0),
        "grade_plot": plots.plot_grade_calibration(r.grades),
        "grades": table_data(grades, digits={c: 3 for c in grades.columns if c.endswith("%")}, formats=dict.fromkeys(p_cols, _p),
                             colour_by={"Jeffreys p": "jeffreys_light", rho: "binomial_rho_light", "binomial p": "binomial_light"}, scroll=True),
        "portfolio": table_data(ptab, digits={"statistic": 3}, formats={"p_value": _p}),
        "psi": psi,
        "concentration": table_data(ctab, digits={"hhi": 4, "cv": 4, "hi": 4}),
        "concentration_test": (f"ECB test of 'no more concentrated than the training population': p {_p(conc['p_value'])}, {conc['light']}" if "p_value" in conc else None),
        "migration": mig,
        "parameters": (f"Lights: p ≥ {r.parameters['yellow_below']:g} green, p < {r.parameters['red_below']:g} red, yellow between; the verdict is the worst counted light. "
                       f"Asset correlation ρ = {r.parameters['rho']:g}; Pluto-Tasche at γ = {r.parameters['gamma']:g}; PD tested per grade: "
                       f"{'the mean model PD of its rows' if r.parameters['pd_source'] == 'mean_model_pd' else 'the master-scale PD'}."),
        "notes": list(mv.notes),
    }


def render_validation(mv: ModelValidation) -> str:
    """A page holding only the Validation section: the HTML ``riskmodel validate`` writes."""
    from riskmodel.pages import render_page

    m = mv.model
    page = {
        "title": f"Validation — {m['name'] or m['kind']} version {m['version']} — {mv.sample['kind'].replace('_', '-')}",
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "subtitle": f"{m['uri']} · run {m['run_id']} · {mv.sample['description']}",
        "sections": [{"id": "validation", "title": "Validation", **validation_section(mv)}],
    }
    return render_page(page)


def validate(run: str | None = None, model: str | None = None, *, out: str | Path | None = None, log_to_run: bool = True, **options) -> tuple[ModelValidation, dict]:
    """``riskmodel validate``: :func:`validate_run` (``options``: its ``features``, ``outcomes``,
    ``previous``, ``baseline``, ``data``), then ``out/validation.json`` and ``out/validation.html``
    (when ``out`` is given; checked before any work) and, unless ``log_to_run`` is False, the
    metrics and both files logged to the training run. Returns the validation and where its
    outputs went."""
    from features.files import check_outputs, write_text
    from riskmodel import tracking

    if out is not None:
        inputs = [Path(options[k]) for k in ("features", "outcomes", "previous") if options.get(k) is not None]
        check_outputs({"--out": Path(out)}, directories=("--out",))
        check_outputs({f"--out ({name})": Path(out) / name for name in ("validation.json", "validation.html")}, inputs)
    mv = validate_run(run, model, **options)
    text = json.dumps(mv.to_dict(), ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    html = render_validation(mv)
    where: dict = {}
    if out is not None:
        where["json"] = str(write_text(Path(out) / "validation.json", text))
        where["html"] = str(write_text(Path(out) / "validation.html", html))
    if log_to_run:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "validation.json").write_text(text, encoding="utf-8")
            (Path(tmp) / "validation.html").write_text(html, encoding="utf-8")
            where["artifact_uri"] = tracking.log_artifacts_to_run(mv.model["run_id"], tmp, f"validation/{mv.tag}")
        tracking.log_metrics_to_run(mv.model["run_id"], mv.metrics(), tags={f"riskmodel.validation.{mv.tag}": mv.verdict})
    return mv, where
