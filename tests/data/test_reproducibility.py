"""Reproducibility across machines: ``compare_datasets`` and what it promises (data/synthetic/README.md).

numpy's exp, log and power give different last bits on different CPUs, so generated floats are only
promised equal within a tolerance across machines; integers, dates, strings, categories and booleans
exactly. Byte-identical files are a same-machine promise (tests/data/test_generator.py and
tests/reliability/test_determinism.py check that one).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.tables import TABLE_NAMES
from synthetic import FLOAT_PLACES, GeneratorParams, compare_datasets, differences, generate, other_cpu

PARAMS = GeneratorParams(firms=400, seed=8)
KEY = b"reproducibility-test-key"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("repro") / "base"
    generate(PARAMS, out, key=KEY)
    return out


def _copy(base: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(base, dst)
    return dst


def _edit(root: Path, rel: str, column: str, fn) -> None:
    """Replace ``column`` of ``root/rel`` by ``fn(values as numpy)``, keeping the schema and row groups' settings."""
    path = root / rel
    t = pq.read_table(path)
    i = t.schema.get_field_index(column)
    f = t.schema.field(i)
    values = fn(t.column(column).to_numpy(zero_copy_only=False).copy())
    t = t.set_column(i, f, pa.array(values, type=f.type, from_pandas=True))
    pq.write_table(t, path, compression="zstd", write_statistics=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ulps(values: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Move each value by k[i] units in the last place (np.nextafter, towards +inf for k > 0)."""
    out = values.astype(np.float64)
    for step in range(int(np.abs(k).max())):
        up, down = k > step, k < -step
        out = np.where(up, np.nextafter(out, np.inf), np.where(down, np.nextafter(out, -np.inf), out))
    return out


PERTURBED = [
    ("truth/truth.parquet", "true_pd"),
    ("truth/truth.parquet", "logit"),
    ("truth/truth.parquet", "maturity"),
    ("truth/truth.parquet", "staff_scale"),
    ("electricity.parquet", "kwh"),
    ("financials.parquet", "net_profit"),
    ("invoices.parquet", "top_customer_share"),
]


def test_floats_moved_by_a_few_ulps_compare_equal(base, tmp_path):
    """What another CPU does to an unrounded float: a few units in the last place, here in every row."""
    copy = _copy(base, tmp_path)
    rng = np.random.default_rng(0)
    for rel, col in PERTURBED:
        _edit(copy, rel, col, lambda v: _ulps(v, rng.integers(-4, 5, len(v))))
        assert _sha(copy / rel) != _sha(base / rel), f"{rel}: the perturbation changed no byte"
    assert compare_datasets(base, copy) == []


def test_floats_moved_beyond_the_tolerance_are_reported(base, tmp_path):
    copy = _copy(base, tmp_path)

    def shift(v):
        v[3] += 1e-6  # true_pd is written with 9 places: 1,000 units
        return v

    _edit(copy, "truth/truth.parquet", "true_pd", shift)
    _edit(copy, "electricity.parquet", "kwh", lambda v: np.where(np.arange(len(v)) == 10, v + 0.2, v))  # 2 units of 0.1
    got = compare_datasets(base, copy)
    assert len(got) == 2, got
    assert got[0].startswith("electricity.parquet: column kwh: 1 of ") and "first at row 10 " in got[0]
    assert got[1].startswith("truth/truth.parquet: column true_pd: 1 of ") and "first at row 3 " in got[1]
    # one unit in the last written place is a rounding boundary crossed: within the default tolerance
    copy2 = _copy(base, tmp_path / "two")
    _edit(copy2, "electricity.parquet", "kwh", lambda v: np.where(np.arange(len(v)) == 10, v + 0.1, v))
    assert compare_datasets(base, copy2) == []
    assert compare_datasets(base, copy2, atol=0.0) != []


def test_a_changed_integer_category_string_or_date_is_reported_by_table_column_and_row(base, tmp_path):
    copy = _copy(base, tmp_path)
    _edit(copy, "social_security.parquet", "headcount", lambda v: np.where(np.arange(len(v)) == 7, v + 1, v))
    _edit(copy, "firms.parquet", "industry", lambda v: np.where(np.arange(len(v)) == 5, "software" if v[5] != "software" else "ai", v))
    _edit(copy, "applications.parquet", "product", lambda v: np.where(np.arange(len(v)) == 2, "talent_loan" if v[2] != "talent_loan" else "rnd_loan", v))
    _edit(copy, "talent.parquet", "person_id", lambda v: np.where(np.arange(len(v)) == 0, "P0000000000000000", v))

    def later(v):
        v[4] = v[4] + np.timedelta64(1, "D")
        return v

    _edit(copy, "outcomes.parquet", "available_date", later)
    got = compare_datasets(base, copy)
    expected = [
        ("applications.parquet", "product", 2),
        ("firms.parquet", "industry", 5),
        ("outcomes.parquet", "available_date", 4),
        ("social_security.parquet", "headcount", 7),
        ("talent.parquet", "person_id", 0),
    ]
    assert len(got) == len(expected), got
    for line, (rel, col, row) in zip(got, expected):
        assert line.startswith(f"{rel}: column {col}: 1 of "), line
        assert f"first at row {row} (firm_id F" in line and " != " in line, line
    d = {x.column: x for x in differences(base, copy)}
    assert d["headcount"].second == d["headcount"].first + 1 and d["headcount"].exact


def test_missing_files_rows_columns_and_manifest_changes_are_reported(base, tmp_path):
    copy = _copy(base, tmp_path)
    (copy / "bids.parquet").unlink()
    t = pq.read_table(copy / "patents.parquet")
    pq.write_table(t.slice(1), copy / "patents.parquet")
    pq.write_table(pq.read_table(copy / "talent.parquet").drop_columns(["credential"]), copy / "talent.parquet")
    m = (copy / "manifest.json").read_text().replace('"seed": 8,', '"seed": 9,', 1)
    (copy / "manifest.json").write_text(m)
    got = "\n".join(compare_datasets(base, copy))
    assert f"bids.parquet: only in {base}" in got
    assert f"patents.parquet: {t.num_rows:,} rows != {t.num_rows - 1:,} rows" in got
    assert "talent.parquet: columns differ: only in the first ['credential']" in got
    assert "manifest.json: seed: 8 != 9" in got
    assert "sha256" not in got  # file hashes are a same-machine promise: never compared across machines


def test_every_written_float_column_has_declared_places_and_is_rounded_to_them(base):
    for table, places in FLOAT_PLACES.items():
        rel = "truth/truth.parquet" if table == "truth" else f"{table}.parquet"
        schema = pq.read_schema(base / rel)
        floats = {f.name for f in schema if pa.types.is_floating(f.type)}
        assert floats == set(places), table
        for col, k in places.items():
            v = pq.read_table(base / rel, columns=[col]).column(col).to_numpy(zero_copy_only=False).astype(float)
            v = v[~np.isnan(v)]
            assert len(v) > 0 and np.array_equal(np.round(v, k), v), f"{table}.{col} is not rounded to {k} places"
    assert set(FLOAT_PLACES) == set(TABLE_NAMES) | {"truth"}


def test_the_generator_gives_the_same_values_when_exp_log_and_power_differ_in_the_last_bits(base, tmp_path):
    """``other_cpu`` perturbs every np.exp/log/log1p/expm1/power the generator calls, as another CPU would."""
    with other_cpu(ulps=4, seed=1):
        generate(PARAMS, tmp_path / "other", key=KEY)
    assert compare_datasets(base, tmp_path / "other") == []
    # The emulation reaches the generator: much larger errors (2e-9 relative) show in the unrounded truth
    # floats, and not in the integers.
    with other_cpu(ulps=1e7, seed=1):
        generate(PARAMS, tmp_path / "far", key=KEY)
    far = differences(base, tmp_path / "far")
    assert {(d.file, d.column) for d in far} >= {("truth/truth.parquet", "maturity")}
    assert all(not d.exact for d in far), [str(d) for d in far if d.exact]


@pytest.mark.slow
def test_the_generator_gives_the_same_values_with_numpy_simd_code_paths_switched_off(base, tmp_path):
    """A real other code path: numpy's exp/log/power dispatch to CPU-specific (e.g. AVX-512) kernels.
    Switching them off (NPY_DISABLE_CPU_FEATURES) gives the results a CPU without them gets. On a
    machine with nothing to switch off, both runs take the same path and this checks only the rest."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(__cpu_dispatch__), RISKMODEL_THREADS="1")
    code = (
        "import sys; from synthetic import GeneratorParams, generate; "
        f"generate(GeneratorParams(firms={PARAMS.firms}, seed={PARAMS.seed}), sys.argv[1], key={KEY!r})"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "baseline")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert compare_datasets(base, tmp_path / "baseline") == []
