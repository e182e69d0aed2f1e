"""`riskmodel features --engine spark` (riskmodel/sparkfeatures.py) gives the pandas build's values.

One local[2] Spark session for the module. A generated hub in firm parts and one of single files;
validation messages (file, column, row, rule) as loading the whole table gives them; rejected rows;
peer norms across partitions with an industry of one firm and empty partitions; the command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.partitions import build_hub, firm_partition
from features.tables import TableError, load_tables
from riskmodel.sparkfeatures import build_hub_spark, plan_shares
from tests.code.test_partitions import _edit, _memory, _peer_hub, _split

pytestmark = pytest.mark.slow
KEY = "application_id"


@pytest.fixture(scope="module")
def spark():
    from riskmodel.spark import spark_session

    session = spark_session(app_name="riskmodel-spark-features-test")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def parts_hub(tmp_path_factory) -> Path:
    """3,000 firms generated in aligned parts of 1,000 firms."""
    from synthetic import GeneratorParams, generate
    from synthetic import params as sp
    from synthetic import writer as sw

    root = tmp_path_factory.mktemp("spark-generated")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sw, "CHUNK_SIZE", 1000)
        mp.setattr(sp, "CHUNK_SIZE", 1000)
        generate(GeneratorParams(firms=3000, seed=5), root / "parts", layout="parts")
    return root / "parts"


def assert_close(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The same rows (matched by application id) and columns; numbers within 1e-12, the rest equal."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) and got[KEY].is_unique
    a, b = got.set_index(KEY).loc[want[KEY]], want.set_index(KEY)
    for c in b.columns:
        if pd.api.types.is_float_dtype(b[c]):
            np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=1e-12, atol=0, equal_nan=True, err_msg=c)
        else:
            assert a[c].astype("string").tolist() == b[c].astype("string").tolist(), c


def _spark(spark, hub: Path, out: Path, **kw) -> pd.DataFrame:
    build_hub_spark(hub, out, spark=spark, **kw)
    return pd.read_parquet(out)


def test_a_hub_in_firm_parts_gives_the_pandas_features_in_the_pandas_order(spark, parts_hub, tmp_path):
    got = _spark(spark, parts_hub, tmp_path / "s.parquet", partitions=4)
    assert_close(got, _memory(parts_hub))
    build_hub(parts_hub, tmp_path / "p.parquet", partitions=4)  # the pandas build bucketed alike: the same file
    pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / "p.parquet"), check_exact=False, rtol=1e-12)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".work")], "the work folder is removed"


def test_single_files_and_an_as_of_build_give_the_pandas_features(spark, small_hub, tmp_path):
    summary = build_hub_spark(small_hub, tmp_path / "s.parquet", spark=spark)
    assert summary.partitions == 2 and summary.layout == "spark"  # one per core below 50,000 firms
    assert_close(pd.read_parquet(tmp_path / "s.parquet"), _memory(small_hub))
    got = _spark(spark, small_hub, tmp_path / "a.parquet", as_of="2023-06-30", features=["energy_yoy_vs_industry"])
    assert_close(got, _memory(small_hub, as_of="2023-06-30", features=["energy_yoy_vs_industry"]))


def test_peer_norms_cross_partitions_with_a_one_firm_industry_and_empty_partitions(spark, tmp_path):
    hub = _peer_hub(tmp_path / "hub")
    assert len(set(firm_partition([f"F{i}" for i in range(6)], 7).tolist())) < 7, "some of 7 partitions should be empty"
    want = _memory(hub)
    got = _spark(spark, hub, tmp_path / "s.parquet", partitions=7)
    assert_close(got, want)
    assert got.set_index(KEY).loc["a-F0", "energy_yoy_vs_industry"] == 0.0  # alone in its industry: its own norm


@pytest.fixture(scope="module")
def split_hub(small_hub, tmp_path_factory) -> Path:
    return _split(small_hub, tmp_path_factory.mktemp("spark-split") / "hub", 3)


def _broken(split_hub: Path, tmp_path: Path, table: str, part: int, edit) -> Path:
    hub = tmp_path / "hub"
    shutil.copytree(split_hub, hub)
    _edit(hub / table / f"part-{part:05d}.parquet", edit)
    return hub


def _same_error(spark, hub: Path, tmp_path: Path) -> str:
    with pytest.raises(TableError) as memory:
        load_tables(hub)
    with pytest.raises(TableError) as got:
        build_hub_spark(hub, tmp_path / "s.parquet", spark=spark, partitions=3)
    assert str(got.value) == str(memory.value)
    assert not (tmp_path / "s.parquet").exists()
    return str(got.value)


def test_a_bad_value_is_reported_with_its_part_file_and_row(spark, split_hub, tmp_path):
    def edit(frame):
        frame.loc[[4, 1007], "kwh"] = [-1.0, -2.0]

    hub = _broken(split_hub, tmp_path, "electricity", 1, edit)
    message = _same_error(spark, hub, tmp_path)
    part = hub / "electricity" / "part-00001.parquet"
    assert f"{part}: column 'kwh': value below the allowed minimum 0: 2 row(s), rows [4, 1007] (values: -1.0, -2.0)" in message


def test_a_key_repeated_in_another_part_file_is_reported_there(spark, split_hub, tmp_path):
    first = pq.read_table(split_hub / "certifications" / "part-00000.parquet").to_pandas()

    def edit(frame):
        frame.loc[1005, "cert_no"] = first.loc[0, "cert_no"]

    hub = _broken(split_hub, tmp_path, "certifications", 2, edit)
    message = _same_error(spark, hub, tmp_path)
    assert f"{hub / 'certifications' / 'part-00002.parquet'}: column 'cert_no': duplicate key (cert_no): 1 row(s), rows [1005]" in message


def test_a_firm_month_repeated_in_another_part_file_is_reported_there(spark, split_hub, tmp_path):
    first = pq.read_table(split_hub / "social_security" / "part-00000.parquet").to_pandas()

    def edit(frame):
        frame.loc[1002, ["firm_id", "month"]] = first.loc[0, ["firm_id", "month"]].to_numpy()

    hub = _broken(split_hub, tmp_path, "social_security", 1, edit)
    message = _same_error(spark, hub, tmp_path)
    assert f"{hub / 'social_security' / 'part-00001.parquet'}: column 'firm_id,month': duplicate key (firm_id, month): 1 row(s), rows [1002]" in message


def test_rejected_rows_are_the_rows_loading_rejects(spark, split_hub, tmp_path):
    first = pq.read_table(split_hub / "electricity" / "part-00000.parquet").to_pandas()

    def edit(frame):
        frame.loc[1, "kwh"] = -5.0
        frame.loc[3, ["firm_id", "month"]] = first.loc[0, ["firm_id", "month"]].to_numpy()

    hub = _broken(split_hub, tmp_path, "electricity", 2, edit)
    tables, report = load_tables(hub, errors="reject")
    summary = build_hub_spark(hub, tmp_path / "s.parquet", spark=spark, partitions=3, errors="reject")
    assert summary.report.to_dict()["rows_rejected"] == report.to_dict()["rows_rejected"] == {"electricity": 2}
    assert summary.report.rows_kept == report.rows_kept
    rej, want = summary.report.rejects["electricity"], report.rejects["electricity"]
    assert rej.index.tolist() == want.index.tolist() and rej["reject_rule"].tolist() == want["reject_rule"].tolist()
    from features.build import build_features

    assert_close(pd.read_parquet(tmp_path / "s.parquet"), build_features(tables))


def test_shares_cover_every_row_group_once(tmp_path):
    import pyarrow as pa

    path = tmp_path / "t.parquet"
    with pq.ParquetWriter(path, pa.schema([("n", pa.int64())])) as w:
        for k in (3, 0, 5, 2, 7):
            w.write_table(pa.table({"n": np.arange(k, dtype=np.int64)}))
    shares = plan_shares({"firms": [path]}, ["firms"], rows=6)
    assert [(s.row_groups, s.first_row, s.rows) for s in shares] == [((0, 2), 0, 8), ((3, 4), 8, 9)]


def test_features_command_on_spark(cli, spark, small_hub, tmp_path):
    code, out, err = cli("features", "--engine", "spark", "--data", small_hub, "--out", tmp_path / "f.parquet", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["engine"], summary["layout"], summary["rows"]) == ("spark", "spark", len(_memory(small_hub)))
    assert {"validate", "pass 1", "features"} <= set(summary["seconds"])
    assert spark.sparkContext._jsc is not None, "the command leaves a session it did not start running"
    code, _, err = cli("features", "--engine", "spark", "--workers", "2", "--data", small_hub, "--out", tmp_path / "g.parquet")
    assert code != 0 and "--workers applies to --engine pandas" in err
