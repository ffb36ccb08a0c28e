"""S3-compatible object storage (AWS S3, Cloudflare R2, MinIO) behind the ObjectStore interface."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reelgate.storage import STAGING_EXPIRY_DAYS, STAGING_PREFIX, ObjectStore, StoredObject, file_digest

log = logging.getLogger("reelgate.storage")

_READ_CHUNK = 1024 * 1024
# S3 rejects multipart parts below 5 MiB (except the last one) and allows at most 10,000 parts.
_MIN_PART = 5 * 1024 * 1024
_MAX_PARTS = 10_000
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


class SourceChangedError(RuntimeError):
    """The file changed while it was being uploaded, so the stored checksum would be wrong."""


def _is_not_found(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND


class S3Store(ObjectStore):
    """Objects in one bucket under an optional prefix. boto3 is synchronous, so every call runs in a thread."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        region: str | None = None,
        multipart_chunk: int = 16 * 1024 * 1024,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("an s3:// storage URL needs a bucket name (s3://bucket/prefix)")
        if multipart_chunk < _MIN_PART:
            raise ValueError(f"multipart_chunk must be at least {_MIN_PART} bytes (the S3 minimum part size)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.multipart_chunk = multipart_chunk
        if client is None:
            # Path-style addressing when an endpoint is given: MinIO and loopback test servers have no
            # per-bucket DNS names. Credentials come from boto3's standard chain (AWS_* variables, profiles, roles).
            config = Config(
                retries={"mode": "standard", "max_attempts": 5},
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                signature_version="s3v4",
            )
            client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        self.client = client

    def _key(self, key: str) -> str:
        # Refused like LocalStore refuses them: some S3-compatible servers and HTTP clients normalise "..",
        # which would let a key leave the prefix.
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- writes -----------------------------------------------------------------------------------

    async def put_file(self, key: str, source: str | Path, content_type: str) -> StoredObject:
        return await asyncio.to_thread(self._put_file_sync, key, Path(source), content_type)

    def _put_file_sync(self, key: str, source: Path, content_type: str) -> StoredObject:
        full_key = self._key(key)
        # Multipart metadata is fixed when the upload starts, so the checksum is computed in a first
        # streaming pass; the upload pass hashes again and aborts if the file changed in between.
        expected_size, expected_sha = file_digest(source)
        metadata = {"sha256": expected_sha}
        chunk = max(self.multipart_chunk, -(-expected_size // _MAX_PARTS))
        if expected_size < chunk:
            return self._put_small(key, full_key, source, content_type, metadata, expected_size, expected_sha)
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=full_key, ContentType=content_type, Metadata=metadata
        )
        upload_id = upload["UploadId"]
        try:
            parts, size, sha = self._upload_parts(full_key, upload_id, source, chunk)
            self._verify(source, expected_size, expected_sha, size, sha)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Until completion S3 shows nothing under the key; aborting frees the parts already sent.
            self._abort_quietly(full_key, upload_id)
            raise
        return StoredObject(key=key, size=size, sha256=sha)

    def _put_small(
        self, key: str, full_key: str, source: Path, content_type: str, metadata: dict[str, str], size: int, sha: str
    ) -> StoredObject:
        with open(source, "rb") as handle:
            body = handle.read(size + 1)
        actual_sha = hashlib.sha256(body).hexdigest()
        self._verify(source, size, sha, len(body), actual_sha)
        self.client.put_object(Bucket=self.bucket, Key=full_key, Body=body, ContentType=content_type, Metadata=metadata)
        return StoredObject(key=key, size=size, sha256=sha)

    def _upload_parts(
        self, full_key: str, upload_id: str, source: Path, chunk: int
    ) -> tuple[list[dict[str, Any]], int, str]:
        digest = hashlib.sha256()
        size = 0
        parts: list[dict[str, Any]] = []
        with open(source, "rb") as handle:
            # One part in memory at a time: memory stays at about one chunk whatever the video's size.
            while data := handle.read(chunk):
                digest.update(data)
                size += len(data)
                number = len(parts) + 1
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=full_key, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                del data
        return parts, size, digest.hexdigest()

    @staticmethod
    def _verify(source: Path, expected_size: int, expected_sha: str, size: int, sha: str) -> None:
        if size != expected_size or sha != expected_sha:
            raise SourceChangedError(f"{source} changed while it was being stored")

    def _abort_quietly(self, full_key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            # The original error matters more; a leftover upload is collected by abort_stale_uploads.
            pass

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort multipart uploads under our prefix started before now - older_than (e.g. by a killed worker).

        S3 keeps (and bills) the parts of an abandoned upload forever unless a bucket lifecycle rule or
        this task removes them."""
        return await asyncio.to_thread(self._abort_stale_sync, datetime.now(UTC) - older_than)

    def _abort_stale_sync(self, cutoff: datetime) -> int:
        paginator = self.client.get_paginator("list_multipart_uploads")
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.prefix:
            params["Prefix"] = f"{self.prefix}/"
        aborted = 0
        for page in paginator.paginate(**params):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= cutoff:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise
                    continue  # completed or aborted by someone else meanwhile
                aborted += 1
        return aborted

    async def prepare_staging(self) -> None:
        if not await self.expire_staging_after(STAGING_EXPIRY_DAYS, STAGING_PREFIX):
            log.warning(
                "could not add the lifecycle rule expiring %s in bucket %s (no permission): add it yourself",
                self._key(STAGING_PREFIX.rstrip("/")),
                self.bucket,
            )

    async def expire_staging_after(self, days: int, prefix: str) -> bool:
        """Adds (once) a bucket lifecycle rule expiring objects under our staging prefix after `days`, so
        outputs left there by a crashed process cost nothing for long. The bucket's other rules are kept:
        S3 replaces the whole configuration on every put. False when the credentials may not manage the
        bucket's lifecycle (the operator then adds the rule; docs/deploy.md shows it)."""
        return await asyncio.to_thread(self._expire_staging_sync, days, self._key(prefix.rstrip("/")) + "/")

    def _expire_staging_sync(self, days: int, full_prefix: str) -> bool:
        rule_id = "reelgate-staging-expiry"
        try:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if any(rule.get("ID") == rule_id for rule in rules):
                return True
            rules.append(
                {
                    "ID": rule_id,
                    "Filter": {"Prefix": full_prefix},
                    "Status": "Enabled",
                    "Expiration": {"Days": days},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
                }
            )
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"AccessDenied", "NotImplemented"}:
                return False
            raise
        return True

    # -- reads ------------------------------------------------------------------------------------

    def _get(self, key: str, range_header: str | None = None) -> Any:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if range_header:
            params["Range"] = range_header
        try:
            return self.client.get_object(**params)
        except ClientError as exc:
            if _is_not_found(exc):
                # Same error LocalStore raises, so callers need not know which store they use.
                raise FileNotFoundError(key) from exc
            raise

    async def read_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            body = self._get(key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        return await asyncio.to_thread(read)

    async def iter_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range {start}-{end}")
        wanted = None if start == 0 and end is None else f"bytes={start}-{'' if end is None else end}"
        response = await asyncio.to_thread(self._get, key, wanted)
        body = response["Body"]
        chunks = body.iter_chunks(_READ_CHUNK)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        finally:
            # Closing mid-stream (client went away) drops the connection instead of draining the rest.
            body.close()

    async def size_of(self, key: str) -> int | None:
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise RuntimeError(f"S3 bucket {self.bucket!r} is not reachable: {exc}") from exc

    async def presigned_url(self, key: str, *, expires_in: int = 300) -> str | None:
        # Signing is local computation (no request), but credential lookup may touch the network (IMDS).
        url = await asyncio.to_thread(
            self.client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=expires_in,
        )
        return str(url)
