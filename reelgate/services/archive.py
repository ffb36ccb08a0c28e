"""Many videos as one ZIP, streamed as it is made: nothing is built in memory or on disk first.

The standard library's zipfile writes to a stream that cannot seek by putting each entry's sizes and CRC in a
data descriptor after its data (ZIP64, so entries may pass 4 GiB), so each chunk read from storage (1 MiB)
leaves as soon as it is written: memory stays at about one chunk whatever the archive's size. Videos are stored,
not compressed (they are compressed already). A `manifest.json` at the end lists each video's prompt, model,
seed, charge and creation time, and the ids that were asked for but not included.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reelgate.db.queries import generations as generation_queries
from reelgate.db.queries import library as library_queries
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import library
from reelgate.services.context import ServiceContext
from reelgate.services.projects import get_project


class _Sink:
    """A write-only, non-seekable file: zipfile then writes data descriptors, and the bytes are collected."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


@dataclass
class Bundle:
    """What goes into an archive: the videos, and the ids asked for that are not included (and why)."""

    videos: list[Generation] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _entry_name(generation: Generation) -> str:
    extension = (generation.output_key or "output.mp4").rsplit(".", 1)[-1]
    return f"{generation.created_at:%Y%m%d-%H%M%S}-{generation.id}.{extension}"


def manifest_of(bundle: Bundle) -> dict[str, Any]:
    return {
        "created_at": datetime.now(UTC).isoformat(),
        "videos": [
            {
                "file": _entry_name(g),
                "id": g.id,
                "prompt": g.prompt,
                "model": g.model,
                "seed": (g.params or {}).get("seed"),
                "duration": (g.params or {}).get("duration"),
                "resolution": (g.params or {}).get("resolution"),
                "credits_charged": g.credits_charged,
                "created_at": g.created_at.isoformat(),
                "size": g.output_size,
                "sha256": g.output_sha256,
            }
            for g in bundle.videos
        ],
        "skipped": [{"id": gid, "reason": reason} for gid, reason in bundle.skipped.items()],
    }


def _sort(tx: Tx, user_id: str, ids: list[str]) -> Bundle:
    bundle = Bundle()
    for generation_id in ids:
        generation = generation_queries.generation_of_user(tx, user_id, generation_id)
        if generation is None:
            bundle.skipped[generation_id] = "not_found"
        elif generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
            bundle.skipped[generation_id] = "no_video"
        else:
            bundle.videos.append(generation)
    return bundle


async def bundle_of(ctx: ServiceContext, user_id: str, ids: list[str]) -> Bundle:
    """The user's videos among `ids`; NotFound when none of them is one."""
    wanted = library.check_bulk(ids)
    bundle = await ctx.db.read(lambda tx: _sort(tx, user_id, wanted))
    if not bundle.videos:
        raise NotFound("None of these generations has a video to download.", details={"skipped": bundle.skipped})
    return bundle


async def bundle_of_project(ctx: ServiceContext, user_id: str, project_id: str) -> Bundle:
    await get_project(ctx, user_id, project_id)
    ids = await ctx.db.read(lambda tx: library_queries.live_ids_in_project(tx, user_id, project_id))
    bundle = Bundle()
    for start in range(0, len(ids), library.MAX_BULK):
        part = ids[start : start + library.MAX_BULK]
        found = await ctx.db.read(lambda tx, part=part: _sort(tx, user_id, part))  # type: ignore[misc]
        bundle.videos.extend(found.videos)
        bundle.skipped.update(found.skipped)
    if not bundle.videos:
        raise NotFound("This project has no video to download.")
    return bundle


async def stream_zip(ctx: ServiceContext, bundle: Bundle) -> AsyncIterator[bytes]:
    """The archive, chunk by chunk. An object missing from storage is left out and named in the manifest."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED)  # type: ignore[call-overload]
    included: list[Generation] = []
    for generation in bundle.videos:
        assert generation.output_key is not None
        info = zipfile.ZipInfo(_entry_name(generation), date_time=generation.created_at.timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED
        try:
            chunks = ctx.store.iter_range(generation.output_key)
            first = await anext(chunks, b"")
        except FileNotFoundError:
            bundle.skipped[generation.id] = "missing_from_storage"
            continue
        with archive.open(info, mode="w", force_zip64=True) as entry:
            entry.write(first)
            yield sink.take()
            async for chunk in chunks:
                entry.write(chunk)
                yield sink.take()
        included.append(generation)
        yield sink.take()
    bundle.videos = included
    archive.writestr("manifest.json", json.dumps(manifest_of(bundle), indent=2, ensure_ascii=False))
    archive.close()
    yield sink.take()
