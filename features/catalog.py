"""The feature catalog: one row per registered feature, generated from the signal registry.

``catalog()`` has the columns of ``features.contract.CATALOG_COLUMNS``: names (中文/English), family,
kind (signal or product), the tables and lookback a feature reads (through the features it builds
on), the expected direction on the PD, the sensitivity grade of the most sensitive column read, the
unit, the declared ``lower_bound`` (NaN when the value is signed), and the texts a credit officer
reads. The columns a feature reads are recorded by running every feature once on empty tables
(:func:`source_columns`), so grades and tables follow the code, not a hand-kept list.

Also here: the grades of every matrix column (:func:`column_grades`, for ``features.privacy``), the
directions models take (:func:`feature_directions`), the version of the code that determines feature
values (:func:`feature_code_version`, for caches of built matrices) and the generated page
docs/features.md (:func:`catalog_markdown`, :func:`write_docs`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd

from features.asof import EVENT_TABLES, MONTHLY_TABLES, empty_table
from features.build import _applications, _run
from features.contract import BASELINE_FAMILIES, CATALOG_COLUMNS, DATE, FIRM, KEY
from features.files import write_text
from features.privacy import GRADE_ORDER
from features.registry import Signal
from features.signals import load_all
from features.tables import SCHEMAS

#: grades of the identifier and segment columns of a feature matrix (features have theirs in the catalog)
ID_GRADES: dict[str, str] = {
    KEY: "L2", FIRM: "L2", DATE: "L2", "industry": "L1", "region": "L1", "lifecycle_stage": "L1", "size_band": "L2", "product": "L2",
}

_ROOT = Path(__file__).resolve().parent
#: the generated catalog page
DOCS_PATH = _ROOT.parent / "docs" / "features.md"


@functools.cache
def _dry_reads() -> dict[str, frozenset[str]]:
    """Columns each feature reads, recorded by running every feature once on empty tables."""
    empty = {name: empty_table(name) for name in (*MONTHLY_TABLES, *EVENT_TABLES)}
    apps = empty_table("applications")
    reg = load_all()
    frame = _applications(empty, apps, None)
    _, reads, _, _, _ = _run(empty, frame, list(reg.values()), None)
    return {k: frozenset(v) for k, v in reads.items()}


def source_columns(name: str) -> list[str]:
    """``table.column`` names a feature reads (products: the union over their inputs)."""
    reg = load_all()
    reads = _dry_reads()
    s = reg[name]
    cols = set(reads.get(name, ()))
    for p in s.params:
        if p in reg:
            cols |= set(source_columns(p))
    return sorted(cols)


def _tables_of(s: Signal, reg: dict[str, Signal]) -> list[str]:
    out: set[str] = set()
    for p in s.params:
        if p in reg:
            out |= set(_tables_of(reg[p], reg))
        else:
            out.add(p)
    return sorted(out)


def _lookback_of(s: Signal, reg: dict[str, Signal]) -> int:
    """The longest history a feature reads, through the features it builds on (0 = whole record)."""
    lbs = [s.lookback_months] if any(p not in reg for p in s.params) else []
    lbs += [_lookback_of(reg[p], reg) for p in s.params if p in reg]
    return 0 if 0 in lbs else max(lbs)


def _grade_of(s: Signal) -> str:
    if s.grade is not None:
        return s.grade
    grades = []
    for col in source_columns(s.name):
        table, column = col.split(".", 1)
        grades.append(SCHEMAS[table].grade_of(column))
    # A feature that reads no value column (a coverage count) only says that rows exist: internal (L2).
    return max(grades, key=GRADE_ORDER.get) if grades else "L2"


@functools.cache
def _catalog() -> pd.DataFrame:
    reg = load_all()
    rows = []
    for s in reg.values():
        rows.append(
            {
                "name": s.name,
                "name_zh": s.name_zh,
                "name_en": s.name_en,
                "family": s.family,
                "kind": s.kind,
                "tables": ",".join(_tables_of(s, reg)),
                "lookback_months": int(_lookback_of(s, reg)),
                "direction": int(s.direction),
                "grade": _grade_of(s),
                "unit": s.unit,
                "lower_bound": np.nan if s.lower_bound is None else s.lower_bound,
                "description": s.description,
                "reason_en": s.reason_en,
                "reason_zh": s.reason_zh,
                "actionable": bool(s.actionable),
            }
        )
    df = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    df["lookback_months"] = df["lookback_months"].astype("int64")
    df["direction"] = df["direction"].astype("int64")
    df["lower_bound"] = df["lower_bound"].astype("float64")
    df["actionable"] = df["actionable"].astype(bool)
    return df


def catalog() -> pd.DataFrame:
    """One row per feature (signals, then products) with the columns of ``CATALOG_COLUMNS`` (a copy)."""
    return _catalog().copy()


def column_grades() -> dict[str, str]:
    """Sensitivity grade of every column a feature matrix can hold (for ``features.privacy.release``)."""
    cat = _catalog()
    return {**ID_GRADES, **dict(zip(cat["name"], cat["grade"]))}


def feature_directions() -> dict[str, int]:
    """Expected direction of each feature on the PD (+1, -1, 0), as models take it."""
    cat = _catalog()
    return dict(zip(cat["name"], cat["direction"].astype(int)))


#: the source files that determine feature values: windows, schemas, the registry, every signal and
#: product, the build and the catalog (grades and bounds); paths relative to the package folder
CODE_FILES: tuple[str, ...] = ("asof.py", "build.py", "catalog.py", "contract.py", "products.py", "registry.py", "tables.py", "signals/*.py")


def feature_code_version() -> str:
    """Hash of everything that determines feature values: the catalog and the source files of
    ``CODE_FILES``. Use it to key caches of built feature matrices: it changes when a formula
    changes even if no catalog text does."""
    h = hashlib.sha256(_catalog().to_csv(index=False).encode("utf-8"))
    paths = sorted({p for pattern in CODE_FILES for p in _ROOT.glob(pattern)})
    for path in paths:
        h.update(path.relative_to(_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Documentation generated from the catalog
# ------------------------------------------------------------------------------------------------


def _direction(d: int) -> str:
    return "+1" if d > 0 else ("-1" if d < 0 else "0")


def _bound(b: float) -> str:
    return "none" if math.isnan(b) else f"{b:g}"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def catalog_markdown() -> str:
    """docs/features.md: the catalog as Markdown, grouped by family. Regenerate with
    ``riskmodel catalog --format md --out docs/features.md`` (a test fails when the file is stale)."""
    cat = _catalog()
    baseline = " and ".join(f"`{f}`" for f in sorted(BASELINE_FAMILIES))
    lines = [
        "# Feature catalog",
        "",
        "<!-- Generated from the signal registry by `riskmodel catalog --format md --out docs/features.md`. Do not edit. -->",
        "",
        f"{len(cat)} features: {int((cat['kind'] == 'signal').sum())} signals and {int((cat['kind'] == 'product').sum())} "
        "data products. Every feature reads its tables through the point-in-time view of `features/asof.py`: "
        "only rows whose `available_date` is strictly before the application date, inside the lookback "
        "(0 = the whole record known by then).",
        "",
        "Direction is the expected effect on the probability of default (+1 raises it, -1 lowers it, 0 unknown). "
        "Grade is the sensitivity of the most sensitive source column read (L1 public, L2 internal, L3 "
        "confidential; L4 restricted columns are never read). Lower bound is the smallest value the feature "
        "can take by construction, declared on the signal (none: a signed quantity); scoring rejects a row "
        f"below it. The financial-only baseline uses the families {baseline}.",
        "",
    ]
    for family in dict.fromkeys(cat["family"]):
        sub = cat[cat["family"] == family]
        lines += [f"## {family}", ""]
        lines += [
            "| name | 中文名 | tables | lookback (months) | direction | grade | unit | lower bound | description | reason (risk up) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sub.itertuples(index=False):
            lines.append(
                f"| `{r.name}` | {_md_escape(r.name_zh)} | {_md_escape(r.tables)} | {r.lookback_months} | {_direction(r.direction)} | {r.grade} | "
                f"{_md_escape(r.unit)} | {_bound(r.lower_bound)} | {_md_escape(r.name_en)}: {_md_escape(r.description)} | "
                f"{_md_escape(r.reason_en)} / {_md_escape(r.reason_zh)} |"
            )
        lines.append("")
    lines += ["## Source columns read", "", "| feature | columns |", "|---|---|"]
    for name in cat["name"]:
        lines.append(f"| `{name}` | {', '.join(source_columns(name)) or '(row presence only)'} |")
    lines.append("")
    return "\n".join(lines)


def write_docs(path: str | Path = DOCS_PATH) -> Path:
    """Write the generated catalog page (docs/features.md by default), atomically."""
    return write_text(path, catalog_markdown())


def catalog_records() -> list[dict]:
    """The catalog as JSON-ready records (a missing lower bound is ``None``, JSON ``null``)."""
    cat = _catalog().astype({"lower_bound": object})
    cat["lower_bound"] = cat["lower_bound"].where(cat["lower_bound"].notna(), None)
    return cat.to_dict("records")
