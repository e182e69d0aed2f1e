"""The firm-partitioned feature build (features.partitions) gives the in-memory build's values.

Partition boundaries: a firm whose rows sit in several part files, an industry with one firm, empty
partitions, a hub smaller than one partition, peer norms across 1, 2 and 7 partitions, part folders
against single files, the generator's aligned parts; validation by pieces names the part file and
the row in it, as loading the whole table does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import partitions
from features.build import build_features
from features.errors import UserError
from features.partitions import build_hub, firm_hash, firm_partition, hub_layout
from features.tables import TABLE_NAMES, TableError, load_tables, table_files, write_table
from tests.code.feature_fixtures import applications, concat, firms, monthly

KEY = "application_id"


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    """A matrix as values: rows sorted by application id, string columns compared as text."""
    out = frame.sort_values(KEY).reset_index(drop=True)
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].astype("string")
    return out


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal frames after sorting by application id: every value equal, floats bit for bit."""
    pd.testing.assert_frame_equal(_by_id(a), _by_id(b), check_exact=True, check_dtype=False)


def _memory(hub: Path, **kw) -> pd.DataFrame:
    errors = kw.pop("errors", "raise")
    tables, _ = load_tables(hub, errors=errors)
    return build_features(tables, **kw)


def _hub(hub: Path, out: Path, **kw) -> pd.DataFrame:
    build_hub(hub, out, **kw)
    return pd.read_parquet(out)


def _split(src: Path, dst: Path, parts: int) -> Path:
    """``src`` with every table as a folder of ``parts`` part files of consecutive rows (as a
    warehouse export writes them: a firm's rows end up in several files)."""
    dst.mkdir(parents=True)
    shutil.copy(src / "manifest.json", dst / "manifest.json")
    for name in TABLE_NAMES:
        table = pq.read_table(src / f"{name}.parquet")
        (dst / name).mkdir()
        step = -(-table.num_rows // parts)
        for i in range(parts):
            pq.write_table(table.slice(i * step, step), dst / name / f"part-{i:05d}.parquet")
    return dst


@pytest.fixture(scope="module")
def split_hub(small_hub, tmp_path_factory) -> Path:
    return _split(small_hub, tmp_path_factory.mktemp("split") / "hub", 3)


@pytest.fixture(scope="module")
def memory_matrix(small_hub) -> pd.DataFrame:
    return _memory(small_hub)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One hub generated twice with chunks of 400 firms: as part folders (3 aligned parts) and as
    single files."""
    from synthetic import GeneratorParams, generate
    from synthetic import params as sp
    from synthetic import writer as sw

    root = tmp_path_factory.mktemp("generated")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sw, "CHUNK_SIZE", 400)
        mp.setattr(sp, "CHUNK_SIZE", 400)
        generate(GeneratorParams(firms=1000, seed=4), root / "parts")
        generate(GeneratorParams(firms=1000, seed=4), root / "files", layout="files")
    return root / "parts", root / "files"


# ---- partition counts and layouts give the in-memory values ------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7])
def test_one_two_and_seven_partitions_give_the_in_memory_features(small_hub, memory_matrix, tmp_path, n):
    got = _hub(small_hub, tmp_path / "f.parquet", partitions=n)
    assert len(got) == len(memory_matrix)
    assert_same(got, memory_matrix)


def test_part_folders_give_the_tables_and_features_of_single_files(small_hub, split_hub, memory_matrix, tmp_path):
    ids = [set(pq.read_table(f, columns=["firm_id"]).column(0).to_pylist()) for f in table_files(split_hub, "electricity")]
    assert ids[0] & ids[1] or ids[1] & ids[2], "the split should leave a firm's rows in two part files"
    single, _ = load_tables(small_hub)
    parted, _ = load_tables(split_hub)
    for name in single:
        pd.testing.assert_frame_equal(single[name], parted[name], check_exact=True)
    summary = build_hub(split_hub, tmp_path / "f.parquet", partitions=3)
    assert summary.layout == "buckets" and summary.partitions == 3
    assert_same(pd.read_parquet(tmp_path / "f.parquet"), memory_matrix)


def test_part_files_that_differ_in_the_optional_column_combine(policy_hub, tmp_path):
    """applications.approved is optional: one part file without it (an older export) and one with
    it give the in-memory build's features; the missing decisions read as missing (it failed with an
    Arrow schema error when the absent column became a null-typed piece)."""
    hub = _split(policy_hub, tmp_path / "hub", 2)
    first = hub / "applications" / "part-00000.parquet"
    pq.write_table(pq.read_table(first).drop_columns(["approved"]), first)
    tables, _ = load_tables(hub)
    approved = tables["applications"]["approved"]
    assert str(approved.dtype) == "boolean" and approved.isna().any() and approved.notna().any()
    assert_same(_hub(hub, tmp_path / "f.parquet", partitions=3), build_features(tables))


def test_a_hub_smaller_than_one_partition_is_built_in_memory(small_hub, memory_matrix, tmp_path):
    summary = build_hub(small_hub, tmp_path / "f.parquet")
    assert (summary.layout, summary.partitions) == ("memory", 1)
    pd.testing.assert_frame_equal(_by_id(pd.read_parquet(tmp_path / "f.parquet")), _by_id(memory_matrix), check_exact=True, check_dtype=False)


def test_as_of_and_a_feature_subset_give_the_in_memory_values(small_hub, tmp_path):
    assert_same(_hub(small_hub, tmp_path / "a.parquet", partitions=3, as_of="2024-06-30"), _memory(small_hub, as_of="2024-06-30"))
    names = ["energy_yoy_vs_industry", "coverage_financials_share_24m", "coverage_bills_share_12m"]
    assert_same(_hub(small_hub, tmp_path / "s.parquet", partitions=2, features=names), _memory(small_hub, features=names))


def test_generator_parts_are_aligned_partitions_in_the_order_of_the_single_files(generated, tmp_path):
    parts, files = generated
    manifest = json.loads((parts / "manifest.json").read_text())
    assert manifest["partitioning"] == {"by": "firm_id", "parts": 3, "firms_per_part": 400}
    assert sorted(p.name for p in (parts / "electricity").iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert "partitioning" not in json.loads((files / "manifest.json").read_text())
    assert hub_layout(parts).aligned == 3 and hub_layout(files).aligned == 0
    summary = build_hub(parts, tmp_path / "f.parquet")
    assert (summary.layout, summary.partitions) == ("aligned", 3)
    write_table(_memory(files), tmp_path / "memory.parquet")  # the same file format, so the same dtypes
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), pd.read_parquet(tmp_path / "memory.parquet"), check_exact=True)


def test_the_same_dataset_compares_equal_across_layouts(generated):
    from synthetic import compare_datasets

    parts, files = generated
    assert compare_datasets(parts, files) == []


# ---- partition boundaries: peers, one-firm industries, empty partitions -------------------------


def _peer_hub(root: Path) -> Path:
    """Six firms: F0 alone in ai, F1..F5 in software, each with 30 months of electricity growing at
    its own rate, one application each on 2024-07-01 (and F3 a second one on 2024-08-20). On the
    first day of a month the application and its industry norm see the same rows."""
    root.mkdir(parents=True)
    ids = [f"F{i}" for i in range(6)]
    tables = {
        "firms": firms(*({"firm_id": f, "industry": "ai" if f == "F0" else "software"} for f in ids)),
        "applications": applications(
            *({"application_id": f"a-{f}", "firm_id": f, "application_date": "2024-07-01"} for f in ids),
            {"application_id": "b-F3", "firm_id": "F3", "application_date": "2024-08-20"},
        ),
        "electricity": concat(*(monthly("electricity", f, "2022-01-01", kwh=[100.0 * (1 + 0.02 * i) ** m for m in range(30)]) for i, f in enumerate(ids))),
    }
    for name, frame in tables.items():
        write_table(frame, root / f"{name}.parquet")
    return root


def test_peer_norms_cross_partitions_and_a_one_firm_industry_has_its_own(tmp_path):
    hub = _peer_hub(tmp_path / "hub")
    software = [f"F{i}" for i in range(1, 6)]
    assert len(set(firm_partition(software, 7).tolist())) > 1, "the software peers should span partitions"
    assert len(set(firm_partition([f"F{i}" for i in range(6)], 7).tolist())) < 7, "some of 7 partitions should be empty"
    want = _memory(hub)
    for n in (1, 2, 7):
        assert_same(_hub(hub, tmp_path / f"f{n}.parquet", partitions=n), want)
    got = want.set_index(KEY)["energy_yoy_vs_industry"]
    assert got.notna().all()
    # the software median is F3's growth (the middle of five), so F3's gap is zero; F0, alone in
    # ai, is its own norm
    assert got["a-F3"] == 0.0 and got["a-F0"] == 0.0 and got["a-F1"] < 0 < got["a-F5"]


# ---- validation by pieces: the part file and the row in it --------------------------------------


def _bad_copy(split_hub: Path, tmp_path: Path) -> Path:
    hub = tmp_path / "hub"
    shutil.copytree(split_hub, hub)
    return hub


def _edit(path: Path, edit) -> None:
    frame = pq.read_table(path).to_pandas()
    edit(frame)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _errors(hub: Path, tmp_path: Path, monkeypatch) -> tuple[str, str]:
    with pytest.raises(TableError) as memory:
        load_tables(hub)
    monkeypatch.setattr(partitions, "PIECE_ROWS", 1000)  # files read in pieces of 1,000 rows
    with pytest.raises(TableError) as streamed:
        build_hub(hub, tmp_path / "f.parquet", partitions=2)
    assert not (tmp_path / "f.parquet").exists()
    return str(memory.value), str(streamed.value)


def test_a_bad_value_is_reported_with_its_part_file_and_row(split_hub, tmp_path, monkeypatch):
    hub = _bad_copy(split_hub, tmp_path)
    part = hub / "electricity" / "part-00001.parquet"

    def edit(frame):
        frame.loc[[4, 1007], "kwh"] = [-1.0, -2.0]  # in two pieces

    _edit(part, edit)
    memory, streamed = _errors(hub, tmp_path, monkeypatch)
    assert f"{part}: column 'kwh': value below the allowed minimum 0: 2 row(s), rows [4, 1007] (values: -1.0, -2.0)" in memory
    assert streamed == memory


def test_a_key_repeated_in_another_part_file_is_reported_there(split_hub, tmp_path, monkeypatch):
    hub = _bad_copy(split_hub, tmp_path)
    first = pq.read_table(hub / "certifications" / "part-00000.parquet").to_pandas()
    second = hub / "certifications" / "part-00002.parquet"

    def edit(frame):
        frame.loc[1005, "cert_no"] = first.loc[0, "cert_no"]

    _edit(second, edit)
    memory, streamed = _errors(hub, tmp_path, monkeypatch)
    assert f"{second}: column 'cert_no': duplicate key (cert_no): 1 row(s), rows [1005]" in memory
    assert streamed == memory


def test_a_firm_month_repeated_in_another_part_file_is_reported_there(split_hub, tmp_path, monkeypatch):
    hub = _bad_copy(split_hub, tmp_path)
    first = pq.read_table(hub / "social_security" / "part-00000.parquet").to_pandas()
    second = hub / "social_security" / "part-00001.parquet"

    def edit(frame):
        frame.loc[1002, ["firm_id", "month"]] = first.loc[0, ["firm_id", "month"]].to_numpy()

    _edit(second, edit)
    memory, streamed = _errors(hub, tmp_path, monkeypatch)
    assert f"{second}: column 'firm_id,month': duplicate key (firm_id, month): 1 row(s), rows [1002]" in memory
    assert streamed == memory


def test_rejected_rows_are_the_same_in_a_partitioned_build(split_hub, tmp_path):
    hub = _bad_copy(split_hub, tmp_path)
    second = hub / "electricity" / "part-00002.parquet"
    first = pq.read_table(hub / "electricity" / "part-00000.parquet").to_pandas()

    def edit(frame):
        frame.loc[1, "kwh"] = -5.0
        frame.loc[3, ["firm_id", "month"]] = first.loc[0, ["firm_id", "month"]].to_numpy()

    _edit(second, edit)
    tables, report = load_tables(hub, errors="reject")
    summary = build_hub(hub, tmp_path / "f.parquet", partitions=3, errors="reject")
    assert summary.report.to_dict()["rows_rejected"] == report.to_dict()["rows_rejected"] == {"electricity": 2}
    assert summary.report.rows_kept == report.rows_kept
    assert_same(pd.read_parquet(tmp_path / "f.parquet"), build_features(tables))


def test_aligned_parts_must_keep_each_firm_in_one_part(generated, tmp_path):
    parts, _ = generated
    hub = tmp_path / "hub"
    shutil.copytree(parts, hub)
    moved = pq.read_table(hub / "electricity" / "part-00000.parquet").slice(0, 1)
    target = hub / "electricity" / "part-00001.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(target), moved]), target)
    firm = moved.column("firm_id")[0].as_py()
    with pytest.raises(UserError, match=rf"part-00001\.parquet: firm {firm} has rows here but is a firm of part 0"):
        build_hub(hub, tmp_path / "f.parquet")
    registry = pq.read_table(hub / "firms" / "part-00000.parquet").slice(0, 1)
    shutil.copy(parts / "electricity" / "part-00001.parquet", target)
    target = hub / "firms" / "part-00002.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(target), registry]), target)
    with pytest.raises(UserError, match=rf"firm {registry.column('firm_id')[0].as_py()} is in parts \[0, 2\]"):
        build_hub(hub, tmp_path / "f.parquet")


def test_a_table_both_as_file_and_folder_or_an_empty_folder_is_refused(small_hub, tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(small_hub, hub)
    (hub / "bids").mkdir()
    shutil.move(hub / "bids.parquet", tmp_path / "bids.parquet")
    with pytest.raises(UserError, match=r"bids: a table folder holds part files named part-\*\.parquet, and this one has none"):
        load_tables(hub)
    shutil.copy(tmp_path / "bids.parquet", hub / "bids" / "part-00000.parquet")
    shutil.copy(tmp_path / "bids.parquet", hub / "bids.parquet")
    with pytest.raises(UserError, match=r"table bids is both bids\.parquet and the folder bids/; keep one of them"):
        build_hub(hub, tmp_path / "f.parquet")


# ---- the partition of a firm ---------------------------------------------------------------------


def test_firm_hash_is_fnv1a_64_of_the_utf8_bytes():
    # test vectors of the FNV reference (www.isthe.com/chongo/tech/comp/fnv)
    got = firm_hash(["", "a", "foobar", "a"])
    assert got.tolist() == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8, 0xAF63DC4C8601EC8C]
    ids = pd.Series([f"firm-{i}" for i in range(1000)] + ["企业"], dtype="string")
    assert (firm_partition(ids, 7) == firm_partition(ids.to_numpy(dtype=object), 7)).all()
    assert set(np.unique(firm_partition(ids, 7))) == set(range(7))


def test_hub_paths_reserve_table_folders_and_their_part_files(split_hub):
    from features.tables import hub_paths

    paths = hub_paths(split_hub)
    assert split_hub / "electricity" in paths and split_hub / "electricity" / "part-00001.parquet" in paths
    assert split_hub / "bids.parquet" in paths


def test_features_command_builds_aligned_parts_on_two_workers(cli, generated, tmp_path):
    parts, files = generated
    code, out, err = cli("features", "--data", parts, "--out", tmp_path / "f.parquet", "--workers", "2", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["partitions"], summary["layout"], summary["workers"]) == (3, "aligned", 2)
    assert set(summary["seconds"]) == {"validate", "pass 1", "features"}
    write_table(_memory(files), tmp_path / "memory.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), pd.read_parquet(tmp_path / "memory.parquet"), check_exact=True)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".work")], "the work folder is removed"
