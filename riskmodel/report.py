"""A self-contained HTML model report for reviewers: ``riskmodel report --run RUN_ID --out DIR``.

The report reads one training run (its parameters, its logged model) and the data it was trained
on (the run's ``data`` parameter: a data-hub directory, or the two bring-your-own tables), redoes
the run's out-of-time split, and writes ``DIR/index.html``: one file, no network at all. Plots are
matplotlib PNGs embedded as base64; Chinese text renders with a font shipped in
``riskmodel/assets`` (a GB2312 subset of Noto Sans CJK SC, SIL Open Font License): matplotlib uses
it directly and the HTML embeds a further subset holding only the characters the page uses.

Sections (``SECTIONS``): data summary and manifest, signals used (catalog), scorecard table with
points, importance three ways, monotonicity check, shapes of the top signals, ROC/KS,
calibration, bad rate by grade, segment metrics with weak-segment flags, PSI, the validator's
battery (``riskmodel validate`` on the out-of-time rows), five example firms with reason codes. Each section has a builder here (``summary_section`` ... ``examples_section``)
that returns plain data; :mod:`riskmodel.pages` renders the page from
``riskmodel/templates/report.html.j2`` (Jinja2, autoescape on). The finished report is logged to
the run under ``report/``.
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import SEGMENT_COLUMNS
from riskmodel import evaluation as ev
from riskmodel import explain, plots
from riskmodel.pages import flag_rows, fmt, percent, render_page, table_data

log = logging.getLogger(__name__)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Data summary and manifest"),
    ("catalog", "Signals used"),
    ("scorecard", "Scorecard table"),
    ("importance", "Importance, three views"),
    ("monotonicity", "Monotonicity: declared versus fitted direction"),
    ("shapes", "Shapes of the top signals"),
    ("roc", "Discrimination: ROC and KS"),
    ("calibration", "Calibration"),
    ("grades", "Bad rate by grade"),
    ("segments", "Segment metrics"),
    ("psi", "Population stability (PSI)"),
    ("validation", "Validation"),
    ("examples", "Example firms with reason codes"),
)
N_SHAPES = 6
N_EXAMPLES = 5


# --------------------------------------------------------------------------------------------
# Data of a run
# --------------------------------------------------------------------------------------------


@dataclass
class RunData:
    """Everything the report reads: the run, its model, its data split and predictions."""

    info: dict
    credit_model: Any
    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    catalog: pd.DataFrame
    manifest: dict | None = None
    truth: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def load_run_data(run_id: str, data: str | Path | None = None) -> RunData:
    """Load run ``run_id``: parameters, model, and its train/test rows rebuilt from the run's data
    (:func:`riskmodel.dataset.run_labelled_set`).

    ``data`` overrides the data location recorded in the run (a data-hub directory for generated
    runs) when the report is written on another machine."""
    from riskmodel import dataset, tracking

    info = tracking.finished_run(run_id)
    credit_model, _, _ = tracking.load_credit_model(f"runs:/{run_id}/{tracking.MODEL_NAME_IN_RUN}")
    ls = dataset.run_labelled_set(info, data, catalog=credit_model.catalog)
    return RunData(info, credit_model, ls.train, ls.test, ls.target, ls.catalog, ls.manifest, ls.truth)


# --------------------------------------------------------------------------------------------
# The report: one builder per section, each returning plain data for the template
# --------------------------------------------------------------------------------------------


def _pick_examples(pred: pd.DataFrame, y: np.ndarray | None = None, n: int = N_EXAMPLES) -> list[int]:
    """Row positions of ``n`` test firms spread over the PD range (highest PD first). When none of
    them defaulted but some test firm did, the highest-PD defaulter replaces the middle pick: a
    reviewer wants to see what the model said about a firm that went bad."""
    order = np.argsort(-pred["pd"].to_numpy(), kind="mergesort")
    if len(order) <= n:
        return order.tolist()
    pos = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
    picks = order[pos].tolist()
    if y is not None and not np.asarray(y)[picks].any() and np.asarray(y).any():
        bad = next(i for i in order if y[i] == 1)
        picks[len(picks) // 2] = int(bad)
        picks.sort(key=lambda i: -pred["pd"].iloc[i])
    return [int(i) for i in picks]


@dataclass
class _Analysis:
    """What the section builders read: the run's data, its predictions, evaluation and explanations."""

    run_id: str
    rd: RunData
    model_name: str
    y_tr: np.ndarray
    y_te: np.ndarray
    p_tr: pd.DataFrame
    p_te: pd.DataFrame
    result: ev.Evaluation
    views: dict
    importance: pd.DataFrame
    mono: pd.DataFrame
    names: pd.DataFrame
    in_model: set
    shapes: list
    seconds: dict
    validation: Any = None  # the ModelValidation the Validation section ran (riskmodel.model_validation)

    @property
    def cm(self):
        return self.rd.credit_model

    @property
    def est(self):
        return self.rd.credit_model.estimator

    @property
    def params(self) -> dict:
        return self.rd.info["params"]

    @functools.cached_property
    def roc_calibration_pngs(self) -> tuple[str, str]:
        """The ROC/KS and calibration plots (drawn together, once)."""
        return plots.roc_calibration_pngs(self.result, self.model_name)


def _analyse(run_id: str, data: str | Path | None, n_shapes: int) -> _Analysis:
    """Load the run, predict, evaluate out of time and explain (the work behind every section)."""
    t0 = time.perf_counter()
    rd = load_run_data(run_id, data)
    cm, est = rd.credit_model, rd.credit_model.estimator
    feats = list(cm.features)
    y_tr = rd.train[rd.target].to_numpy(dtype="int64")
    y_te = rd.test[rd.target].to_numpy(dtype="int64")
    X_tr, X_te = rd.train[feats], rd.test[feats]

    p_tr, p_te = cm.predict_grades(X_tr), cm.predict_grades(X_te)
    seg_cols = [c for c in SEGMENT_COLUMNS if c in rd.test.columns]
    result = ev.evaluate(
        y_tr, p_tr["pd"].to_numpy(), y_te, p_te["pd"].to_numpy(), X_tr, X_te, feats,
        segments_test=rd.test[seg_cols], score_train=p_tr["score"].to_numpy(), score_test=p_te["score"].to_numpy(),
        grades_test=p_te["grade"].to_numpy(), grade_order=list(cm.master_scale.labels),
        truth=rd.truth, test_ids=rd.test["application_id"].to_numpy() if "application_id" in rd.test.columns else None,
    )
    t_eval = time.perf_counter()
    X_ref = X_tr.sample(n=5000, random_state=0).sort_index() if len(X_tr) > 5000 else X_tr
    contrib = est.contributions(X_ref)  # once: TreeSHAP for gbm_monotone costs ~0.6 ms a row
    views = explain.importance_views(est, X_te, y_te, rd.catalog, X_reference=X_ref, contrib=contrib)
    importance = explain.importance_summary(views)
    mono = explain.monotonicity(est, X_ref, rd.catalog, contrib=contrib)
    t_explain = time.perf_counter()
    nm = explain.names(feats, rd.catalog).set_index("feature")
    top = [f for f in views["contribution"]["feature"] if views["contribution"].set_index("feature").loc[f, "importance"] > 0][:n_shapes]
    shapes = [(nm.loc[f, "name_zh"], nm.loc[f, "name_en"], explain.shape(est, f, X_ref, contrib=contrib)) for f in top]
    return _Analysis(
        run_id, rd, rd.info["params"].get("model", type(est).__name__), y_tr, y_te, p_tr, p_te, result, views, importance, mono,
        nm, set(getattr(est, "selected_", feats)), shapes, {"evaluate": t_eval - t0, "explain": t_explain - t_eval, "explained_at": t_explain},
    )


def _dates(frame: pd.DataFrame, which: str) -> str:
    if "application_date" not in frame:
        return ""
    d = pd.to_datetime(frame["application_date"])
    return str((d.min() if which == "first" else d.max()).date())


def summary_section(a: _Analysis) -> dict:
    """Headline metrics, the run, the row counts, and the generator's manifest when there is one."""
    m, info, params, rd = a.result.metrics, a.rd.info, a.params, a.rd
    kpis = [("test AUC", m.get("test_auc")), ("test KS", m.get("test_ks")), ("test Gini", m.get("test_gini")), ("Brier", m.get("test_brier")),
            ("ECE", m.get("test_ece")), ("oracle AUC", a.result.oracle_auc), ("train AUC", m.get("train_auc")), ("score PSI", m.get("psi_score"))]
    run_rows = [
        ("run", a.run_id), ("experiment", info["experiment"]), ("model", a.model_name),
        ("registered", f"{params.get('model_name') or info['tags'].get('riskmodel.registered_name', '')} {info['tags'].get('riskmodel.registered_version', '')}".strip()),
        ("trained", str(info["start_time"])[:19] if info["start_time"] is not None else ""),
        ("data", params.get("data", "")), ("source", params.get("source", "")),
        ("out-of-time cut", params.get("cut_date", "")), ("manifest hash", params.get("manifest_hash", "")),
        ("catalog version", params.get("catalog_version", "")),
    ]
    counts = pd.DataFrame(
        [
            {"set": "train (before the cut)", "rows": len(rd.train), "defaults": int(a.y_tr.sum()), "default_rate": float(a.y_tr.mean()),
             "first_date": _dates(rd.train, "first"), "last_date": _dates(rd.train, "last")},
            {"set": "test (out of time)", "rows": len(rd.test), "defaults": int(a.y_te.sum()), "default_rate": float(a.y_te.mean()),
             "first_date": _dates(rd.test, "first"), "last_date": _dates(rd.test, "last")},
        ]
    )
    out = {"kpis": [(fmt(v, 3), k) for k, v in kpis if v is not None], "run": table_data(pd.DataFrame(run_rows, columns=["item", "value"])),
           "rows": table_data(counts), "manifest": None, "tables": None}
    if rd.manifest:
        man = rd.manifest
        prm = man.get("parameters", {})
        man_rows = [("generator", f"{man.get('generator', '')} {man.get('generator_version', '')}"), ("firms", prm.get("firms")),
                    ("seed", man.get("seed")), ("window", f"{prm.get('start', '')} to {prm.get('end', '')}"),
                    ("snapshot date", man.get("snapshot_date")), ("labelled applications", man.get("labelled_applications")),
                    ("observed default rate", man.get("default_rate_observed"))]
        files = man.get("files", {})
        tab = pd.DataFrame([{"table": k, "rows": int(v), "sha256": str(files.get(f"{k}.parquet", {}).get("sha256", ""))[:16]} for k, v in man.get("rows", {}).items()])
        out["manifest"] = table_data(pd.DataFrame(man_rows, columns=["item", "value"]).astype({"value": "string"}))
        out["tables"] = table_data(tab)
    return out


def catalog_section(a: _Analysis) -> dict:
    """The catalog rows of the features offered to the model, and which carry weight in it."""
    # (the data sensitivity grade is in `riskmodel catalog`; it is about release, not model risk)
    feats = list(a.cm.features)
    cat_cols = [c for c in ("name", "name_zh", "name_en", "family", "direction", "unit", "lookback_months", "tables", "reason_zh", "reason_en") if c in a.rd.catalog.columns]
    used = a.rd.catalog[a.rd.catalog["name"].isin(feats)][cat_cols].copy()
    used.insert(1, "in_model", used["name"].isin(a.in_model))
    if "tables" in used.columns:
        used["tables"] = used["tables"].astype(str).str.replace(",", ", ")
    if "reason_zh" in used.columns and "reason_en" in used.columns:  # one column: the text a credit officer reads
        used["reason (zh / en)"] = used["reason_zh"].astype(str) + " / " + used["reason_en"].astype(str)
        used = used.drop(columns=["reason_zh", "reason_en"])
    used = used.rename(columns={"direction": "dir", "lookback_months": "months back"})
    return {"n_offered": len(feats), "n_in_model": len(a.in_model), "table": table_data(used, scroll=True)}


def scorecard_section(a: _Analysis) -> dict:
    """The points table of a scorecard (None for other models) and its scaling."""
    est, cm = a.est, a.cm
    sc_table = est.table() if hasattr(est, "selected_") and callable(getattr(est, "table", None)) else None
    if sc_table is None:
        return {"model": a.model_name, "table": None}
    t = sc_table.copy()
    t.insert(1, "name_zh", t["variable"].map(a.names["name_zh"]).fillna(""))
    keep = [c for c in ("variable", "name_zh", "bin", "count", "count_share", "event_rate", "woe", "iv", "coef", "points") if c in t.columns]
    return {
        "model": a.model_name, "pdo": f"{cm.scaling.pdo:g}", "base_score": f"{cm.scaling.base_score:g}", "base_odds": f"{cm.scaling.base_odds:g}",
        "n_kept": len(est.selected_), "n_dropped": len(getattr(est, "dropped_", {})),
        "table": table_data(t[keep], digits={"points": 1, "count": 0, "woe": 3, "iv": 4, "coef": 3, "count_share": 3, "event_rate": 4},
                            row_class=lambda r: "base" if r["variable"] == "(base)" else "", scroll=True),
    }


def importance_section(a: _Analysis) -> dict:
    """The three importance views: a plot of the top features and every feature's ranks and shares."""
    sh = a.importance.copy()
    for mth in explain.METHODS:
        sh[f"share_{mth}"] = sh[f"share_{mth}"] * 100
    sh = sh.rename(columns={f"share_{mth}": f"% {mth}" for mth in explain.METHODS})
    return {"plot": plots.plot_importance_views(a.views), "table": table_data(sh, digits={"mean_rank": 1, **{f"% {mth}": 2 for mth in explain.METHODS}}, scroll=True)}


def monotonicity_section(a: _Analysis) -> dict:
    """Declared versus fitted direction per feature; the unused features listed in one line."""
    mono, nm = a.mono, a.names
    unused = mono.loc[mono["status"] == "unused", "feature"].tolist()
    return {
        "n_contradictions": int((mono["status"] == "contradiction").sum()),
        "n_non_monotone": int((mono["status"] == "non_monotone").sum()),
        "unused": [f"{f} ({nm.loc[f, 'name_zh']})" if f in nm.index else f for f in unused],
        "table": table_data(mono[mono["status"] != "unused"], digits={"rank_corr": 2, "range": 3, "reversal": 3},
                            row_class=flag_rows("status", "contradiction", "non_monotone"), scroll=True),
    }


def shapes_section(a: _Analysis) -> dict:
    """Points per bin of the signals with the largest mean contribution (None: no feature has weight)."""
    return {"n": len(a.shapes), "plot": plots.plot_shapes(a.shapes) if a.shapes else None}


def roc_section(a: _Analysis) -> dict:
    """ROC/KS on the out-of-time rows, with the generator's oracle AUC when known."""
    m = a.result.metrics
    oracle = a.result.oracle_auc
    return {"n_rows": f"{len(a.rd.test):,}", "n_defaults": int(a.y_te.sum()), "auc": fmt(m["test_auc"], 3), "ks": fmt(m["test_ks"], 3),
            "oracle": fmt(oracle, 3) if oracle is not None else None, "plot": a.roc_calibration_pngs[0]}


def calibration_section(a: _Analysis) -> dict:
    """Calibration plot and table by PD bin, and the expected calibration error."""
    cols = ("pd_min", "pd_max", "mean_pd", "observed_rate")
    return {"plot": a.roc_calibration_pngs[1], "ece": fmt(a.result.metrics.get("test_ece"), 4),
            "table": table_data(percent(a.result.calibration, cols), digits=dict.fromkeys((f"{c} %" for c in cols), 3))}


def grades_section(a: _Analysis) -> dict:
    """Bad rate and mean PD by master-scale grade (None: no grades on the test rows)."""
    g = a.result.grades
    if g is None or not len(g):
        return {"table": None}
    return {"monotone": bool(a.result.grades_monotone), "plot": plots.plot_grades(g),
            "table": table_data(percent(g, ("bad_rate", "mean_pd")), digits={"bad_rate %": 2, "mean_pd %": 2})}


def segments_section(a: _Analysis) -> dict:
    """Out-of-time metrics per segment, weak and unreliable segments flagged."""
    seg = a.result.segments
    return {"n_low": int((seg["flag"] == "low_auc").sum()) if len(seg) else 0,
            "table": table_data(percent(seg, ("bad_rate", "mean_pd")), digits={"bad_rate %": 2, "mean_pd %": 2, "auc": 3},
                                row_class=flag_rows("flag", "low_auc", "insufficient"), scroll=True)}


def psi_section(a: _Analysis) -> dict:
    """PSI of the score and every feature, train versus out-of-time test, the score first."""
    psi = a.result.psi.copy()
    psi.insert(1, "name_zh", psi["variable"].map(a.names["name_zh"]).fillna(""))
    psi.insert(2, "in_model", [("" if v == "score" else v in a.in_model) for v in psi["variable"]])
    psi = pd.concat([psi.iloc[:1], psi.iloc[1:].sort_values("psi", ascending=False, kind="mergesort")], ignore_index=True)
    return {"table": table_data(psi, digits={"psi": 4}, row_class=flag_rows("band", "act", "watch"), scroll=True)}


def validation_section(a: _Analysis) -> dict:
    """The validator's battery on the out-of-time rows (:mod:`riskmodel.model_validation`), as
    ``riskmodel validate --run`` runs it: tests with traffic lights, DeLong intervals, CAP, per-grade
    calibration with the Pluto-Tasche bound, stability and migration."""
    from riskmodel import model_validation as mvn

    mv = mvn.out_of_time(a.cm, a.rd.info, mvn.describe_model(a.rd.info), a.rd.train, a.rd.test, a.rd.target)
    a.validation = mv
    return mvn.validation_section(mv)


def examples_section(a: _Analysis, n_examples: int = N_EXAMPLES) -> dict:
    """Out-of-time firms spread over the PD range, each with its reason codes and largest pushes."""
    rd, cm = a.rd, a.cm
    firms = []
    for i, pos in enumerate(_pick_examples(a.p_te, a.y_te, n_examples), 1):
        row = rd.test.iloc[[pos]]
        header, br = explain.explain_row(cm, row)
        top_br = br.head(5).copy()
        top_br["value"] = [("missing" if pd.isna(v) else fmt(v, 4)) for v in top_br["value"]]
        firms.append({
            "i": i, "grade": header["grade"], "pd": f"{header['pd']:.2%}", "score": f"{header['score']:.0f}",
            "defaulted": bool(int(row[rd.target].iloc[0])),
            "ident": [(c, str(row[c].iloc[0])) for c in ("application_id", "firm_id", "industry", "lifecycle_stage", "size_band") if c in row.columns],
            "reasons": list(zip(header["reasons_zh"], header["reasons_en"])),
            "base_points": f"{header['base_points']:.1f}",
            "table": table_data(top_br, digits={"contribution": 3, "points": 1, "value": 4}),
        })
    return {"firms": firms}


def build_report(run_id: str, data: str | Path | None = None, n_shapes: int = N_SHAPES, n_examples: int = N_EXAMPLES) -> tuple[str, dict]:
    """The report of ``run_id`` as one HTML string, and a summary dict (sections, timings, flags)."""
    a = _analyse(run_id, data, n_shapes)
    builders = {
        "summary": summary_section, "catalog": catalog_section, "scorecard": scorecard_section, "importance": importance_section,
        "monotonicity": monotonicity_section, "shapes": shapes_section, "roc": roc_section, "calibration": calibration_section,
        "grades": grades_section, "segments": segments_section, "psi": psi_section, "validation": validation_section,
        "examples": lambda x: examples_section(x, n_examples),
    }
    assert list(builders) == [sid for sid, _ in SECTIONS]
    page = {
        "title": f"Model report — {a.model_name} — run {run_id[:8]}",
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cut_date": str(a.params.get("cut_date", "")),
        "sections": [{"id": sid, "title": name, **builders[sid](a)} for sid, name in SECTIONS],
    }
    html_text = render_page(page)
    by_id = {s["id"]: s for s in page["sections"]}
    summary = {
        "run_id": run_id,
        "model": a.model_name,
        "sections": [sid for sid, _ in SECTIONS],
        "contradictions": a.mono.loc[a.mono["status"] == "contradiction", "feature"].tolist(),
        "low_auc_segments": by_id["segments"]["n_low"],
        "grades_monotone": a.result.grades_monotone,
        "validation_verdict": a.validation.verdict if a.validation is not None else None,
        "seconds": {"evaluate": round(a.seconds["evaluate"], 2), "explain": round(a.seconds["explain"], 2), "render": round(time.perf_counter() - a.seconds["explained_at"], 2)},
    }
    return html_text, summary


def write_report(run_id: str, out: str | Path, data: str | Path | None = None, log_to_run: bool = True) -> dict:
    """Write ``out/index.html`` for run ``run_id`` and (by default) log it to the run under ``report/``.

    Returns a summary: ``path``, ``bytes``, ``artifact_uri`` (when logged), sections, flags, seconds."""
    from features.files import check_outputs, write_text

    out = Path(out)
    check_outputs({"--out": out}, directories=("--out",))  # before any work; the folder is created at the write
    page, summary = build_report(run_id, data)
    path = write_text(out / "index.html", page)
    summary["path"] = str(path.resolve())
    summary["bytes"] = path.stat().st_size
    if log_to_run:
        import tempfile

        from riskmodel import tracking

        with tempfile.TemporaryDirectory() as tmpdir:  # log only index.html, not whatever else is in out/
            (Path(tmpdir) / "index.html").write_bytes(path.read_bytes())
            summary["artifact_uri"] = tracking.log_artifacts_to_run(run_id, tmpdir, "report")
    return summary
