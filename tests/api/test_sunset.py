"""Models past their sunset date are listed with it but take no new jobs; before it, the date is shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from reelgate.settings import Settings
from tests.conftest import Account, Running
from tests.helpers import credits

ROOT = Path(__file__).resolve().parents[2]
# Two days either side of today, so the test does not depend on the time zone or the hour it runs.
PAST = (datetime.now(UTC) - timedelta(days=2)).date()
FUTURE = (datetime.now(UTC) + timedelta(days=2)).date()


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    data = yaml.safe_load((ROOT / "reelgate" / "catalog" / "default.yaml").read_text())
    for model in data["models"]:
        if model["id"] == "sandbox-t2v":
            model["lifecycle"] = {"status": "deprecated", "sunset": PAST.isoformat()}
        if model["id"] == "sandbox-i2v":
            model["lifecycle"] = {"status": "deprecated", "sunset": FUTURE.isoformat()}
    path = tmp_path / "sunset-catalog.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if not k.startswith("x-")}, sort_keys=False))
    return settings.model_copy(update={"catalog": path})


async def test_sunset_is_listed_and_refuses_new_jobs_after_it(running: Running, alice: Account) -> None:
    listed = await running.client.get("/api/v1/models", headers=alice.headers)
    models = {m["id"]: m for m in listed.json()["models"]}
    past, future = models["sandbox-t2v"], models["sandbox-i2v"]
    assert past["lifecycle"] == {"status": "deprecated", "sunset": PAST.isoformat()}
    assert past["available"] is False and "sunset" in past["unavailable_reason"]
    assert future["lifecycle"]["sunset"] == FUTURE.isoformat() and future["available"] is True

    before = await credits(running.client, alice.headers)
    response = await running.client.post(
        "/api/v1/generations", headers=alice.headers, json={"model": "sandbox-t2v", "prompt": "a red fox in snow"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "model_unavailable"
    assert await credits(running.client, alice.headers) == before
