"""Tiny hand-built source tables for the feature tests (schemas of features/tables.py).

Values are chosen so every expected feature can be computed by hand in the test that uses them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_features
from features.tables import SCHEMAS

D = pd.Timestamp


def firms(*rows: dict) -> pd.DataFrame:
    """Firms: each row gives firm_id and optionally industry, region, founding_date, registered_capital."""
    out = []
    for i, r in enumerate(rows):
        founded = D(r.get("founding_date", "2015-01-01"))
        out.append(
            {
                "firm_id": r["firm_id"],
                "registration_id": f"91110000REG{i:06d}",
                "legal_rep_id": f"11010119800101{i:04d}",
                "industry": r.get("industry", "ai"),
                "region": r.get("region", "central"),
                "founding_date": founded,
                "registered_capital": float(r.get("registered_capital", 500.0)),
                "available_date": D(r.get("available_date", founded)),
            }
        )
    return _typed("firms", pd.DataFrame(out))


def applications(*rows: dict) -> pd.DataFrame:
    """Applications: application_id, firm_id, application_date; amount 100, collateral 50 unless given."""
    out = []
    for r in rows:
        day = D(r["application_date"])
        out.append(
            {
                "application_id": r["application_id"],
                "firm_id": r["firm_id"],
                "application_date": day,
                "amount": float(r.get("amount", 100.0)),
                "term_months": int(r.get("term_months", 12)),
                "product": r.get("product", "rnd_loan"),
                "collateral_value": float(r.get("collateral_value", 50.0)),
                "available_date": day,
            }
        )
    return _typed("applications", pd.DataFrame(out))


def monthly(table: str, firm_id: str, first_month: str, lag_days: int = 10, **columns: list) -> pd.DataFrame:
    """Consecutive monthly rows of one firm from ``first_month``; each row becomes available
    ``lag_days`` days after the month following it (month + 1 month + lag). Columns not given are 0
    (``top_customer_share`` NaN)."""
    n = len(next(iter(columns.values())))
    months = pd.date_range(first_month, periods=n, freq="MS")
    df = pd.DataFrame({"firm_id": firm_id, "month": months})
    for c in SCHEMAS[table].column_names:
        if c in ("firm_id", "month", "available_date"):
            continue
        if c in columns:
            df[c] = np.asarray(columns[c], dtype=np.float64)
        else:
            df[c] = np.nan if c == "top_customer_share" else 0.0
    df["available_date"] = months + pd.DateOffset(months=1) + pd.Timedelta(days=lag_days)
    return _typed(table, df)


def rows(table: str, *records: dict) -> pd.DataFrame:
    """An event table from explicit records (every declared column given)."""
    return _typed(table, pd.DataFrame(list(records), columns=SCHEMAS[table].column_names))


def _typed(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Declared dtypes, as ``load_tables`` returns them."""
    for col in SCHEMAS[table].columns:
        if col.name not in df.columns:
            continue
        if col.dtype == "date":
            df[col.name] = pd.to_datetime(df[col.name]).astype("datetime64[ns]")
        elif col.dtype == "int":
            df[col.name] = df[col.name].astype("int64")
        elif col.dtype == "float":
            df[col.name] = df[col.name].astype("float64")
        elif col.dtype == "category":
            df[col.name] = df[col.name].astype(pd.CategoricalDtype(list(col.categories)))
        elif col.dtype == "string":
            df[col.name] = df[col.name].astype("string")
    return df


def concat(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def build(tables: dict, names: list[str] | None = None, **kw) -> pd.DataFrame:
    """Feature matrix indexed by application_id (only ``names`` if given)."""
    X = build_features(tables, features=names, **kw).set_index("application_id")
    return X if names is None else X[names]


def snapshot(tables: dict) -> dict:
    """Deep copies, to check later that building did not mutate the inputs."""
    return {k: v.copy(deep=True) for k, v in tables.items()}


def assert_unchanged(before: dict, after: dict) -> None:
    for k in before:
        pd.testing.assert_frame_equal(before[k], after[k])


# ------------------------------------------------------------------------------------------------
# A worked example used by several test files: firm A (ai, founded 2015-01-01) with three annual
# statements, two R&D claims, patents, certificates and bids; firm B (software) with little data.
# Application a1: A on 2024-07-15 (amount 300, collateral 150); a0: A on 2024-05-15 (FY2023 not filed
# yet); b1: B on 2024-07-15.
# ------------------------------------------------------------------------------------------------

FINANCIALS = {
    # fiscal_year: revenue, high_tech_revenue, cost_of_sales, rnd, net_profit, assets, liabilities,
    #              current assets, current liabilities, operating cash flow
    2021: (1000, 500, 600, 40, 50, 2000, 1000, 800, 400, 80),
    2022: (1200, 700, 700, 60, 60, 2200, 1100, 900, 500, 90),
    2023: (1500, 1000, 800, 93, -30, 2500, 1500, 1000, 800, -50),
}


def _statement(firm, year, v):
    keys = ("revenue", "high_tech_revenue", "cost_of_sales", "rnd_expense", "net_profit", "total_assets",
            "total_liabilities", "current_assets", "current_liabilities", "operating_cash_flow")
    rec = {"firm_id": firm, "fiscal_year": year, "period_end": D(f"{year}-12-31"), "available_date": D(f"{year + 1}-05-31")}
    rec.update({k: float(x) for k, x in zip(keys, v)})
    return rec


def _patent(pid, ptype, event, day):
    day = D(day)
    return {"firm_id": "A", "patent_id": pid, "patent_type": ptype, "event": event,
            "filing_date": D("2014-01-01") if ptype != "software_copyright" else day - pd.Timedelta(days=90),
            "event_date": day, "available_date": day + pd.Timedelta(days=30)}


def _cert(firm, no, ctype, issue, expiry, available):
    return {"firm_id": firm, "cert_no": no, "cert_type": ctype, "issue_date": D(issue), "expiry_date": D(expiry), "available_date": D(available)}


def company_tables() -> dict:
    return {
        "firms": firms({"firm_id": "A", "founding_date": "2015-01-01"}, {"firm_id": "B", "industry": "software", "founding_date": "2020-03-01"}),
        "applications": applications(
            {"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15", "amount": 300.0, "collateral_value": 150.0},
            {"application_id": "a0", "firm_id": "A", "application_date": "2024-05-15", "amount": 240.0, "collateral_value": 0.0},
            {"application_id": "b1", "firm_id": "B", "application_date": "2024-07-15", "amount": 80.0, "collateral_value": 100.0},
        ),
        "financials": rows("financials", *[_statement("A", y, v) for y, v in FINANCIALS.items()]),
        "rnd_deductions": rows(
            "rnd_deductions",
            {"firm_id": "A", "tax_year": 2022, "filing_date": D("2023-04-30"), "rnd_expense_claimed": 55.0, "super_deduction": 55.0, "rnd_staff": 12, "available_date": D("2023-05-10")},
            {"firm_id": "A", "tax_year": 2023, "filing_date": D("2024-04-30"), "rnd_expense_claimed": 81.0, "super_deduction": 81.0, "rnd_staff": 15, "available_date": D("2024-05-10")},
        ),
        "social_security": monthly("social_security", "A", "2023-01-01", headcount=[50] * 18),
        "patents": rows(
            "patents",
            _patent("P1", "invention", "grant", "2019-03-01"),
            _patent("P1", "invention", "pledge", "2022-01-10"),
            _patent("P1", "invention", "pledge_release", "2023-06-01"),
            _patent("P2", "invention", "grant", "2021-05-01"),
            _patent("P2", "invention", "pledge", "2023-09-01"),
            _patent("P3", "invention", "grant", "2022-08-01"),
            _patent("P3", "invention", "lapse", "2024-02-01"),
            _patent("P4", "utility_model", "grant", "2023-01-15"),
            _patent("P5", "utility_model", "grant", "2015-06-01"),
            _patent("P5", "utility_model", "lapse", "2020-01-01"),
            _patent("P6", "design", "grant", "2024-06-20"),  # published 2024-07-20, after a1
            _patent("S1", "software_copyright", "grant", "2020-01-01"),
            _patent("S2", "software_copyright", "grant", "2023-11-01"),
        ),
        "certifications": rows(
            "certifications",
            _cert("A", "GR1", "high_tech", "2022-11-01", "2025-10-31", "2022-12-15"),
            _cert("A", "TS1", "tech_sme", "2024-05-01", "2024-12-31", "2024-05-20"),
            _cert("A", "SP1", "specialized", "2021-01-01", "2023-12-31", "2021-02-01"),  # expired
            _cert("B", "LG1", "little_giant", "2023-01-01", "2025-12-31", "2023-02-01"),
            _cert("B", "GR2", "high_tech", "2024-07-01", "2027-06-30", "2024-07-20"),  # published after b1
        ),
        "bids": rows(
            "bids",
            {"firm_id": "A", "bid_id": "T1", "award_date": D("2023-09-01"), "amount": 200.0, "buyer_type": "government", "available_date": D("2023-09-10")},
            {"firm_id": "A", "bid_id": "T0", "award_date": D("2021-01-01"), "amount": 50.0, "buyer_type": "soe", "available_date": D("2021-01-10")},  # > 24 months
        ),
    }


def write_dir(path, tables: dict, end: str = "2024-12"):
    """Write tables as a data directory (Parquet + manifest) for load_tables and the CLI."""
    import json
    from pathlib import Path

    from features.tables import write_table

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        write_table(df, path / f"{name}.parquet")
    (path / "manifest.json").write_text(json.dumps({"parameters": {"end": end}}))
    return path
