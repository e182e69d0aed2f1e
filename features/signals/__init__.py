"""Signal modules, one per source family (``features.registry.SIGNAL_FAMILIES``). Each module registers
its signals with ``features.registry.signal`` when imported; :func:`load_all` imports them in catalog
order, then the data products (``features.products``), and returns the complete registry."""

from __future__ import annotations

import importlib

from features.registry import SIGNAL_FAMILIES, Signal, registry


def load_all() -> dict[str, Signal]:
    """Import every family module and the products (registration happens on import); return the
    registry: signals by family module, then products."""
    for family in SIGNAL_FAMILIES:
        importlib.import_module(f"features.signals.{family}")
    importlib.import_module("features.products")
    return registry()
