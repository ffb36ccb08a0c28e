"""Scenario 8, abuse: nothing answers 500, on SQLite and on PostgreSQL.

Three sweeps against a live server on loopback:
- schemathesis drives every operation of the OpenAPI schema (the reelgate API, the admin API and the
  OpenAI-compatible /v1/videos, the OpenRouter-compatible /api/v1/videos) with data that fits the schema and
  data that does not;
- hostile values (NaN, infinities, huge numbers, NUL, unpaired surrogates, wrong types) are put into each field
  of each JSON body, query parameter and path parameter;
- the same values go into every field of the studio's forms, sent with a signed-in administrator's session.

A 503 that blames the database counts as a failure too: it is what PostgreSQL's refusal of a NUL used to become.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from reelgate.app import create_app
from reelgate.services import accounts
from reelgate.web import account, admin_pages, auth, gallery, library_pages, share_page, studio, webhooks_page
from tests.conftest import make_settings
from tests.loopback_guard import guard_loopback
from tests.openai_compat.conftest import serve

# schemathesis' negative mode draws from `random` inside its strategies; Hypothesis warns about that, and
# warnings are errors in this suite. It is the library's business, not a finding.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)

EXAMPLES_PER_OPERATION = 8
HOSTILE_EXAMPLES = 3  # random hostile values per field, after the classics
PASSWORD = "fuzz-password-long-enough"
DATABASE_DOWN = "The database is unavailable"

# --- hostile values ----------------------------------------------------------------------------------------------

_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_HOSTILE_NUMBERS = st.sampled_from(
    [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 10**30, 2**63, -(2**63) - 1, 2**62, -1, 0, 10**400]
)
_HOSTILE_TEXT = st.one_of(
    st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a, s, b: f"{a}{s}{b}", st.text(max_size=8), _SURROGATES, st.text(max_size=8)),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e400", "-1", "9" * 5000, "", " ", "0x10", "1_000"]),
    st.text(min_size=3000, max_size=9000, alphabet="ab"),
)
# What a field may be given in JSON: hostile numbers and text, or another type altogether.
HOSTILE_JSON = st.one_of(
    _HOSTILE_NUMBERS,
    _HOSTILE_TEXT,
    st.booleans(),
    st.none(),
    st.lists(st.one_of(_HOSTILE_NUMBERS, _HOSTILE_TEXT), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(_HOSTILE_NUMBERS, _HOSTILE_TEXT), max_size=3),
)
# What a form or URL field may be given: text only, numbers spelled out.
HOSTILE_STRING = st.one_of(_HOSTILE_TEXT, _HOSTILE_NUMBERS.map(repr))
# Sent to every field, not left to chance: the values that used to answer 500 (or a 503 blaming the database).
CLASSIC_TEXT = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "-1",
    "0",
    "1.5",
    "9" * 30,
    "9" * 5000,
    "",
    "a\x00b",
    "\x00",
    "a\ud800b",
    "\udfff",
    "true",
    "[]",
    "{}",
    "x" * 10000,
]
CLASSIC_JSON = [
    float("nan"),
    float("inf"),
    float("-inf"),
    10**400,
    10**30,
    2**63,
    -(2**63) - 1,
    1.5,
    -1,
    True,
    None,
    [],
    {},
    [1, 2],
    {"a": "b"},
    *CLASSIC_TEXT,
]


def _encode(value: str) -> str:
    """Percent-encodes any string, an unpaired surrogate included (as the bytes a careless client would send)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _json(value: Any) -> bytes:
    # allow_nan: NaN and Infinity literals as JavaScript writes them; ensure_ascii: surrogates as \\uXXXX escapes.
    return json.dumps(value, allow_nan=True, ensure_ascii=True).encode()


# --- the server --------------------------------------------------------------------------------------------------


@dataclass
class FuzzServer:
    url: str
    app: FastAPI
    user: dict[str, str]
    admin: dict[str, str]
    studio: httpx.Client  # signed in as the administrator through the studio's own sign-in
    csrf: str
    generation_id: str


@pytest.fixture
def fuzz_server(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzServer]:
    # The server runs in this process: a client webhook or image fetch to a URL the sweep made up is refused
    # before any packet leaves the machine.
    for _guard in guard_loopback(monkeypatch, refusals_fail=False):
        yield from _serve_for_fuzzing(tmp_path, database_url)


def _serve_for_fuzzing(tmp_path: Path, database_url: str) -> Iterator[FuzzServer]:
    settings_ = make_settings(
        tmp_path / "data",
        database_url,
        sandbox_delay_seconds=0.2,
        max_in_flight=5,
        # The sweep sends thousands of requests from one address: per-address limits would answer most of them.
        rate_limit_studio_per_address="1000000/minute",
        rate_limit_estimate_per_address="1000000/minute",
    )
    app = create_app(settings_)
    for url, loop in serve(app):

        async def accounts_for_fuzzing() -> tuple[str, str]:
            ctx = app.state.ctx
            user = await accounts.create_user(ctx, "fuzz@example.com", PASSWORD, credits=1_000_000)
            admin = await accounts.create_user(ctx, "root@example.com", PASSWORD, credits=1_000, is_admin=True)
            user_key = (await accounts.create_api_key(ctx, user.id, "fuzz")).secret
            admin_key = (await accounts.create_api_key(ctx, admin.id, "fuzz")).secret
            return user_key, admin_key

        user_key, admin_key = asyncio.run_coroutine_threadsafe(accounts_for_fuzzing(), loop).result(30)
        user = {"Authorization": f"Bearer {user_key}"}
        created = httpx.post(
            f"{url}/api/v1/generations", headers=user, json={"model": "sandbox-t2v", "prompt": "a fox in the snow"}
        )
        assert created.status_code == 202, created.text
        with httpx.Client(base_url=url, timeout=30) as studio:
            csrf = _sign_in(studio)
            yield FuzzServer(
                url=url,
                app=app,
                user=user,
                admin={"Authorization": f"Bearer {admin_key}"},
                studio=studio,
                csrf=csrf,
                generation_id=created.json()["id"],
            )


def _sign_in(client: httpx.Client) -> str:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:300]
    signed_in = client.post(
        "/login", data={"email": "root@example.com", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert signed_in.status_code == 303, signed_in.text[:300]
    found = re.search(r'data-csrf="([^"]+)"', client.get("/studio").text)
    assert found
    return found.group(1)


def _is_failure(response: httpx.Response | Any) -> bool:
    if response.status_code >= 500 and response.status_code != 503:
        return True
    return response.status_code == 503 and DATABASE_DOWN in response.text


def _describe(method: str, url: str, sent: Any, response: httpx.Response | Any) -> str:
    return f"{method} {url} {str(sent)[:160]!r} -> {response.status_code}: {response.text[:200]}"


# --- 1. schemathesis over the OpenAPI schema ---------------------------------------------------------------------


def _sweep(
    cases: st.SearchStrategy[schemathesis.Case], headers: dict[str, str], failures: list[str], sent: list[str]
) -> Any:
    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def exercise(case: schemathesis.Case) -> None:
        response = case.call(headers=headers, timeout=30)
        sent.append(case.path)
        if _is_failure(response):
            failures.append(_describe(case.method, case.formatted_path, case.body, response))

    return exercise


def test_no_operation_answers_500(fuzz_server: FuzzServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    failures: list[str] = []
    sent: list[str] = []
    paths: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        paths.add(operation.path)
        headers = fuzz_server.admin if operation.path.startswith("/api/v1/admin") else fuzz_server.user
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _sweep(operation.as_strategy(generation_mode=mode), headers, failures, sent)()
            except Unsatisfiable:  # no parameter to get wrong (GET /api/v1/models): nothing negative to send
                assert mode is GenerationMode.NEGATIVE, operation.path
    assert {"/v1/videos", "/v1/videos/{video_id}/remix", "/api/v1/videos", "/api/v1/admin/credits"} <= paths
    assert len(paths) >= 30 and len(sent) >= len(paths) * EXAMPLES_PER_OPERATION
    assert failures == [], "\n".join(failures[:20])


# --- 2. hostile values in each JSON field, query parameter and path parameter ------------------------------------


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None  # a body that would be accepted; each field in turn is made hostile
    query: tuple[str, ...] = ()


def _api_targets(server: FuzzServer) -> list[Target]:
    gen, user, admin = server.generation_id, server.user, server.admin
    return [
        Target(
            "POST",
            "/api/v1/generations",
            user,
            {
                "model": "sandbox-t2v",
                "prompt": "a fox in the snow",
                "negative_prompt": "blur",
                "duration": 2,
                "resolution": "720p",
                "aspect_ratio": "16:9",
                "seed": 7,
                "callback_url": "https://example.com/hook",
                "options": {},
                "project_id": None,
            },
        ),
        Target("POST", "/api/v1/estimate", {}, {"model": "sandbox-t2v", "duration": 2, "seed": 1, "options": {}}),
        Target(
            "POST",
            "/v1/videos",
            user,
            {
                "prompt": "a fox in the snow",
                "model": "sandbox-t2v",
                "seconds": "2",
                "size": "1280x720",
                "seed": 3,
                "negative_prompt": "blur",
                "callback_url": "https://example.com/hook",
                "input_reference": None,
            },
        ),
        Target("POST", f"/v1/videos/{gen}/remix", user, {"prompt": "the same fox at night"}),
        Target(
            "POST",
            "/api/v1/videos",
            user,
            {
                "model": "sandbox-i2v",
                "prompt": "a fox in the snow",
                "duration": 2,
                "resolution": "720p",
                "aspect_ratio": "16:9",
                "size": "1280x720",
                "seed": 3,
                "generate_audio": False,
                "frame_images": [{"type": "image_url", "image_url": {"url": "data:,"}, "frame_type": "first_frame"}],
                "input_references": None,
                "callback_url": "https://example.com/hook",
                "user": "fuzzer",
                "session_id": "s1",
            },
        ),
        Target(
            "POST",
            "/api/v1/admin/credits",
            admin,
            {"email": "fuzz@example.com", "amount": 5, "reason": "fuzzing", "kind": "grant"},
        ),
        Target("POST", "/api/v1/projects", user, {"name": "trip", "description": "holiday"}),
        Target("POST", "/api/v1/api-keys", user, {"name": "ci"}),
        Target("POST", "/api/v1/webhook-endpoints", user, {"url": "https://example.com/hook", "events": None}),
        Target("POST", "/api/v1/credits/checkout", user, {"package": "starter"}),
        Target("GET", "/api/v1/generations", user, None, ("status", "project_id", "model", "limit", "cursor")),
        Target("GET", "/v1/videos", user, None, ("after", "limit", "order")),
        Target("GET", "/api/v1/credits/transactions", user, None, ("kind", "since", "until", "limit", "cursor")),
        Target("GET", "/api/v1/admin/analytics", admin, None, ("days",)),
        Target("GET", "/api/v1/admin/payments", admin, None, ("user_id", "limit")),
        Target("GET", f"/api/v1/generations/{gen}/content", user, None, ("download",)),
        Target("GET", f"/v1/videos/{gen}/content", user, None, ("variant",)),
        Target("GET", f"/api/v1/videos/{gen}/content", user, None, ("index",)),
    ]


_PATH_TEMPLATES = (
    ("GET", "/api/v1/generations/{}"),
    ("POST", "/api/v1/generations/{}/cancel"),
    ("POST", "/api/v1/generations/{}/retry"),
    ("GET", "/v1/videos/{}"),
    ("DELETE", "/v1/videos/{}"),
    ("GET", "/api/v1/videos/{}"),
    ("GET", "/api/v1/videos/{}/content"),
    ("GET", "/api/v1/models/{}"),
    ("GET", "/api/v1/uploads/{}"),
    ("PATCH", "/api/v1/projects/{}"),
)


def _send_field(client: httpx.Client, target: Target, field: str, value: Any) -> tuple[Any, httpx.Response]:
    if target.body is not None:
        body = {**target.body, field: value}
        response = client.request(
            target.method,
            target.path,
            content=_json(body),
            headers={**target.headers, "Content-Type": "application/json"},
        )
        return body, response
    query = f"?{field}={_encode(value if isinstance(value, str) else _json(value).decode())}"
    return query, client.request(target.method, f"{target.path}{query}", headers=target.headers)


def test_hostile_values_in_api_fields_never_answer_500(fuzz_server: FuzzServer) -> None:
    failures: list[str] = []
    sent = 0
    targets = _api_targets(fuzz_server)
    fields = [(target, field) for target in targets for field in (sorted(target.body or ()) or target.query)]

    def check(client: httpx.Client, target: Target, field: str, value: Any) -> None:
        nonlocal sent
        sent += 1
        body, response = _send_field(client, target, field, value)
        if _is_failure(response):
            failures.append(_describe(target.method, target.path, body, response))

    with httpx.Client(base_url=fuzz_server.url, timeout=30) as client:
        # Every classic in every field, then random hostile values.
        for target, field in fields:
            for value in CLASSIC_JSON if target.body is not None else CLASSIC_TEXT:
                check(client, target, field, value)

        @given(pick=st.sampled_from(fields), value=HOSTILE_JSON, text=HOSTILE_STRING)
        @settings(
            max_examples=HOSTILE_EXAMPLES * len(fields),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def random_values(pick: tuple[Target, str], value: Any, text: str) -> None:
            target, field = pick
            check(client, target, field, value if target.body is not None else text)

        random_values()
        for method, template in _PATH_TEMPLATES:
            for text in [*CLASSIC_TEXT, "..", "%2e%2e"]:
                url = template.format(_encode(text) if text else "x")
                response = client.request(method, url, headers=fuzz_server.user, json={"name": "x"})
                sent += 1
                if _is_failure(response):
                    failures.append(_describe(method, url, "", response))
    assert sent >= len(fields) * (len(CLASSIC_TEXT) + HOSTILE_EXAMPLES)
    assert failures == [], "\n".join(failures[:20])


# --- 3. hostile values in the studio's forms ---------------------------------------------------------------------

# Fields the studio reads from the form by hand (not declared as parameters).
_COMPOSER_FIELDS = (
    "model",
    "prompt",
    "negative_prompt",
    "duration",
    "resolution",
    "aspect_ratio",
    "seed",
    "start_image",
    "end_image",
    "audio",
    "enhance_prompt",
    "project_id",
    "option_style",
)
# /logout and ending every session would end the session the sweep runs in; the delete would remove the
# generation the other routes use.
_NOT_FUZZED = {"/logout", "/settings/sessions/end-all", "/studio/generations/{generation_id}/delete"}
STUDIO_MODULES = (auth, studio, gallery, library_pages, account, webhooks_page, admin_pages, share_page)


_COMPOSER_ROUTES = {"/studio/generate", "/studio/panel", "/studio/estimate"}


def _studio_forms(generation_id: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path, fields) of every studio route: its declared form and query fields (the composer's for the
    routes that read the generation form by hand); a route with none gets one field it does not expect."""
    found: list[tuple[str, str, tuple[str, ...]]] = []
    routes = [route for module in STUDIO_MODULES for route in module.router.routes]
    for route in routes:
        if not isinstance(route, APIRoute) or route.path in _NOT_FUZZED:
            continue
        declared = [param.alias for param in (*route.dependant.body_params, *route.dependant.query_params)]
        fields = (*declared, *(_COMPOSER_FIELDS if route.path in _COMPOSER_ROUTES else ())) or ("unexpected",)
        path = re.sub(r"\{[^}]+\}", generation_id, route.path)
        found += [(method, path, fields) for method in sorted(route.methods or ())]
    return found


def test_hostile_values_in_studio_forms_never_answer_500(fuzz_server: FuzzServer) -> None:
    forms = _studio_forms(fuzz_server.generation_id)
    posts = [form for form in forms if form[0] == "POST"]
    assert {"/studio/generate", "/signup", "/login", "/settings/profile"} <= {path for _, path, _ in posts}
    assert len(posts) >= 15
    fields = [(method, path, names, name) for method, path, names in forms for name in names]
    failures: list[str] = []
    sent = 0
    studio = fuzz_server.studio

    def check(method: str, path: str, names: tuple[str, ...], name: str, text: str) -> None:
        nonlocal sent
        sent += 1
        values = {field: "1" for field in names}
        values[name] = text
        encoded = "&".join(f"{_encode(field)}={_encode(value)}" for field, value in values.items())
        headers = {"X-CSRF-Token": fuzz_server.csrf, "HX-Request": "true"}
        if method == "POST":
            encoded += f"&csrf_token={fuzz_server.csrf}"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = studio.post(path, content=encoded, headers=headers)
        else:
            response = studio.request(method, f"{path}?{encoded}", headers=headers)
        if _is_failure(response):
            failures.append(_describe(method, path, values, response))

    for method, path, names, name in fields:
        for text in CLASSIC_TEXT:
            check(method, path, names, name, text)

    @given(pick=st.sampled_from(fields), text=HOSTILE_STRING)
    @settings(
        max_examples=HOSTILE_EXAMPLES * len(fields),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def random_values(pick: tuple[str, str, tuple[str, ...], str], text: str) -> None:
        check(*pick, text)

    random_values()
    assert sent >= len(fields) * (len(CLASSIC_TEXT) + HOSTILE_EXAMPLES)
    assert failures == [], "\n".join(failures[:20])
