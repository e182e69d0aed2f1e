"""The column contract: the names every layer agrees on, defined once.

The data hub builds feature matrices with these columns, the models train on them, scoring reads and
writes them, reports and monitoring group by them. Import the names from here; never spell them
again.
"""

from __future__ import annotations

#: the row key of a feature matrix, a scores file and the outcomes table
KEY = "application_id"
#: the pseudonymous firm id (keyed HMAC of the registration id)
FIRM = "firm_id"
#: the date the application was made: every feature is computed strictly before it
DATE = "application_date"
#: identifier columns at the front of every feature matrix, in this order
ID_COLUMNS: tuple[str, ...] = (KEY, FIRM, DATE)
#: descriptive columns a feature matrix carries for segment metrics; never model features
SEGMENT_COLUMNS: tuple[str, ...] = ("industry", "region", "lifecycle_stage", "size_band", "product")
#: the lifecycle stage of firms under three years old: the borrowers technology-flow lending is for
STARTUP = "startup"
#: the outcome a PD model predicts: 1 when the firm defaulted within 12 months of the application
TARGET = "default_12m"
#: source families a traditional, statement-based credit process sees (the financial-only baseline)
BASELINE_FAMILIES: frozenset[str] = frozenset({"finance", "firm"})
#: one row per feature in the catalog, in this column order
CATALOG_COLUMNS: tuple[str, ...] = (
    "name", "name_zh", "name_en", "family", "kind", "tables", "lookback_months", "direction", "grade",
    "unit", "lower_bound", "description", "reason_en", "reason_zh", "actionable",
)
