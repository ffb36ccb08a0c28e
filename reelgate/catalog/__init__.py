"""Catalog files: the built-in default and operator-provided YAML, parsed into the domain's Catalog."""

from reelgate.catalog.loader import load_catalog, load_default_catalog

__all__ = ["load_catalog", "load_default_catalog"]
