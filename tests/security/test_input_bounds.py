"""Every number bounded, every parser total: bad input is a 4xx in the route's own error shape, never a 500 (or
a 503 that blames the database), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from reelgate.services import accounts
from reelgate.settings import Settings
from tests.conftest import Account, Running, make_account, make_settings, start_app
from tests.helpers import wait_for_terminal

PROMPT = "a red fox running through fresh snow"


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Settings:
    # A small upload cap keeps the oversize-body tests quick; the rule does not depend on the figure.
    return make_settings(tmp_path / "data", database_url, max_upload_bytes=64 * 1024)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


@pytest.fixture
async def admin(running: Running) -> Account:
    user = await accounts.create_user(running.ctx, "root@example.com", "correct horse battery", is_admin=True)
    key = await accounts.create_api_key(running.ctx, user.id, "admin")
    return Account(id=user.id, email=user.email, key=key.secret)


def _reelgate_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _openai_error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


# --- credits ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [10**30, 2**63, 2**62, -(2**63), 10**12 + 1])
async def test_admin_credit_amounts_beyond_the_cap_are_a_422(
    running: Running, admin: Account, alice: Account, amount: int
) -> None:
    for kind in ("grant", "adjust"):
        response = await running.client.post(
            "/api/v1/admin/credits",
            headers=admin.headers,
            json={"user_id": alice.id, "amount": amount, "reason": "typo", "kind": kind},
        )
        error = _reelgate_error(response, 422, "validation_error")
        assert error["details"]["field"] == "amount"
    me = await running.client.get("/api/v1/me", headers=alice.headers)
    assert me.json()["credits"]["available"] == 100


async def test_balances_stay_integers_at_the_cap(running: Running, admin: Account, alice: Account) -> None:
    for _ in range(2):
        response = await running.client.post(
            "/api/v1/admin/credits",
            headers=admin.headers,
            json={"user_id": alice.id, "amount": 10**12, "reason": "big customer", "kind": "grant"},
        )
        assert response.status_code == 200, response.text
    me = await running.client.get("/api/v1/me", headers=alice.headers)
    assert me.status_code == 200, me.text
    available = me.json()["credits"]["available"]
    assert isinstance(available, int) and available == 2 * 10**12 + 100


# --- /v1/videos ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"seconds": "nan"},
        {"seconds": "inf"},
        {"seconds": "-inf"},
        {"seconds": "1e400"},
        {"seconds": 10**400},
        {"seconds": "4.5"},
        {"seconds": True},
        {"seconds": [4]},
        {"seconds": "-4"},
        {"negative_prompt": {"a": 1}},
        {"negative_prompt": 5},
        {"negative_prompt": ["blur"]},
        {"callback_url": 5},
        {"callback_url": {"url": "https://example.com"}},
        {"seed": "inf"},
        {"seed": 1e400},
        {"seed": 2**64},
        {"seed": -1},
        {"seed": 4.5},
        {"size": 1280},
        {"size": {"w": 1}},
        {"model": ["sandbox-t2v"]},
        {"input_reference": {"file_id": 7}},
        {"input_reference": {"image_url": 7}},
    ],
)
async def test_v1_videos_bad_values_are_a_400_in_openai_shape(
    running: Running, alice: Account, fields: dict[str, Any]
) -> None:
    body = {"prompt": PROMPT, "model": "sandbox-t2v", **fields}
    # Python's json writes NaN and Infinity literals as JavaScript would; a client may send them too.
    response = await running.client.post(
        "/v1/videos", headers={**alice.headers, "Content-Type": "application/json"}, content=json.dumps(body)
    )
    error = _openai_error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == next(iter(fields))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_v1_videos_json_number_literals_that_are_not_finite(
    running: Running, alice: Account, literal: str
) -> None:
    for field in ("seconds", "seed"):
        raw = f'{{"prompt": "{PROMPT}", "model": "sandbox-t2v", "{field}": {literal}}}'
        response = await running.client.post(
            "/v1/videos", headers={**alice.headers, "Content-Type": "application/json"}, content=raw
        )
        assert _openai_error(response)["param"] == field


@pytest.mark.parametrize("text", ["\ud800", "fox \udfff in snow", "fox\x00in snow"])
async def test_unstorable_text_is_refused_on_v1_videos(running: Running, alice: Account, text: str) -> None:
    for field in ("prompt", "negative_prompt"):
        body = {"prompt": PROMPT, "model": "sandbox-t2v", field: text}
        raw = json.dumps(body)  # ensure_ascii: the surrogate travels as a \\ud800 escape, as JSON allows
        response = await running.client.post(
            "/v1/videos", headers={**alice.headers, "Content-Type": "application/json"}, content=raw
        )
        assert _openai_error(response)["param"] == field
    form = await running.client.post(
        "/v1/videos", headers=alice.headers, data={"prompt": f"{PROMPT}\x00", "model": "sandbox-t2v"}
    )
    assert _openai_error(form)["param"] == "prompt"
    listed = await running.client.get("/v1/videos?after=vid%00x", headers=alice.headers)
    _openai_error(listed)


# --- NUL and surrogates on the reelgate API and the studio ------------------------------------------------------


@pytest.mark.parametrize("text", ["fox\x00in snow", "fox \ud800 in snow"])
async def test_unstorable_text_is_a_422_on_the_api(running: Running, alice: Account, text: str) -> None:
    client, headers = running.client, alice.headers
    attempts = [
        ("POST", "/api/v1/generations", {"model": "sandbox-t2v", "prompt": text}),
        ("POST", "/api/v1/generations", {"model": "sandbox-t2v", "prompt": PROMPT, "options": {"style": text}}),
        ("POST", "/api/v1/estimate", {"model": "sandbox-t2v", "negative_prompt": text}),
        ("POST", "/api/v1/projects", {"name": text}),
        ("POST", "/api/v1/api-keys", {"name": text}),
        ("POST", "/api/v1/webhook-endpoints", {"url": "https://example.com/hook", "description": text}),
    ]
    for method, path, body in attempts:
        response = await client.request(
            method, path, headers={**headers, "Content-Type": "application/json"}, content=json.dumps(body)
        )
        _reelgate_error(response, 422, "validation_error")
    projects = (await client.get("/api/v1/projects", headers=headers)).json()
    assert all("\x00" not in p["name"] for p in projects["data"])


async def test_nul_in_a_url_is_a_422(running: Running, alice: Account) -> None:
    for url in (
        "/api/v1/generations?model=sandbox%00",
        "/api/v1/generations/gen_%00abc",
        "/api/v1/credits/transactions?generation_id=%00",
        "/api/v1/projects/prj%00x",
        "/studio?project=%00",
    ):
        response = await running.client.get(url, headers=alice.headers)
        _reelgate_error(response, 422, "validation_error")


async def test_nul_in_studio_forms_is_a_422(running: Running) -> None:
    client = running.client
    page = await client.get("/signup")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    signup = await client.post(
        "/signup",
        data={
            "email": "nul@example.com",
            "password": "correct horse battery",
            "display_name": "Nul\x00Name",
            "csrf_token": token.group(1),
        },
    )
    _reelgate_error(signup, 422, "validation_error")
    user = await make_account(running.ctx, email="forms@example.com")
    login = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token
    await client.post(
        "/login", data={"email": user.email, "password": "correct horse battery", "csrf_token": token.group(1)}
    )
    studio = await client.get("/studio")
    csrf = re.search(r'data-csrf="([^"]+)"', studio.text)
    assert csrf
    for path, data in (
        ("/studio/projects", {"name": "trip\x00"}),
        ("/settings/profile", {"display_name": "me\x00"}),
        ("/studio/generate", {"model": "sandbox-t2v", "prompt": f"{PROMPT}\x00"}),
    ):
        response = await client.post(path, data={**data, "csrf_token": csrf.group(1)})
        _reelgate_error(response, 422, "validation_error")


# --- oversize bodies sent chunked --------------------------------------------------------------------------------


async def _chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


async def test_oversize_chunked_bodies_are_a_413_on_both_apis(running: Running, alice: Account) -> None:
    api = await running.client.post(
        "/api/v1/generations",
        headers={**alice.headers, "Content-Type": "application/json"},
        content=_chunks(2 * 1024 * 1024),
    )
    assert "content-length" not in api.request.headers  # sent chunked: the cap is met while reading
    error = _reelgate_error(api, 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 1024 * 1024
    openai = await running.client.post(
        "/v1/videos",
        headers={**alice.headers, "Content-Type": "application/json"},
        content=_chunks(2 * 1024 * 1024),
    )
    _openai_error(openai, 413)
    declared = await running.client.post(
        "/v1/videos", headers={**alice.headers, "Content-Type": "application/json"}, content=b"x" * (2 * 1024 * 1024)
    )
    assert declared.request.headers["content-length"] == str(2 * 1024 * 1024)  # refused before it is read
    _openai_error(declared, 413)
    multipart = await running.client.post(
        "/v1/videos",
        headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=xyz"},
        content=_file_part(2 * 1024 * 1024),
    )
    _openai_error(multipart, 413)


async def _file_part(total: int) -> AsyncIterator[bytes]:
    yield (
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="input_reference"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    async for chunk in _chunks(total):
        yield chunk


# --- Range -----------------------------------------------------------------------------------------------------


async def _finished_video(running: Running, alice: Account) -> str:
    created = await running.client.post(
        "/api/v1/generations", headers=alice.headers, json={"model": "sandbox-t2v", "prompt": PROMPT, "duration": 2}
    )
    assert created.status_code == 202, created.text
    done = await wait_for_terminal(running.client, created.json()["id"], alice.headers)
    assert done["status"] == "succeeded", done
    return str(done["id"])


async def test_ranges_follow_rfc_9110_in_both_shapes(running: Running, alice: Account) -> None:
    generation_id = await _finished_video(running, alice)
    client, headers = running.client, alice.headers
    urls = (f"/api/v1/generations/{generation_id}/content", f"/v1/videos/{generation_id}/content")
    whole = await client.get(urls[0], headers=headers)
    assert whole.status_code == 200
    size = len(whole.content)
    for url in urls:
        # Well formed but past the end, empty or backwards: 416 with the size, in the route's error shape.
        for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0", "bytes=9-3"):
            response = await client.get(url, headers={**headers, "Range": header})
            assert response.status_code == 416, (url, header, response.status_code)
            assert response.headers["content-range"] == f"bytes */{size}"
            if url.startswith("/v1/"):
                assert _openai_error(response, 416)["code"] == "range_not_satisfiable"
            else:
                _reelgate_error(response, 416, "range_not_satisfiable")
        # Not the grammar, or another unit: the header is ignored and the whole file is sent.
        for header in ("bytes=abc", "bytes 0-5", "pages=1-2", "bytes=", "bytes=-", "bytes=1-2-3", "bytes=1" + "0" * 40):
            response = await client.get(url, headers={**headers, "Range": header})
            assert response.status_code == 200, (url, header, response.status_code, response.text[:200])
            assert response.content == whole.content
        # A satisfiable range among unsatisfiable ones is served.
        partial = await client.get(url, headers={**headers, "Range": f"bytes={size + 5}-,0-9"})
        assert partial.status_code == 206 and partial.content == whole.content[:10]
        suffix = await client.get(url, headers={**headers, "Range": f"bytes=-{size * 2}"})
        assert suffix.status_code == 206 and suffix.content == whole.content
