"""What the webhook tests here share: an app that takes Replicate's signed webhooks (with no worker, so a test
reads the state the webhooks left), jobs as a submit leaves them at Replicate, and Replicate's signed deliveries
posted to each job's own address."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import standardwebhooks

from reelgate.db.queries import generations
from reelgate.db.queries.ledger import hold_credits
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.services import projects
from reelgate.services.webhook_links import webhook_url
from tests.conftest import Running, make_settings, start_app
from tests.helpers import generation_record

SECRET = "whsec_" + base64.b64encode(b"reelgate-test-webhook-secret-0123").decode()
PRICE = 5
OUTPUT = "http://127.0.0.1:9/files/out.mp4"


async def replicate_app(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path / "data",
        database_url,
        embedded_worker=False,  # no download step: the test reads the state the webhooks left
        replicate_api_token="test-token",
        replicate_webhook_secret=SECRET,
    )
    async for value in start_app(settings):
        yield value


async def jobs_at_replicate(running: Running, user_id: str, job_ids: list[str | None]) -> list[Generation]:
    """One job per provider job id (None: none yet), as a submit leaves them at Replicate: processing, their
    credits held."""
    ctx = running.ctx
    spec = next(spec for spec in map(ctx.catalog.get, ctx.catalog.ids) if spec.provider == "replicate")
    project_id = await projects.default_project_id(ctx, user_id)
    jobs = [
        generation_record(
            id=f"gen_{secrets.token_hex(8)}",
            user_id=user_id,
            project_id=project_id,
            model=spec.id,
            provider="replicate",
            provider_model=spec.provider_model,
            kind=spec.kind,
            status="processing",
            provider_job_id=job_id,
            quote_total=PRICE,
            credits_held=PRICE,
            webhook_token=None,
        )
        for job_id in job_ids
    ]

    def record(tx: Tx) -> None:
        for job in jobs:
            hold_credits(tx, user_id, PRICE, generation_id=job.id)
            generations.insert_generation(tx, job)

    await ctx.db.write(record)
    return jobs


def delivery(
    running: Running, job: Generation, status: str, msg_id: str, *, job_id: str | None = None
) -> tuple[str, str, dict[str, str]]:
    """Replicate's signed delivery of `status` for the job (`job_id`: the prediction it names, by default the
    job's own): the path of the job's webhook address, the body and the headers."""
    body = json.dumps(
        {
            "id": job_id or job.provider_job_id,
            "status": status,
            "output": OUTPUT if status == "succeeded" else None,
            "error": "the model crashed" if status == "failed" else None,
            "logs": "50%" if status == "processing" else "",
            "input": {},
            "created_at": datetime.now(UTC).isoformat(),
        }
    )
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(SECRET).sign(msg_id, now, body),
    }
    address = urlsplit(webhook_url(running.ctx, job))
    return f"{address.path}?{address.query}", body, headers
