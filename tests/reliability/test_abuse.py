"""Scenario 8, abuse: other users' ids (BOLA), server-owned fields, SSRF forms of callback_url, uploads that lie
about their type, decompression bombs and oversize bodies are all refused, and nothing changes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok, credits, png_bytes

SSRF_URLS = [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://127.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://192.168.1.10/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "http://user:pw@example.com/hook",
    "ftp://example.com/hook",
]


async def test_other_users_resources_are_not_found(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    upload = (
        await client.post("/api/v1/uploads", headers=alice.headers, files={"file": ("a.png", png_bytes(), "image/png")})
    ).json()
    project = (await client.post("/api/v1/projects", headers=alice.headers, json={"name": "secret"})).json()
    key = (await client.post("/api/v1/api-keys", headers=alice.headers, json={"name": "k"})).json()
    for method, path, body in [
        ("GET", f"/api/v1/uploads/{upload['id']}", None),
        ("GET", f"/api/v1/projects/{project['id']}", None),
        ("PATCH", f"/api/v1/projects/{project['id']}", {"name": "mine now"}),
        ("DELETE", f"/api/v1/projects/{project['id']}", None),
        ("DELETE", f"/api/v1/api-keys/{key['id']}", None),
    ]:
        response = await client.request(method, path, headers=bob.headers, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    uses_alices = await client.post(
        "/api/v1/generations",
        headers=bob.headers,
        json={
            "model": "sandbox-i2v",
            "prompt": "stealing alice's picture",
            "start_image": upload["id"],
            "project_id": project["id"],
        },
    )
    assert uses_alices.status_code == 404
    assert (await client.get(f"/api/v1/projects/{project['id']}", headers=alice.headers)).json()["name"] == "secret"
    assert (await credits(client, bob.headers)) == {"available": 100, "held": 0}


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/projects", {"name": "p", "user_id": "usr_other"}),
        ("/api/v1/projects", {"name": "p", "id": "prj_chosen"}),
        ("/api/v1/api-keys", {"name": "k", "key_hash": "00"}),
        ("/api/v1/estimate", {"model": "sandbox-t2v", "total": 0}),
        ("/api/v1/generations", {"model": "sandbox-t2v", "prompt": "a fox in the snow", "credits": 100000}),
        ("/api/v1/generations", {"model": "sandbox-t2v", "prompt": "a fox in the snow", "provider": "runpod"}),
    ],
)
async def test_mass_assignment_is_refused(running: Running, alice: Account, path: str, body: dict) -> None:
    response = await running.client.post(path, headers=alice.headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("url", SSRF_URLS)
async def test_callback_url_to_internal_targets_is_refused(running: Running, alice: Account, url: str) -> None:
    response = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "call me back privately", "callback_url": url},
    )
    assert response.status_code == 422, (url, response.text)
    assert response.json()["error"]["details"]["field"] == "callback_url"
    assert (await credits(running.client, alice.headers))["held"] == 0


async def test_uploads_that_lie_or_explode(running: Running, alice: Account) -> None:
    client = running.client
    gif = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(gif, format="GIF")
    lies = [
        ("renamed.png", gif.getvalue(), "image/png"),
        ("script.jpg", b"<script>alert(1)</script>" * 20, "image/jpeg"),
        ("half.png", png_bytes()[:60], "image/png"),
    ]
    for name, data, content_type in lies:
        response = await client.post(
            "/api/v1/uploads", headers=alice.headers, files={"file": (name, data, content_type)}
        )
        assert response.status_code in (415, 422), (name, response.text)
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # 144 MP, a few KB on the wire
    response = await client.post(
        "/api/v1/uploads", headers=alice.headers, files={"file": ("bomb.png", bomb.getvalue(), "image/png")}
    )
    assert response.status_code == 413 and response.json()["error"]["details"]["max_pixels"] > 0


async def test_oversize_body_refused_before_it_is_read(running: Running, alice: Account) -> None:
    async def endless() -> object:
        yield b"x" * 1024  # the server must answer from Content-Length alone

    headers = {
        **alice.headers,
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Content-Length": str(500 * 1024 * 1024),
    }
    response = await running.client.post("/api/v1/uploads", headers=headers, content=endless())
    assert response.status_code == 413
    await assert_ledger_ok(running.ctx)
