"""Reads a catalog YAML file and hands it to the pure parser, so errors name the file."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import yaml

from reelgate.domain.catalog import Catalog, CatalogError, parse_catalog

DEFAULT_CATALOG = "default.yaml"

log = logging.getLogger("reelgate.catalog")


def _parse_text(text: str, source: str) -> Catalog:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: the catalog must be a mapping with credit_unit, rounding and models")
    catalog = parse_catalog(data, source=source)
    # A fallback that serves only part of its model's requests is allowed; the operator should know which.
    for note in catalog.notes:
        log.info("%s", note)
    return catalog


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file; raises CatalogError naming the file, model and field."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{source}: cannot read the catalog: {exc.strerror or exc}") from None
    return _parse_text(text, source)


def load_default_catalog() -> Catalog:
    """The catalog shipped in the package, used when REELGATE_CATALOG is unset."""
    text = resources.files("reelgate.catalog").joinpath(DEFAULT_CATALOG).read_text(encoding="utf-8")
    return _parse_text(text, f"reelgate/catalog/{DEFAULT_CATALOG}")
