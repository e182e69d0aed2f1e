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
with reason codes. Each section has a builder here (``summary_section`` ... ``examples_section``)
that returns plain data; the page is rendered from ``riskmodel/templates/report.html.j2`` (Jinja2,
autoescape on). The finished report is logged to the run under ``report/``.
"""

from __future__ import annotations

import base64
import datetime
import functools
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
        from features.tables import table_files
        from riskmodel import dataset

        data_dir = Path(data) if data is not None else Path(params.get("data", ""))
        if not table_files(data_dir, "outcomes"):
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
# Page data for the template (riskmodel/templates/report.html.j2)
# --------------------------------------------------------------------------------------------


TEMPLATE = "report.html.j2"


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


def table_data(df: pd.DataFrame, digits: dict[str, int] | None = None, row_class=None, scroll: bool = False, max_rows: int | None = None) -> dict:
    """A table as plain data for the template's ``table`` macro: ``head`` (column name, CSS class),
    ``rows`` (row CSS class, cells of (text, CSS class)) and ``scroll``. Numbers are formatted
    (``digits`` per column) and right-aligned, names unwrapped; ``row_class(row) -> css class``
    marks rows. The template escapes every text."""
    digits = digits or {}
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    cols = list(df.columns)
    num = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}
    css = {c: "num" if num[c] else ("nw" if c in NOWRAP else ("wide" if c in WIDE else ("mid" if c == "name_en" else ""))) for c in cols}
    rows = []
    for rec in df.itertuples(index=False):
        cells = [(_fmt(v, digits.get(c, 4)) if num[c] or isinstance(v, (float, np.floating)) else _fmt(v), css[c]) for c, v in zip(cols, rec)]
        rows.append((row_class(dict(zip(cols, rec))) if row_class else "", cells))
    return {"head": [(str(c), css[c]) for c in cols], "rows": rows, "scroll": scroll}


def _percent(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Rates and PDs as percentages (column renamed ``<col> %``): 0.0123 reads better as 1.23."""
    out = df.copy()
    for c in cols:
        if c in out.columns:
            out[c] = out[c].astype("float64") * 100
    return out.rename(columns={c: f"{c} %" for c in cols if c in out.columns})


def _flag_rows(column: str, flag: str, warn: str):
    """A ``row_class`` marking rows red whose ``column`` says ``flag``, yellow when it says ``warn``."""
    return lambda r: "flag" if r[column] == flag else ("warn" if r[column] == warn else "")


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


def render_page(page: dict) -> str:
    """The report's HTML from its page data (:func:`build_report`), through the Jinja2 template with
    autoescape on. The CJK font is embedded cut down to the characters of the rendered page."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("riskmodel", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    template = env.get_template(TEMPLATE)
    html_text = template.render(page=page, font_css="")
    return template.render(page=page, font_css=Markup(_font_face(html_text)))


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
    out = {"kpis": [(_fmt(v, 3), k) for k, v in kpis if v is not None], "run": table_data(pd.DataFrame(run_rows, columns=["item", "value"])),
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
                            row_class=_flag_rows("status", "contradiction", "non_monotone"), scroll=True),
    }


def shapes_section(a: _Analysis) -> dict:
    """Points per bin of the signals with the largest mean contribution (None: no feature has weight)."""
    return {"n": len(a.shapes), "plot": plots.plot_shapes(a.shapes) if a.shapes else None}


def roc_section(a: _Analysis) -> dict:
    """ROC/KS on the out-of-time rows, with the generator's oracle AUC when known."""
    m = a.result.metrics
    oracle = a.result.oracle_auc
    return {"n_rows": f"{len(a.rd.test):,}", "n_defaults": int(a.y_te.sum()), "auc": _fmt(m["test_auc"], 3), "ks": _fmt(m["test_ks"], 3),
            "oracle": _fmt(oracle, 3) if oracle is not None else None, "plot": a.roc_calibration_pngs[0]}


def calibration_section(a: _Analysis) -> dict:
    """Calibration plot and table by PD bin, and the expected calibration error."""
    cols = ("pd_min", "pd_max", "mean_pd", "observed_rate")
    return {"plot": a.roc_calibration_pngs[1], "ece": _fmt(a.result.metrics.get("test_ece"), 4),
            "table": table_data(_percent(a.result.calibration, cols), digits=dict.fromkeys((f"{c} %" for c in cols), 3))}


def grades_section(a: _Analysis) -> dict:
    """Bad rate and mean PD by master-scale grade (None: no grades on the test rows)."""
    g = a.result.grades
    if g is None or not len(g):
        return {"table": None}
    return {"monotone": bool(a.result.grades_monotone), "plot": plots.plot_grades(g),
            "table": table_data(_percent(g, ("bad_rate", "mean_pd")), digits={"bad_rate %": 2, "mean_pd %": 2})}


def segments_section(a: _Analysis) -> dict:
    """Out-of-time metrics per segment, weak and unreliable segments flagged."""
    seg = a.result.segments
    return {"n_low": int((seg["flag"] == "low_auc").sum()) if len(seg) else 0,
            "table": table_data(_percent(seg, ("bad_rate", "mean_pd")), digits={"bad_rate %": 2, "mean_pd %": 2, "auc": 3},
                                row_class=_flag_rows("flag", "low_auc", "insufficient"), scroll=True)}


def psi_section(a: _Analysis) -> dict:
    """PSI of the score and every feature, train versus out-of-time test, the score first."""
    psi = a.result.psi.copy()
    psi.insert(1, "name_zh", psi["variable"].map(a.names["name_zh"]).fillna(""))
    psi.insert(2, "in_model", [("" if v == "score" else v in a.in_model) for v in psi["variable"]])
    psi = pd.concat([psi.iloc[:1], psi.iloc[1:].sort_values("psi", ascending=False, kind="mergesort")], ignore_index=True)
    return {"table": table_data(psi, digits={"psi": 4}, row_class=_flag_rows("band", "act", "watch"), scroll=True)}


def examples_section(a: _Analysis, n_examples: int = N_EXAMPLES) -> dict:
    """Out-of-time firms spread over the PD range, each with its reason codes and largest pushes."""
    rd, cm = a.rd, a.cm
    firms = []
    for i, pos in enumerate(_pick_examples(a.p_te, a.y_te, n_examples), 1):
        row = rd.test.iloc[[pos]]
        header, br = explain.explain_row(cm, row)
        top_br = br.head(5).copy()
        top_br["value"] = [("missing" if pd.isna(v) else _fmt(v, 4)) for v in top_br["value"]]
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
        "grades": grades_section, "segments": segments_section, "psi": psi_section,
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
