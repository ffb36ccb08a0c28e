"""Outputs in transit: a finished job's media that arrived as bytes or a local file, held in the object store
until the worker that stores it takes it from there.

A webhook can deliver a whole video as base64 to whichever API process it reached, and adapters download
some outputs (Veo, OpenAI Videos) into a spool on the worker that polled; the step that checks and stores the
output may run on another host. So before the transaction that records the update, the bytes go to the
object store under its staging prefix and the row keeps only the key. Nothing lives on one host's disk
between two steps, whatever the deployment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import OutputRef, ProviderUpdate
from reelgate.services.context import ServiceContext
from reelgate.storage import STAGING_PREFIX, staging_key

log = logging.getLogger("reelgate.outputs")
_B64_CHUNK = 4 * 1024 * 1024  # a multiple of 4, so each slice decodes on its own


class StagingProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def decode_base64_to_file(data: str, dest: Path, max_bytes: int) -> None:
    """Streams base64 to disk slice by slice instead of holding a second decoded copy in memory."""
    if data.startswith("data:"):
        data = data.split(",", 1)[1]
    data = "".join(data.split())
    written = 0
    with open(dest, "wb") as handle:
        for start in range(0, len(data), _B64_CHUNK):
            try:
                chunk = base64.b64decode(data[start : start + _B64_CHUNK], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise StagingProblem("invalid_output", "The provider returned malformed base64 data.") from exc
            written += len(chunk)
            if written > max_bytes:
                raise StagingProblem("output_too_large", "The provider's output is larger than allowed.")
            handle.write(chunk)


def _owned_local_file(ctx: ServiceContext, raw: str) -> Path | None:
    """A file an adapter downloaded into the provider spool: ours to delete once staged. The sandbox's own
    renders are not."""
    spool = ctx.config.provider_spool_dir
    path = Path(raw).resolve()
    return path if spool and path.is_relative_to(Path(spool).resolve()) else None


def carries_inline_output(update_: ProviderUpdate) -> bool:
    """Whether the update holds its output itself (inline bytes or a local file) rather than a URL."""
    output = update_.output
    return output is not None and (output.base64_data is not None or output.path is not None)


async def stage_output(ctx: ServiceContext, generation_id: str, update_: ProviderUpdate) -> ProviderUpdate:
    """Moves inline bytes or a local file of `update_` into the object store's staging prefix; the returned
    update refers to the staged key. A bad payload becomes a failed update. URL outputs are left alone: any
    worker can fetch those."""
    output = update_.output
    if output is None or not carries_inline_output(update_):
        return update_
    key = staging_key(generation_id, uuid.uuid4().hex)
    local = ctx.store.staging_dir() / f"{generation_id}-{uuid.uuid4().hex}.inline"
    try:
        if output.base64_data is not None:
            await asyncio.to_thread(decode_base64_to_file, output.base64_data, local, ctx.config.max_output_bytes)
            source = local
        else:
            source = Path(str(output.path))
            if not source.is_file():
                raise StagingProblem("output_unavailable", "The provider's downloaded output is gone.")
            if source.stat().st_size > ctx.config.max_output_bytes:
                raise StagingProblem("output_too_large", "The provider's output is larger than allowed.")
        await ctx.store.put_file(key, source, output.content_type or "application/octet-stream")
    except StagingProblem as exc:
        return replace(update_, state=ProviderState.FAILED, output=None, error_code=exc.code, error_message=str(exc))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(local)
    if output.path is not None and (owned := _owned_local_file(ctx, output.path)) is not None:
        owned.unlink(missing_ok=True)
    return replace(update_, output=OutputRef(staged_key=key, content_type=output.content_type))


def staged_key_of(output: dict[str, Any] | None) -> str | None:
    """The staging key a recorded output refers to, if it is one of ours (never any other object)."""
    key = (output or {}).get("staged")
    return key if isinstance(key, str) and key.startswith(STAGING_PREFIX) else None


async def discard_staged(ctx: ServiceContext, update_: ProviderUpdate | None) -> None:
    """Removes the staged object of an update that was not applied (duplicate, stale or late)."""
    key = update_.output.staged_key if update_ is not None and update_.output is not None else None
    if key is not None:
        await _delete_quietly(ctx, key)


async def discard_recorded_staging(ctx: ServiceContext, raw_provider: dict[str, Any] | None) -> None:
    """Removes the staged object of a generation that ended before its output was stored (expired, canceled)."""
    key = staged_key_of((raw_provider or {}).get("output"))
    if key is not None:
        await _delete_quietly(ctx, key)


async def _delete_quietly(ctx: ServiceContext, key: str) -> None:
    try:
        await ctx.store.delete(key)
    except Exception:  # noqa: BLE001 - a leftover expires with the staging prefix's lifecycle rule
        log.warning("could not delete staged output %s", key, exc_info=True)
