"""Observability and safety: /metrics, request ids, JSON logs with ids and no secrets, `reelgate doctor`,
and the refusal to start with the default secret key outside embedded mode."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from reelgate.logging_setup import JsonFormatter, Redactor, generation_context, request_id_var, secrets_of
from reelgate.settings import Settings
from tests.conftest import METRICS_HEADERS, Account, Running
from tests.helpers import wait_for_terminal

REELGATE = [sys.executable, "-m", "reelgate"]


async def test_metrics_count_requests_generations_and_provider_calls(running: Running, alice: Account) -> None:
    created = await running.client.post(
        "/api/v1/generations",
        headers={**alice.headers, "X-Request-ID": "req-from-client-1"},
        json={"model": "sandbox-t2v", "prompt": "a red kite over a beach", "duration": 1, "resolution": "480p"},
    )
    assert created.status_code == 202 and created.headers["x-request-id"] == "req-from-client-1"
    assert len((await running.client.get("/healthz")).headers["x-request-id"]) == 32
    await wait_for_terminal(running.client, created.json()["id"], alice.headers)

    text = (await running.client.get("/metrics", headers=METRICS_HEADERS)).text
    assert 'reelgate_http_requests_total{method="POST",route="/api/v1/generations",status="202"}' in text
    assert 'reelgate_generations{model="sandbox-t2v",status="succeeded"} 1.0' in text
    assert "reelgate_credits_held 0.0" in text
    assert 'reelgate_provider_call_duration_seconds_count{operation="submit",provider="sandbox"}' in text
    ready = (await running.client.get("/readyz")).json()
    assert ready["checks"]["queue"] == {"ok": True, "mode": "embedded"}


def test_json_logs_carry_ids_and_never_secrets() -> None:
    settings = Settings(
        secret_key="s3cret-signing-key-value",
        runpod_api_key="rpa_LIVEKEY1234567890",
        database_url="postgresql://app:db-password-123@db/reelgate",
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor(secrets_of(settings))))
    logger = logging.getLogger("reelgate.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("req-42")
    try:
        with generation_context("gen_abc"):
            logger.warning(
                "calling with rpa_LIVEKEY1234567890 and Bearer rg_0123456789abcdef, "
                "db-password-123, s3cret-signing-key-value, hook ?g=gen_abc&t=tok-0123456789"
            )
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["generation_id"] == "gen_abc" and line["request_id"] == "req-42" and line["level"] == "warning"
    for secret in ("rpa_LIVEKEY", "rg_0123", "db-password", "s3cret-signing", "tok-0123"):
        assert secret not in line["message"], line["message"]


def _doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REELGATE, "doctor"], env=env, capture_output=True, text=True, timeout=120)


def test_doctor_reports_what_is_configured_and_what_is_unreachable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(REELGATE_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    healthy = _doctor(env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "embedded" in healthy.stdout and "database" in healthy.stdout and "provider sandbox" in healthy.stdout

    env.update(
        REELGATE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere",
        REELGATE_SECRET_KEY="doctor-test-secret-key",
    )
    broken = _doctor(env)
    assert broken.returncode == 1
    assert "production" in broken.stdout and "FAILED" in broken.stdout and "queue" in broken.stdout
    assert "doctor-test-secret-key" not in broken.stdout
