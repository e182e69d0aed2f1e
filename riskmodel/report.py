"""A self-contained HTML model report for reviewers: ``riskmodel report --run RUN_ID --out DIR``.

The report reads one training run (its parameters, its logged model) and the data it was trained
on (the run's ``data`` parameter: a data-hub directory, or the two bring-your-own tables), redoes
the run's out-of-time split, and writes ``DIR/index.html``: one file, no network at all. Plots are
matplotlib PNGs embedded as base64; Chinese text renders with a font shipped in
``riskmodel/assets`` (a GB2312 subset of Noto Sans CJK SC, SIL Open Font License): matplotlib uses
it directly and the HTML embeds a further subset holding only the characters the page uses.

Sections (``SECTIONS``): data summary and manifest, signals used (catalog), scorecard table with
points, importance three ways, monotonicity check, shapes of the top signals, ROC/KS,
calibration, bad rate by grade, segment metrics with weak-segment flags, PSI, five example firms
with reason codes. The finished report is logged to the run under ``report/``.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import SEGMENT_COLUMNS, TARGET
from riskmodel import evaluation as ev
from riskmodel import explain, plots
from riskmodel.errors import UserError

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
    """Load run ``run_id``: parameters, model, and its train/test rows rebuilt from the run's data.

    ``data`` overrides the data location recorded in the run (a data-hub directory for generated
    runs) when the report is written on another machine."""
    from riskmodel import tracking
    from riskmodel import train as tr

    info = tracking.run_info(run_id)
    params = info["params"]
    if info["status"] != "FINISHED":
        raise UserError(f"run {run_id} is {info['status']}, not FINISHED; report on a finished run (`riskmodel compare --experiment {info['experiment']}`)")
    credit_model, _, _ = tracking.load_credit_model(f"runs:/{run_id}/{tracking.MODEL_NAME_IN_RUN}")
    source = params.get("source", "generated")
    target = params.get("target", TARGET)
    manifest = truth = None
    if source == "byo":
        if data is not None:
            raise UserError("--data applies to runs trained with --data; a bring-your-own run reads the tables recorded in the run")
        paths = [p.strip() for p in params.get("data", "").split("|")]
        if len(paths) != 2 or not all(Path(p).is_file() for p in paths):
            raise UserError(f"run {run_id}: its training tables {params.get('data')!r} are not readable here; the report needs them")
        train_df, test_df, _ = tr.prepare_byo(paths[0], paths[1], target)
        catalog = tr.byo_catalog(credit_model.features, {f: 0 for f in credit_model.features})
        if credit_model.catalog is not None:
            catalog = credit_model.catalog.copy()
    else:
        from riskmodel import dataset

        data_dir = Path(data) if data is not None else Path(params.get("data", ""))
        if not (data_dir / "outcomes.parquet").is_file():
            raise UserError(f"run {run_id}: data directory {str(data_dir)!r} has no outcomes.parquet; pass --data DIR with the run's data hub")
        # read the training cache when it is there; never write into the data directory
        ls = dataset.load_labelled(data_dir, cut=params.get("cut_date"), test_share=float(params.get("test_share", 0.3)), write_cache=False)
        # runs logged before the data fingerprint existed recorded the manifest hash only
        key = "data_fingerprint" if params.get("data_fingerprint") else "manifest_hash"
        now = getattr(ls.info, key)
        if params.get(key) and now != params[key]:
            raise UserError(f"{data_dir} is not the data run {run_id} was trained on ({key.replace('_', ' ')} {now} != {params[key]})")
        train_df, test_df, catalog = ls.train, ls.test, ls.catalog
        manifest_file = data_dir / "manifest.json"
        manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else None
        truth = ev.load_truth(data_dir)
    return RunData(info, credit_model, train_df.reset_index(drop=True), test_df.reset_index(drop=True), target, catalog, manifest, truth)


# --------------------------------------------------------------------------------------------
# HTML helpers
# --------------------------------------------------------------------------------------------


CSS = """
body { font-family: "ReportCJK", "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 0; color: #1d2733; background: #fff; font-size: 14px; }
main { max-width: 1320px; margin: 0 auto; padding: 18px 28px 60px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 34px 0 8px; padding-top: 8px; border-top: 2px solid #d8dee6; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.note, .note { color: #56606b; font-size: 13px; margin: 4px 0 10px; max-width: 1100px; }
nav { font-size: 13px; margin: 8px 0 12px; line-height: 1.9; } nav a { margin-right: 12px; color: #2b5c9e; text-decoration: none; white-space: nowrap; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 12px; }
th, td { border: 1px solid #d5dbe2; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f6; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
tr.flag td { background: #fdecea !important; } tr.warn td { background: #fff6dd !important; } tr.base td { font-weight: bold; background: #eef2f6 !important; }
.scroll { overflow-x: auto; max-width: 100%; }
td { max-width: 340px; } td.nw, th.nw { white-space: nowrap; } td.wide { min-width: 300px; max-width: 460px; } td.mid { min-width: 150px; }
.kpi { display: inline-block; border: 1px solid #d5dbe2; border-radius: 6px; padding: 6px 12px; margin: 0 8px 8px 0; min-width: 110px; }
.kpi b { display: block; font-size: 18px; } .kpi span { color: #56606b; font-size: 12px; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.firm { border: 1px solid #d5dbe2; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
.badge { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; }
.bad { background: #fdecea; color: #9b1c1c; } .good { background: #e6f4ea; color: #1e6b34; }
"""


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if abs(v) >= 1e9:
            return f"{v:.3g}"
        text = f"{v:,.{digits}f}"
        if digits:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "0", "") else text
    return str(v)


WIDE = frozenset({"reason (zh / en)", "description"})
NOWRAP = frozenset({"name_zh", "feature", "variable", "name", "bin", "value", "first_date", "last_date", "set", "item"})


def table_html(df: pd.DataFrame, digits: dict[str, int] | None = None, row_class=None, scroll: bool = False, max_rows: int | None = None) -> str:
    """An escaped HTML table; numbers right-aligned, names unwrapped; ``row_class(row) -> css class`` marks rows."""
    digits = digits or {}
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    cols = list(df.columns)
    num = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}
    css = {c: "num" if num[c] else ("nw" if c in NOWRAP else ("wide" if c in WIDE else ("mid" if c == "name_en" else ""))) for c in cols}
    head = "".join(f'<th class="{css[c]}">{html.escape(str(c))}</th>' for c in cols)
    body = []
    for rec in df.itertuples(index=False):
        cells = []
        for c, v in zip(cols, rec):
            text = _fmt(v, digits.get(c, 4)) if num[c] or isinstance(v, (float, np.floating)) else _fmt(v)
            cells.append(f'<td class="{css[c]}">{html.escape(text)}</td>')
        cls = row_class(dict(zip(cols, rec))) if row_class else ""
        body.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    t = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{t}</div>' if scroll else t


def _percent(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Rates and PDs as percentages (column renamed ``<col> %``): 0.0123 reads better as 1.23."""
    out = df.copy()
    for c in cols:
        if c in out.columns:
            out[c] = out[c].astype("float64") * 100
    return out.rename(columns={c: f"{c} %" for c in cols if c in out.columns})


def _unused_line(mono: pd.DataFrame, nm: pd.DataFrame) -> str:
    unused = mono.loc[mono["status"] == "unused", "feature"].tolist()
    if not unused:
        return ""
    listed = ", ".join(f"{f} ({nm.loc[f, 'name_zh']})" if f in nm.index else f for f in unused)
    return _note(f"Unused by the model ({len(unused)}, not listed below): {listed}.")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _font_face(page_text: str) -> str:
    """@font-face embedding the shipped CJK font, cut down to the CJK characters on the page.

    The face comes first in ``font-family`` and covers only U+2E80 and up: Latin text falls through
    to the next fonts. (With a Latin font first, Chromium drew some mixed runs such as
    "强度(近一年)" as empty boxes even though the embedded font has every glyph.)"""
    chars = {ch for ch in page_text if ord(ch) >= 0x2E80}
    path = plots.font_path()
    if not chars or not path.is_file():
        return ""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(str(path))
    opts = subset.Options()
    opts.hinting = False
    opts.layout_features = []
    opts.flavor = "woff"
    sub = subset.Subsetter(opts)
    sub.populate(text="".join(sorted(chars)))
    sub.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'@font-face {{ font-family: "ReportCJK"; src: url(data:font/woff;base64,{b64}) format("woff"); font-display: block; unicode-range: U+2E80-FFFF; }}'


# --------------------------------------------------------------------------------------------
# The report
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


def build_report(run_id: str, data: str | Path | None = None, n_shapes: int = N_SHAPES, n_examples: int = N_EXAMPLES) -> tuple[str, dict]:
    """The report of ``run_id`` as one HTML string, and a summary dict (sections, timings, flags)."""
    t0 = time.perf_counter()
    rd = load_run_data(run_id, data)
    cm, est = rd.credit_model, rd.credit_model.estimator
    feats = list(cm.features)
    params, info = rd.info["params"], rd.info
    model_name = params.get("model", type(est).__name__)
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
    m = result.metrics
    t_eval = time.perf_counter()
    X_ref = X_tr.sample(n=5000, random_state=0).sort_index() if len(X_tr) > 5000 else X_tr
    contrib = est.contributions(X_ref)  # once: TreeSHAP for gbm_monotone costs ~0.6 ms a row
    views = explain.importance_views(est, X_te, y_te, rd.catalog, X_reference=X_ref, contrib=contrib)
    summary_imp = explain.importance_summary(views)
    mono = explain.monotonicity(est, X_ref, rd.catalog, contrib=contrib)
    t_explain = time.perf_counter()
    nm = explain.names(feats, rd.catalog).set_index("feature")
    top = [f for f in views["contribution"]["feature"] if views["contribution"].set_index("feature").loc[f, "importance"] > 0][:n_shapes]
    shapes = [(nm.loc[f, "name_zh"], nm.loc[f, "name_en"], explain.shape(est, f, X_ref, contrib=contrib)) for f in top]
    sections: dict[str, str] = {}

    # -- summary
    kpis = [("test AUC", m.get("test_auc")), ("test KS", m.get("test_ks")), ("test Gini", m.get("test_gini")), ("Brier", m.get("test_brier")),
            ("ECE", m.get("test_ece")), ("oracle AUC", result.oracle_auc), ("train AUC", m.get("train_auc")), ("score PSI", m.get("psi_score"))]
    kpi_html = "".join(f'<div class="kpi"><b>{html.escape(_fmt(v, 3))}</b><span>{html.escape(k)}</span></div>' for k, v in kpis if v is not None)
    run_rows = [
        ("run", run_id), ("experiment", info["experiment"]), ("model", model_name),
        ("registered", f"{params.get('model_name') or info['tags'].get('riskmodel.registered_name', '')} {info['tags'].get('riskmodel.registered_version', '')}".strip()),
        ("trained", str(info["start_time"])[:19] if info["start_time"] is not None else ""),
        ("data", params.get("data", "")), ("source", params.get("source", "")),
        ("out-of-time cut", params.get("cut_date", "")), ("manifest hash", params.get("manifest_hash", "")),
        ("catalog version", params.get("catalog_version", "")),
    ]
    counts = pd.DataFrame(
        [
            {"set": "train (before the cut)", "rows": len(rd.train), "defaults": int(y_tr.sum()), "default_rate": float(y_tr.mean()),
             "first_date": str(pd.to_datetime(rd.train["application_date"]).min().date()) if "application_date" in rd.train else "",
             "last_date": str(pd.to_datetime(rd.train["application_date"]).max().date()) if "application_date" in rd.train else ""},
            {"set": "test (out of time)", "rows": len(rd.test), "defaults": int(y_te.sum()), "default_rate": float(y_te.mean()),
             "first_date": str(pd.to_datetime(rd.test["application_date"]).min().date()) if "application_date" in rd.test else "",
             "last_date": str(pd.to_datetime(rd.test["application_date"]).max().date()) if "application_date" in rd.test else ""},
        ]
    )
    s = [kpi_html, "<h3>Run</h3>", table_html(pd.DataFrame(run_rows, columns=["item", "value"])), "<h3>Rows</h3>", table_html(counts)]
    if rd.manifest:
        man = rd.manifest
        prm = man.get("parameters", {})
        man_rows = [("generator", f"{man.get('generator', '')} {man.get('generator_version', '')}"), ("firms", prm.get("firms")),
                    ("seed", man.get("seed")), ("window", f"{prm.get('start', '')} to {prm.get('end', '')}"),
                    ("snapshot date", man.get("snapshot_date")), ("labelled applications", man.get("labelled_applications")),
                    ("observed default rate", man.get("default_rate_observed"))]
        s += ["<h3>Manifest</h3>", table_html(pd.DataFrame(man_rows, columns=["item", "value"]).astype({"value": "string"}))]
        rows = man.get("rows", {})
        files = man.get("files", {})
        tab = pd.DataFrame([{"table": k, "rows": int(v), "sha256": str(files.get(f"{k}.parquet", {}).get("sha256", ""))[:16]} for k, v in rows.items()])
        s += ["<h3>Source tables</h3>", table_html(tab)]
    sections["summary"] = "".join(s)

    # -- catalog
    # (the data sensitivity grade is in `riskmodel catalog`; it is about release, not model risk)
    cat_cols = [c for c in ("name", "name_zh", "name_en", "family", "direction", "unit", "lookback_months", "tables", "reason_zh", "reason_en") if c in rd.catalog.columns]
    used = rd.catalog[rd.catalog["name"].isin(feats)][cat_cols].copy()
    in_model = set(getattr(est, "selected_", feats))
    used.insert(1, "in_model", used["name"].isin(in_model))
    if "tables" in used.columns:
        used["tables"] = used["tables"].astype(str).str.replace(",", ", ")
    if "reason_zh" in used.columns and "reason_en" in used.columns:  # one column: the text a credit officer reads
        used["reason (zh / en)"] = used["reason_zh"].astype(str) + " / " + used["reason_en"].astype(str)
        used = used.drop(columns=["reason_zh", "reason_en"])
    used = used.rename(columns={"direction": "dir", "lookback_months": "months back"})
    sections["catalog"] = _note(f"{len(feats)} features offered to the model; {len(in_model)} carry weight in it. "
                                "direction: +1 a higher value should raise the PD, -1 lower it, 0 not declared.") + table_html(used, scroll=True)

    # -- scorecard
    sc_table = est.table() if hasattr(est, "selected_") and callable(getattr(est, "table", None)) else None
    if sc_table is not None:
        t = sc_table.copy()
        t.insert(1, "name_zh", t["variable"].map(nm["name_zh"]).fillna(""))
        keep = [c for c in ("variable", "name_zh", "bin", "count", "count_share", "event_rate", "woe", "iv", "coef", "points") if c in t.columns]
        sections["scorecard"] = _note(
            f"Score = base points + the points of the firm's bin in each variable; PDO {cm.scaling.pdo:g}, "
            f"{cm.scaling.base_score:g} points at good:bad odds {cm.scaling.base_odds:g}:1. Higher points are safer. "
            f"{len(est.selected_)} variables kept; {len(getattr(est, 'dropped_', {}))} dropped (IV, correlation or sign)."
        ) + table_html(t[keep], digits={"points": 1, "count": 0, "woe": 3, "iv": 4, "coef": 3, "count_share": 3, "event_rate": 4},
                       row_class=lambda r: "base" if r["variable"] == "(base)" else "", scroll=True)
    else:
        sections["scorecard"] = _note(f"{model_name} is not a points scorecard. Its equivalent, points per value band "
                                      "(-PDO/ln 2 x log-odds contribution), is in the shapes section below.")

    # -- importance
    sh = summary_imp.copy()
    for mth in explain.METHODS:
        sh[f"share_{mth}"] = sh[f"share_{mth}"] * 100
    sh = sh.rename(columns={f"share_{mth}": f"% {mth}" for mth in explain.METHODS})
    imp_parts = [
        _note("Three measures of the same model. model: LightGBM gain, or for the scorecard |coefficient| x the spread of "
              "the feature's WoE (financial baseline: |standardised coefficient|); contribution: mean |log-odds "
              "contribution| on the training rows; permutation: the drop in out-of-time AUC when the feature is shuffled "
              "(3 shuffles). Features that rank high on the first two but near zero on permutation add little out of time."),
        _img(plots.plot_importance_views(views), "importance, three views"),
        "<h3>All features, ranks and shares (%)</h3>",
        table_html(sh, digits={"mean_rank": 1, **{f"% {mth}": 2 for mth in explain.METHODS}}, scroll=True),
    ]
    sections["importance"] = "".join(imp_parts)

    # -- monotonicity
    n_bad = int((mono["status"] == "contradiction").sum())
    n_nm = int((mono["status"] == "non_monotone").sum())
    sections["monotonicity"] = _note(
        "declared: catalog direction; shown: direction of the model's mean contribution across 10 quantile bins of the "
        f"value (training rows). {n_bad} contradiction(s), {n_nm} non-monotone curve(s); unused: the model gives the feature no weight."
    ) + _unused_line(mono, nm) + table_html(mono[mono["status"] != "unused"], digits={"rank_corr": 2, "range": 3, "reversal": 3},
                   row_class=lambda r: "flag" if r["status"] == "contradiction" else ("warn" if r["status"] == "non_monotone" else ""), scroll=True)

    # -- shapes
    if shapes:
        sections["shapes"] = _note(f"The {len(shapes)} signals with the largest mean contribution. Bars: points per bin "
                                   "(green = safer than the reference applicant, red = riskier).") + _img(plots.plot_shapes(shapes), "shapes of the top signals")
    else:
        sections["shapes"] = _note("The model gives no feature any weight.")

    # -- ROC/KS and calibration
    roc_png, cal_png = plots.roc_calibration_pngs(result, model_name)
    sections["roc"] = _note(f"Out-of-time test rows ({len(rd.test):,}, {int(y_te.sum())} defaults). AUC {_fmt(m['test_auc'], 3)}, "
                            f"KS {_fmt(m['test_ks'], 3)}" + (f"; the true PD of the generator reaches AUC {_fmt(result.oracle_auc, 3)} on the same rows." if result.oracle_auc is not None else ".")) + _img(roc_png, "ROC and KS")
    sections["calibration"] = '<div class="grid2"><div>' + _img(cal_png, "calibration") + "</div><div>" + table_html(
        _percent(result.calibration, ("pd_min", "pd_max", "mean_pd", "observed_rate")), digits=dict.fromkeys(("pd_min %", "pd_max %", "mean_pd %", "observed_rate %"), 3)) + "</div></div>" + _note(f"Expected calibration error {_fmt(m.get('test_ece'), 4)}.")

    # -- grades
    if result.grades is not None and len(result.grades):
        g = result.grades
        sections["grades"] = _note(f"Test rows by master-scale grade. Bad rate {'rises' if result.grades_monotone else 'does NOT rise'} "
                                   "monotonically over grades with at least 100 rows (judged = yes).") + '<div class="grid2"><div>' + _img(plots.plot_grades(g), "bad rate by grade") + "</div><div>" + table_html(
            _percent(g, ("bad_rate", "mean_pd")), digits={"bad_rate %": 2, "mean_pd %": 2}) + "</div></div>"
    else:
        sections["grades"] = _note("No grades on the test rows.")

    # -- segments
    seg = result.segments
    n_low = int((seg["flag"] == "low_auc").sum()) if len(seg) else 0
    sections["segments"] = _note(f"Out-of-time metrics per segment. low_auc (red): at least 500 rows and AUC below 0.65 — {n_low} segment(s). "
                                 "insufficient (yellow): fewer than 500 rows or one class only; the AUC there is not reliable.") + table_html(
        _percent(seg, ("bad_rate", "mean_pd")), digits={"bad_rate %": 2, "mean_pd %": 2, "auc": 3},
        row_class=lambda r: "flag" if r["flag"] == "low_auc" else ("warn" if r["flag"] == "insufficient" else ""), scroll=True)

    # -- PSI
    psi = result.psi.copy()
    psi.insert(1, "name_zh", psi["variable"].map(nm["name_zh"]).fillna(""))
    psi.insert(2, "in_model", [("" if v == "score" else v in in_model) for v in psi["variable"]])
    psi = pd.concat([psi.iloc[:1], psi.iloc[1:].sort_values("psi", ascending=False, kind="mergesort")], ignore_index=True)
    sections["psi"] = _note("Train (reference) versus out-of-time test, 10 bins at the training quantiles plus a missing bin. "
                            "Bands: < 0.1 stable, 0.1-0.25 watch, > 0.25 act.") + table_html(
        psi, digits={"psi": 4}, row_class=lambda r: "flag" if r["band"] == "act" else ("warn" if r["band"] == "watch" else ""), scroll=True)

    # -- examples
    picks = _pick_examples(p_te, y_te, n_examples)
    ex = []
    for i, pos in enumerate(picks, 1):
        row = rd.test.iloc[[pos]]
        header, br = explain.explain_row(cm, row)
        outcome = int(row[rd.target].iloc[0])
        ident = " · ".join(f"{c} {html.escape(str(row[c].iloc[0]))}" for c in ("application_id", "firm_id", "industry", "lifecycle_stage", "size_band") if c in row.columns)
        reasons = "".join(f"<li>{html.escape(z)} — {html.escape(e)}</li>" for z, e in zip(header["reasons_zh"], header["reasons_en"])) or "<li>none: no feature pushes this firm above the reference risk</li>"
        top_br = br.head(5).copy()
        top_br["value"] = [("missing" if pd.isna(v) else _fmt(v, 4)) for v in top_br["value"]]
        ex.append(
            f'<div class="firm"><h3>Firm {i}: grade {html.escape(header["grade"])}, PD {header["pd"]:.2%}, score {header["score"]:.0f} '
            f'<span class="badge {"bad" if outcome else "good"}">{"defaulted" if outcome else "no default"} within 12 months</span></h3>'
            f'<p class="note">{ident}</p><b>Reason codes</b><ol>{reasons}</ol>'
            f"<b>Largest risk pushes</b> (base points {header['base_points']:.1f}; points of all features sum to the score)"
            + table_html(top_br, digits={"contribution": 3, "points": 1, "value": 4}) + "</div>"
        )
    sections["examples"] = _note("Five out-of-time test firms spread over the PD range (highest PD first; one that defaulted "
                                 "is always among them when the test rows have defaults). Reason codes "
                                 "are the model's top three risk-raising features the bank may disclose.") + "".join(ex)

    t_end = time.perf_counter()
    title = f"Model report — {model_name} — run {run_id[:8]}"
    nav = "\n".join(f'<a href="#{sid}">{html.escape(name)}</a>' for sid, name in SECTIONS)
    body = "".join(f'<section id="{sid}"><h2>{html.escape(name)}</h2>{sections[sid]}</section>' for sid, name in SECTIONS)
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head_text = f"<h1>{html.escape(title)}</h1><p class=\"note\">技术流 credit risk model · generated {generated} by riskmodel report · out-of-time test from {html.escape(str(params.get('cut_date', '')))}</p><nav>{nav}</nav>"
    page_body = head_text + body
    font_css = _font_face(page_body)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{font_css}{CSS}</style></head>"
        f"<body><main>{page_body}</main></body></html>\n"
    )
    summary = {
        "run_id": run_id,
        "model": model_name,
        "sections": [sid for sid, _ in SECTIONS],
        "contradictions": mono.loc[mono["status"] == "contradiction", "feature"].tolist(),
        "low_auc_segments": int(n_low),
        "grades_monotone": result.grades_monotone,
        "seconds": {"evaluate": round(t_eval - t0, 2), "explain": round(t_explain - t_eval, 2), "render": round(t_end - t_explain, 2)},
    }
    return page, summary


def write_report(run_id: str, out: str | Path, data: str | Path | None = None, log_to_run: bool = True) -> dict:
    """Write ``out/index.html`` for run ``run_id`` and (by default) log it to the run under ``report/``.

    Returns a summary: ``path``, ``bytes``, ``artifact_uri`` (when logged), sections, flags, seconds."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory (the report is written to DIR/index.html)")
    page, summary = build_report(run_id, data)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    tmp = path.with_name("index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    summary["path"] = str(path.resolve())
    summary["bytes"] = path.stat().st_size
    if log_to_run:
        import tempfile

        from riskmodel import tracking

        with tempfile.TemporaryDirectory() as tmpdir:  # log only index.html, not whatever else is in out/
            (Path(tmpdir) / "index.html").write_bytes(path.read_bytes())
            summary["artifact_uri"] = tracking.log_artifacts_to_run(run_id, tmpdir, "report")
    return summary
