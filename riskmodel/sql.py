"""SQL export: one ``SELECT`` that scores a feature table inside a warehouse (DuckDB, Spark SQL, Hive,
or any engine that reads ANSI SQL), with the PD, score, grade and reason codes of
:meth:`riskmodel.creditmodel.CreditModel.predict`.

Which models export
    The additive ones, whose log-odds are ``base_value_ + sum_j f_j(x_j)`` with each ``f_j`` a
    function of one feature that SQL can state exactly:

    * ``scorecard``: ``f_j`` is a step function (one value per bin; the missing bin; categories,
      the ``other`` bin and unseen categories);
    * ``gbm_additive``: ``f_j`` is the tabulated step function of its one-feature trees
      (``shape_thresholds_``, ``shape_values_``, ``shape_missing_``, ``categories_``);
    * ``financial_baseline``: ``f_j`` is linear in the median-imputed value plus a constant for
      the missing-value indicator (numbers), or one constant per level (strings): plain arithmetic.

    ``gbm_monotone`` does not export: its trees split on several features at once, so the model is
    not a sum of per-feature functions and its TreeSHAP reasons have no closed form.

The SQL, in common table expressions (CTEs), each one row per input row (no join, aggregate or
window, so an engine streams it and keeps the input order):

1. ``rm_inputs``: the key columns, numeric features cast to double with NaN made NULL, categorical
   features cast to text (categories are matched as text, as :func:`riskmodel.binning.category_codes` does);
2. ``rm_contributions``: one column ``c_<feature>`` per feature the score uses, a ``CASE`` over the
   fitted table (missing values and unseen categories take the value Python gives them);
3. ``rm_logit``: ``base_value_ + c_1 + c_2 + ...``, summed in the order ``CreditModel.predict`` sums;
4. ``rm_pd``: ``pd = 1 / (1 + exp(-logit))`` and the PDO score ``offset - factor * logit``;
5. ``rm_reason_<i>_value`` / ``rm_reason_<i>_position``: the reason codes (below);
6. the final ``SELECT``: key columns, ``pd``, ``score``, ``grade`` (a ``CASE`` over the master
   scale: ``Rk`` holds ``bounds[k-2] <= pd < bounds[k-1]``, as ``MasterScale.grade_index``),
   ``reason_1..k`` and their Chinese and English texts.

Reason codes without sorting rows
    :mod:`riskmodel.reasons` ranks contributions by value (largest first), ties by the earlier
    column, and keeps only strictly positive ones. That is a total order on (value desc, position
    asc), so the reason after reason ``i`` (value ``v_i``, position ``p_i``) is the first in that
    order among the features that come after it: those with ``c < v_i``, or ``c = v_i`` and a
    later position. Per rank the SQL takes ``GREATEST(0, c_j if after else 0, ...)`` for the value
    (0 means none: only positive values win) and a ``CASE`` picking the first position holding that
    value (position 0: no reason; the text ``CASE`` makes it NULL). That is two linear-size
    expressions per rank, scalar per row, and exact with ties. It avoids an unpivot (``VALUES`` /
    ``UNNEST`` / ``stack``) with ``ROW_NUMBER()``, which needs a row id the table may not have, a
    sort per row and a pivot back. ``GREATEST`` never sees a NULL (engines disagree on what it
    does with one), and no intermediate column is ever NULL (Spark generates less code for them).

Numbers are printed with ``repr`` (which round-trips a double) and an exponent (``0.25E0``), so
every engine reads them as doubles, not decimals; the log-odds are then the same sums of the same
doubles as in Python, and PD differs only by the engine's ``exp`` (libm) from numpy's (the tests
require 1e-9 and measure about 1e-16). So a PD within an ulp or two of a master-scale boundary can
fall in the neighbouring grade; nothing else differs.

What the SQL does not do: the row checks of ``riskmodel score`` (missing or repeated ids,
non-numbers, infinities, values out of range) and its rejects file. An infinite value lands in the
outermost bin (step functions) or gives an infinite log-odds (``financial_baseline``); Python
refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.contract import ID_COLUMNS
from riskmodel.creditmodel import output_columns
from riskmodel.errors import ScoringError, UserError
from riskmodel.reasons import _texts

DIALECTS = ("duckdb", "spark", "ansi")
#: the models ``export_sql`` accepts (registry names of :mod:`riskmodel.models`)
EXPORTABLE_MODELS = ("scorecard", "gbm_additive", "financial_baseline")


# ---- dialects ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dialect:
    name: str
    quote: str
    double: str
    text: str
    backslash_escapes: bool  # Spark and Hive read '\' in a string literal as an escape

    def ident(self, name: str) -> str:
        q = self.quote
        return q + str(name).replace(q, q + q) + q

    def string(self, value: str) -> str:
        s = str(value)
        if self.backslash_escapes:
            return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + s.replace("'", "''") + "'"


_DIALECTS = {
    "duckdb": _Dialect("duckdb", '"', "DOUBLE", "VARCHAR", False),
    "spark": _Dialect("spark", "`", "DOUBLE", "STRING", True),
    "ansi": _Dialect("ansi", '"', "DOUBLE PRECISION", "VARCHAR", False),
}


def _num(x: float, what: str = "a fitted value") -> str:
    """A double as a SQL literal that reads back as the same double: ``repr`` (shortest round trip)
    with an exponent, so DuckDB and Spark type it DOUBLE (without one they type it DECIMAL)."""
    x = float(x)
    if not math.isfinite(x):
        raise UserError(f"cannot export {what} = {x!r} to SQL; the model holds a non-finite number")
    r = repr(x)
    return r if "e" in r else r + "E0"


def _term(x: float, what: str = "a fitted value") -> str:
    """``_num`` in parentheses when negative: safe inside arithmetic (``a - -1`` would start a comment
    as ``a--1``)."""
    s = _num(x, what)
    return f"({s})" if s.startswith("-") else s


def _comment(text: str) -> str:
    return " ".join(str(text).split())  # one line: a newline in a name must not end the comment


# ---- per-feature functions, read from the fitted estimator -----------------------------------
@dataclass
class _Steps:
    """A numeric step function: ``values[i]`` on interval i of ``edges``; ``closed="left"`` means
    ``[e_{i-1}, e_i)`` (test ``x < e_i``), ``"right"`` means ``(e_{i-1}, e_i]`` (``x <= e_i``).
    ``zero``: LightGBM reads ``|x| <= zero[0]`` as 0, which lands on ``zero[1]``."""

    edges: list[float]
    values: list[float]
    missing: float
    closed: str
    zero: tuple[float, float] | None = None


@dataclass
class _Levels:
    """A categorical function: ``levels`` (text -> value, first match), ``missing`` for NULL,
    ``other`` for any text not listed."""

    levels: list[tuple[str, float]]
    missing: float
    other: float


@dataclass
class _Linear:
    """``(x - center) / scale * coef + constant`` for a value, ``missing`` for NULL."""

    center: float
    scale: float
    coef: float
    constant: float | None
    missing: float


def _model_kind(estimator) -> str:
    from riskmodel.models import FinancialBaseline, GBMAdditive, GBMMonotone, Scorecard

    kinds = {Scorecard: "scorecard", GBMAdditive: "gbm_additive", FinancialBaseline: "financial_baseline", GBMMonotone: "gbm_monotone"}
    kind = next((name for cls, name in kinds.items() if type(estimator) is cls), None)
    if kind is None or kind not in EXPORTABLE_MODELS:
        what = kind or type(estimator).__name__
        why = (
            "its trees split on several features at once, so it is not a sum of per-feature functions"
            if kind == "gbm_monotone"
            else "it is not one of riskmodel's additive models"
        )
        raise UserError(f"{what} cannot be exported as SQL: {why}; models that export: {', '.join(EXPORTABLE_MODELS)}")
    return kind


def _scorecard_functions(est) -> dict[str, object]:
    out: dict[str, object] = {}
    for c in est.selected_:
        b = est.binner_.bins_[c]
        lookup = np.asarray(est.contribution_lookup_[c], dtype="float64")  # by bin_index; [-1]: unseen, no other bin
        missing = float(lookup[b.n_bins - 1])
        if b.kind == "numeric":
            k = len(b.splits)
            out[c] = _Steps([float(s) for s in b.splits], [float(v) for v in lookup[: k + 1]], missing, "left")
        else:
            other = float(lookup[b.other_bin]) if b.other_bin is not None else float(lookup[-1])
            levels = [(str(cat), float(lookup[int(i)])) for cat, i in zip(b.categories, b.category_bin)]
            out[c] = _Levels(levels, missing, other)
    return out


def _gbm_additive_functions(est) -> dict[str, object]:
    from riskmodel.models import LGB_ZERO_THRESHOLD

    out: dict[str, object] = {}
    for j, c in enumerate(est.columns_):
        values = np.asarray(est.shape_values_[j], dtype="float64")
        missing = float(est.shape_missing_[j])
        if est.kinds_[c] == "categorical":
            # category_codes: a known category's position; missing and unseen are -1 -> the missing value
            out[c] = _Levels([(str(cat), float(v)) for cat, v in zip(est.categories_[c], values)], missing, missing)
            continue
        t = np.asarray(est.shape_thresholds_[j], dtype="float64")
        zero = None
        if len(t) and np.any(np.abs(t) <= LGB_ZERO_THRESHOLD):
            # a threshold next to 0: values within LGB_ZERO_THRESHOLD of 0 are read as 0 (_lookup_index)
            zero = (LGB_ZERO_THRESHOLD, float(values[np.searchsorted(t, 0.0, side="left")]))
        out[c] = _Steps([float(x) for x in t], [float(v) for v in values], missing, "right", zero)
    return out


def _financial_baseline_functions(est) -> dict[str, object]:
    mean = np.asarray(est.mean_, dtype="float64")
    scale = np.asarray(est.scale_, dtype="float64")
    coef = np.asarray(est.design_coef_, dtype="float64")
    owner = np.asarray(est.owner_)
    out: dict[str, object] = {}
    for j, c in enumerate(est.columns_):
        cols = np.flatnonzero(owner == j)

        def part(k: int, raw: float) -> np.float64:  # one design column's term, as _design and _contrib form it
            return (np.float64(raw) - mean[k]) / scale[k] * coef[k]

        if est.kinds_[c] == "numeric":
            k = cols[0]
            has_ind = c in est.indicators_
            missing = part(k, est.medians_[c]) + (part(cols[1], 1.0) if has_ind else np.float64(0.0))
            constant = float(part(cols[1], 0.0)) if has_ind else None
            out[c] = _Linear(float(mean[k]), float(scale[k]), float(coef[k]), constant, float(missing))
            continue
        levels = list(est.levels_[c])

        def level_value(i: int) -> float:
            total = np.float64(0.0)
            for pos, k in enumerate(cols):
                total += part(k, 1.0 if pos == i else 0.0)
            return float(total)

        values = [level_value(i) for i in range(len(levels))]
        # _raw_design: unseen -> "other"; then missing -> "(missing)"; a level's own text maps to it
        out[c] = _Levels(list(zip(levels, values)), values[levels.index("(missing)")], values[levels.index("other")])
    return out


# ---- rendering --------------------------------------------------------------------------------
def _render(fn, x: str, d: _Dialect, feature: str) -> list[str]:
    """Lines of the CASE expression for one feature (``x``: its quoted column in rm_inputs)."""
    what = f"a value of feature {feature!r}"
    lines = ["CASE", f"  WHEN {x} IS NULL THEN {_num(fn.missing, what)}"]
    if isinstance(fn, _Steps):
        if fn.zero is not None:
            lines.append(f"  WHEN ABS({x}) <= {_num(fn.zero[0])} THEN {_num(fn.zero[1], what)}")
        op = "<" if fn.closed == "left" else "<="
        for edge, value in zip(fn.edges, fn.values):
            lines.append(f"  WHEN {x} {op} {_num(edge, what)} THEN {_num(value, what)}")
        lines.append(f"  ELSE {_num(fn.values[len(fn.edges)], what)}")
    elif isinstance(fn, _Levels):
        groups: dict[str, list[str]] = {}  # value (exact, by repr) -> texts, in order of first appearance
        seen: set[str] = set()
        for text, value in fn.levels:
            if text in seen:
                continue  # the first match counts, as in an index lookup
            seen.add(text)
            if repr(value) != repr(fn.other):  # a level valued like 'other' needs no branch
                groups.setdefault(_num(value, what), []).append(text)
        for value, texts in groups.items():
            if len(texts) == 1:
                lines.append(f"  WHEN {x} = {d.string(texts[0])} THEN {value}")
            else:
                lines.append(f"  WHEN {x} IN ({', '.join(d.string(t) for t in texts)}) THEN {value}")
        lines.append(f"  ELSE {_num(fn.other, what)}")
    else:
        expr = f"({x} - {_term(fn.center, what)}) / {_term(fn.scale, what)} * {_term(fn.coef, what)}"
        if fn.constant is not None:
            expr += f" + {_term(fn.constant, what)}"
        lines.append(f"  ELSE {expr}")
    lines.append("END")
    return lines


def _describe(fn) -> str:
    if isinstance(fn, _Steps):
        return f"numeric, {len(fn.values)} intervals {'[a, b)' if fn.closed == 'left' else '(a, b]'}, NULL -> missing value"
    if isinstance(fn, _Levels):
        return f"categorical, {len(fn.levels)} known categories, NULL -> missing value, other text -> the 'other' value"
    return "numeric, linear in the value, NULL -> the median's value with the missing indicator"


def _select(items: list[str], indent: str = "    ") -> str:
    return (",\n").join(indent + item.replace("\n", "\n" + indent) for item in items)


def _check_unique(names: list[str], where: str) -> None:
    """Identifiers are case-insensitive in DuckDB and Spark: two names that differ only by case clash."""
    seen: dict[str, str] = {}
    for n in names:
        key = n.lower()
        if key in seen:
            raise UserError(
                f"cannot export: column names {seen[key]!r} and {n!r} clash in {where} (SQL names ignore case); "
                "rename one (a key column must not share a name with a feature or an output column)"
            )
        seen[key] = n


def duckdb_parquet_view(path, view: str = "features") -> str:
    """``CREATE OR REPLACE VIEW`` statement exposing a Parquet file to DuckDB under ``view``, for the
    exported SQL to read.

    It reads with ``can_have_nan = true``: Parquet's min/max statistics leave NaN out, and by
    default DuckDB trusts them, so its optimizer folds the SQL's NaN test to false and a NaN is
    scored as a number (duckdb/duckdb#25521). With the option a NaN is a missing value, as in Python.
    """
    d = _DIALECTS["duckdb"]
    return f"CREATE OR REPLACE VIEW {d.ident(view)} AS SELECT * FROM read_parquet({d.string(str(path))}, can_have_nan = true)"


def export_sql(
    credit_model,
    table: str = "features",
    dialect: str = "duckdb",
    key_columns: Sequence[str] = ID_COLUMNS,
    columns: Sequence[str] | None = None,
) -> str:
    """SQL text of one ``SELECT`` over ``table`` returning ``key_columns``, ``pd``, ``score``,
    ``grade``, ``reason_1..k``, ``reason_1_zh..k_zh`` and ``reason_1_en..k_en``: the columns and
    values of ``credit_model.predict`` for every row of the table.

    ``table``: the feature table; a dotted name (``db.features``) is quoted part by part.
    ``dialect``: ``"duckdb"``, ``"spark"`` (Spark SQL, meant for Hive too: backquoted names) or ``"ansi"``
    (double-quoted names, ``DOUBLE PRECISION``; for other engines). ``columns``: the table's column
    names, when known (a Parquet schema): key columns not among them are left out, and a feature
    the model needs but the table lacks raises :class:`~riskmodel.errors.ScoringError`. Without it,
    every key column is selected. The table needs the model's used features
    (``credit_model.used_features``); features a scorecard did not select are never read.

    Raises :class:`~riskmodel.errors.UserError` for a model that does not export (``gbm_monotone``)
    or an unknown dialect. The text is deterministic: the same model gives the same SQL.
    """
    if dialect not in _DIALECTS:
        raise UserError(f"unknown SQL dialect {dialect!r}; choose one of: {', '.join(DIALECTS)}")
    d = _DIALECTS[dialect]
    est = credit_model.estimator
    kind = _model_kind(est)
    if not str(table).strip() or any(not part.strip() for part in str(table).split(".")):
        raise UserError(f"table name {table!r} is empty or has an empty part; pass a name such as features or db.features")
    source = ".".join(d.ident(part.strip()) for part in str(table).split("."))
    functions = {
        "scorecard": _scorecard_functions,
        "gbm_additive": _gbm_additive_functions,
        "financial_baseline": _financial_baseline_functions,
    }[kind](est)

    features = [str(c) for c in est.columns_]  # the contributions' columns: reason ties go to the earlier
    used = list(functions)  # summed in this order, as CreditModel.predict does (a scorecard: selected_)
    keys = [str(k) for k in key_columns]
    if columns is not None:
        present = {str(c) for c in columns}
        missing = [c for c in credit_model.used_features if c not in present]
        if missing:
            raise ScoringError(
                f"table {table!r} lacks {len(missing)} feature column(s) the model needs: {missing[:10]}; "
                f"the model {credit_model.name!r} reads {len(credit_model.used_features)} columns (CreditModel.used_features)"
            )
        keys = [k for k in keys if k in present]
    skip = set(credit_model.suppress)
    candidates = [c for c in used if c not in skip]  # reasons: used and not suppressed, in column order
    candidates.sort(key=features.index)
    position = {c: features.index(c) + 1 for c in candidates}
    k = int(credit_model.n_reasons)
    if k < 1:
        raise UserError(f"n_reasons must be at least 1, got {k}")

    outputs = output_columns(k)
    contrib = {c: "c_" + c for c in used}
    _check_unique([*keys, *used], "the inputs (key columns and features)")
    ranks = [f"reason_{i}_{part}" for i in range(1, k + 1) for part in ("value", "position")]
    _check_unique([*keys, *contrib.values(), "logit", "pd", "score", *ranks], "the contributions")
    _check_unique([*keys, *outputs], "the output")
    q = d.ident

    # 1. inputs
    inputs = [q(kc) for kc in keys]
    for c in used:
        if isinstance(functions[c], _Levels):
            inputs.append(f"CAST({q(c)} AS {d.text}) AS {q(c)}")
        else:
            inputs.append(f"NULLIF(CAST({q(c)} AS {d.double}), CAST('NaN' AS {d.double})) AS {q(c)}")
    # 2. contributions
    contributions = [q(kc) for kc in keys]
    for c in used:
        body = "\n".join(_render(functions[c], q(c), d, c))
        contributions.append(f"-- {_comment(c)}: {_describe(functions[c])}\n{body} AS {q(contrib[c])}")
    # 3. log-odds, PD and score
    logit = "\n".join([_num(est.base_value_, "the base value"), *[f"+ {q(contrib[c])}" for c in used]])
    scaling = credit_model.scaling
    pd_expr = f"1.0E0 / (1.0E0 + EXP(-{q('logit')}))"
    score_expr = f"{_term(scaling.offset, 'the score offset')} - {_term(scaling.factor, 'the score factor')} * {q('logit')}"
    ctes = [
        ("rm_inputs", f"SELECT\n{_select(inputs)}\n  FROM {source}"),
        ("rm_contributions", f"SELECT\n{_select(contributions)}\n  FROM rm_inputs"),
        ("rm_logit", f"SELECT\n    *,\n{_select([logit + ' AS ' + q('logit')])}\n  FROM rm_contributions"),
        ("rm_pd", f"SELECT\n    *,\n{_select([pd_expr + ' AS ' + q('pd'), score_expr + ' AS ' + q('score')])}\n  FROM rm_logit"),
    ]
    # 4. reasons: value and position of each rank (see the module docstring)
    prev_cte = "rm_pd"
    zero = "0.0E0"
    for i in range(1, k + 1 if candidates else 1):
        v, p = q(f"reason_{i}_value"), q(f"reason_{i}_position")
        pv, pp = q(f"reason_{i - 1}_value"), q(f"reason_{i - 1}_position")
        if i == 1:
            args = [zero, *[q(contrib[c]) for c in candidates]]
            picks = [f"WHEN {q(contrib[c])} = {v} THEN {position[c]}" for c in candidates]
        else:
            args = [zero] + [
                f"CASE WHEN {q(contrib[c])} < {pv} OR ({q(contrib[c])} = {pv} AND {pp} < {position[c]}) "
                f"THEN {q(contrib[c])} ELSE {zero} END"
                for c in candidates
            ]
            picks = [
                f"WHEN {q(contrib[c])} = {v} AND ({v} < {pv} OR {pp} < {position[c]}) THEN {position[c]}"
                for c in candidates
            ]
        value_expr = "GREATEST(\n" + _select(args, "  ") + "\n)"
        ctes.append((f"rm_reason_{i}_value", f"SELECT\n    *,\n{_select([value_expr + ' AS ' + v])}\n  FROM {prev_cte}"))
        # position 0 = no reason (never NULL: Spark generates less code for columns that cannot be null)
        pick_expr = "CASE\n  WHEN " + v + f" <= {zero} THEN 0\n" + "\n".join("  " + s for s in picks) + "\n  ELSE 0\nEND"
        ctes.append((f"rm_reason_{i}_position", f"SELECT\n    *,\n{_select([pick_expr + ' AS ' + p])}\n  FROM rm_reason_{i}_value"))
        prev_cte = f"rm_reason_{i}_position"

    # 5. final select
    ms = credit_model.master_scale
    grade = ["CASE"]
    for bound, label in zip(ms.bounds, ms.labels):
        grade.append(f"  WHEN {q('pd')} < {_num(bound, 'a master scale boundary')} THEN {d.string(label)}")
    grade += [f"  ELSE {d.string(ms.labels[-1])}", "END"]
    final = [q(kc) for kc in keys] + [q("pd"), q("score"), "\n".join(grade) + f" AS {q('grade')}"]
    texts = {
        "": list(candidates),
        "_zh": _texts(list(candidates), credit_model.catalog, "reason_zh"),
        "_en": _texts(list(candidates), credit_model.catalog, "reason_en"),
    }
    for suffix, names in texts.items():
        for i in range(1, k + 1):
            out = q(f"reason_{i}{suffix}")
            if not candidates:
                final.append(f"CAST(NULL AS {d.text}) AS {out}")
                continue
            whens = [f"  WHEN {position[c]} THEN {d.string(t)}" for c, t in zip(candidates, names)]
            final.append("\n".join([f"CASE {q(f'reason_{i}_position')}", *whens, "END"]) + f" AS {out}")

    version = credit_model.version or "unregistered"
    header = [
        f"-- riskmodel SQL export ({d.name}): model {_comment(credit_model.name)!r} version {_comment(version)!r}, {kind}",
        f"-- Reads {len(used)} feature column(s) of {_comment(table)}; returns {', '.join([*keys, *outputs[:3]])},",
        f"-- reason_1..{k} (feature names), reason_1_zh..{k}_zh and reason_1_en..{k}_en (texts): as CreditModel.predict.",
        "-- NULL or NaN is a missing value; a category is matched as text, and one the model has not seen takes the",
        "-- value Python gives it. Reasons: the largest positive contributions, ties to the earlier feature.",
        "-- No row checks (ids, non-numbers, infinities, ranges): riskmodel score runs those. Generated by riskmodel.sql.",
    ]
    body = ",\n".join(f"{name} AS (\n  {sql}\n)" for name, sql in ctes)
    return "\n".join(header) + f"\nWITH\n{body}\nSELECT\n{_select(final, '  ')}\nFROM {prev_cte}\n"


# ---- running it: riskmodel score --engine duckdb ------------------------------------------------
class DuckDBScorer:
    """Scores feature rows with the model's exported SQL in an in-process DuckDB (no server): the
    predictor of ``riskmodel score --engine duckdb``.

    ``riskmodel score`` reads and checks the rows exactly as its pandas engine does (the same
    :func:`riskmodel.scoring.validate_chunk` and duplicate finder, so the same rejects with the same
    codes and texts); each chunk's clean rows are then handed to DuckDB as a table (zero copy from
    pandas) and scored by :func:`export_sql`'s ``SELECT``. The SQL holds no row checks, so checking
    first keeps the promise that every row is scored or rejected with a reason. The result has the
    columns and dtypes of :meth:`CreditModel.predict` (grade and reasons categorical), in the rows'
    order (a row number rides along and is checked). DuckDB uses ``threads`` threads (default
    ``RISKMODEL_THREADS``). An in-memory table has no Parquet statistics, so NaN needs no
    ``can_have_nan`` here (see :func:`duckdb_parquet_view` for reading Parquet in DuckDB)."""

    VIEW = "rm_features"
    ROW = "rm_row"

    def __init__(self, credit_model, threads: int | None = None):
        import duckdb

        from riskmodel import config

        self.sql = export_sql(credit_model, table=self.VIEW, dialect="duckdb", key_columns=(self.ROW,))
        self.con = duckdb.connect()
        self.con.execute(f"SET threads TO {int(threads or config.threads())}")
        self.columns = output_columns(credit_model.n_reasons)
        # the categories CreditModel.predict gives these columns (reasons.reason_codes: every feature's text)
        names = [str(c) for c in credit_model.features]
        texts = {"": names, "_zh": _texts(names, credit_model.catalog, "reason_zh"), "_en": _texts(names, credit_model.catalog, "reason_en")}
        self.categories = {"grade": list(credit_model.master_scale.labels)}
        for suffix, values in texts.items():
            for i in range(1, credit_model.n_reasons + 1):
                self.categories[f"reason_{i}{suffix}"] = list(dict.fromkeys(values))

    def __call__(self, X) -> "pd.DataFrame":
        import pandas as pd
        import pyarrow.compute as pc

        n = len(X)
        self.con.register(self.VIEW, X.reset_index(drop=True).assign(**{self.ROW: np.arange(n, dtype="int64")}))
        try:
            table = self.con.sql(self.sql).to_arrow_table()
        finally:
            self.con.unregister(self.VIEW)
        rows = table.column(self.ROW).to_numpy()
        if not np.array_equal(rows, np.arange(n)):
            table = table.take(np.argsort(rows, kind="stable"))
        out = {"pd": table.column("pd").to_numpy(), "score": table.column("score").to_numpy()}
        for c in self.columns[2:]:
            out[c] = pc.dictionary_encode(table.column(c)).to_pandas().cat.set_categories(self.categories[c]).array  # positional, not by index
        return pd.DataFrame(out, index=X.index)[self.columns]

    def close(self) -> None:
        self.con.close()


def export_model(model_uri: str, out, dialect: str = "duckdb", table: str = "features", key_columns: Sequence[str] = ID_COLUMNS) -> dict:
    """``riskmodel export --format sql``: write the SQL of the registered model ``model_uri``
    (:func:`export_sql`) to ``out`` (a ``.sql`` file, checked before any work, written atomically).
    Returns what was written: model, version, kind, dialect, table, the feature columns it reads,
    the output path, its lines and bytes."""
    from pathlib import Path

    from features.files import check_outputs, write_text
    from riskmodel import tracking

    out = Path(out)
    check_outputs({"--out": out}, suffixes={"--out": (".sql",)})
    if dialect not in _DIALECTS:  # before loading the model
        raise UserError(f"unknown SQL dialect {dialect!r}; choose one of: {', '.join(DIALECTS)}")
    credit_model, name, version = tracking.load_credit_model(model_uri)
    text = export_sql(credit_model, table=table, dialect=dialect, key_columns=key_columns)
    write_text(out, text)
    return {
        "model_uri": model_uri, "model_name": name, "model_version": version, "kind": _model_kind(credit_model.estimator),
        "dialect": dialect, "table": table, "key_columns": [str(k) for k in key_columns], "reads": list(credit_model.used_features),
        "out": str(out), "lines": text.count("\n"), "bytes": len(text.encode("utf-8")),
    }
