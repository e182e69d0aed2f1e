"""Every figure riskmodel draws, with matplotlib (Agg backend: no display needed).

Training logs :func:`plot_roc_ks`, :func:`plot_calibration` and :func:`plot_importance` as PNG
artifacts of its run; the HTML report (``riskmodel.report``) embeds the same ROC and calibration
figures and its own views (:func:`plot_importance_views`, :func:`plot_shapes`, :func:`plot_grades`)
as base64 PNGs. Report figures draw Chinese text with the font shipped in ``riskmodel/assets`` (a
GB2312 subset of Noto Sans CJK SC, SIL Open Font License), set for each figure only.
"""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel import explain

FONT_FILE = "NotoSansCJKsc-Regular-gb2312.otf"
FONT_FAMILY = "Noto Sans CJK SC"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc_ks(roc: pd.DataFrame, auc: float, ks: float, title: str = ""):
    """ROC curve and the KS gap (TPR - FPR along the thresholds) side by side."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot(roc["fpr"], roc["tpr"], lw=1.5, label=f"AUC {auc:.3f}")
    a.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    a.set_xlabel("false positive rate (goods)")
    a.set_ylabel("true positive rate (bads)")
    a.set_title("ROC, test set")
    a.legend(loc="lower right")
    share = roc["share"].to_numpy() if "share" in roc.columns else np.linspace(0, 1, len(roc))
    gap = roc["tpr"].to_numpy() - roc["fpr"].to_numpy()
    b.plot(share, roc["tpr"], label="bads (cumulative)")
    b.plot(share, roc["fpr"], label="goods (cumulative)")
    i = int(np.argmax(gap)) if len(gap) else 0
    if len(gap):
        b.vlines(share[i], roc["fpr"].iloc[i], roc["tpr"].iloc[i], colors="red", label=f"KS {ks:.3f}")
    b.set_xlabel("share of applications, highest PD first")
    b.set_title("KS")
    b.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.86 if title else 0.9, wspace=0.25)
    return fig


def plot_calibration(table: pd.DataFrame, title: str = ""):
    """Mean predicted PD against the observed default rate per PD decile."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    hi = float(max(table["mean_pd"].max(), table["observed_rate"].max(), 1e-3)) * 1.1 if len(table) else 1.0
    ax.plot([0, hi], [0, hi], ls="--", color="grey", lw=0.8)
    ax.plot(table["mean_pd"], table["observed_rate"], marker="o")
    ax.set_xlabel("mean predicted PD")
    ax.set_ylabel("observed default rate")
    ax.set_title(title or "calibration by PD decile, test set")
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.12, top=0.92)
    return fig


def plot_importance(table: pd.DataFrame, value: str = "importance", label: str = "feature", top: int = 25):
    """Horizontal bar chart of the ``top`` largest importances."""
    plt = _pyplot()
    t = table.sort_values(value, ascending=False).head(top).iloc[::-1]
    height = 0.25 * len(t) + 1.2
    fig, ax = plt.subplots(figsize=(7.5, height))
    names = [n if len(n) <= 38 else n[:36] + ".." for n in t[label].astype(str)]
    ax.barh(names, t[value])
    ax.set_xlabel(f"{value} (mean |log-odds contribution|)" if value == "importance" else value)
    ax.set_title("feature importance")
    fig.subplots_adjust(left=0.42, right=0.97, bottom=0.7 / height, top=1 - 0.4 / height)
    return fig


def font_path() -> Path:
    """The shipped CJK font (GB2312 subset of Noto Sans CJK SC)."""
    return Path(str(resources.files("riskmodel") / "assets" / FONT_FILE))


@contextmanager
def _plotting():
    """matplotlib (Agg) with the shipped CJK font as a fallback after DejaVu Sans, for this block only."""
    plt = _pyplot()
    from matplotlib import font_manager

    path = font_path()
    if path.is_file() and FONT_FAMILY not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    with plt.rc_context({"font.family": ["DejaVu Sans", FONT_FAMILY], "axes.unicode_minus": False, "font.size": 9}):
        yield plt


def png(fig, dpi: int = 110) -> str:
    """The figure as a base64 PNG (for embedding in HTML); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _label(zh: str, en: str, width: int = 44) -> str:
    text = f"{zh}  {en}" if zh and zh != en else str(en)
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_importance_views(views: dict[str, pd.DataFrame], top: int = 15):
    """Three panels sharing one y axis: the top features (by mean rank) in each importance view."""
    with _plotting() as plt:
        summary = explain.importance_summary(views).head(top)
        feats = summary["feature"].tolist()[::-1]
        labels = [_label(z, e) for z, e in zip(summary["name_zh"], summary["name_en"])][::-1]
        height = 0.32 * len(feats) + 1.4
        fig, axes = plt.subplots(1, 3, figsize=(12.5, height), sharey=True)
        for ax, m in zip(axes, explain.METHODS):
            v = views[m].set_index("feature").reindex(feats)
            ax.barh(np.arange(len(feats)), v["share"].fillna(0).to_numpy() * 100, color={"model": "#4C72B0", "contribution": "#55A868", "permutation": "#C44E52"}[m])
            ax.set_title(explain.METHOD_LABELS[m], fontsize=9)
            ax.set_xlabel("share of the total, %")
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(np.arange(len(feats)))
        axes[0].set_yticklabels(labels)
        fig.tight_layout(w_pad=0.6)  # room for the longest bilingual label, nothing clipped
        return png(fig)


def _short_bin(label: str, upper_only: bool = False) -> str:
    """A compact tick label for an interval, numbers to 3 significant digits: "(-inf, 0.0350985]" ->
    "≤0.0351", "[0.1, inf)" -> "≥0.1"; with ``upper_only`` inner bins show only their upper bound."""
    import re

    m = re.fullmatch(r"\s*([\[(])\s*([^,]+),\s*([^\])]+)([\])])\s*", label)
    if not m:
        return label if len(label) <= 16 else label[:15] + "…"
    left, lo, hi, right = (g.strip() for g in m.groups())

    def num(v: str) -> str:
        try:
            return f"{float(v):.3g}"
        except ValueError:
            return v

    if hi in ("inf", "+inf") or (hi.startswith("1e+") and float(hi) >= 1e100):
        return (">" if left == "(" else "≥") + num(lo)
    if lo == "-inf" or upper_only:
        return ("≤" if right == "]" else "<") + num(hi)
    return f"{left}{num(lo)}, {num(hi)}{right}"


def plot_shapes(shapes: list[tuple[str, str, pd.DataFrame]]):
    """A grid of points-per-bin bar charts (two per row), one per (name_zh, name_en, shape table)."""
    with _plotting() as plt:
        n = len(shapes)
        rows = (n + 1) // 2
        fig, axes = plt.subplots(rows, 2, figsize=(12.5, 3.3 * rows), squeeze=False)
        for ax, (zh, en, t) in zip(axes.ravel(), shapes):
            pts = t["points"].to_numpy(dtype="float64")
            colors = np.where(pts >= 0, "#55A868", "#C44E52")
            x = np.arange(len(t))
            ax.bar(x, pts, color=colors)
            ax.axhline(0, color="grey", lw=0.8)
            bins = [_short_bin(b, upper_only=len(t) > 8) for b in t["bin"].astype(str)]
            step = max(1, int(np.ceil(len(bins) / 12)))  # at most ~12 labels: step functions have dozens of bins
            keep = sorted(set(range(0, len(bins), step)) | {len(bins) - 1})
            ax.set_xticks(x[keep])
            ax.set_xticklabels([bins[i] for i in keep], rotation=30, ha="right", fontsize=7.5)
            ax.set_ylabel("points (+ = safer)")
            kind = str(t["kind"].iloc[0]).replace("_", " ") if len(t) else ""
            ax.set_title(f"{_label(zh, en, 60)}\n({kind})", fontsize=9)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        fig.tight_layout(h_pad=1.2)
        return png(fig)


def plot_grades(grades: pd.DataFrame):
    """Observed bad rate and mean PD per grade, counts above the bars."""
    with _plotting() as plt:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        x = np.arange(len(grades))
        ax.bar(x, grades["bad_rate"] * 100, color="#4C72B0", label="observed bad rate")
        ax.plot(x, grades["mean_pd"] * 100, "o-", color="#DD8452", label="mean predicted PD")
        ax.set_xticks(x)  # counts under the grade names: labels on the bars collide with the PD line
        ax.set_xticklabels([f"{g}\nn={int(c)}" for g, c in zip(grades["grade"].astype(str), grades["count"])], fontsize=8)
        ax.set_ylabel("%")
        ax.set_xlabel("grade, best to worst")
        ax.legend(loc="upper left")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        return png(fig)


def roc_calibration_pngs(result, model: str) -> tuple[str, str]:
    """The ROC/KS and calibration figures of an evaluation (``riskmodel.evaluation.Evaluation``) as
    base64 PNGs, drawn in the report's style."""
    with _plotting():
        roc = png(plot_roc_ks(result.roc, result.metrics["test_auc"], result.metrics["test_ks"], title=f"{model}, out-of-time test"))
        cal = png(plot_calibration(result.calibration))
    return roc, cal


def plot_cap(cap: pd.DataFrame, accuracy_ratio: float | None, default_rate: float):
    """Cumulative accuracy profile (``riskmodel.validation.cap_curve``): the model's curve, the
    random model (diagonal) and the perfect one (every default first), the accuracy ratio in the legend."""
    with _plotting() as plt:
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        ar = f", AR {accuracy_ratio:.3f}" if accuracy_ratio is not None else ""
        ax.plot(cap["population_share"] * 100, cap["default_share"] * 100, lw=1.6, label=f"model{ar}")
        ax.plot([0, 100], [0, 100], ls="--", color="grey", lw=0.8, label="random")
        if 0 < default_rate < 1:
            ax.plot([0, default_rate * 100, 100], [0, 100, 100], ls=":", color="#55A868", lw=1.2, label="perfect")
        ax.set_xlabel("applicants, highest PD first (%)")
        ax.set_ylabel("defaults captured (%)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title("CAP curve")
        fig.tight_layout()
        return png(fig)


def plot_grade_calibration(grades: pd.DataFrame):
    """Per grade (``riskmodel.validation.grade_calibration``): observed default rate with its
    Jeffreys 95% interval, the PD tested, and the Pluto-Tasche upper bound, on a log scale (grades
    hold PDs from 0.1% to 30%); empty grades are left blank, a zero default rate sits on the axis."""
    from scipy import stats

    with _plotting() as plt:
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        x = np.arange(len(grades))
        n = grades["n"].to_numpy(dtype="float64")
        d = grades["defaults"].to_numpy(dtype="float64")
        dr = grades["default_rate"].to_numpy(dtype="float64") * 100
        has = n > 0
        lo = np.where(has & (d > 0), stats.beta.ppf(0.025, d + 0.5, n - d + 0.5), 0.0) * 100
        hi = np.where(has, stats.beta.ppf(0.975, d + 0.5, n - d + 0.5), np.nan) * 100
        floor = 0.01
        shown = np.where(dr > 0, dr, floor)
        ax.errorbar(x[has], shown[has], yerr=[np.maximum(shown[has] - np.maximum(lo[has], floor), 0), np.maximum(hi[has] - shown[has], 0)],
                    fmt="o", color="#4C72B0", capsize=3, label="observed default rate, Jeffreys 95%")
        ax.plot(x, grades["pd_tested"] * 100, "s-", color="#DD8452", ms=4, label="PD tested")
        ax.plot(x, grades["pt_upper_pd"] * 100, "^--", color="#8172B2", ms=4, lw=1, label="Pluto-Tasche upper bound")
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{g}\nn={int(c):,}" for g, c in zip(grades["grade"].astype(str), n)], fontsize=7.5)
        ax.set_ylabel("% (log scale; 0 drawn at 0.01)")
        ax.set_xlabel("grade, best to worst")
        ax.grid(alpha=0.3, which="both", axis="y")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title("calibration per grade")
        fig.tight_layout()
        return png(fig)
