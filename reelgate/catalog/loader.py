"""Reads a catalog YAML file and hands it to the pure parser, so errors name the file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from reelgate.domain.catalog import Catalog, CatalogError, parse_catalog

DEFAULT_CATALOG = "default.yaml"

log = logging.getLogger("reelgate.catalog")


def _load_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: the catalog must be a mapping with credit_unit, rounding and models")
    return data


def _parsed(data: dict[str, Any], source: str) -> Catalog:
    catalog = parse_catalog(data, source=source)
    # A fallback that serves only part of its model's requests is allowed; the operator should know which.
    for note in catalog.notes:
        log.info("%s", note)
    return catalog


def _parse_text(text: str, source: str) -> Catalog:
    return _parsed(_load_yaml(text, source), source)


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file; raises CatalogError naming the file, model and field."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{source}: cannot read the catalog: {exc.strerror or exc}") from None
    return _parse_text(text, source)


def load_default_catalog(shipped: Sequence[tuple[str, str]] = ()) -> Catalog:
    """The catalog in the package, used when REELGATE_CATALOG is unset, plus the models that provider plugins
    ship: `shipped` is (source, YAML text) pairs, each a mapping with a `models:` list priced in the default
    catalog's credit unit. A shipped model whose id the catalog already has is left out."""
    source = f"reelgate/catalog/{DEFAULT_CATALOG}"
    data = _load_yaml(resources.files("reelgate.catalog").joinpath(DEFAULT_CATALOG).read_text(encoding="utf-8"), source)
    models = list(data.get("models") or [])
    for origin, text in shipped:
        extra = _load_yaml(text, origin).get("models")
        if not isinstance(extra, list):
            raise CatalogError(f"{origin}: a provider's catalog must be a mapping with a models list")
        known = {m.get("id") for m in models if isinstance(m, dict)}
        models += [m for m in extra if not (isinstance(m, dict) and m.get("id") in known)]
    if shipped:
        source += " + " + ", ".join(origin for origin, _ in shipped)
    return _parsed({**data, "models": models}, source)
