"""Application ids in a scoring batch: empty ids, and duplicates within and across chunks.

Batch scoring reads its input a chunk at a time, and an id repeated anywhere in the batch must be
rejected after its first row. Keeping every id seen in a Python set costs a Python string object
and a hash per row, the largest cost of the row checks in a profile of ``riskmodel score``;
:class:`IdLedger` works on the Arrow string buffers instead:

* each id is hashed to 64 bits with numpy over the id bytes (see :func:`hash_ids`);
* the hashes of earlier chunks are kept in sorted runs that merge as they grow, so each hash is
  copied O(log(rows / chunk)) times and a lookup is a binary search per run;
* a hash found in an earlier chunk is confirmed by comparing the id strings, so a hash collision
  can never reject a row: the answer is exact.

Memory is 16 bytes per id (hash and position) plus the id bytes themselves: it grows with the
batch. When the whole input can be read twice (a file), :func:`find_duplicates` finds the repeated
rows first, with memory that does not grow with the input:

* pass one hashes each chunk's ids, marks the ids repeated within the chunk, and appends the rest
  (hash, row number, id) to one of up to 256 bucket files on disk, chosen by the hash's top bits;
* pass two reads one bucket at a time and marks every row whose id came earlier in the bucket
  (every copy of an id lands in the same bucket), with the same exact string comparison.

The answer, :class:`DuplicateRows`, is one bit per input row; a bucket holds about
``BUCKET_ROWS`` ids, so memory is one bucket whatever the input size (up to 256 buckets, about
128 million rows, past which buckets grow).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_MULTIPLIERS = np.random.default_rng(20261127).integers(1, 2**63, size=256, dtype=np.uint64) | np.uint64(1)
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)
_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # ASCII whitespace (str.isspace)
_SPACE_BYTES[0x80:] = True  # a multi-byte character may be a Unicode space: checked exactly


def id_strings(ids: pd.Series) -> pa.LargeStringArray:
    """The ids as one Arrow large-string array (zero-copy for Arrow-backed strings; numbers become
    their text, as ``astype("string")`` gives)."""
    if not (isinstance(ids.dtype, pd.StringDtype) and ids.dtype.storage == "pyarrow"):
        ids = ids.astype("string[pyarrow]")
    arr = pa.array(ids)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr


def _buffers(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a large-string array, honouring a slice offset."""
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def empty_ids(arr: pa.LargeStringArray) -> np.ndarray:
    """True where the id is missing, empty or only whitespace (as ``str.strip() == ""``)."""
    offsets, data = _buffers(arr)
    lengths = np.diff(offsets)
    empty = lengths == 0
    if arr.null_count:
        empty |= arr.is_null().to_numpy(zero_copy_only=False)
    # only an id whose first byte may be whitespace can be all whitespace
    nonempty = ~empty
    first = np.zeros(len(arr), dtype=np.uint8)
    first[nonempty] = data[offsets[:-1][nonempty]]
    maybe = nonempty & _SPACE_BYTES[first]
    if maybe.any():
        rows = np.flatnonzero(maybe)
        spaces = pc.utf8_is_space(arr.take(pa.array(rows))).to_numpy(zero_copy_only=False)
        empty[rows[spaces.astype(bool)]] = True
    return empty


def hash_ids(arr: pa.LargeStringArray) -> np.ndarray:
    """64-bit hash per id: the sum of (byte + 1) x a random odd multiplier per byte position
    (cycling every 256 bytes, with the length mixed in), all in wrapping uint64 arithmetic.
    Two different ids share a hash with probability about 2**-57; :class:`IdLedger` confirms any
    match by comparing the strings."""
    offsets, data = _buffers(arr)
    lengths = np.diff(offsets)
    start, end = int(offsets[0]), int(offsets[-1])
    mixed = lengths.astype(np.uint64) * _LENGTH_MIX
    width = int(lengths[0]) if len(lengths) else 0
    if 0 < width <= len(_MULTIPLIERS) and (lengths == width).all():  # fixed-width ids: one matrix pass
        block = data[start:end].reshape(-1, width).astype(np.uint64)
        block += np.uint64(1)
        block *= _MULTIPLIERS[:width]
        return block.sum(axis=1, dtype=np.uint64) + mixed
    values = data[start:end].astype(np.uint64) + np.uint64(1)
    position = np.arange(end - start, dtype=np.int64) - np.repeat(offsets[:-1] - start, lengths)
    values *= _MULTIPLIERS[position & (len(_MULTIPLIERS) - 1)]
    cumulative = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(values, dtype=np.uint64)])
    rel = offsets - start
    return cumulative[rel[1:]] - cumulative[rel[:-1]] + mixed


class _Sorted:
    """A chunk's ids in hash order, taken from the chunk only where needed."""

    def __init__(self, arr: pa.LargeStringArray, rows: np.ndarray):
        self.arr, self.rows = arr, rows

    def take(self, indices: pa.Array) -> pa.Array:
        return self.arr.take(pa.array(self.rows[indices.to_numpy()]))

    def __getitem__(self, i: int) -> pa.Scalar:
        return self.arr[int(self.rows[i])]


def _repeats(arr: pa.LargeStringArray, hashes: np.ndarray) -> np.ndarray:
    """True at every row whose id appeared at an earlier row of ``arr`` (a chunk, or a bucket;
    ``arr`` and ``hashes`` in hash order, ties in row order)."""
    repeat = np.zeros(len(hashes), dtype=bool)
    if len(hashes) < 2:
        return repeat
    same_hash = np.flatnonzero(hashes[1:] == hashes[:-1]) + 1
    if not len(same_hash):
        return repeat
    same = pc.equal(arr.take(pa.array(same_hash)), arr.take(pa.array(same_hash - 1)))
    same = same.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    repeat[same_hash[same]] = True
    for i in same_hash[~same]:  # equal hashes, different ids: compare with the whole run of equal hashes
        j, value = i - 1, arr[int(i)].as_py()
        while j >= 0 and hashes[j] == hashes[i]:
            if arr[int(j)].as_py() == value:
                repeat[i] = True
                break
            j -= 1
    return repeat


def _in_hash_order(arr: pa.LargeStringArray, hashes: np.ndarray, rows: np.ndarray):
    """``rows`` of ``arr`` (hashes given) in hash order, ties in row order, and which of them repeat
    an id of an earlier row among them: (rows, hashes, ids, repeat), all in hash order."""
    order = np.argsort(hashes, kind="stable")  # equal hashes keep row order: the first row comes first
    rows, hashes = rows[order], hashes[order]
    ids = _Sorted(arr, rows)
    return rows, hashes, ids, _repeats(ids, hashes)


class IdLedger:
    """The ids seen so far in one batch; :meth:`check` answers which of a chunk's ids came earlier.

    ``IdLedger(["a", "b"])`` starts with those ids already seen.
    """

    def __init__(self, ids=()):
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, ledger positions)
        self._chunks: list[pa.LargeStringArray] = []  # the ids of each chunk, to confirm a match
        self._starts: list[int] = []  # ledger position of each chunk's first id
        self._size = 0
        ids = list(ids)
        if ids:
            self.check(id_strings(pd.Series(ids, dtype="string[pyarrow]")), np.zeros(len(ids), dtype=bool))

    def __len__(self) -> int:
        return self._size

    def _id_at(self, positions: np.ndarray) -> pa.Array:
        """The recorded ids at ledger positions (in the order given)."""
        chunk = np.searchsorted(self._starts, positions, side="right") - 1
        parts = []
        for c in np.unique(chunk):
            rows = np.flatnonzero(chunk == c)
            parts.append((rows, self._chunks[c].take(pa.array(positions[rows] - self._starts[c]))))
        order = np.concatenate([rows for rows, _ in parts])
        values = pa.concat_arrays([v for _, v in parts])
        return values.take(pa.array(np.argsort(order, kind="stable")))

    def _earlier(self, arr: pa.LargeStringArray, hashes: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Which candidates carry an id recorded from an earlier chunk (``arr[i]`` has ``hashes[i]``,
        sorted)."""
        seen = np.zeros(len(hashes), dtype=bool)
        for run_hashes, run_positions in self._runs:
            pos = np.searchsorted(run_hashes, hashes)  # sorted queries: each search starts near the last
            hit = candidates & ~seen & (pos < len(run_hashes))
            hit[hit] = run_hashes[pos[hit]] == hashes[hit]
            rows = np.flatnonzero(hit)
            if not len(rows):
                continue
            # a hash match is a duplicate when the strings agree (compared in bulk, in Arrow)
            same = pc.equal(arr.take(pa.array(rows)), self._id_at(run_positions[pos[rows]]))
            same = same.fill_null(False).to_numpy(zero_copy_only=False)
            seen[rows[same]] = True
            for i in rows[~same]:  # a hash collision (about 2**-57 per pair): try equal hashes further on
                value, j = arr[int(i)].as_py(), int(pos[i]) + 1
                while j < len(run_hashes) and run_hashes[j] == hashes[i]:
                    if self._id_at(run_positions[j : j + 1])[0].as_py() == value:
                        seen[i] = True
                        break
                    j += 1
        return seen

    def check(self, arr: pa.LargeStringArray, empty: np.ndarray) -> np.ndarray:
        """Duplicates in this chunk (an id seen in an earlier chunk, or earlier in this one); records
        the chunk's other non-empty ids as seen. Empty ids are neither duplicates nor recorded."""
        keep = np.flatnonzero(~empty)
        rows, h, ids, dup = _in_hash_order(arr, hash_ids(arr)[keep], keep)
        if self._size:
            dup |= self._earlier(ids, h, ~dup)
        new = np.flatnonzero(~dup)
        if len(new):
            self._chunks.append(ids.take(pa.array(new)))
            self._starts.append(self._size)
            self._runs.append((h[new], np.arange(self._size, self._size + len(new), dtype=np.int64)))
            self._size += len(new)
            while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
                (h1, p1), (h2, p2) = self._runs[-2], self._runs[-1]
                both, positions = np.concatenate([h1, h2]), np.concatenate([p1, p2])
                merge = np.argsort(both, kind="stable")  # two sorted runs: a linear merge
                self._runs[-2:] = [(both[merge], positions[merge])]
        duplicate = np.zeros(len(arr), dtype=bool)
        duplicate[rows[dup]] = True
        return duplicate


BUCKET_ROWS = 500_000  # ids per bucket file in find_duplicates: its memory is one bucket of them
MAX_BUCKETS = 256  # open files in pass one
_BUCKET_SCHEMA = pa.schema([("hash", pa.uint64()), ("row", pa.int64()), ("id", pa.large_string())])


class DuplicateRows:
    """Which rows of a batch repeat the id of an earlier row: one bit per row."""

    def __init__(self) -> None:
        self.n_rows = 0
        self._bits = np.zeros(0, dtype=np.uint8)

    def _extend(self, n: int) -> None:
        self.n_rows += n
        need = (self.n_rows + 7) // 8
        if need > len(self._bits):
            bits = np.zeros(max(need, 2 * len(self._bits)), dtype=np.uint8)
            bits[: len(self._bits)] = self._bits
            self._bits = bits

    def _mark(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        np.bitwise_or.at(self._bits, rows >> 3, np.left_shift(1, rows & 7).astype(np.uint8))

    def __len__(self) -> int:
        """The number of duplicate rows."""
        return int(np.bitwise_count(self._bits).sum(dtype=np.int64))

    def mask(self, offset: int, n: int) -> np.ndarray:
        """True for the duplicate rows among rows ``offset`` .. ``offset + n - 1``."""
        if offset < 0 or n < 0 or offset + n > self.n_rows:
            raise ValueError(f"rows {offset}..{offset + n - 1} are outside the {self.n_rows} rows checked")
        first = offset // 8
        bits = np.unpackbits(self._bits[first : (offset + n + 7) // 8], bitorder="little")
        return bits[offset - 8 * first :][:n].astype(bool)


def find_duplicates(chunks: Iterable[pa.Array], directory: Path, total_rows: int | None = None, bucket_rows: int = BUCKET_ROWS) -> DuplicateRows:
    """The duplicate rows of a batch whose ids come as ``chunks`` (large-string arrays, in row order),
    with bucket files in ``directory`` (removed before returning). ``total_rows``, when known, sets
    the number of buckets (``total_rows / bucket_rows``, a power of two, at most ``MAX_BUCKETS``);
    unknown (a CSV file), ``MAX_BUCKETS``. Same rule as :class:`IdLedger`: the first row of an id
    counts, empty ids are never duplicates.
    """
    buckets = MAX_BUCKETS if total_rows is None else min(MAX_BUCKETS, max(1, -(-int(total_rows) // bucket_rows)))
    bits = (buckets - 1).bit_length()
    buckets = 1 << bits  # bucket = the hash's top ``bits`` bits
    directory = Path(directory)
    found = DuplicateRows()
    writers: dict[int, tuple[pa.NativeFile, pa.ipc.RecordBatchStreamWriter]] = {}
    try:
        for arr in chunks:  # pass one: repeats within the chunk, the rest to the bucket files
            offset = found.n_rows
            found._extend(len(arr))
            keep = np.flatnonzero(~empty_ids(arr))
            rows, h, ids, repeat = _in_hash_order(arr, hash_ids(arr)[keep], keep)
            found._mark(offset + rows[repeat])
            first = np.flatnonzero(~repeat)
            rows, h, ids = rows[first] + offset, h[first], ids.take(pa.array(first))
            bucket = h >> np.uint64(64 - bits) if bits else np.zeros(len(h), dtype=np.uint64)  # sorted, as h is
            bounds = np.searchsorted(bucket, np.arange(buckets + 1, dtype=np.uint64))
            for b in np.flatnonzero(np.diff(bounds)):
                lo, hi = int(bounds[b]), int(bounds[b + 1])
                if b not in writers:
                    sink = pa.OSFile(str(directory / f"ids-{b:03d}.arrows"), "wb")
                    writers[b] = (sink, pa.ipc.new_stream(sink, _BUCKET_SCHEMA))
                batch = pa.record_batch([pa.array(h[lo:hi]), pa.array(rows[lo:hi]), ids.slice(lo, hi - lo)], schema=_BUCKET_SCHEMA)
                writers[b][1].write_batch(batch)
        for b in sorted(writers):  # pass two: one bucket at a time
            sink, writer = writers.pop(b)
            writer.close()
            sink.close()
            path = directory / f"ids-{b:03d}.arrows"
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_stream(source).read_all()
                h = np.concatenate([c.to_numpy() for c in table["hash"].chunks])
                row = np.concatenate([c.to_numpy() for c in table["row"].chunks])
                local, _, _, repeat = _in_hash_order(table["id"].combine_chunks(), h, np.arange(len(h)))
                found._mark(row[local[repeat]])
                del table
            path.unlink()
    finally:
        for sink, writer in writers.values():
            writer.close()
            sink.close()
        for path in directory.glob("ids-*.arrows"):
            path.unlink(missing_ok=True)
    return found
