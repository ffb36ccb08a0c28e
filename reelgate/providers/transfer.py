"""Wave-2 plumbing shared by adapters: non-JSON requests, image references, authenticated output spooling."""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from reelgate.providers import http
from reelgate.providers.base import ImageInput, ProviderRejected, RetryLater, SubmitOutcomeUnknown

# Outputs behind an API key (OpenAI Videos `/content`, Gemini `files/{id}:download`) cannot go through
# the services' anonymous URL fetch, so the adapter spools them; 2 GiB matches the default output cap.
DEFAULT_MAX_BYTES = 2 * 1024**3
_VIDEO_URL = re.compile(r"https?://[^\s\"'<>()\[\]]+?\.(?:mp4|mov|webm|m4v)(?:\?[^\s\"'<>()\[\]]*)?", re.IGNORECASE)
_ANY_URL = re.compile(r"https?://[^\s\"'<>()\[\]]+", re.IGNORECASE)


async def send(
    client: httpx.AsyncClient, method: str, url: str, *, what: str, creates_job: bool = False, **kwargs: Any
) -> httpx.Response:
    """Like `http.request` but for any body (multipart, query, headers); returns the answer unchecked."""
    try:
        return await client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise RetryLater(f"{what}: cannot connect: {exc!r}") from exc
    except httpx.TransportError as exc:
        if creates_job:
            raise SubmitOutcomeUnknown(f"{what}: connection broke after sending: {exc!r}") from exc
        raise RetryLater(f"{what}: connection broke: {exc!r}") from exc


async def call(
    client: httpx.AsyncClient, method: str, url: str, *, what: str, creates_job: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """Send, map a non-2xx answer to intent, and return the JSON object."""
    response = await send(client, method, url, what=what, creates_job=creates_job, **kwargs)
    http.raise_for_response(response, what=what)
    return http.json_object(response, what=what, creates_job=creates_job)


def data_url(image: ImageInput) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def image_ref(image: ImageInput | None) -> str | None:
    """A public URL when the server has one, else a data URL (every wave-2 vendor accepts one or the other)."""
    if image is None:
        return None
    return image.url or data_url(image)


def first_video_url(text: str) -> str | None:
    """The first http(s) URL ending in a video extension, else the first URL at all (Poe
    docs/providers/poe.md#endpoints, unverified); the services fetch it through the SSRF guard, which decides whether
    plain http is allowed."""
    match = _VIDEO_URL.search(text or "") or _ANY_URL.search(text or "")
    return match.group(0).rstrip(".,;") if match else None


def spool_dir(extra: Mapping[str, str], provider: str) -> Path:
    base = Path(extra.get("spool_dir") or Path(tempfile.gettempdir()) / "reelgate-spool")
    path = base / provider
    path.mkdir(parents=True, exist_ok=True)
    return path


async def spool(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Stream an authenticated download to `dest` (atomically); reuse it when an earlier poll fetched it."""
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        async with client.stream("GET", url, headers=dict(headers or {})) as response:
            if response.status_code >= 400:
                await response.aread()
                http.raise_for_response(response, what=what)
            written = 0
            with partial.open("wb") as handle:
                async for chunk in response.aiter_bytes():
                    written += len(chunk)
                    if written > max_bytes:
                        raise ProviderRejected(f"{what}: output larger than {max_bytes} bytes")
                    handle.write(chunk)
        if written == 0:
            raise RetryLater(f"{what}: empty download")
        partial.replace(dest)
    except httpx.TransportError as exc:
        raise RetryLater(f"{what}: download broke: {exc!r}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return dest


def max_bytes(extra: Mapping[str, str]) -> int:
    try:
        return int(extra.get("max_output_bytes", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES
