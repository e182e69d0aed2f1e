"""Bad input to the data hub: every broken rule gives a clear error (file, column, rows, rule) or, in
reject mode, a logged warning with counts. Absent optional tables are not errors."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from feature_fixtures import applications, build, firms, monthly
from features.build import build_features
from features.errors import UserError
from features.tables import TableError, load_tables, validate_frame, write_table, SCHEMAS
from riskmodel import cli


def _tables():
    return {
        "firms": firms({"firm_id": "A"}, {"firm_id": "B"}),
        "applications": applications(
            {"application_id": "a1", "firm_id": "A", "application_date": "2024-07-15"},
            {"application_id": "b1", "firm_id": "B", "application_date": "2024-07-15"},
        ),
        "electricity": pd.concat(
            [monthly("electricity", "A", "2023-01-01", kwh=[100.0] * 18), monthly("electricity", "B", "2023-01-01", kwh=[50.0] * 18)],
            ignore_index=True,
        ),
        "social_security": monthly("social_security", "A", "2023-01-01", headcount=[30] * 18),
    }


def _write(tmp_path, tables, end="2024-12"):
    for name, df in tables.items():
        write_table(df, tmp_path / f"{name}.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"parameters": {"end": end}}))
    return tmp_path


def test_valid_directory_loads_and_reports_missing_optional_tables(tmp_path, caplog):
    _write(tmp_path, _tables())
    with caplog.at_level(logging.WARNING):
        tables, report = load_tables(tmp_path)
    assert set(tables) == {"firms", "applications", "electricity", "social_security"}
    assert "bills" in report.missing_tables and "patents" in report.missing_tables
    assert any("table bills is missing" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("required", ["firms", "applications"])
def test_missing_required_table_is_a_clear_error(tmp_path, required):
    t = _tables()
    del t[required]
    _write(tmp_path, t)
    with pytest.raises(UserError, match=rf"{required}\.parquet: required table '{required}' is missing"):
        load_tables(tmp_path)


def test_missing_optional_tables_give_nan_and_zero_coverage_not_an_error(tmp_path):
    _write(tmp_path, _tables())
    tables, _ = load_tables(tmp_path)
    X = build_features(tables).set_index("application_id")
    assert X.loc["a1", "energy_momentum_3m"] == 0.0  # the present source still works
    for absent in ("bill_overdue_months_12m", "invention_patent_stock", "high_tech_valid", "leverage", "sales_growth_yoy"):
        assert X[absent].isna().all(), absent
    for cov in ("coverage_bills_share_12m", "coverage_invoices_share_12m", "coverage_financials_share_24m"):
        assert (X[cov] == 0).all(), cov
    assert (X["coverage_electricity_share_12m"] == 1.0).all()


def test_missing_column_names_file_and_column(tmp_path):
    t = _tables()
    t["electricity"] = t["electricity"].drop(columns=["kwh"])
    _write(tmp_path, t)
    with pytest.raises(TableError, match=r"electricity\.parquet: column 'kwh': required column is missing"):
        load_tables(tmp_path)


def test_an_optional_column_may_be_absent_and_reads_as_null(tmp_path):
    """applications.approved (the bank's decision) is optional: a hub that does not record it loads,
    with the decision null; present, it is checked like any column."""
    t = _tables()
    assert "approved" not in t["applications"].columns
    _write(tmp_path, t)
    apps = load_tables(tmp_path)[0]["applications"]
    assert apps["approved"].isna().all() and list(apps.columns) == SCHEMAS["applications"].column_names
    t["applications"]["approved"] = ["yes", "true"]
    _write(tmp_path, t)
    with pytest.raises(TableError, match=r"applications\.parquet: column 'approved': value cannot be read as bool: 1 row\(s\), rows \[0\]"):
        load_tables(tmp_path)
    t["applications"]["approved"] = [True, False]
    _write(tmp_path, t)
    assert load_tables(tmp_path)[0]["applications"]["approved"].tolist() == [True, False]
    from features.tables import Column

    with pytest.raises(ValueError, match="an optional column must be nullable"):
        Column(name="x", dtype="bool", description="x", optional=True)


def test_missing_column_in_frames_given_to_build_features():
    t = _tables()
    t["social_security"] = t["social_security"].drop(columns=["headcount"])
    with pytest.raises(TableError, match=r"social_security\.parquet: column 'headcount': required column is missing"):
        build_features(t)


def test_wrong_dtype_names_rows_and_rule(tmp_path):
    t = _tables()
    kwh = t["electricity"]["kwh"].astype(object)
    kwh.iloc[[3, 7]] = "lots"
    t["electricity"]["kwh"] = kwh.astype(str)
    _write(tmp_path, t)
    with pytest.raises(TableError, match=r"column 'kwh': value cannot be read as float: 2 row\(s\), rows \[3, 7\] \(values: lots, lots\)"):
        load_tables(tmp_path)


@pytest.mark.parametrize(("table", "column"), [("electricity", "kwh"), ("social_security", "headcount")])
def test_negative_values_are_rejected(tmp_path, table, column):
    t = _tables()
    t[table].loc[5, column] = -1
    _write(tmp_path, t)
    with pytest.raises(TableError, match=rf"{table}\.parquet: column '{column}': value below the allowed minimum 0: 1 row\(s\), rows \[5\]"):
        load_tables(tmp_path)


def test_duplicate_firm_month_rows(tmp_path):
    t = _tables()
    t["electricity"] = pd.concat([t["electricity"], t["electricity"].iloc[[2]]], ignore_index=True)
    _write(tmp_path, t)
    with pytest.raises(TableError, match=r"column 'firm_id,month': duplicate key \(firm_id, month\): 1 row\(s\), rows \[36\]"):
        load_tables(tmp_path)


def test_duplicate_firm_month_rows_given_directly_to_build_features():
    t = _tables()
    t["electricity"] = pd.concat([t["electricity"], t["electricity"].iloc[[2]]], ignore_index=True)
    with pytest.raises(TableError, match=r"duplicate key \(firm_id, month\): 1 row\(s\)"):
        build_features(t)


def test_available_date_before_the_event(tmp_path):
    t = _tables()
    t["electricity"].loc[4, "available_date"] = t["electricity"].loc[4, "month"] + pd.Timedelta(days=3)
    _write(tmp_path, t)
    with pytest.raises(TableError, match=r"column 'available_date': available_date before month \+ 1 month\(s\) .*rows \[4\]"):
        load_tables(tmp_path)


def test_dates_after_the_end_of_the_dataset(tmp_path):
    t = _tables()
    _write(tmp_path, t, end="2024-05")  # the electricity rows for 2024-05 and 2024-06 arrive in June/July
    with pytest.raises(TableError, match=r"electricity\.parquet: column 'month': date after the end of the dataset \(2024-05-31\): 2 row\(s\)"):
        load_tables(tmp_path)


def test_reject_mode_drops_bad_rows_and_logs_counts(tmp_path, caplog):
    t = _tables()
    t["electricity"].loc[[1, 2], "kwh"] = -5.0
    t["social_security"].loc[0, "available_date"] = pd.Timestamp("2022-01-01")
    _write(tmp_path, t)
    with caplog.at_level(logging.WARNING):
        tables, report = load_tables(tmp_path, errors="reject")
    assert report.to_dict()["rows_rejected"] == {"electricity": 2, "social_security": 1}
    assert report.rows_kept["electricity"] == 34 and report.rows_read["electricity"] == 36
    assert list(report.rejects["electricity"]["reject_rule"]) == ["value below the allowed minimum 0"] * 2
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "rejected:" in messages and "2 row(s), rows [1, 2]" in messages
    X = build_features(tables).set_index("application_id")  # the hub keeps going
    assert len(X) == 2


def test_unknown_extra_column_is_reported_not_silently_dropped(tmp_path, caplog):
    t = _tables()
    t["electricity"]["meter_serial"] = "M1"
    _write(tmp_path, t)
    with caplog.at_level(logging.WARNING):
        _, report = load_tables(tmp_path)
    assert any("column 'meter_serial': unknown column not in the schema" in w for w in report.warnings)


def test_unreadable_and_empty_files(tmp_path):
    _write(tmp_path, _tables())
    (tmp_path / "electricity.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(TableError, match=r"electricity\.parquet: column '-': not a readable Parquet file"):
        load_tables(tmp_path)
    (tmp_path / "electricity.parquet").write_bytes(b"")
    with pytest.raises(TableError, match=r"file is empty \(0 bytes\)"):
        load_tables(tmp_path)


def test_validate_frame_does_not_mutate_its_input():
    df = _tables()["electricity"]
    before = df.copy(deep=True)
    validate_frame(df, SCHEMAS["electricity"])
    pd.testing.assert_frame_equal(df, before)


def test_applications_and_as_of_are_exclusive():
    t = _tables()
    with pytest.raises(UserError, match="either applications or as_of"):
        build_features(t, applications=t["applications"], as_of="2024-01-01")
    with pytest.raises(UserError, match="is not a date"):
        build_features(t, as_of="soon")
    with pytest.raises(UserError, match="required table 'firms' is missing"):
        build_features({"applications": t["applications"]})


def test_as_of_builds_one_row_per_known_firm():
    t = _tables()
    t["firms"] = firms({"firm_id": "A"}, {"firm_id": "B"}, {"firm_id": "C", "founding_date": "2025-01-01"})
    X = build(t, as_of="2024-07-15")
    assert list(X.index) == ["A@2024-07-15", "B@2024-07-15"]  # C is registered later
    assert (X["product"] == "none").all() and X["collateral_coverage"].isna().all()
    assert X.loc["A@2024-07-15", "coverage_electricity_share_12m"] == 1.0


def test_cli_prints_one_line_and_exits_2_on_bad_tables(tmp_path, monkeypatch, capsys):
    t = _tables()
    t["electricity"].loc[5, "kwh"] = -1
    _write(tmp_path, t)
    monkeypatch.setattr("sys.argv", ["riskmodel", "features", "--data", str(tmp_path), "--out", str(tmp_path / "X.parquet")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    # warnings about the missing tables come first, then the error message
    assert "Traceback" not in err and all(ln.startswith("WARNING features.tables: table ") for ln in err.split("error: ")[0].splitlines())
    assert "\nerror: source table validation failed:" in err
    assert "electricity.parquet: column 'kwh': value below the allowed minimum 0" in err
    assert not (tmp_path / "X.parquet").exists()
