"""HTML pages for reviewers: the Jinja2 template ``riskmodel/templates/report.html.j2`` (autoescape
on), the plain-data form of a table its ``table`` macro draws, and the CJK font embedded in a page.

The model report (:mod:`riskmodel.report`) and the validation report
(:mod:`riskmodel.model_validation`) build their page data as plain dicts and render them here:
every text is escaped by the template, figures are base64 PNGs (:mod:`riskmodel.plots`), and the
page embeds a subset of the shipped CJK font holding only the characters it uses.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable

import numpy as np
import pandas as pd

from riskmodel import plots

TEMPLATE = "report.html.j2"


def fmt(v: Any, digits: int = 4) -> str:
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
LIGHTS = frozenset({"green", "yellow", "red"})
NOWRAP = frozenset({"name_zh", "feature", "variable", "name", "bin", "value", "first_date", "last_date", "set", "item"})


def table_data(
    df: pd.DataFrame,
    digits: dict[str, int] | None = None,
    row_class=None,
    scroll: bool = False,
    max_rows: int | None = None,
    formats: dict[str, Callable[[Any], str]] | None = None,
    colour_by: dict[str, str] | None = None,
) -> dict:
    """A table as plain data for the template's ``table`` macro: ``head`` (column name, CSS class),
    ``rows`` (row CSS class, cells of (text, CSS class)) and ``scroll``. Numbers are formatted
    (``digits`` per column, or ``formats``: column -> function of the value giving its text) and
    right-aligned, names unwrapped; ``row_class(row) -> css class`` marks rows. A traffic light (a
    column named ``light`` or ``*_light`` holding green, yellow or red) colours its cell;
    ``colour_by`` (column -> light column) colours a column's cells by another column's light
    instead, and that light column is not shown. The template escapes every text."""
    digits, formats, colour_by = digits or {}, formats or {}, colour_by or {}
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    all_cols = list(df.columns)
    cols = [c for c in all_cols if c not in set(colour_by.values())]
    num = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}
    css = {c: "num" if num[c] else ("nw" if c in NOWRAP else ("wide" if c in WIDE else ("mid" if c == "name_en" else ""))) for c in cols}
    light_of = {c: c for c in cols if c == "light" or str(c).endswith("_light")} | dict(colour_by)
    rows = []
    for rec in df.itertuples(index=False):
        row = dict(zip(all_cols, rec))
        cells = []
        for c in cols:
            v = row[c]
            text = formats[c](v) if c in formats else (fmt(v, digits.get(c, 4)) if num[c] or isinstance(v, (float, np.floating)) else fmt(v))
            lt = row[light_of[c]] if c in light_of else None
            cells.append((text, f"{css[c]} lt-{lt}".strip() if lt in LIGHTS else css[c]))
        rows.append((row_class(row) if row_class else "", cells))
    return {"head": [(str(c), css[c]) for c in cols], "rows": rows, "scroll": scroll}


def percent(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Rates and PDs as percentages (column renamed ``<col> %``): 0.0123 reads better as 1.23."""
    out = df.copy()
    for c in cols:
        if c in out.columns:
            out[c] = out[c].astype("float64") * 100
    return out.rename(columns={c: f"{c} %" for c in cols if c in out.columns})


def flag_rows(column: str, flag: str, warn: str):
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
