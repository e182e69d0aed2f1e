"""Application ids in a scoring batch (riskmodel/ids.py): empty ids and duplicates across chunks,
checked against a plain Python reference, with real and forced hash collisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel import ids as ids_mod
from riskmodel.ids import IdLedger, empty_ids, hash_ids, id_strings

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
