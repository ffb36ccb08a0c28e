"""Fixtures for the storage tests: moto's S3 server on loopback, AWS test credentials and a fresh bucket."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from reelgate.storage_s3 import S3Store

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
)


def enforce_presigned_expiry(app: WsgiApp) -> WsgiApp:
    """Refuse expired SigV4 query-string URLs with 403, as AWS S3, R2 and MinIO do.

    moto 5 accepts a presigned URL forever, so without this the expiry of our URLs could not be tested."""

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if "X-Amz-Expires" in query and "X-Amz-Date" in query:
            signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if datetime.now(UTC) > signed_at + timedelta(seconds=int(query["X-Amz-Expires"][0])):
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [_EXPIRED]
        return app(environ, start_response)

    return middleware


class S3TestServer(ThreadedMotoServer):
    """moto's threaded server with presigned-URL expiry enforced (see enforce_presigned_expiry)."""

    def _server_entry(self) -> None:
        app = enforce_presigned_expiry(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    # Port 0: the OS picks a free port, read back with get_host_and_port().
    server = S3TestServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Test credentials in the standard AWS variables, and no profile or config file of the machine's."""
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def make_bucket(endpoint: str) -> str:
    name = f"reelgate-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3_endpoint: str, aws_env: None) -> str:
    """A new bucket per test, so tests never see each other's objects or uploads."""
    return make_bucket(s3_endpoint)


@pytest.fixture
def s3_store(s3_endpoint: str, bucket: str) -> S3Store:
    return S3Store(bucket, "media", endpoint_url=s3_endpoint, multipart_chunk=5 * 1024 * 1024)
