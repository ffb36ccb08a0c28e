"""The library's tests run against both databases and both stores: local files and S3 (moto's server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from reelgate.settings import Settings
from reelgate.storage import LocalStore, ObjectStore
from reelgate.storage_s3 import S3Store
from tests.conftest import Account, Running, make_account, make_settings, start_app
from tests.helpers import wait_for_terminal
from tests.storage.conftest import aws_env, make_bucket, s3_endpoint  # noqa: F401 - fixtures used here

__all__ = ["aws_env", "s3_endpoint"]


@pytest.fixture(params=["local", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def library_overrides() -> dict[str, Any]:
    """Settings a test module changes (quota, retention)."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, store_kind: str, request: pytest.FixtureRequest) -> Settings:
    overrides = dict(request.getfixturevalue("library_overrides"))
    if store_kind == "s3":
        request.getfixturevalue("aws_env")
        endpoint = request.getfixturevalue("s3_endpoint")
        overrides.update(storage_url=f"s3://{make_bucket(endpoint)}/media", s3_endpoint_url=endpoint)
    return make_settings(tmp_path / "data", database_url, **overrides)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


@pytest.fixture
async def alice(running: Running) -> Account:
    return await make_account(running.ctx, credits=200, email="alice@example.com")


@pytest.fixture
async def bob(running: Running) -> Account:
    return await make_account(running.ctx, credits=200, email="bob@example.com")


async def stored_keys(store: ObjectStore) -> set[str]:
    """Every object in the store (S3: under its prefix), whatever made it."""
    if isinstance(store, LocalStore):

        def walk() -> set[str]:
            found = set()
            for path in store.root.rglob("*"):
                relative = path.relative_to(store.root).as_posix()
                if path.is_file() and not relative.startswith(".staging") and relative != ".readyz":
                    found.add(relative)
            return found

        return await asyncio.to_thread(walk)
    assert isinstance(store, S3Store)

    def listing() -> set[str]:
        client = boto3.client("s3", endpoint_url=store.endpoint_url, region_name="us-east-1")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=f"{store.prefix}/")
        return {item["Key"][len(store.prefix) + 1 :] for page in pages for item in page.get("Contents", [])}

    return await asyncio.to_thread(listing)


async def make_video(
    client: httpx.AsyncClient, account: Account, prompt: str = "a paper boat", **extra: Any
) -> dict[str, Any]:
    """A finished sandbox video (1 s, 480p: 2 credits)."""
    body = {"model": "sandbox-t2v", "prompt": prompt, "duration": 1, "resolution": "480p", **extra}
    created = await client.post("/api/v1/generations", headers=account.headers, json=body)
    assert created.status_code == 202, created.text
    final = await wait_for_terminal(client, created.json()["id"], account.headers)
    assert final["status"] == "succeeded", final
    return final
