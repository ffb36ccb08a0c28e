"""Serving stored media: the OS sends local files (with Range); other stores are streamed range by range."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse

from reelgate.domain.errors import ReelgateError
from reelgate.storage import ObjectStore

# RFC 9110 section 14.1.2: `bytes=` then a comma-separated list of `first-last`, `first-` or `-suffix_length`.
# Positions of more than 18 digits (past 10^18 bytes) are read as malformed, so int() never sees a huge string.
_RANGE_SPEC = re.compile(r"^(\d{0,18})-(\d{0,18})$")
# More ranges than this in one request is not a download, it is an attempt to make us work: served whole.
MAX_RANGES = 32


class MediaFileResponse(FileResponse):
    """Starlette's FileResponse with bigger reads. It reads each chunk through a worker thread; at its default
    64 KiB a 1 MiB video costs sixteen thread round trips, more CPU than sending the bytes. One 1 MiB chunk in
    flight per download keeps memory bounded all the same."""

    chunk_size = 1024 * 1024


class RangeNotSatisfiable(ReelgateError):
    """416, with `Content-Range: bytes */size` as RFC 9110 section 15.5.17 asks; both APIs render it in their shape."""

    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__("The requested range is outside the file.", details={"size": size})
        self.response_headers = {"Content-Range": f"bytes */{size}"}


def parse_range(header: str, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges (first, last inclusive) a Range header asks of a `size`-byte file, per RFC 9110 section 14.

    None means "ignore the header and send the whole file": a header that does not follow the grammar, another
    unit than bytes (section 14.2: a server ignores what it does not understand), or too many ranges. Raises
    RangeNotSatisfiable when the header is well formed but no range in it can be served: each starts past the
    end, is empty (`-0`), or is invalid (last before first, section 14.1.1).
    """
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [part.strip() for part in ranges.split(",")]
    if not specs or len(specs) > MAX_RANGES:
        return None
    parsed: list[tuple[str, str]] = []
    for spec in specs:
        match = _RANGE_SPEC.match(spec)
        if not match or (not match.group(1) and not match.group(2)):
            return None
        parsed.append((match.group(1), match.group(2)))
    satisfiable: list[tuple[int, int]] = []
    for first, last in parsed:
        if first:
            start = int(first)
            end = int(last) if last else size - 1
            if last and end < start:
                raise RangeNotSatisfiable(size)
            if start < size:
                satisfiable.append((start, min(end, size - 1)))
        elif int(last) > 0 and size > 0:
            satisfiable.append((max(size - int(last), 0), size - 1))
    if not satisfiable:
        raise RangeNotSatisfiable(size)
    return satisfiable


def _if_range_holds(request: Request, response: FileResponse) -> bool:
    """If-Range (RFC 9110 section 13.1.5): the range applies only while the file is the one the client has; a weak or
    unknown validator means "send it all"."""
    validator = request.headers.get("if-range")
    if validator is None:
        return True
    if validator.startswith("W/"):
        return False
    return validator in (response.headers.get("etag"), response.headers.get("last-modified"))


def _with_range(request: Request, ranges: list[tuple[int, int]] | None) -> None:
    """Starlette's FileResponse reads Range from the request as it sends; it gets the ranges decided here in
    canonical form, or no header at all when the file is sent whole."""
    headers = [(name, value) for name, value in request.scope["headers"] if name != b"range"]
    if ranges is not None:
        canonical = "bytes=" + ",".join(f"{start}-{end}" for start, end in ranges)
        headers.append((b"range", canonical.encode("latin-1")))
    request.scope["headers"] = headers


async def _local_file(request: Request, path: Path, **options: Any) -> Response:
    stat_result = await asyncio.to_thread(os.stat, path)
    response = MediaFileResponse(path, stat_result=stat_result, **options)
    header = request.headers.get("range")
    if header is not None:
        ranges = parse_range(header, stat_result.st_size) if _if_range_holds(request, response) else None
        _with_range(request, ranges)
    return response


async def serve_object(
    request: Request,
    store: ObjectStore,
    key: str,
    *,
    content_type: str,
    filename: str,
    download: bool,
    presign: bool = False,
) -> Response:
    disposition = "attachment" if download else "inline"
    local = store.local_path(key)
    if local is not None:
        return await _local_file(
            request, Path(local), media_type=content_type, filename=filename, content_disposition_type=disposition
        )
    if presign:
        url = await store.presigned_url(key, expires_in=300)
        if url:
            return RedirectResponse(url, status_code=307)
    size = await store.size_of(key)
    if size is None:
        raise ReelgateError("The stored file is missing.", code="not_found")
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'{disposition}; filename="{filename}"'}
    header = request.headers.get("range")
    wanted = parse_range(header, size) if header is not None else None
    if wanted is None or len(wanted) > 1:  # several ranges: RFC 9110 lets a server send the whole file instead
        headers["Content-Length"] = str(size)
        return StreamingResponse(store.iter_range(key), media_type=content_type, headers=headers)
    start, end = wanted[0]
    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
    return StreamingResponse(
        store.iter_range(key, start, end), status_code=206, media_type=content_type, headers=headers
    )
