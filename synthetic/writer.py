"""Writing a generated data hub: the run, the files and the manifest.

``generate(params, out)`` calibrates the PD intercept, simulates the firms chunk by chunk
(:func:`synthetic.sources.simulate_chunk`) and writes each chunk, so memory stays flat in the number
of firms. Two layouts (``layout``): ``"files"`` appends every chunk to one ``<table>.parquet`` per
table as row groups; ``"parts"`` writes each chunk as its own part file, ``<table>/part-NNNNN.parquet``
(part k holds chunk k's firms and nothing else, so part k of every table covers the same firms), and
records that in the manifest (``"partitioning": {"by": "firm_id", "parts": n, "firms_per_part": ...}``)
so a feature build processes the parts one at a time without re-partitioning
(``features.partitions``). The default, ``"auto"``, writes parts when there is more than one chunk
(more than ``CHUNK_SIZE`` firms) and single files otherwise. Both layouts hold the same rows in the
same order; ``truth/truth.parquet`` is one file in both. The random streams are derived from the seed:
``spawn_key=(0,)`` the calibration sample, ``(1, chunk)`` each chunk of ``CHUNK_SIZE`` firms,
``(2,)`` the permutation behind registration ids; so a run with more firms starts with the same
firms as a run with fewer (whole chunks). The same seed and parameters give byte-identical files on
one machine and the same values on any machine (floats are rounded to ``FLOAT_PLACES``;
:func:`synthetic.compare_datasets` checks that).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features import privacy
from features.errors import UserError
from features.files import AtomicOutput, check_outputs
from features.tables import SCHEMAS, TABLE_NAMES, hub_paths
from synthetic import world
from synthetic.params import CHUNK_SIZE, GeneratorParams
from synthetic.sources import ApprovalCounts, simulate_chunk
from synthetic.world import Calendar

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.3.0"
CALIBRATION_FIRMS = 30_000
ROW_GROUP_SIZE = 1_000_000
TRUTH_FILE = "truth/truth.parquet"
"""Where a dataset keeps the latent state and true PD of every application (only evaluation code reads it)."""

# Decimal places of every float the generator writes. numpy's exp, log and power give different last
# bits on different CPUs (they are vectorised per instruction set), so an unrounded float differs
# between machines by about 1e-16 relative. Rounding to these places (np.round: multiply, round half
# to even, divide -- exact IEEE operations, the same everywhere) hides such a difference unless the
# value lies within it of a rounding boundary. data/synthetic/README.md ("Reproducibility") says how rare that is.
_FLOAT_PLACES_OTHER_THAN_MONEY = {("electricity", "kwh"): 1, ("invoices", "top_customer_share"): 4}
TRUTH_FLOAT_PLACES = 9  # true_pd, logit and the latent state
TRUTH_STAFF_SCALE_PLACES = 6  # staff_scale is a headcount (10 to 1,000s): 6 places keep 8 or more digits
MONEY_PLACES = 2  # CNY 10k (万元) to the 100 CNY

TRUTH_COLUMNS = {
    "application_id": pa.string(),
    "firm_id": pa.string(),
    "application_date": pa.timestamp("us"),
    "true_pd": pa.float64(),
    "logit": pa.float64(),
    "default_12m": pa.int64(),
    "default_date": pa.timestamp("us"),
    "labelled": pa.bool_(),
    "window_closed": pa.bool_(),
    "approved": pa.bool_(),
    "tech_strength": pa.float64(),
    "financial_strength": pa.float64(),
    "maturity": pa.float64(),
    "age_years": pa.float64(),
    "operating_health": pa.float64(),
    "health_trend": pa.float64(),
    "health_level_longrun": pa.float64(),
    "distress_episode": pa.bool_(),
    "industry": pa.string(),
    "region": pa.string(),
    "industry_effect": pa.float64(),
    "region_effect": pa.float64(),
    "has_own_meter": pa.bool_(),
    "staff_scale": pa.float64(),
}

FLOAT_PLACES: dict[str, dict[str, int]] = {
    **{
        t: {c.name: _FLOAT_PLACES_OTHER_THAN_MONEY.get((t, c.name), MONEY_PLACES) for c in SCHEMAS[t].columns if c.dtype == "float"}
        for t in TABLE_NAMES
    },
    "truth": {
        c: (TRUTH_STAFF_SCALE_PLACES if c == "staff_scale" else TRUTH_FLOAT_PLACES)
        for c, t in TRUTH_COLUMNS.items()
        if t == pa.float64()
    },
}
"""Decimal places of each float column, by table ("truth" for ``TRUTH_FILE``); the writer rounds to them."""


_ARROW = {"string": pa.string(), "category": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.timestamp("us"), "bool": pa.bool_()}


def arrow_schema(table: str) -> pa.Schema:
    """Arrow schema of a source table, from its declaration in ``features.tables``."""
    s = SCHEMAS[table]
    return pa.schema([pa.field(c.name, _ARROW[c.dtype], nullable=True) for c in s.columns])


TRUTH_SCHEMA = pa.schema([pa.field(k, v) for k, v in TRUTH_COLUMNS.items()])


def _to_arrow(cols: dict, schema: pa.Schema, places: dict[str, int]) -> pa.Table:
    """Columns -> Arrow table; every float column is rounded to its ``places`` (a float column without
    declared places is a programming error)."""
    arrays = []
    for f in schema:
        v = cols[f.name]
        if f.type == pa.float64():
            v = np.round(np.asarray(v, dtype=np.float64), places[f.name])
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays.append(v if v.type == f.type else v.cast(f.type))
        else:
            arrays.append(pa.array(v, type=f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


LAYOUTS = ("auto", "files", "parts")


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A Parquet writer with the settings of ``features.tables.write_table``."""
    return pq.ParquetWriter(str(path), schema, compression="zstd", write_statistics=True)


class _Writers:
    """The dataset's files. ``parts=False``: one ParquetWriter per table, each chunk appended as
    row groups; ``parts=True``: one part file per table and chunk. The truth is one file either way."""

    def __init__(self, directory: Path, parts: bool):
        self.directory = directory
        self.parts = parts
        (directory / TRUTH_FILE).parent.mkdir(parents=True, exist_ok=True)
        self.schemas = {t: arrow_schema(t) for t in TABLE_NAMES}
        self.schemas["truth"] = TRUTH_SCHEMA
        self.paths: dict[str, list[Path]] = {"truth": [directory / TRUTH_FILE]}
        self.writers = {"truth": _writer(directory / TRUTH_FILE, TRUTH_SCHEMA)}
        for t in TABLE_NAMES:
            if parts:
                (directory / t).mkdir()
                self.paths[t] = []
            else:
                self.paths[t] = [directory / f"{t}.parquet"]
                self.writers[t] = _writer(self.paths[t][0], self.schemas[t])
        self.rows = {t: 0 for t in self.paths}
        self.file_rows: dict[Path, int] = {}

    def write(self, name: str, cols: dict, chunk: int) -> None:
        table = _to_arrow(cols, self.schemas[name], FLOAT_PLACES[name])
        if self.parts and name != "truth":  # every table gets part k, even with no rows, so parts align
            path = self.directory / name / f"part-{chunk:05d}.parquet"
            with _writer(path, self.schemas[name]) as w:
                if table.num_rows:
                    w.write_table(table, row_group_size=ROW_GROUP_SIZE)
            self.paths[name].append(path)
        elif table.num_rows:
            self.writers[name].write_table(table, row_group_size=ROW_GROUP_SIZE)
        self.rows[name] += table.num_rows
        self.file_rows[self.paths[name][-1]] = self.file_rows.get(self.paths[name][-1], 0) + table.num_rows

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: the feature cache riskmodel keeps inside a hub (``riskmodel.dataset.CACHE_DIR``): derived, so a new dataset may drop it
HUB_CACHE = "cache"


def _check_out(out: Path) -> None:
    """What ``--out`` may be: a new folder, an empty one, or a dataset generated before (it has a
    manifest.json) holding nothing but the dataset and its feature cache; never a file or any other
    folder, which a run would replace."""
    check_outputs({"--out": out}, directories={"--out"})
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise UserError(
            f"--out {out} is a non-empty directory that is not a generated dataset (no manifest.json); "
            "give a new or empty directory"
        )
    if out.is_dir():
        ours = {p.name for p in hub_paths(out) if p.parent == out} | {HUB_CACHE}
        extra = sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith("."))
        if extra:
            shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise UserError(
                f"--out {out} is a generated dataset that also holds {len(extra)} file(s) generate did not write ({shown}); "
                "a new dataset replaces the whole folder: move them out or choose another --out"
            )


def calibrate(params: GeneratorParams) -> float:
    """Intercept of the PD model so that the applications whose 12-month window closed default at
    ``params.default_rate`` through the door (all of them, as if every one were granted; the approval
    policy decides only which outcomes the bank sees).

    Computed on a fixed calibration sample (its own random stream), so the PD model does not depend on
    the number of firms generated."""
    return _calibrate(int(params.seed), params.start, params.end, float(params.default_rate))


@functools.lru_cache(maxsize=16)
def _calibrate(seed: int, start: str, end: str, rate: float) -> float:
    cal = Calendar(np.datetime64(start, "M"), np.datetime64(end, "M"))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    L = world.draw_latent(rng, CALIBRATION_FIRMS, cal)
    return world.calibrate_intercept(L, cal, rate)


def generate(params: GeneratorParams, out: str | Path, key: str | bytes | None = None, layout: str = "auto") -> dict:
    """Write a synthetic dataset to ``out`` and return its manifest.

    ``layout``: ``"files"`` (one ``<table>.parquet`` per table), ``"parts"`` (``<table>/part-NNNNN.parquet``,
    one per chunk of ``CHUNK_SIZE`` firms) or ``"auto"`` (parts when there is more than one chunk);
    see the module doc. ``key`` is the pseudonymisation key for firm and person ids (default: ``RISKMODEL_ID_KEY`` or the
    demo key). An existing ``out`` is replaced only if it is a previous generated dataset (has a
    manifest.json) or empty; it is checked again just before the new dataset replaces it. The dataset
    is written into a temporary folder beside ``out`` and moved into place when it is complete
    (``features.files.AtomicOutput``), so a failed or interrupted run leaves no partial dataset."""
    out = Path(out)
    if layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    _check_out(out)
    k = privacy.id_key(key)
    n_chunks = -(-params.firms // CHUNK_SIZE)
    parts = layout == "parts" or (layout == "auto" and n_chunks > 1)
    with AtomicOutput(out, directory=True) as tmp:
        manifest = _write_dataset(params, tmp, k, parts)
        _check_out(out)  # nothing else has appeared at ``out`` while the dataset was being written
    return manifest


def _write_dataset(params: GeneratorParams, directory: Path, key: bytes, parts: bool) -> dict:
    """Simulate every chunk into the Parquet files under ``directory``, write manifest.json; return the manifest."""
    cal = params.calendar
    intercept = calibrate(params)
    log.info("calibrated intercept %.4f for default rate %.3f", intercept, params.default_rate)
    seq = np.random.SeedSequence(int(params.seed), spawn_key=(2,))
    ids_rng = np.random.default_rng(seq)
    perm = (int(ids_rng.integers(1_000_000, 9_000_000)) * 31 + 1, int(ids_rng.integers(0, 31**9)))
    writers = _Writers(directory, parts)
    n_chunks = -(-params.firms // CHUNK_SIZE)
    labelled = defaults = 0
    decisions = ApprovalCounts()
    try:
        for c in range(n_chunks):
            n = min(CHUNK_SIZE, params.firms - c * CHUNK_SIZE)
            rng = np.random.default_rng(np.random.SeedSequence(int(params.seed), spawn_key=(1, c)))
            tables, truth = simulate_chunk(rng, n, c * CHUNK_SIZE, cal, intercept, perm, key, policy=params.approval_policy)
            for name in TABLE_NAMES:
                writers.write(name, tables[name], c)
            writers.write("truth", truth, c)
            labelled += len(tables["outcomes"]["default_12m"])
            defaults += int(tables["outcomes"]["default_12m"].sum())
            decisions.add(truth)
            log.info("chunk %d/%d: %d firms written", c + 1, n_chunks, n)
            del tables, truth
    finally:
        writers.close()
    files = {}
    for name in (*TABLE_NAMES, "truth"):
        for path in writers.paths[name]:
            rel = path.relative_to(directory).as_posix()
            files[rel] = {"rows": writers.file_rows.get(path, 0), "bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {
        # the name the generator had when it lived in riskmodel: kept, since reports show it and
        # compare_datasets compares it, so renaming it would change every dataset's manifest
        "generator": "riskmodel.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": int(params.seed),
        "parameters": params.to_dict(),
        "snapshot_date": str(cal.snapshot),
        "id_key": "demo" if privacy.is_demo_key(key) else "custom",
        "pd_intercept": round(float(intercept), 6),
        "rows": {name: writers.rows[name] for name in TABLE_NAMES},
        "truth_rows": writers.rows["truth"],
        "labelled_applications": labelled,
        "default_rate_observed": round(defaults / labelled, 6) if labelled else None,
        "approval": decisions.summary(params.approval_policy),
        "files": files,
    }
    if parts:  # what features.partitions reads: part k of every table holds the same firms
        manifest["partitioning"] = {"by": "firm_id", "parts": n_chunks, "firms_per_part": CHUNK_SIZE}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
