"""Text that cannot be stored is refused at the door: a NUL character (PostgreSQL's text type cannot hold one)
or an unpaired UTF-16 surrogate (a JSON `\\ud800` escape; it has no UTF-8 form, so neither database, the logs
nor a JSON answer can carry it).

Checked in the request models (`StorableText`), the URL (`UnstorableURLMiddleware`: path and query string of
every route), the studio's forms (`refuse_unstorable_form`), and the OpenAI-compatible routes' hand-read bodies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request
from pydantic import BaseModel, field_validator
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

from reelgate.domain.errors import ValidationFailed

NUL_MESSAGE = "must not contain NUL characters"
SURROGATE_MESSAGE = "must be valid Unicode text (it holds an unpaired surrogate)"


def problem_with(text: str) -> str | None:
    """Why this text cannot be stored, or None when it can."""
    if "\x00" in text:
        return NUL_MESSAGE
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return SURROGATE_MESSAGE
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        found = problem_with(value)
        if found:
            yield path, found
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(key, path)
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def first_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, reason) of the first string inside `value` (nested dicts and lists too) that cannot be stored."""
    return next(_walk(value, path), None)


class StorableText(BaseModel):
    """Request models derive from this: every string anywhere in a field's value must be storable."""

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        found = first_problem(value)
        if found:
            raise ValueError(f"{found[0] + ' ' if found[0] else ''}{found[1]}")
        return value


async def refuse_unstorable_form(request: Request) -> None:
    """A studio form field holding unstorable text is a 422, before any handler sees it."""
    content_type = request.headers.get("content-type", "")
    if request.method != "POST" or not content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return
    form = await request.form()  # Starlette keeps it: the handler's own read returns the same form
    for name, value in form.multi_items():
        text = (value.filename or "") if isinstance(value, UploadFile) else value
        found = problem_with(name) or problem_with(text)
        if found:
            raise ValidationFailed(name, f"{name}: {found}")


def _url_problem(scope: Scope) -> str | None:
    path: str = scope.get("path", "")
    if "\x00" in path:
        return "The URL path must not contain NUL characters."
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"\x00" in unquote_to_bytes(query.replace(b"+", b" ")):
        return "The query string must not contain NUL characters."
    return None


class UnstorableURLMiddleware:
    """Path and query parameters arrive percent-decoded; a `%00` among them is refused for every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _url_problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        if scope.get("path", "").startswith("/v1/"):  # the OpenAI-compatible API answers in OpenAI's shape
            status = 400
            error: dict[str, Any] = {
                "message": problem,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_value",
            }
        else:
            status = 422
            error = {"code": "validation_error", "message": problem, "details": {"field": "url"}}
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
