"""The synthetic data hub generator (see data/synthetic/README.md); imports ``features`` only."""

from synthetic.sources import (
    CHUNK_SIZE,
    FLOAT_PLACES,
    GENERATOR_VERSION,
    GeneratorParams,
    calibrate,
    compare_datasets,
    differences,
    generate,
    other_cpu,
)

__all__ = ["CHUNK_SIZE", "FLOAT_PLACES", "GENERATOR_VERSION", "GeneratorParams", "calibrate", "compare_datasets", "differences", "generate", "other_cpu"]
