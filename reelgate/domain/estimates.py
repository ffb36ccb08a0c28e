"""How long a job is expected to take, for the answer to a create request."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from reelgate.domain.catalog import ModelSpec


def expected_seconds(spec: ModelSpec, recent: Sequence[float]) -> int | None:
    """The median of this model's recent completion times (seconds from submit to a stored result) when
    there are any, else the catalog's `estimated_seconds` (None when the catalog gives none)."""
    if recent:
        return max(1, round(statistics.median(recent)))
    return spec.estimated_seconds
