"""Application ids in a scoring batch (riskmodel/ids.py): empty ids and duplicates across chunks,
checked against a plain Python reference, with real and forced hash collisions, for both the
in-memory ledger and the two-pass finder with bucket files on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel import ids as ids_mod
from riskmodel.ids import DuplicateRows, IdLedger, empty_ids, find_duplicates, hash_ids, id_strings

_ID = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t", "\u3000", "a", "b", "ab", "é", "企业A", "x" * 300, "x" * 299 + "y"]),
    st.text(max_size=4),
    st.integers(0, 20),
)


def _reference(chunks):
    """Per chunk: (empty, duplicate) the slow, obvious way."""
    seen, out = set(), []
    for chunk in chunks:
        empty = [v is None or str(v).strip() == "" for v in chunk]
        dup = []
        for v, e in zip(chunk, empty):
            if e:
                dup.append(False)
                continue
            key = str(v)
            dup.append(key in seen)
            seen.add(key)
        out.append((np.array(empty, dtype=bool), np.array(dup, dtype=bool)))
    return out


def _find(chunks, tmp_path, **kwargs) -> DuplicateRows:
    arrays = [id_strings(pd.Series(chunk, dtype=object)) for chunk in chunks]
    found = find_duplicates(iter(arrays), tmp_path, **kwargs)
    assert not list(tmp_path.iterdir()), "bucket files left behind"
    return found


def _check_found(chunks, found: DuplicateRows) -> None:
    want = [dup for _, dup in _reference(chunks)]
    assert found.n_rows == sum(len(c) for c in chunks)
    offset = 0
    for chunk, dup in zip(chunks, want):  # asked chunk by chunk, at offsets that are not whole bytes
        np.testing.assert_array_equal(found.mask(offset, len(chunk)), dup)
        offset += len(chunk)
    assert len(found) == sum(int(d.sum()) for d in want)


def _check(chunks, ledger=None):
    ledger = ledger or IdLedger()
    for chunk, (want_empty, want_dup) in zip(chunks, _reference(chunks)):
        arr = id_strings(pd.Series(chunk, dtype=object))
        empty = empty_ids(arr)
        np.testing.assert_array_equal(empty, want_empty)
        np.testing.assert_array_equal(ledger.check(arr, empty), want_dup)
    return ledger


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.lists(_ID, max_size=25), min_size=1, max_size=6))
def test_empty_and_duplicate_ids_match_a_python_set(chunks):
    _check(chunks)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.lists(st.integers(0, 12), max_size=20), min_size=1, max_size=5))
def test_every_hash_colliding_still_gives_exact_answers(chunks):
    """With every id hashed to the same value, the answer must come from comparing strings."""
    original = ids_mod.hash_ids
    ids_mod.hash_ids = lambda arr: np.zeros(len(arr), dtype=np.uint64)
    try:
        _check(chunks)
    finally:
        ids_mod.hash_ids = original


@settings(max_examples=120, deadline=None)
@given(
    chunks=st.lists(st.lists(_ID, max_size=25), min_size=1, max_size=6),
    total=st.one_of(st.none(), st.integers(0, 200)),
    bucket_rows=st.integers(1, 40),
)
def test_two_pass_finder_matches_a_python_set(tmp_path_factory, chunks, total, bucket_rows):
    """Any number of buckets (from the row count, or 256 when it is unknown) gives the same answer."""
    _check_found(chunks, _find(chunks, tmp_path_factory.mktemp("ids"), total_rows=total, bucket_rows=bucket_rows))


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.lists(st.integers(0, 12), max_size=20), min_size=1, max_size=5))
def test_two_pass_finder_is_exact_when_every_hash_collides(tmp_path_factory, chunks):
    original = ids_mod.hash_ids
    ids_mod.hash_ids = lambda arr: np.zeros(len(arr), dtype=np.uint64)
    try:
        _check_found(chunks, _find(chunks, tmp_path_factory.mktemp("ids"), total_rows=1000, bucket_rows=10))
    finally:
        ids_mod.hash_ids = original


def test_two_pass_finder_spreads_ids_over_buckets_and_keeps_repeats_out_of_them(tmp_path, monkeypatch):
    """Each bucket file holds about its share of the distinct ids; an id repeated within a chunk
    is marked in pass one and never written (so one id repeated a million times is one row per
    chunk on disk, not a million)."""
    sizes: list[int] = []
    original = ids_mod._in_hash_order

    def spy(arr, hashes, rows):  # called once per chunk in pass one, then once per bucket
        sizes.append(len(rows))
        return original(arr, hashes, rows)

    monkeypatch.setattr(ids_mod, "_in_hash_order", spy)
    distinct = [[f"A{c:02d}{i:05d}" for i in range(2_000)] for c in range(8)]
    found = _find(distinct, tmp_path, total_rows=16_000, bucket_rows=1_000)
    assert len(found) == 0
    pass_two = sizes[len(distinct) :]
    assert len(pass_two) == 16 and max(pass_two) < 1_500 and sum(pass_two) == 16_000
    sizes.clear()
    same = [["X"] * 2_000 for _ in range(8)]
    found = _find(same, tmp_path, total_rows=16_000, bucket_rows=1_000)
    assert len(found) == 16_000 - 1 and not found.mask(0, 1)[0]
    assert sizes[len(same) :] == [8]  # one bucket, one row per chunk


def test_duplicate_rows_refuses_rows_it_did_not_check(tmp_path):
    found = _find([["a", "b", "a"]], tmp_path)
    assert found.mask(1, 2).tolist() == [False, True]
    with pytest.raises(ValueError, match=r"rows 2\.\.3 are outside the 3 rows checked"):
        found.mask(2, 2)


def test_bucket_files_are_removed_when_the_pass_fails(tmp_path):
    def chunks():
        yield id_strings(pd.Series(["a", "b"]))
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        find_duplicates(chunks(), tmp_path, total_rows=10, bucket_rows=1)
    assert not list(tmp_path.iterdir())


def test_many_chunks_merge_runs_and_stay_exact():
    rng = np.random.default_rng(0)
    chunks = [[f"A{v:06d}" for v in rng.integers(0, 30_000, 1_000)] for _ in range(40)]
    ledger = _check(chunks)
    assert len(ledger) == len({v for c in chunks for v in c})
    assert len(ledger._runs) <= 8  # runs merge as they grow: O(log(chunks)) of them


def test_ledger_starts_from_given_ids():
    ledger = IdLedger(["a", "b"])
    arr = id_strings(pd.Series(["b", "c", "c"]))
    assert ledger.check(arr, empty_ids(arr)).tolist() == [True, False, True]


def test_hash_is_the_same_for_fixed_and_variable_width_layouts():
    """Fixed-width ids take a matrix fast path; the general path must agree with it."""
    fixed = id_strings(pd.Series(["A001", "B002", "C003"]))
    mixed = id_strings(pd.Series(["A001", "B002", "C003", "longer-id"]))
    np.testing.assert_array_equal(hash_ids(fixed), hash_ids(mixed)[:3])
    sliced = mixed.slice(1, 2)  # an Arrow slice keeps its parent's buffers with an offset
    np.testing.assert_array_equal(hash_ids(sliced), hash_ids(mixed)[1:3])
    assert len(set(hash_ids(mixed).tolist())) == 4


def test_numbers_as_ids_become_their_text():
    arr = id_strings(pd.Series([1, 2, None], dtype=object))
    assert arr.to_pylist() == ["1", "2", None]
    assert arr.type == pa.large_string()


@pytest.mark.parametrize("value", ["\u3000", " \t ", "\u2003"])
def test_unicode_whitespace_ids_are_empty(value):
    arr = id_strings(pd.Series([value, "x"]))
    assert empty_ids(arr).tolist() == [True, False]
