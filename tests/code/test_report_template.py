"""The report page is rendered from plain data by a Jinja2 template with autoescape on (riskmodel.pages)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from riskmodel import pages, report

HOSTILE = '<script>alert("x")</script> & R&D'


def _table(text: str = "x") -> dict:
    return pages.table_data(pd.DataFrame({"name": [text], "value": [0.5]}))


def _page(**overrides) -> dict:
    """Page data for every section, the smallest that renders; ``overrides`` replace a section's fields."""
    t = _table()
    sections = {
        "summary": {"kpis": [("0.8", "test AUC")], "run": t, "rows": t, "manifest": None, "tables": None},
        "catalog": {"n_offered": 3, "n_in_model": 2, "table": t},
        "scorecard": {"model": "gbm_additive", "table": None},
        "importance": {"plot": "iVBOR", "table": t},
        "monotonicity": {"n_contradictions": 0, "n_non_monotone": 1, "unused": [], "table": t},
        "shapes": {"n": 0, "plot": None},
        "roc": {"n_rows": "1,000", "n_defaults": 30, "auc": "0.8", "ks": "0.5", "oracle": None, "plot": "iVBOR"},
        "calibration": {"plot": "iVBOR", "ece": "0.01", "table": t},
        "grades": {"table": None},
        "segments": {"n_low": 0, "table": t},
        "psi": {"table": t},
        "validation": {"verdict": "yellow", "kpis": [("YELLOW", "verdict")], "sample": "s", "parameters": "p", "tests": t, "discrimination": t,
                       "cap": "iVBOR", "grade_plot": "iVBOR", "grades": t, "portfolio": t, "psi": None, "concentration": t,
                       "concentration_test": None, "migration": None, "notes": []},
        "examples": {"firms": []},
    }
    for sid, fields in overrides.items():
        sections[sid] = {**sections[sid], **fields}
    return {"title": "Model report — t — run 0123abcd", "generated": "2026-01-01 00:00 UTC", "cut_date": "2024-05-19",
            "sections": [{"id": sid, "title": name, **sections[sid]} for sid, name in report.SECTIONS]}


def _section(page: str, sid: str) -> str:
    return re.search(rf'<section id="{sid}">(.*?)</section>', page, flags=re.S).group(1)


def test_every_text_is_escaped():
    firm = {"i": 1, "grade": "R3", "pd": "1.00%", "score": "600", "defaulted": True, "ident": [("firm_id", HOSTILE)],
            "reasons": [(HOSTILE, "en")], "base_points": "500.0", "table": _table(HOSTILE)}
    page = pages.render_page(_page(catalog={"table": _table(HOSTILE)}, monotonicity={"unused": [HOSTILE]}, examples={"firms": [firm]}))
    assert "<script>" not in page and page.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; R&amp;D") == 5
    assert '<td class="nw">&lt;script&gt;' in _section(page, "catalog")


def test_the_page_is_the_sections_in_order_with_their_branches():
    page = pages.render_page(_page())
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Model report — t — run 0123abcd</title>')
    assert re.findall(r'<section id="([a-z]+)"><h2>([^<]+)</h2>', page) == list(report.SECTIONS)
    assert "gbm_additive is not a points scorecard" in _section(page, "scorecard")
    assert "The model gives no feature any weight." in _section(page, "shapes")
    assert "No grades on the test rows." in _section(page, "grades")
    assert "KS 0.5." in _section(page, "roc") and "true PD" not in _section(page, "roc")
    nav = re.search(r"<nav>(.*?)</nav>", page, flags=re.S).group(1)
    assert nav.split("\n") == [f'<a href="#{sid}">{name}</a>' for sid, name in report.SECTIONS]
    # the KPI boxes are inline blocks: no whitespace between them (it would show as a gap)
    two = pages.render_page(_page(summary={"kpis": [("0.8", "test AUC"), ("0.5", "test KS")]}))
    assert '<span>test AUC</span></div><div class="kpi">' in two


def test_the_font_is_cut_to_the_cjk_characters_of_the_rendered_page():
    import base64
    import io

    from fontTools.ttLib import TTFont

    page = pages.render_page(_page(catalog={"table": _table("研发投入")}))
    b64 = re.search(r'font-family: "ReportCJK"; src: url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)', page).group(1)
    cmap = TTFont(io.BytesIO(base64.b64decode(b64))).getBestCmap()
    assert {chr(c) for c in cmap if c >= 0x2E80} == set("技术流研发投入")  # the header's and the table's, no more


def test_table_data_formats_numbers_and_marks_rows():
    t = pages.table_data(pd.DataFrame({"feature": ["a", "b"], "psi": [0.123456, np.nan], "n": [1500, 2], "band": ["act", "stable"]}),
                          digits={"psi": 2}, row_class=lambda r: "flag" if r["band"] == "act" else "", scroll=True)
    assert t["head"] == [("feature", "nw"), ("psi", "num"), ("n", "num"), ("band", "")]
    assert t["rows"] == [("flag", [("a", "nw"), ("0.12", "num"), ("1,500", "num"), ("act", "")]),
                         ("", [("b", "nw"), ("–", "num"), ("2", "num"), ("stable", "")])]
    assert t["scroll"] is True
