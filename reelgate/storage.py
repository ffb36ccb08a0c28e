"""Object storage for videos, thumbnails and uploads. Object keys are built here and nowhere else."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

_CHUNK = 1024 * 1024


def video_key(generation_id: str, extension: str = "mp4") -> str:
    return f"generations/{generation_id}/output.{extension}"


def thumbnail_key(generation_id: str) -> str:
    return f"generations/{generation_id}/thumbnail.jpg"


def spritesheet_key(generation_id: str) -> str:
    return f"generations/{generation_id}/spritesheet.jpg"


def upload_key(upload_id: str, extension: str) -> str:
    return f"uploads/{upload_id}.{extension}"


# Outputs between the process that received them and the worker that stores them. On S3 a lifecycle rule
# expires what a crash leaves here (S3Store.expire_staging_after); the code deletes the rest once stored.
STAGING_PREFIX = "staging/"
STAGING_EXPIRY_DAYS = 2


def staging_key(generation_id: str, token: str) -> str:
    return f"{STAGING_PREFIX}{generation_id}-{token}"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


def file_digest(path: str | Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class ObjectStore(abc.ABC):
    """Where finished media lives. Writes are atomic: a reader never sees a partial object."""

    @abc.abstractmethod
    async def put_file(self, key: str, source: str | Path, content_type: str) -> StoredObject: ...

    @abc.abstractmethod
    async def read_bytes(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def size_of(self, key: str) -> int | None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise if the store cannot be written (used by /readyz)."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path when the store is local (lets the API hand the file to the OS)."""
        return None

    async def get_file(self, key: str, dest: str | Path, *, max_bytes: int | None = None) -> int:
        """Copies an object to a local file in chunks (memory stays flat); FileNotFoundError when absent,
        ValueError when it is larger than max_bytes (the partial file is left for the caller to remove)."""
        written = 0
        handle = await asyncio.to_thread(open, dest, "wb")
        try:
            async for chunk in self.iter_range(key):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise ValueError(f"object {key!r} is larger than {max_bytes} bytes")
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)
        return written

    async def presigned_url(self, key: str, *, expires_in: int = 300) -> str | None:
        return None

    async def prepare_staging(self) -> None:
        """Makes sure what a crash leaves under the staging prefix does not stay forever (S3: a lifecycle
        rule). Local stores need nothing: embedded mode is one host, and its steps delete their objects."""
        return None

    def staging_dir(self) -> Path:
        """Scratch space for downloads before they are checked and stored."""
        path = Path(tempfile.gettempdir()) / "reelgate-staging"
        path.mkdir(parents=True, exist_ok=True)
        return path


class LocalStore(ObjectStore):
    """Files under one root folder (embedded mode)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    def staging_dir(self) -> Path:
        # Same filesystem as the store, so the final move is an atomic rename.
        path = self.root / ".staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def put_file(self, key: str, source: str | Path, content_type: str) -> StoredObject:
        return await asyncio.to_thread(self._put_file_sync, key, Path(source))

    def _put_file_sync(self, key: str, source: Path) -> StoredObject:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        shutil.copyfile(source, partial)
        size, sha = file_digest(partial)
        os.replace(partial, target)
        return StoredObject(key=key, size=size, sha256=sha)

    async def read_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def get_file(self, key: str, dest: str | Path, *, max_bytes: int | None = None) -> int:
        source = self._path(key)
        size = source.stat().st_size  # FileNotFoundError when absent, like the other stores
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"object {key!r} is larger than {max_bytes} bytes")
        await asyncio.to_thread(shutil.copyfile, source, dest)
        return size

    async def iter_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = _CHUNK if remaining is None else min(_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def size_of(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.exists() else None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def check(self) -> None:
        probe = self.root / ".readyz"
        await asyncio.to_thread(probe.write_bytes, b"ok")

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.exists() else None


def store_from_url(url: str, *, s3_endpoint_url: str | None = None) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme == "s3":
        from reelgate.storage_s3 import S3Store  # imported lazily: boto3 is heavy and only needed for S3

        return S3Store(bucket=parsed.netloc, prefix=parsed.path.lstrip("/"), endpoint_url=s3_endpoint_url)
    raise ValueError(f"unsupported REELGATE_STORAGE_URL scheme: {parsed.scheme!r} (use file:// or s3://)")
