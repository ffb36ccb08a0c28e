"""Text generations end to end: the HTTP API, the worker and the Poe simulator on loopback, the ledger checked.

Per-request text is held and captured like any model; per-token text holds the most it can cost and captures
what Poe's `usage` comes to, releasing the rest in the same transaction; a refusal by Poe is refunded in full."""

from __future__ import annotations

from typing import Any

from reelgate.db.queries.ledger import entries_of, remainder_reference
from reelgate.domain.ledger import EntryKind
from reelgate.services.text_jobs import MAX_TEXT_BYTES
from tests.conftest import make_account
from tests.e2e_providers_wave2.conftest import Start, Wave2Harness
from tests.helpers import assert_ledger_ok, credits, generation_row

PROMPT = "a lighthouse at dusk, waves rolling in"
REPLY = "Cinematic dolly shot: {prompt}, golden hour light, shallow depth of field."


async def _create(h: Wave2Harness, **body: Any) -> dict[str, Any]:
    response = await h.client.post("/api/v1/generations", headers=h.headers, json={"prompt": PROMPT, **body})
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


async def _estimate(h: Wave2Harness, model: str) -> dict[str, Any]:
    response = await h.client.post("/api/v1/estimate", headers=h.headers, json={"model": model, "prompt": PROMPT})
    assert response.status_code == 200, response.text
    estimate: dict[str, Any] = response.json()
    return estimate


async def _entries(h: Wave2Harness) -> list[tuple[str, int, str]]:
    rows = await h.ctx.db.read(lambda tx: entries_of(tx, h.account.id, limit=50))
    return [(row.kind, row.amount, row.reference) for row in reversed(rows)]


async def test_per_request_text_is_held_captured_and_served_as_text(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    created = await _create(h, model="caption-writer")
    assert created["kind"] == "text" and created["credits_held"] == 1
    final = await h.final(created["id"])
    assert final["status"] == "succeeded", final
    assert (final["credits_charged"], final["credits_refunded"]) == (1, 0)
    assert final["duration"] is None and final["resolution"] is None and final["thumbnail_url"] is None
    output = final["output"]
    assert output["content_type"] == "text/plain; charset=utf-8"
    assert output["usage"]["output_tokens"] == len(REPLY.format(prompt=PROMPT).split())
    assert output["characters"] == len(REPLY.format(prompt=PROMPT))
    assert output["finish_reason"] == "stop"
    # The bot got the catalog's instruction for its purpose and the output limit.
    sent = h.sim.chats[-1]  # type: ignore[attr-defined]
    assert sent["model"] == "GPT-4o-Mini" and sent["max_tokens"] == 200
    assert sent["messages"][0]["role"] == "system" and "caption" in sent["messages"][0]["content"]
    assert sent["messages"][1] == {"role": "user", "content": PROMPT}

    content = await h.client.get(final["video_url"], headers=h.headers)
    assert content.status_code == 200
    assert content.headers["content-type"] == "text/plain; charset=utf-8"
    assert content.text == REPLY.format(prompt=PROMPT)
    download = await h.client.get(final["video_url"], headers=h.headers, params={"download": "true"})
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment") and f'filename="{created["id"]}.txt"' in disposition
    assert (await credits(h.client, h.headers))["available"] == 5000 - 1
    await assert_ledger_ok(h.ctx)


async def test_per_token_text_captures_its_usage_and_releases_the_rest_of_the_hold(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    h.sim.text_usage = {"prompt_tokens": 300, "completion_tokens": 800}  # type: ignore[attr-defined]
    quoted = await _estimate(h, "script-writer")
    assert set(quoted["breakdown"]) == {"input", "output"}
    created = await _create(h, model="script-writer")
    held = created["credits_held"]
    # The most it can cost: 2,000 output tokens at 4.5 credits per 1,000 are 9 credits, plus the input's bound.
    assert held == quoted["total"] == 10
    assert (await credits(h.client, h.headers))["held"] == held
    final = await h.final(created["id"])
    assert final["status"] == "succeeded", final
    # 300 × 0.9 / 1000 + 800 × 4.5 / 1000 = 0.27 + 3.6 = 3.87 → 4 credits; the other 6 go back.
    assert (final["credits_charged"], final["credits_refunded"], final["credits_held"]) == (4, 6, 0)
    assert final["output"]["usage"] == {"input_tokens": 300, "output_tokens": 800}
    balance = await credits(h.client, h.headers)
    assert (balance["available"], balance["held"]) == (5000 - 4, 0)
    gid = created["id"]
    assert await _entries(h) == [
        (EntryKind.GRANT.value, 5000, (await _entries(h))[0][2]),
        (EntryKind.HOLD.value, 10, gid),
        (EntryKind.CAPTURE.value, 4, gid),
        (EntryKind.RELEASE.value, 6, remainder_reference(gid)),
    ]
    # What Poe billed is recorded with the job: 300 × US$0.003 + 800 × US$0.015 per 1,000 tokens.
    stored = await generation_row(h.ctx, gid)
    assert stored.provider_cost_micros == 12_900
    await assert_ledger_ok(h.ctx)


async def test_usage_above_the_hold_is_charged_at_the_hold(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    h.sim.text_usage = {"prompt_tokens": 100_000, "completion_tokens": 100_000}  # type: ignore[attr-defined]
    created = await _create(h, model="prompt-writer")
    final = await h.final(created["id"])
    assert final["status"] == "succeeded", final
    assert (final["credits_charged"], final["credits_refunded"]) == (created["credits_held"], 0)
    await assert_ledger_ok(h.ctx)


async def test_a_refusal_by_poe_is_refunded_in_full(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    h.sim.text_error = (400, "invalid_request_error", "Bot does not accept this request")  # type: ignore[attr-defined]
    created = await _create(h, model="script-writer")
    final = await h.final(created["id"])
    assert final["status"] == "failed", final
    assert (final["credits_charged"], final["credits_refunded"]) == (0, created["credits_held"])
    assert "Bot does not accept this request" in final["error"]["message"]
    assert final["video_url"] is None and final["output"] is None
    balance = await credits(h.client, h.headers)
    assert (balance["available"], balance["held"]) == (5000, 0)
    content = await h.client.get(f"/api/v1/generations/{created['id']}/content", headers=h.headers)
    assert content.status_code == 409  # never a partial or missing text
    await assert_ledger_ok(h.ctx)


async def test_another_users_text_is_not_found(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    created = await _create(h, model="caption-writer")
    await h.final(created["id"])
    other = await make_account(h.ctx, credits=10)
    for path in ("", "/content", "/content?download=true"):
        response = await h.client.get(f"/api/v1/generations/{created['id']}{path}", headers=other.headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


async def test_video_settings_on_a_text_model_are_refused_before_any_hold(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    for field, value in (("duration", 5), ("resolution", "720p"), ("aspect_ratio", "16:9"), ("audio", True)):
        response = await h.client.post(
            "/api/v1/generations",
            headers=h.headers,
            json={"model": "prompt-writer", "prompt": PROMPT, field: value},
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error" and error["details"]["field"] == field, error
    assert (await credits(h.client, h.headers))["held"] == 0
    assert h.sim.chats == []  # type: ignore[attr-defined]


async def test_a_failed_text_generation_can_be_retried(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    h.sim.text_error = (400, "invalid_request_error", "Bot is unavailable")  # type: ignore[attr-defined]
    created = await _create(h, model="caption-writer")
    assert (await h.final(created["id"]))["status"] == "failed"
    h.sim.text_error = None  # type: ignore[attr-defined]
    response = await h.client.post(f"/api/v1/generations/{created['id']}/retry", headers=h.headers)
    assert response.status_code == 202, response.text
    again = await h.final(response.json()["id"])
    assert again["status"] == "succeeded" and again["retry_of"] == created["id"]


async def test_a_text_generation_is_not_shared(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    created = await _create(h, model="caption-writer")
    await h.final(created["id"])
    response = await h.client.post(f"/api/v1/generations/{created['id']}/shares", headers=h.headers, json={})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["details"] == {"kind": "text"}


async def test_a_text_over_the_cap_fails_whole_and_is_refunded(wave2: Start) -> None:
    h = await wave2("poe", polling=True)
    h.sim.text_reply = "word " * (MAX_TEXT_BYTES // 5 + 1)  # type: ignore[attr-defined]
    created = await _create(h, model="caption-writer")
    final = await h.final(created["id"])
    assert final["status"] == "failed" and final["error"]["code"] == "output_too_large", final
    assert (final["credits_charged"], final["credits_refunded"]) == (0, 1)
    content = await h.client.get(f"/api/v1/generations/{created['id']}/content", headers=h.headers)
    assert content.status_code == 409  # no part of it is served
    await assert_ledger_ok(h.ctx)
