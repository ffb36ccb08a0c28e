"""A provider marked degraded in one process (a worker) is seen by another (the API's /readyz), and
the all-clear travels the same way."""

from __future__ import annotations

from pathlib import Path

from reelgate.bootstrap import build_context, close_context
from reelgate.services import provider_marks
from tests.conftest import make_settings


async def test_marks_travel_between_processes(tmp_path: Path, database_url: str) -> None:
    worker = await build_context(make_settings(tmp_path / "w", database_url))
    api = await build_context(make_settings(tmp_path / "a", database_url))
    try:
        worker.degraded_providers["replicate"] = "out of provider credit"
        await provider_marks.sync(worker)
        assert await provider_marks.sync(api) == {"replicate": "out of provider credit"}
        assert api.degraded_providers == {"replicate": "out of provider credit"}
        assert api.degraded_providers.changed == {}  # adopted, not re-published as the API's own
        worker.degraded_providers.pop("replicate", None)
        await provider_marks.sync(worker)
        assert await provider_marks.sync(api) == {}
        assert "replicate" not in api.degraded_providers
    finally:
        await close_context(worker)
        await close_context(api)
