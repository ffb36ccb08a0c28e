"""Storing a finished job's output: fetch (SSRF-guarded) or decode, check, store, thumbnail, then capture."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from reelgate import media
from reelgate.db.queries import generations as generation_queries
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.jobs import GenerationStatus
from reelgate.faults import AFTER_STORE_BEFORE_COMMIT, DURING_OUTPUT_FETCH, crash_point
from reelgate.services.context import ServiceContext
from reelgate.services.output_staging import (
    StagingProblem,
    decode_base64_to_file,
    discard_recorded_staging,
    staged_key_of,
)
from reelgate.services.provider_costs import job_provider_cost_micros
from reelgate.services.safe_fetch import FetchFailed, FetchTooLarge, UnsafeURL, fetch_to_file
from reelgate.services.text_jobs import (
    TEXT_CONTENT_TYPE,
    TextProblem,
    check_text,
    output_meta,
    settlement,
    usage_of,
)
from reelgate.services.transitions import fail, transition
from reelgate.storage import file_digest, spritesheet_key, thumbnail_key, video_key

log = logging.getLogger("reelgate.outputs")
_B64_CHUNK = 4 * 1024 * 1024  # a multiple of 4, so each slice decodes on its own


class OutputProblem(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class CheckedOutput:
    path: Path
    content_type: str
    extension: str
    meta: dict[str, Any]


async def _fetch_url(ctx: ServiceContext, url: str, dest: Path) -> None:
    try:
        await fetch_to_file(url, dest, max_bytes=ctx.config.max_output_bytes, allow_hosts=ctx.config.fetch_allow_hosts)
    except UnsafeURL as exc:
        raise OutputProblem("unsafe_output_url", f"Refused to fetch the output URL: {exc}") from exc
    except FetchTooLarge as exc:
        raise OutputProblem("output_too_large", "The provider's output is larger than allowed.") from exc
    except FetchFailed as exc:
        raise OutputProblem(
            "output_unavailable",
            f"Could not download the output: {exc}",
            retryable=exc.retryable,
            retry_after=exc.retry_after,
        ) from exc


async def _fetch(ctx: ServiceContext, output: dict[str, Any], dest: Path) -> None:
    cap = ctx.config.max_output_bytes
    if "url" in output:
        await _fetch_url(ctx, output["url"], dest)
    elif (staged := staged_key_of(output)) is not None:
        try:
            await ctx.store.get_file(staged, dest, max_bytes=cap)
        except FileNotFoundError as exc:
            raise OutputProblem("output_unavailable", "The staged output is gone.") from exc
        except ValueError as exc:
            raise OutputProblem("output_too_large", "The output is larger than allowed.") from exc
    elif "base64" in output:  # recorded before outputs were staged
        try:
            await asyncio.to_thread(decode_base64_to_file, output["base64"], dest, cap)
        except StagingProblem as exc:
            raise OutputProblem(exc.code, str(exc)) from exc
    elif "path" in output:
        source = Path(output["path"])
        if not source.is_file():
            raise OutputProblem("output_unavailable", "The rendered file is gone.")
        if source.stat().st_size > cap:
            raise OutputProblem("output_too_large", "The output is larger than allowed.")
        await asyncio.to_thread(shutil.copyfile, source, dest)
    else:
        raise OutputProblem("provider_no_output", "The provider returned no output.")


async def _fetch_in_time(ctx: ServiceContext, generation: Generation, output: dict[str, Any], dest: Path) -> None:
    """A read timeout alone lets a host that trickles a byte at a time hold a worker forever: the whole
    download gets a budget, never past the model's deadline (the next scan then expires the job)."""
    remaining = (generation.deadline_at - ctx.clock()).total_seconds()
    budget = max(1.0, min(ctx.config.max_output_fetch_seconds, remaining))
    try:
        async with asyncio.timeout(budget):
            await _fetch(ctx, output, dest)
    except TimeoutError as exc:
        raise OutputProblem(
            "output_unavailable", f"Downloading the output took longer than {budget:.0f} s.", retryable=True
        ) from exc


def _check(kind: str, path: Path) -> CheckedOutput:
    """Magic bytes and a real decode: the file must be the media it claims to be (text: UTF-8 within its cap)."""
    if kind == "text":
        try:
            return CheckedOutput(path, TEXT_CONTENT_TYPE, "txt", check_text(path))
        except TextProblem as exc:
            raise OutputProblem(exc.code, str(exc)) from exc
    try:
        if kind == "image":
            image = media.probe_image_file(path)
            meta: dict[str, Any] = {"width": image.width, "height": image.height}
            return CheckedOutput(path, image.content_type, image.format.replace("jpeg", "jpg"), meta)
        video = media.probe_video(path)
    except media.MediaError as exc:
        raise OutputProblem("invalid_output", f"The provider's output is not a valid {kind}: {exc}") from exc
    meta = {
        "width": video.width,
        "height": video.height,
        "duration": round(video.duration, 3),
        "fps": video.fps,
        "codec": video.codec,
        "has_audio": video.has_audio,
    }
    content_type, extension = ("video/webm", "webm") if "webm" in video.container else ("video/mp4", "mp4")
    if "gif" in video.container:
        content_type, extension = "image/gif", "gif"
    return CheckedOutput(path, content_type, extension, meta)


async def store_output(ctx: ServiceContext, generation_id: str) -> None:
    """storing → succeeded (+capture), or failed (+release) when the output is unusable."""
    generation = await ctx.db.read(lambda tx: generation_queries.generation_by_id(tx, generation_id))
    if generation is None or generation.status != GenerationStatus.STORING.value:
        return
    output = (generation.raw_provider or {}).get("output") or {}
    staging = ctx.store.staging_dir() / f"{generation_id}-{uuid.uuid4().hex}"
    staged = staged_key_of(output)
    done = False  # an unexpected error keeps the staged object for the next try
    try:
        await _fetch_in_time(ctx, generation, output, staging)
        crash_point(DURING_OUTPUT_FETCH)
        checked = await asyncio.to_thread(_check, generation.kind, staging)
        await _commit_output(ctx, generation, checked)
        done = True
    except OutputProblem as exc:
        done = not await _output_failed(ctx, generation, exc)
    finally:
        if staged is not None and done:
            await discard_recorded_staging(ctx, generation.raw_provider)
        for leftover in (staging, staging.with_suffix(".jpg")):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


async def _commit_output(ctx: ServiceContext, generation: Generation, checked: CheckedOutput) -> None:
    key = video_key(generation.id, checked.extension)
    size, sha256 = await asyncio.to_thread(file_digest, checked.path)
    stored = await ctx.store.put_file(key, checked.path, checked.content_type)
    if stored.size != size or stored.sha256 != sha256:
        raise OutputProblem("storage_mismatch", "The stored file does not match the download.", retryable=True)
    crash_point(AFTER_STORE_BEFORE_COMMIT)
    if generation.kind == "text":
        await _commit_text(ctx, generation, checked, key, size, sha256)
        return
    thumb_local = checked.path.with_suffix(".jpg")
    make_thumb = media.make_image_thumbnail if generation.kind == "image" else media.make_thumbnail
    thumb_key: str | None = thumbnail_key(generation.id)
    try:
        await media.in_decode_pool(make_thumb, checked.path, thumb_local)
        await ctx.store.put_file(thumbnail_key(generation.id), thumb_local, "image/jpeg")
    except media.MediaError:
        thumb_key = None  # a video without a thumbnail is still a video the user paid for
    if generation.kind != "image":
        await _store_spritesheet(ctx, generation.id, checked.path)
    done = await ctx.db.write(
        lambda tx: transition(
            tx,
            generation.id,
            GenerationStatus.SUCCEEDED,
            now=ctx.clock(),
            output_key=key,
            output_content_type=checked.content_type,
            output_size=size,
            output_sha256=sha256,
            output_meta=checked.meta,
            thumbnail_key=thumb_key,
            provider_cost_micros=job_provider_cost_micros(ctx.catalog, generation),
            progress=100,
            error_code=None,
            error_message=None,
        )
    )
    if done is None:
        # Canceled (or deleted) or expired while we were storing: the objects have no record, so remove them.
        for leftover in (key, thumb_key, spritesheet_key(generation.id)):
            if leftover is not None:
                await ctx.store.delete(leftover)


async def _commit_text(
    ctx: ServiceContext, generation: Generation, checked: CheckedOutput, key: str, size: int, sha256: str
) -> None:
    """Succeeds a text job: its token usage kept with the output, and a per-token job charged what it used."""
    usage = usage_of(generation)
    meta = output_meta(generation, checked.meta, usage)
    done = await ctx.db.write(
        lambda tx: transition(
            tx,
            generation.id,
            GenerationStatus.SUCCEEDED,
            now=ctx.clock(),
            partial=settlement(generation, usage),
            output_key=key,
            output_content_type=checked.content_type,
            output_size=size,
            output_sha256=sha256,
            output_meta=meta,
            provider_cost_micros=job_provider_cost_micros(ctx.catalog, generation, usage=usage),
            progress=100,
            error_code=None,
            error_message=None,
        )
    )
    if done is None:  # ended while we were storing: the object has no record
        await ctx.store.delete(key)


async def _store_spritesheet(ctx: ServiceContext, generation_id: str, video: Path) -> None:
    """The grid of evenly spaced frames served as the `spritesheet` variant; made once, here. Its key is fixed
    (storage.spritesheet_key), so a video stored without one (an older one) simply has none."""
    local = video.with_suffix(".sprites.jpg")
    try:
        await media.in_decode_pool(media.make_spritesheet, video, local)
        await ctx.store.put_file(spritesheet_key(generation_id), local, "image/jpeg")
    except media.MediaError:
        pass  # like the thumbnail: a video without a spritesheet is still a video the user paid for
    finally:
        with contextlib.suppress(OSError):
            os.unlink(local)


async def _output_failed(ctx: ServiceContext, generation: Generation, problem: OutputProblem) -> bool:
    """Schedules another try (True) or fails the generation and releases its hold (False)."""
    now = ctx.clock()

    def failed(tx: Tx) -> bool:
        if problem.retryable and generation.transient_errors + 1 < ctx.config.max_transient_errors:
            delay = problem.retry_after or min(2.0 ** (generation.transient_errors + 1), ctx.config.poll_max)
            generation_queries.note_transient_error(tx, generation.id, now + timedelta(seconds=delay))
            return True
        fail(tx, generation.id, now=now, code=problem.code, message=str(problem))
        return False

    if await ctx.db.write(failed):
        return True
    log.warning("output of %s rejected: %s", generation.id, problem, extra={"generation_id": generation.id})
    return False
