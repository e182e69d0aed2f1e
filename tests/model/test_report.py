"""The reviewer report (riskmodel.report) and `riskmodel report / explain` on real trained runs."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd
import pytest

from riskmodel import plots, report, tracking
from riskmodel.train import train_generated


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, flags=re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


@pytest.mark.slow
def test_scorecard_report_has_every_section_embedded_images_and_is_logged(cli, mlflow_store, small_hub, tmp_path):
    s = train_generated(small_hub, "scorecard", mlflow_store.experiment, use_cache=False)
    before = sorted(p.name for p in small_hub.iterdir())
    code, out, err = cli("report", "--run", s["run_id"], "--out", tmp_path / "rep", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert sorted(p.name for p in small_hub.iterdir()) == before  # the report never writes into the data hub
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")

    # every section, in order, with a heading
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == [sid for sid, _ in report.SECTIONS] == summary["sections"]
    for sid, title in report.SECTIONS:
        assert f"<h2>{title}</h2>" in _section(page, sid)

    # self-contained: images and the CJK font are data: URLs; nothing is fetched
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 5
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    for sid in ("importance", "shapes", "roc", "calibration", "grades", "validation"):
        assert "data:image/png;base64," in _section(page, sid), sid
    assert re.search(r"(src|href)=\"(https?:)?//", page) is None and "<script" not in page and "<link" not in page
    assert 'font-family: "ReportCJK"; src: url(data:font/woff;base64,' in page

    # catalog names in both languages; scorecard points; five example firms with reasons
    cm, _, _ = tracking.load_credit_model(f"runs:/{s['run_id']}/model")
    est = cm.estimator
    top = est.selected_[0]
    row = cm.catalog.set_index("name").loc[top]
    for sid in ("catalog", "importance", "monotonicity"):
        body = _section(page, sid)
        assert row["name_zh"] in body and row["name_en"].replace("&", "&amp;") in body, sid
    assert "(base)" in _section(page, "scorecard") and f"{est.base_points_:.1f}" in _section(page, "scorecard")
    assert _section(page, "examples").count('<div class="firm">') == 5
    assert "Reason codes" in _section(page, "examples")
    assert "low_auc" in _section(page, "segments") or "insufficient" in _section(page, "segments")
    assert ">score<" in _section(page, "psi")
    # the validator's battery on the same out-of-time rows: lights, per-grade tests, the low-default bound
    val = _section(page, "validation")
    assert summary["validation_verdict"] in ("green", "yellow", "red")
    assert f"<b>{summary['validation_verdict'].upper()}</b><span>verdict</span>" in val
    assert re.search(r'<td class="[^"]*lt-(green|yellow|red)">', val)
    for column in ("Jeffreys p", "binomial p", "Pluto-Tasche 95% %", "AUC, DeLong 95%", "CAP curve"):
        assert column in val, column
    assert f"<b>{s['metrics']['test_auc']:.3f} [" in val  # the AUC of the same out-of-time rows, with its interval

    # logged to the run
    logged = [a.path for a in tracking.client().list_artifacts(s["run_id"], "report")]
    assert logged == ["report/index.html"]

    # explain one firm of the test rows through the CLI, and an unknown id
    feats = tmp_path / "features.parquet"
    from riskmodel.dataset import feature_matrix

    matrix, _, _ = feature_matrix(small_hub, use_cache=False)
    matrix.to_parquet(feats, index=False)
    app_id = str(matrix["application_id"].iloc[-1])
    code, out, err = cli("explain", "--model", f"runs:/{s['run_id']}/model", "--features", feats, "--id", app_id)
    assert code == 0, err
    assert f"application {app_id}" in out and row["name_zh"] in out and row["name_en"] in out and "grade" in out
    code, out, err = cli("explain", "--model", f"runs:/{s['run_id']}/model", "--features", feats, "--id", "A-NOPE")
    assert code == 2 and "A-NOPE" in err and "is not in" in err and "Traceback" not in err


@pytest.mark.slow
def test_gbm_additive_report_shows_step_functions(mlflow_store, small_hub, tmp_path):
    s = train_generated(small_hub, "gbm_additive", mlflow_store.experiment, use_cache=False, params={"n_estimators": 150})
    summary = report.write_report(s["run_id"], tmp_path / "r", log_to_run=False)
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert "not a points scorecard" in _section(page, "scorecard")
    assert "data:image/png;base64," in _section(page, "shapes")
    assert "artifact_uri" not in summary
    assert tracking.client().list_artifacts(s["run_id"], "report") == []


def test_report_errors_are_one_line(cli, mlflow_store, tmp_path):
    code, out, err = cli("report", "--run", "0123456789abcdef", "--out", tmp_path / "x")
    assert code == 2 and "not found" in err and "Traceback" not in err
    code, out, err = cli("report", "--out", tmp_path / "x")
    assert code == 2 and "exactly one of --run" in err


def test_catalog_chinese_is_covered_by_the_shipped_font():
    from fontTools.ttLib import TTFont

    from features.catalog import catalog

    cmap = TTFont(str(plots.font_path())).getBestCmap()
    cat = catalog()
    text = "".join(cat["name_zh"].astype(str)) + "".join(cat["reason_zh"].astype(str)) + "技术流"
    missing = sorted({ch for ch in text if ord(ch) > 0x7F and ord(ch) not in cmap})
    assert not missing, f"add these characters to riskmodel/assets (see its README): {''.join(missing)}"


def test_plots_draw_chinese_without_missing_glyphs(recwarn):
    import warnings

    views = {
        m: pd.DataFrame({"rank": [1, 2], "feature": ["a", "b"], "name_zh": ["研发投入强度(近一年)", "资产负债率"],
                         "name_en": ["R&D intensity", "Leverage"], "family": "x", "direction": 1,
                         "importance": [2.0, 1.0], "share": [2 / 3, 1 / 3]})
        for m in ("model", "contribution", "permutation")
    }
    shape = pd.DataFrame({"bin": ["(-inf, 0.1]", "(0.1, inf]", "Missing"], "contribution": [0.1, -0.2, 0.0],
                          "points": [-3.0, 6.0, 0.0], "count": [5.0, 5.0, 1.0], "kind": "step_function"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for tofu
        pngs = [plots.plot_importance_views(views), plots.plot_shapes([("用电量同比变化", "Electricity use", shape)])]
    assert all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
