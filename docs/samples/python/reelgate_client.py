"""reelgate's REST API from Python (httpx): estimate, generate, poll, download, and webhook verification.

    REELGATE_API_KEY=rg_... python reelgate_client.py estimate | generate | poll ID | download ID OUT
    WEBHOOK_SECRET=whsec_... WEBHOOK_ID=... WEBHOOK_TIMESTAMP=... WEBHOOK_SIGNATURE=... \\
        python reelgate_client.py verify-webhook BODY_FILE
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

import httpx

URL = os.environ.get("REELGATE_URL", "http://127.0.0.1:8000")
MODEL = os.environ.get("REELGATE_MODEL", "sandbox-t2v")
ORDER = {"model": MODEL, "duration": 2, "resolution": "480p"}
DONE = {"succeeded", "failed", "canceled", "expired"}


def client() -> httpx.Client:
    return httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {os.environ['REELGATE_API_KEY']}"})


def estimate() -> dict:
    """The price of an order, without starting it."""
    with client() as api:
        response = api.post("/api/v1/estimate", json=ORDER)
        response.raise_for_status()
        return response.json()


def generate(prompt: str = "a paper boat drifting on a pond") -> str:
    """Start a generation; the Idempotency-Key makes a retried request start only one job."""
    with client() as api:
        response = api.post(
            "/api/v1/generations", json={**ORDER, "prompt": prompt}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        response.raise_for_status()
        return response.json()["id"]


def poll(generation_id: str, timeout: float = 600) -> dict:
    """Wait for a generation to end (webhooks tell you sooner; see verify_webhook)."""
    deadline = time.monotonic() + timeout
    with client() as api:
        while True:
            generation = api.get(f"/api/v1/generations/{generation_id}").raise_for_status().json()
            if generation["status"] in DONE or time.monotonic() > deadline:
                return generation
            time.sleep(1)


def download(generation_id: str, path: str) -> int:
    """Stream the finished video to a file; returns its size."""
    with client() as api, api.stream("GET", f"/api/v1/generations/{generation_id}/content") as response:
        response.raise_for_status()
        with open(path, "wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    return os.path.getsize(path)


def verify_webhook(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> dict:
    """The event of a genuine, recent delivery (Standard Webhooks); ValueError otherwise."""
    timestamp = int(headers["webhook-timestamp"])
    if abs(time.time() - timestamp) > tolerance:
        raise ValueError("stale timestamp")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in headers["webhook-signature"].split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return json.loads(body)
    raise ValueError("signature mismatch")


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "estimate":
        print(json.dumps(estimate()))
    elif command == "generate":
        print(generate())
    elif command == "poll":
        print(poll(args[0])["status"])
    elif command == "download":
        print(f"saved {download(args[0], args[1])} bytes to {args[1]}")
    elif command == "verify-webhook":
        headers = {
            "webhook-id": os.environ["WEBHOOK_ID"],
            "webhook-timestamp": os.environ["WEBHOOK_TIMESTAMP"],
            "webhook-signature": os.environ["WEBHOOK_SIGNATURE"],
        }
        with open(args[0], "rb") as handle:
            body = handle.read()
        try:
            event = verify_webhook(os.environ["WEBHOOK_SECRET"], headers, body)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"genuine: {event['type']} {event['data']['id']}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
