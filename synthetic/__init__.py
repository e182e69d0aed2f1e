"""The synthetic multi-source data hub for sci-tech SMEs, with a known ground truth.

``generate(GeneratorParams(firms=..., seed=...), out)`` writes the 13 source tables declared in
``features.tables`` (``<table>.parquet`` each), ``manifest.json`` and ``truth/truth.parquet``
(``TRUTH_FILE``: the latent state and true PD of every application; only evaluation code reads it).
data/synthetic/README.md documents the model and the files.

The package sits beside ``features`` and imports nothing else of the project:

- ``params``       what to generate (:class:`GeneratorParams`) and its validation
- ``world``        the latent model: hidden firm state, defaults, operating panel, coverage, bills
- ``identifiers``  registration, person, certificate, patent, bid and application ids; pseudonyms
- ``sources``      one chunk of firms -> the column arrays of every table, one step per source
- ``writer``       the run: calibration, random streams, chunks -> Parquet, manifest
- ``compare``      comparing two datasets by value; emulating another CPU
"""

from synthetic.compare import Difference, compare_datasets, differences, other_cpu
from synthetic.params import CHUNK_SIZE, GeneratorParams
from synthetic.writer import FLOAT_PLACES, GENERATOR_VERSION, TRUTH_FILE, calibrate, generate

__all__ = [
    "CHUNK_SIZE",
    "FLOAT_PLACES",
    "GENERATOR_VERSION",
    "TRUTH_FILE",
    "Difference",
    "GeneratorParams",
    "calibrate",
    "compare_datasets",
    "differences",
    "generate",
    "other_cpu",
]
