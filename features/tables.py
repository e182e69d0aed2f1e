"""Source tables of the sci-tech finance data hub: one declared schema per table, loaded and validated.

Each schema says, per column, its dtype, allowed range or categories, whether it may be null, its
sensitivity grade (L1 public .. L4 restricted) and what it means. Validation is vectorised (one
boolean mask per rule over the whole column), so a ten-million-row table validates in seconds.

Every table carries ``firm_id`` and ``available_date``: the first day on which the hub knows the
row. ``available_date`` may never precede the event the row describes (``TableSchema.event``); all
point-in-time logic downstream (``features.asof``) rests on that column.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, model_validator

from features.errors import UserError

log = logging.getLogger(__name__)

Grade = Literal["L1", "L2", "L3", "L4"]
DType = Literal["string", "int", "float", "date", "bool", "category"]

GRADES: dict[str, str] = {
    "L1": "public: published registers (patents, certificates, procurement awards)",
    "L2": "internal: aggregated operating data, usable in models without identifying anyone",
    "L3": "confidential: firm-level tax, payroll, utility and bank records; models may use, release only under agreement",
    "L4": "restricted: direct identifiers of firms or persons; never leaves the hub",
}

INDUSTRIES = (
    "ai",
    "integrated_circuits",
    "biomedicine",
    "new_energy",
    "new_materials",
    "high_end_equipment",
    "software",
)
REGIONS = ("jingjinji", "yangtze_delta", "greater_bay", "chengyu", "central", "west_northeast")
CERT_TYPES = ("high_tech", "tech_sme", "specialized", "little_giant")
PATENT_TYPES = ("invention", "utility_model", "design", "software_copyright")
PATENT_EVENTS = ("grant", "lapse", "pledge", "pledge_release")
BUYER_TYPES = ("government", "soe", "university_hospital")
CREDENTIALS = ("national_programme", "provincial_programme", "senior_title", "doctorate")
TALENT_EVENTS = ("join", "leave")
PRODUCTS = ("rnd_loan", "order_financing", "equipment_lease", "talent_loan")

MONEY = "CNY 10k (万元)"


class Column(BaseModel):
    """One declared column. ``min``/``max`` are inclusive bounds for numbers."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: DType
    description: str
    grade: Grade = "L2"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    unit: str = ""
    # A date fixed in advance and known when the row is published (a certificate's expiry): it may lie
    # after the dataset's snapshot date, unlike every other date.
    scheduled: bool = False
    # A column a file may lack (a hub that does not record it): read as all null. Only for nullable columns.
    optional: bool = False

    @model_validator(mode="after")
    def _categories_only_for_category(self) -> Column:
        if (self.categories is not None) != (self.dtype == "category"):
            raise ValueError(f"column {self.name}: categories must be given exactly for dtype 'category'")
        if self.optional and not self.nullable:
            raise ValueError(f"column {self.name}: an optional column must be nullable (it reads as null when absent)")
        return self


class TableSchema(BaseModel):
    """One source table: who supplies it, its key, its columns and its timing rule."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    supplier: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    # available_date >= event column + event_offset_months (e.g. a monthly reading is known after its month).
    event: str
    event_offset_months: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> TableSchema:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")
        for required in ("firm_id", "available_date"):
            if required not in names:
                raise ValueError(f"table {self.name}: every table needs {required}")
        missing = [k for k in (*self.key, self.event) if k not in names]
        if missing:
            raise ValueError(f"table {self.name}: key/event columns {missing} are not declared")
        return self

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")

    def grade_of(self, name: str) -> str:
        return self.column(name).grade


def _firm_id(grade: Grade = "L2") -> Column:
    return Column(name="firm_id", dtype="string", grade=grade, description="pseudonymous firm id (keyed HMAC of the registration id)")


def _available(what: str) -> Column:
    return Column(name="available_date", dtype="date", grade="L2", description=f"first day the hub knows the row: {what}")


def _month(what: str) -> Column:
    return Column(name="month", dtype="date", grade="L2", description=f"first day of the calendar month the {what} covers")


def _money(name: str, description: str, grade: Grade = "L3", nullable: bool = False, signed: bool = False) -> Column:
    lo = None if signed else 0.0
    return Column(name=name, dtype="float", grade=grade, nullable=nullable, min=lo, max=1e8, unit=MONEY, description=description)


def _count(name: str, description: str, grade: Grade = "L3", hi: float = 1e6) -> Column:
    return Column(name=name, dtype="int", grade=grade, min=0, max=hi, description=description)


SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in [
        TableSchema(
            name="firms",
            description="business registry: one row per firm",
            supplier="market regulation administration (工商登记)",
            key=("firm_id",),
            event="founding_date",
            columns=(
                _firm_id(),
                Column(name="registration_id", dtype="string", grade="L4", description="unified social credit code (统一社会信用代码), raw identifier"),
                Column(name="legal_rep_id", dtype="string", grade="L4", description="national id number of the legal representative"),
                Column(name="industry", dtype="category", grade="L1", categories=INDUSTRIES, description="strategic emerging industry"),
                Column(name="region", dtype="category", grade="L1", categories=REGIONS, description="economic region of registration"),
                Column(name="founding_date", dtype="date", grade="L1", description="date of registration"),
                _money("registered_capital", "registered capital", grade="L1"),
                _available("the registration date"),
            ),
        ),
        TableSchema(
            name="financials",
            description="annual financial statements as filed with the tax bureau",
            supplier="tax bureau (annual corporate income tax filing)",
            key=("firm_id", "fiscal_year"),
            event="period_end",
            columns=(
                _firm_id(),
                Column(name="fiscal_year", dtype="int", min=1990, max=2100, description="fiscal year"),
                Column(name="period_end", dtype="date", description="last day of the fiscal year"),
                _money("revenue", "operating revenue"),
                _money("high_tech_revenue", "revenue from high-tech products and services"),
                _money("cost_of_sales", "cost of sales"),
                _money("rnd_expense", "R&D expense reported in the income statement"),
                _money("net_profit", "net profit", signed=True),
                _money("total_assets", "total assets"),
                _money("total_liabilities", "total liabilities"),
                _money("current_assets", "current assets"),
                _money("current_liabilities", "current liabilities"),
                _money("operating_cash_flow", "net cash flow from operating activities", signed=True),
                _available("the filing date, months after the fiscal year ends"),
            ),
        ),
        TableSchema(
            name="rnd_deductions",
            description="R&D super-deduction (研发费用加计扣除) filings",
            supplier="tax bureau",
            key=("firm_id", "tax_year"),
            event="filing_date",
            columns=(
                _firm_id(),
                Column(name="tax_year", dtype="int", min=1990, max=2100, description="tax year the claim covers"),
                Column(name="filing_date", dtype="date", description="date the claim was filed (spring of the next year)"),
                _money("rnd_expense_claimed", "R&D expense claimed as eligible"),
                _money("super_deduction", "additional deduction granted (100% of the claim since 2023)"),
                _count("rnd_staff", "R&D staff declared with the claim", hi=5000),
                _available("the filing date"),
            ),
        ),
        TableSchema(
            name="certifications",
            description="sci-tech certifications: high-tech enterprise, tech SME, 专精特新, 小巨人",
            supplier="science and technology bureau; MIIT",
            key=("cert_no",),
            event="issue_date",
            columns=(
                _firm_id(),
                Column(name="cert_no", dtype="string", grade="L1", description="certificate number"),
                Column(name="cert_type", dtype="category", grade="L1", categories=CERT_TYPES, description="certification"),
                Column(name="issue_date", dtype="date", grade="L1", description="date of issue"),
                Column(name="expiry_date", dtype="date", grade="L1", scheduled=True, description="last day of validity (printed on the certificate; may be after the snapshot)"),
                _available("publication of the list of certified firms"),
            ),
        ),
        TableSchema(
            name="patents",
            description="intellectual-property events: grant, lapse, pledge and pledge release, one row per event",
            supplier="national IP administration (CNIPA); copyright centre",
            key=("patent_id", "event"),
            event="event_date",
            columns=(
                _firm_id(),
                Column(name="patent_id", dtype="string", grade="L1", description="patent or registration number"),
                Column(name="patent_type", dtype="category", grade="L1", categories=PATENT_TYPES, description="kind of IP right"),
                Column(name="event", dtype="category", grade="L1", categories=PATENT_EVENTS, description="what happened"),
                Column(name="filing_date", dtype="date", grade="L1", description="application (filing) date"),
                Column(name="event_date", dtype="date", grade="L1", description="date of the event"),
                _available("publication of the event"),
            ),
        ),
        TableSchema(
            name="bids",
            description="public procurement awards won",
            supplier="public procurement platforms",
            key=("bid_id",),
            event="award_date",
            columns=(
                _firm_id(),
                Column(name="bid_id", dtype="string", grade="L1", description="tender number"),
                Column(name="award_date", dtype="date", grade="L1", description="date of award"),
                _money("amount", "contract amount", grade="L1"),
                Column(name="buyer_type", dtype="category", grade="L1", categories=BUYER_TYPES, description="kind of buyer"),
                _available("publication of the award"),
            ),
        ),
        TableSchema(
            name="electricity",
            description="monthly electricity use of the firm's own meter",
            supplier="grid company",
            key=("firm_id", "month"),
            event="month",
            event_offset_months=1,
            columns=(
                _firm_id(),
                _month("reading"),
                Column(name="kwh", dtype="float", grade="L3", min=0, max=1e9, unit="kWh", description="electricity used in the month"),
                _available("the meter reading is billed, after the month ends"),
            ),
        ),
        TableSchema(
            name="social_security",
            description="monthly insured headcount",
            supplier="human resources and social security bureau",
            key=("firm_id", "month"),
            event="month",
            event_offset_months=1,
            columns=(
                _firm_id(),
                _month("contribution"),
                _count("headcount", "employees with social insurance paid in the month", hi=100000),
                _available("contributions are settled, after the month ends"),
            ),
        ),
        TableSchema(
            name="invoices",
            description="monthly VAT e-invoice aggregates",
            supplier="tax bureau (golden tax system)",
            key=("firm_id", "month"),
            event="month",
            event_offset_months=1,
            columns=(
                _firm_id(),
                _month("invoices"),
                _money("sales_amount", "value of sales invoices issued"),
                _money("purchase_amount", "value of purchase invoices received"),
                _count("n_customers", "distinct buyers invoiced"),
                _count("n_suppliers", "distinct sellers invoicing the firm"),
                Column(name="top_customer_share", dtype="float", grade="L3", nullable=True, min=0, max=1, unit="share", description="share of sales to the largest buyer (null without sales)"),
                _available("the monthly VAT filing"),
            ),
        ),
        TableSchema(
            name="bills",
            description="monthly disclosure of commercial bills the firm accepted (as acceptor)",
            supplier="commercial paper exchange disclosure platform",
            key=("firm_id", "month"),
            event="month",
            event_offset_months=1,
            columns=(
                _firm_id(),
                _month("disclosure"),
                _count("accepted_count", "bills accepted in the month", grade="L2"),
                _money("accepted_amount", "amount of bills accepted in the month", grade="L2"),
                _money("outstanding_amount", "accepted bills not yet due at month end", grade="L2"),
                _count("overdue_count", "bills past due and unpaid at month end", grade="L2"),
                _money("overdue_amount", "amount past due and unpaid at month end", grade="L2"),
                Column(name="max_days_overdue", dtype="int", grade="L2", min=0, max=3650, unit="days", description="longest overdue bill at month end, in days"),
                _available("the monthly disclosure"),
            ),
        ),
        TableSchema(
            name="talent",
            description="key staff with recognised credentials: joins and departures",
            supplier="talent office; human resources bureau",
            key=("firm_id", "person_id", "credential", "event"),
            event="event_date",
            columns=(
                _firm_id(),
                Column(name="person_id", dtype="string", grade="L3", description="pseudonymous person id"),
                Column(name="credential", dtype="category", grade="L2", categories=CREDENTIALS, description="credential held"),
                Column(name="event", dtype="category", grade="L2", categories=TALENT_EVENTS, description="joined or left the firm"),
                Column(name="event_date", dtype="date", grade="L2", description="date of the event"),
                _available("registration of the change"),
            ),
        ),
        TableSchema(
            name="applications",
            description="loan applications received by the bank",
            supplier="bank",
            key=("application_id",),
            event="application_date",
            columns=(
                Column(name="application_id", dtype="string", grade="L2", description="application id"),
                _firm_id(),
                Column(name="application_date", dtype="date", grade="L2", description="date the application was received"),
                _money("amount", "amount requested", grade="L3"),
                Column(name="term_months", dtype="int", grade="L2", min=1, max=120, unit="months", description="term requested"),
                Column(name="product", dtype="category", grade="L2", categories=PRODUCTS, description="loan product"),
                _money("collateral_value", "value of collateral and guarantees offered", grade="L3"),
                Column(name="approved", dtype="bool", grade="L3", nullable=True, optional=True,
                       description="the bank's decision: true if granted; outcomes exist only for granted loans (null or absent: not recorded)"),
                _available("the application date"),
            ),
        ),
        TableSchema(
            name="outcomes",
            description="performance of each labelled application over the 12 months after it",
            supplier="bank",
            key=("application_id",),
            event="available_date",
            columns=(
                Column(name="application_id", dtype="string", grade="L2", description="application id"),
                _firm_id(),
                Column(name="default_12m", dtype="int", grade="L3", min=0, max=1, description="1 if 90+ days past due within 12 months of the application"),
                Column(name="default_date", dtype="date", grade="L3", nullable=True, description="date the loan reached 90 days past due"),
                _available("12 months after the application, when the outcome is final"),
            ),
        ),
    ]
}

TABLE_NAMES: tuple[str, ...] = tuple(SCHEMAS)
REQUIRED_TABLES: tuple[str, ...] = ("firms", "applications")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One broken rule: which file, which column, which rows (first few), how many, and the rule."""

    table: str
    file: str
    column: str
    rule: str
    n_rows: int
    rows: tuple[int, ...] = ()
    examples: tuple[str, ...] = ()
    order: int = field(default=-1, compare=False, repr=False)  # the rule's place in validate_frame (merging pieces)

    def __str__(self) -> str:
        where = f"rows {list(self.rows)}" + (" ..." if self.n_rows > len(self.rows) else "") if self.rows else "whole table"
        ex = f" (values: {', '.join(self.examples)})" if self.examples else ""
        return f"{self.file}: column '{self.column}': {self.rule}: {self.n_rows} row(s), {where}{ex}"


class TableError(UserError):
    """Raised when a source table breaks its schema. ``violations`` lists every rule broken."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        lines = [str(v) for v in violations[:20]]
        more = f"\n... and {len(violations) - 20} more" if len(violations) > 20 else ""
        super().__init__("source table validation failed:\n  " + "\n  ".join(lines) + more)

    def __reduce__(self):  # rebuilt from its violations when it crosses a process boundary
        return (type(self), (self.violations,))


@dataclass
class LoadReport:
    """What loading found: rows read and kept per table, rejected rows with reasons, warnings."""

    rows_read: dict[str, int] = field(default_factory=dict)
    rows_kept: dict[str, int] = field(default_factory=dict)
    rejects: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": {k: int(len(v)) for k, v in self.rejects.items()},
            "warnings": self.warnings,
            "missing_tables": self.missing_tables,
        }


def _first_rows(mask: np.ndarray, k: int = 5) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(mask)[:k])


def text_dates(series: pd.Series) -> pd.Series:
    """Dates written as text, read as ISO 8601 only (``2024-05-31``, ``2024-05-31 10:00:00``,
    ``2024-05-31T10:00``); anything else is NaT. A day/month order such as ``12/09/2020`` is never
    guessed: per-value guessing read it as 9 December and ``13/09/2020`` as 13 September."""
    return pd.to_datetime(series, errors="coerce", format="ISO8601")


def _coerce(series: pd.Series, col: Column) -> tuple[pd.Series, np.ndarray]:
    """Coerce one column to its declared dtype; return the coerced column and a mask of values that failed."""
    notnull = series.notna().to_numpy()
    if col.dtype in ("int", "float"):
        if pd.api.types.is_bool_dtype(series) or not (pd.api.types.is_numeric_dtype(series) or series.dtype == object or pd.api.types.is_string_dtype(series)):
            out = pd.Series(np.nan, index=series.index, dtype="float64")
            return out, notnull
        out = pd.to_numeric(series, errors="coerce").astype("float64")
        bad = notnull & out.isna().to_numpy()
        if col.dtype == "int":
            vals = out.to_numpy()
            frac = np.isfinite(vals) & (np.floor(vals) != vals)
            bad |= frac
        return out, bad
    if col.dtype == "date":
        if pd.api.types.is_datetime64_any_dtype(series):
            out = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
            return out.astype("datetime64[ns]"), np.zeros(len(series), dtype=bool)
        if pd.api.types.is_numeric_dtype(series):
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]"), notnull
        out = text_dates(series)
        return out.astype("datetime64[ns]"), notnull & out.isna().to_numpy()
    if col.dtype == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series, np.zeros(len(series), dtype=bool)
        out = series.map({True: True, False: False, "true": True, "false": False})  # 1 and 0 hash as True and False
        # nullable boolean, never object: every piece of a table then has the same Arrow type (bool),
        # also a piece whose values are all missing or that lacks the optional column
        return out.astype("boolean"), notnull & out.isna().to_numpy()
    # string / category: anything that is already text stays; numbers are rendered as text for ids.
    if pd.api.types.is_string_dtype(series) or series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype):
        out = series.astype("string")
        return out, np.zeros(len(series), dtype=bool)
    if pd.api.types.is_integer_dtype(series):
        return series.astype("string"), np.zeros(len(series), dtype=bool)
    return series.astype("string"), notnull


def by_date(fn: Callable[[np.ndarray], np.ndarray], dates: np.ndarray) -> np.ndarray:
    """``fn`` applied to each distinct datetime64[ns] value of ``dates`` once, spread back to every
    row. Calendar arithmetic costs tens of nanoseconds a value, and a table holds few distinct dates
    (a monthly table: one per month), so this is many times faster on large columns."""
    d = np.asarray(dates, dtype="datetime64[ns]")
    if len(d) < 4096:
        return fn(d)
    codes, uniq = pd.factorize(d.view(np.int64))
    return fn(uniq.view("datetime64[ns]"))[codes]


def add_months(dates: np.ndarray, months: int) -> np.ndarray:
    """``dates`` (datetime64) moved by whole calendar months, the day clipped to the end of the
    target month and the time of day kept: ``pd.DateOffset(months=months)``, vectorised (NaT stays NaT)."""
    return by_date(lambda d: _add_months(d, months), dates)


def _add_months(d: np.ndarray, months: int) -> np.ndarray:
    day = d.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    target = month + np.timedelta64(months, "M")
    length = (target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")
    shifted = target.astype("datetime64[D]") + np.minimum(day - month.astype("datetime64[D]"), length - np.timedelta64(1, "D"))
    out = shifted.astype("datetime64[ns]") + (d - day.astype("datetime64[ns]"))
    out[np.isnat(d)] = np.datetime64("NaT")
    return out


def _categories(coerced: pd.Series, col: Column) -> tuple[pd.Series, np.ndarray]:
    """A text column as the declared categories: ``(categorical, known)``, ``known`` False where a
    value is not a declared category (it becomes missing; pandas 4 will refuse the cast)."""
    cats = list(col.categories)
    arr = pa.array(coerced, type=pa.large_string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    codes = pc.fill_null(pc.index_in(arr, value_set=pa.array(cats, type=pa.large_string())), -1).to_numpy(zero_copy_only=False)
    known = (codes >= 0) | np.asarray(arr.is_null(), dtype=bool)
    cat = pd.Categorical.from_codes(codes.astype(np.int8 if len(cats) < 127 else np.int32), dtype=pd.CategoricalDtype(cats))
    return pd.Series(cat, index=coerced.index, name=coerced.name), known


def validate_frame(
    df: pd.DataFrame,
    schema: TableSchema,
    *,
    file: str | None = None,
    max_date: pd.Timestamp | None = None,
    row_offset: int = 0,
    duplicates: np.ndarray | None = None,
) -> tuple[pd.DataFrame, list[Violation], pd.DataFrame]:
    """Validate and coerce one table, or one piece of a table's file.

    Returns ``(clean, violations, row_reasons)``: ``clean`` has the declared columns in declared order and
    dtypes; ``violations`` lists every broken rule (whole-table problems such as a missing column make
    ``clean`` empty); ``row_reasons`` has one row per offending input row (``row``, ``column``, ``rule``;
    positions in ``df``), so a caller can either raise or reject exactly those rows.

    A piece of a file (rows ``row_offset`` on) reports its rows as rows of the file. The key rule looks
    at ``df`` alone unless ``duplicates`` (one bool per row: its key was seen earlier in the table)
    gives the answer found over the whole table (:func:`find_duplicates`).
    """
    file = file or f"{schema.name}.parquet"
    violations: list[Violation] = []
    reasons: list[pd.DataFrame] = []
    rule_no = [0]

    missing = [c.name for c in schema.columns if c.name not in df.columns and not c.optional]
    absent = [c.name for c in schema.columns if c.name not in df.columns and c.optional]
    if absent:
        df = df.assign(**{c: pd.Series(pd.NA, index=df.index, dtype="object") for c in absent})
    extra = [c for c in df.columns if c not in schema.column_names]
    for c in missing:
        violations.append(Violation(schema.name, file, c, "required column is missing (add it or check the file)", len(df)))
    for c in extra:
        violations.append(Violation(schema.name, file, c, "unknown column not in the schema (remove it or declare it in features/tables.py)", len(df)))
    if missing:
        return df.iloc[0:0], violations, pd.DataFrame(columns=["row", "column", "rule"])

    def flag(mask: np.ndarray, column: str, rule: str, values: pd.Series | None = None) -> None:
        rule_no[0] += 1  # counted whether or not it fires: the same rule has the same number in every piece
        n = int(mask.sum())
        if not n:
            return
        rows = _first_rows(mask)
        examples: tuple[str, ...] = ()
        if values is not None:
            examples = tuple(str(values.iloc[i])[:40] for i in rows[:3])
        violations.append(Violation(schema.name, file, column, rule, n, tuple(r + row_offset for r in rows), examples, rule_no[0]))
        reasons.append(pd.DataFrame({"row": np.flatnonzero(mask), "column": column, "rule": rule}))

    out: dict[str, pd.Series] = {}
    for col in schema.columns:
        raw = df[col.name].reset_index(drop=True)
        coerced, bad_type = _coerce(raw, col)
        flag(bad_type, col.name, f"value cannot be read as {col.dtype}" + (" (write dates as YYYY-MM-DD)" if col.dtype == "date" else ""), raw)
        isnull = coerced.isna().to_numpy() & ~bad_type
        if not col.nullable:
            flag(isnull, col.name, "null value in a non-nullable column")
        if col.dtype in ("int", "float"):
            vals = coerced.to_numpy(dtype="float64", na_value=np.nan)
            flag(np.isinf(vals), col.name, "infinite value", raw)
            finite = np.isfinite(vals)
            if col.min is not None:
                flag(finite & (vals < col.min), col.name, f"value below the allowed minimum {col.min:g}", raw)
            if col.max is not None:
                flag(finite & (vals > col.max), col.name, f"value above the allowed maximum {col.max:g}", raw)
            if col.dtype == "int" and not (isnull | bad_type).any():
                coerced = coerced.astype("int64")
        if col.dtype == "category":
            coerced, ok = _categories(coerced, col)
            flag(~ok, col.name, f"unknown category (allowed: {', '.join(col.categories)})", raw)
        if col.dtype == "string":
            lengths = coerced.str.len().to_numpy(dtype="float64", na_value=0)
            flag(lengths > 200, col.name, "text longer than 200 characters", raw)
        if col.dtype == "date" and max_date is not None and not col.scheduled:
            future = (coerced > max_date).to_numpy() & coerced.notna().to_numpy()
            flag(future, col.name, f"date after the end of the dataset ({max_date.date()})", raw)
        out[col.name] = coerced

    clean = pd.DataFrame(out)

    # Timing rule: a row cannot be known before the event it describes.
    event = clean[schema.event].to_numpy(dtype="datetime64[ns]")
    if schema.event_offset_months:
        event = add_months(event, schema.event_offset_months)
    early = clean["available_date"].to_numpy(dtype="datetime64[ns]") < event
    rule = f"available_date before {schema.event}" + (f" + {schema.event_offset_months} month(s)" if schema.event_offset_months else "")
    flag(early, "available_date", rule + " (a row cannot be known before the event it describes)", df["available_date"].reset_index(drop=True))

    # Date order inside a row.
    if schema.name == "certifications":
        flag((clean["expiry_date"] <= clean["issue_date"]).to_numpy(), "expiry_date", "expiry_date not after issue_date")
    if schema.name == "patents":
        flag((clean["event_date"] < clean["filing_date"]).to_numpy(), "event_date", "event_date before filing_date")

    # Keys are unique.
    if duplicates is None:
        dup = duplicated_keys(clean, list(schema.key))
    else:
        dup = np.asarray(duplicates, dtype=bool)
        if dup.shape != (len(clean),):
            raise ValueError(f"duplicates has shape {dup.shape}, expected ({len(clean)},)")
    flag(dup, ",".join(schema.key), f"duplicate key ({', '.join(schema.key)})")

    row_reasons = pd.concat(reasons, ignore_index=True) if reasons else pd.DataFrame(columns=["row", "column", "rule"])
    return clean, violations, row_reasons


PART_PATTERN = "part-*.parquet"
"""Part files of a table stored as a folder (``<hub>/<table>/part-*.parquet``, as a warehouse export
or ``riskmodel generate`` writes them), read in the order of their names."""


def table_files(directory: str | Path, name: str) -> list[Path]:
    """The files of table ``name`` in the hub at ``directory``: ``[<name>.parquet]``, or the part files
    of the folder ``<name>/`` sorted by name, or ``[]`` when the hub lacks the table. A table stored
    both ways, or a folder without part files, is a UserError."""
    directory = Path(directory)
    single, folder = directory / f"{name}.parquet", directory / name
    if folder.is_dir():
        if single.exists():
            raise UserError(f"{directory}: table {name} is both {single.name} and the folder {name}/; keep one of them")
        parts = sorted(folder.glob(PART_PATTERN))
        for p in parts:
            if not p.is_file():  # a broken link or a folder: skipping it would lose its rows without a word
                what = "a link to nothing" if p.is_symlink() and not p.exists() else "not a file"
                raise UserError(f"{p}: {what}; every {PART_PATTERN} entry of a table folder is one of the table's part files")
        if not parts:
            raise UserError(f"{folder}: a table folder holds part files named {PART_PATTERN}, and this one has none")
        return parts
    return [single] if single.exists() else []


def _grouped_duplicates(frame: pd.DataFrame, key: list[str]) -> np.ndarray | None:
    """``duplicated(keep="first")`` in one pass when the rows come grouped by the first key column
    (each value in one run of rows) and ordered by the other, numeric or date, key columns inside a
    run, as an export ordered by firm and month is: a repeated key is then the row just before it.
    None when the rows are not so ordered (or a key has a missing value)."""
    if len(frame) < 2:
        return np.zeros(len(frame), dtype=bool)
    first = pa.array(frame[key[0]], from_pandas=True)
    if isinstance(first, pa.ChunkedArray):
        first = first.combine_chunks()
    if first.null_count or not pa.types.is_string(first.type) and not pa.types.is_large_string(first.type):
        return None
    rest = []
    for c in key[1:]:
        col = frame[c]
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            v = col.to_numpy(dtype="datetime64[ns]").view(np.int64)
            if (v == np.iinfo(np.int64).min).any():
                return None
        elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            v = col.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(v).any():
                return None
        else:
            return None
        rest.append(v)
    same_run = np.asarray(pc.equal(first.slice(1), first.slice(0, len(first) - 1)), dtype=bool)
    heads = pc.filter(first, pa.array(np.r_[True, ~same_run]))
    if pc.count_distinct(heads).as_py() != len(heads):
        return None  # a value of the first column comes back after another: not grouped
    equal = same_run.copy()
    order_ok = np.ones(len(same_run), dtype=bool)
    decided = np.zeros(len(same_run), dtype=bool)  # rows whose order is already told by an earlier column
    for v in rest:
        a, b = v[:-1], v[1:]
        order_ok &= decided | (a <= b)
        decided |= a < b
        equal &= a == b
    if not order_ok[same_run].all():
        return None
    return np.r_[False, equal]


def duplicated_keys(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Which rows repeat a key of an earlier row (``DataFrame.duplicated(key, keep="first")``),
    in one pass when the rows come ordered by the key (:func:`_grouped_duplicates`)."""
    fast = _grouped_duplicates(frame, key)
    return fast if fast is not None else frame.duplicated(key, keep="first").to_numpy()


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one Parquet file with a clear error if it is not a readable Parquet file."""
    path = Path(path)
    _check_file(path)
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise TableError([Violation(path.stem, str(path), "-", "path is a directory, expected a Parquet file", 0)])
    if path.stat().st_size == 0:
        raise TableError([Violation(path.stem, str(path), "-", "file is empty (0 bytes)", 0)])


def _unreadable(path: Path, exc: Exception) -> TableError:
    return TableError([Violation(path.stem, str(path), "-", f"not a readable Parquet file ({str(exc).splitlines()[0][:120]})", 0)])


def file_rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer."""
    path = Path(path)
    _check_file(path)
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None


def read_hub_table(directory: str | Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Table ``name`` of a hub as read (not validated), whatever its layout (:func:`table_files`);
    a UserError when the hub lacks it."""
    files = table_files(directory, name)
    if not files:
        raise UserError(f"{Path(directory) / f'{name}.parquet'}: table '{name}' is missing from {directory}")
    frames = [read_table(f, columns) for f in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def file_columns(path: Path) -> list[str]:
    """Column names of a Parquet file, from its footer."""
    path = Path(path)
    _check_file(path)
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None


def read_pieces(path: Path, rows: int, columns: list[str] | None = None, row_groups: list[int] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    """A Parquet file (only ``row_groups`` when given) in pieces of at most ``rows`` rows: ``(first
    row, frame)`` each, in file order, the first row counted from the first row read."""
    path = Path(path)
    _check_file(path)
    try:
        f = pq.ParquetFile(path)
        offset = 0
        for batch in f.iter_batches(batch_size=rows, columns=columns, row_groups=row_groups):
            frame = batch.to_pandas()
            yield offset, frame
            offset += len(frame)
        if offset == 0:  # a file without rows still has columns to check
            yield 0, f.schema_arrow.empty_table().to_pandas() if columns is None else f.schema_arrow.empty_table().select(columns).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None


def key_frame(raw: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The key columns of ``raw`` as the key rule compares them: coerced as :func:`validate_frame`
    does, numbers as float64 (so an int64 piece and a float64 piece hash alike)."""
    out = {}
    for name in schema.key:
        col = schema.column(name)
        coerced, _ = _coerce(raw[name].reset_index(drop=True), col)
        if col.dtype == "category":
            coerced = _categories(coerced, col)[0]
        elif col.dtype in ("int", "float"):
            coerced = coerced.astype("float64")
        out[name] = coerced
    return pd.DataFrame(out)


def find_duplicates(read_keys: Callable[[], Iterable[pd.DataFrame]]) -> np.ndarray:
    """Positions (in the order of all pieces, sorted) of the rows whose key appeared at an earlier
    position: ``DataFrame.duplicated(keep="first")`` over a table read in pieces, without holding it.

    ``read_keys()`` yields the key frames (:func:`key_frame`) of the pieces in table order; it is
    called once, and a second time only when two rows share a 64-bit hash of their key. Memory: 8
    bytes per row, plus the rows that share a hash."""
    hashes = [pd.util.hash_pandas_object(k, index=False).to_numpy() for k in read_keys()]
    h = np.concatenate([np.zeros(0, dtype=np.uint64), *hashes])
    del hashes
    shared = pd.Series(h).duplicated(keep=False).to_numpy()
    if not shared.any():
        return np.zeros(0, dtype=np.int64)
    positions = np.flatnonzero(shared)
    rows, start = [], 0
    for k in read_keys():  # the exact keys of the rows that share a hash (a real duplicate or a collision)
        local = positions[(positions >= start) & (positions < start + len(k))] - start
        rows.append(k.iloc[local])
        start += len(k)
    same = pd.concat(rows, ignore_index=True).duplicated(keep="first").to_numpy()
    return positions[same]


def merge_violations(violations: Iterable[Violation]) -> list[Violation]:
    """Violations found piece by piece, merged into what one pass over each whole file reports: per
    file and rule, the row counts added, the first five rows and three examples kept, the rules in
    :func:`validate_frame`'s order."""
    merged: dict[tuple, Violation] = {}
    files: dict[str, int] = {}
    for v in violations:
        files.setdefault(v.file, len(files))
        key = (v.file, v.column, v.rule)
        if key not in merged:
            merged[key] = v
            continue
        m = merged[key]
        rows = tuple(sorted({*m.rows, *v.rows}))[:5] if v.rows else m.rows
        examples = (m.examples + v.examples)[:3] if len(m.rows) < 3 else m.examples
        merged[key] = Violation(m.table, m.file, m.column, m.rule, m.n_rows + v.n_rows, rows, examples, m.order)
    return sorted(merged.values(), key=lambda v: (files[v.file], v.order))


class TableCheck:
    """Validation of one table read in pieces: whole files, or pieces of a file. Each piece gets the
    rules of :func:`validate_frame` with its rows numbered from the start of its file; the violations
    of a file are merged (:func:`merge_violations`) into what one pass over the whole file reports.

    ``errors="raise"``: :meth:`end_file` raises a :class:`TableError` when the file broke a rule
    (after every piece of it was checked, so counts cover the file). ``errors="reject"``: offending
    rows leave the pieces :meth:`check` returns and go to ``report.rejects`` with their reasons."""

    def __init__(self, name: str, report: LoadReport, *, max_date: pd.Timestamp | None = None, errors: str = "raise"):
        self.name = name
        self.schema = SCHEMAS[name]
        self.report = report
        self.max_date = max_date
        self.errors = errors
        self._found: list[Violation] = []
        self._rejects: list[pd.DataFrame] = []
        report.rows_read.setdefault(name, 0)
        report.rows_kept.setdefault(name, 0)

    def begin_file(self, file: str, columns, n_rows: int) -> None:
        """Whole-file rules from the file's columns: a missing column raises, an unknown one is a warning."""
        self._found = []
        missing = [c.name for c in self.schema.columns if c.name not in columns and not c.optional]
        extra = [c for c in columns if c not in self.schema.column_names]
        if missing:
            raise TableError([Violation(self.name, file, c, "required column is missing (add it or check the file)", n_rows) for c in missing])
        if extra:
            msg = "; ".join(str(Violation(self.name, file, c, "unknown column not in the schema (remove it or declare it in features/tables.py)", n_rows)) for c in extra)
            self.report.warnings.append(msg)
            log.warning(msg)

    def check(self, raw: pd.DataFrame, file: str, row_offset: int = 0, duplicates: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """Validate one piece: ``(clean, keep)``, the coerced piece and which of its rows pass (all
        of them unless ``errors="reject"`` removes some; with ``errors="raise"`` a broken rule is
        raised by :meth:`end_file`)."""
        clean, violations, reasons = validate_frame(raw, self.schema, file=file, max_date=self.max_date, row_offset=row_offset, duplicates=duplicates)
        self.report.rows_read[self.name] += len(raw)
        found = [v for v in violations if v.rows]
        self._found += found
        keep = np.ones(len(clean), dtype=bool)
        if found and self.errors == "reject":
            bad_rows = np.unique(reasons["row"].to_numpy(dtype="int64"))
            rej = raw.iloc[bad_rows].copy()
            rej.index = bad_rows + row_offset  # the rows' numbers in their file
            grouped = reasons.groupby("row").agg(column=("column", "first"), rule=("rule", "first"))
            rej["reject_column"] = grouped.loc[bad_rows, "column"].to_numpy()
            rej["reject_rule"] = grouped.loc[bad_rows, "rule"].to_numpy()
            self._rejects.append(rej)
            keep[bad_rows] = False
        return clean, keep

    def take_found(self) -> list[Violation]:
        """The violations found in the current file so far, piece by piece, forgotten here: for a
        caller that checks a file's pieces in several processes and merges them itself
        (:func:`merge_violations`)."""
        found, self._found = self._found, []
        return found

    @property
    def broken(self) -> bool:
        """With ``errors="raise"``: the current file broke a rule (:meth:`end_file` will raise)."""
        return self.errors == "raise" and bool(self._found)

    def end_file(self) -> None:
        found, self._found = merge_violations(self._found), []
        if not found:
            return
        if self.errors == "raise":
            raise TableError(found)
        for v in found:
            msg = f"rejected: {v}"
            self.report.warnings.append(msg)
            log.warning(msg)

    def kept(self, clean: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
        """The rows of a checked piece that pass, int columns as int64 (every int column is
        non-nullable, so none is missing once rejected rows are gone); counted as kept."""
        if not keep.all():
            clean = clean.loc[keep].reset_index(drop=True)
        for col in self.schema.columns:
            if col.dtype == "int" and clean[col.name].dtype != np.int64 and clean[col.name].notna().all():
                clean[col.name] = clean[col.name].astype("int64")
        self.report.rows_kept[self.name] += len(clean)
        return clean

    def finish(self) -> None:
        """Record the rejected rows of the table in the report."""
        if self._rejects:
            self.report.rejects[self.name] = pd.concat(self._rejects) if len(self._rejects) > 1 else self._rejects[0]


def dataset_end(directory: Path) -> pd.Timestamp | None:
    """The snapshot date of a dataset: the last day of its manifest's ``end`` month, if there is one.

    The hub's tables are a snapshot on that day, so no row may carry a date after it."""
    manifest = Path(directory) / "manifest.json"
    if not manifest.exists():
        return None
    try:
        meta = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{manifest}: not valid JSON ({exc}); fix it or remove it (without a manifest no row is checked "
                        "against the snapshot date)") from None
    if not isinstance(meta, dict):
        raise UserError(f"{manifest}: a JSON {type(meta).__name__}, not an object with the hub's parameters; fix it or remove it "
                        "(without a manifest no row is checked against the snapshot date)")
    params = meta.get("parameters")
    end = (params.get("end") if isinstance(params, dict) else None) or meta.get("end")
    if not end:
        return None
    try:
        return (pd.Timestamp(str(end)) + pd.offsets.MonthEnd(0)).normalize()
    except (ValueError, TypeError):
        raise UserError(f"{manifest}: end {end!r} is not a month (YYYY-MM); fix it or remove the manifest") from None


def hub_paths(directory: str | Path) -> list[Path]:
    """Every path a load of the hub at ``directory`` reads or reserves, present or not: the
    ``<table>.parquet`` and the ``<table>/`` folder of every table name with the part files in it,
    ``manifest.json``, the ``truth/`` folder with ``truth/truth.parquet`` and any file already in
    it. A command that reads a hub passes these to :func:`features.files.check_outputs` as its
    inputs, so no output can overwrite a source table, even one the hub lacks today."""
    directory = Path(directory)
    truth = directory / "truth"
    paths = [*(directory / f"{name}.parquet" for name in TABLE_NAMES), *(directory / name for name in TABLE_NAMES)]
    for name in TABLE_NAMES:
        if (directory / name).is_dir():
            paths += sorted((directory / name).iterdir())
    paths += [directory / "manifest.json", truth, truth / "truth.parquet"]
    if truth.is_dir():
        paths += sorted(p for p in truth.iterdir() if p not in paths)
    return paths


def _check_hub(directory: Path) -> None:
    if not directory.exists():
        raise UserError(f"data directory {directory} does not exist (run `riskmodel generate --out {directory}` or point --data at your tables)")
    if not directory.is_dir():
        raise UserError(f"{directory} is a file; --data expects a directory of <table>.parquet files or <table>/ folders of part files")


def position_masks(positions: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Global row positions (sorted) as one bool mask per piece of the given sizes."""
    out, start = [], 0
    for n in sizes:
        mask = np.zeros(n, dtype=bool)
        mask[positions[(positions >= start) & (positions < start + n)] - start] = True
        out.append(mask)
        start += n
    return out


def load_tables(
    directory: str | Path,
    tables: tuple[str, ...] | list[str] | None = None,
    *,
    errors: Literal["raise", "reject"] = "raise",
) -> tuple[dict[str, pd.DataFrame], LoadReport]:
    """Read and validate the source tables in ``directory``: ``<table>.parquet`` each, or a folder
    ``<table>/`` of part files (:func:`table_files`), concatenated in the order of their names.

    ``errors="raise"`` stops at the first file that breaks its schema with a :class:`TableError` naming
    the file, column, first offending rows (numbered from the start of that file) and the rule.
    ``errors="reject"`` keeps going as a hub would: offending rows are removed and returned in
    ``LoadReport.rejects`` with their reasons, and every removal is logged with counts; whole-table
    problems (missing column, unreadable file) still raise. The key rule holds across the part files
    of a table. Optional tables that are absent are reported in ``LoadReport.missing_tables``; their
    signals become NaN with coverage zero downstream.
    """
    directory = Path(directory)
    _check_hub(directory)
    wanted = list(tables) if tables is not None else list(TABLE_NAMES)
    unknown = [t for t in wanted if t not in SCHEMAS]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; known tables: {', '.join(TABLE_NAMES)}")
    report = LoadReport()
    max_date = dataset_end(directory)
    result: dict[str, pd.DataFrame] = {}
    for name in wanted:
        files = table_files(directory, name)
        if not files:
            path = directory / f"{name}.parquet"
            if name in REQUIRED_TABLES:
                raise UserError(f"{path}: required table '{name}' is missing from {directory}")
            report.missing_tables.append(name)
            log.warning("table %s is missing from %s: its signals will be NaN", name, directory)
            continue
        schema = SCHEMAS[name]
        check = TableCheck(name, report, max_date=max_date, errors=errors)
        raws = [read_table(f) for f in files]
        for f, raw in zip(files, raws):
            if any(c not in raw.columns for c in schema.column_names):
                check.begin_file(str(f), raw.columns, len(raw))  # raises: a column is missing
        dups: list[np.ndarray | None] = [None] * len(files)
        if len(files) > 1:  # the key rule over the whole table, not each file
            dups = position_masks(find_duplicates(lambda: (key_frame(r, schema) for r in raws)), [len(r) for r in raws])
        pieces = []
        for i, (f, raw) in enumerate(zip(files, raws)):
            check.begin_file(str(f), raw.columns, len(raw))
            clean, keep = check.check(raw, str(f), 0, dups[i])
            check.end_file()
            pieces.append(check.kept(clean, keep))
            raws[i] = None  # free the raw file once checked
        check.finish()
        result[name] = pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)
    return result, report


def write_table(df: pd.DataFrame, path: str | Path, row_group_size: int = 1_000_000) -> None:
    """Write a table as Parquet with deterministic bytes (no pandas index, fixed row groups)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, str(path), row_group_size=row_group_size, compression="zstd", write_statistics=True)
