"""The object store's staging prefix: outputs in transit between the process that received them and the worker
that stores them. On S3 a lifecycle rule expires leftovers; get_file copies an object to a local file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from reelgate.storage import STAGING_EXPIRY_DAYS, STAGING_PREFIX, LocalStore, ObjectStore, staging_key
from reelgate.storage_s3 import S3Store

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "media")
    s3: S3Store = request.getfixturevalue("s3_store")
    return s3


async def test_get_file_copies_an_object_to_a_local_file(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 17)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    key = staging_key("gen_1", "abc")
    assert key.startswith(STAGING_PREFIX)
    await store.put_file(key, source, "video/mp4")

    dest = tmp_path / "copy.bin"
    assert await store.get_file(key, dest) == len(data)
    assert dest.read_bytes() == data


async def test_get_file_refuses_an_object_over_the_cap_and_a_missing_one(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(2 * MIB))
    await store.put_file("staging/big", source, "video/mp4")
    with pytest.raises(ValueError, match="larger than"):
        await store.get_file("staging/big", tmp_path / "capped.bin", max_bytes=MIB)
    with pytest.raises(FileNotFoundError):
        await store.get_file("staging/absent", tmp_path / "absent.bin")


def _rules(store: S3Store) -> list[dict[str, object]]:
    try:
        return list(store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"])
    except ClientError:
        return []


async def test_s3_staging_prefix_gets_an_expiry_rule_once_and_other_rules_are_kept(s3_store: S3Store) -> None:
    theirs = {
        "ID": "operators-own-rule",
        "Filter": {"Prefix": "archive/"},
        "Status": "Enabled",
        "Expiration": {"Days": 365},
    }
    s3_store.client.put_bucket_lifecycle_configuration(
        Bucket=s3_store.bucket, LifecycleConfiguration={"Rules": [theirs]}
    )

    await s3_store.prepare_staging()
    await s3_store.prepare_staging()  # a second start adds nothing

    rules = {str(rule["ID"]): rule for rule in _rules(s3_store)}
    assert set(rules) == {"operators-own-rule", "reelgate-staging-expiry"}
    ours = rules["reelgate-staging-expiry"]
    assert ours["Filter"] == {"Prefix": f"media/{STAGING_PREFIX}"}  # under the store's own prefix only
    assert ours["Expiration"] == {"Days": STAGING_EXPIRY_DAYS}
    assert rules["operators-own-rule"]["Expiration"] == {"Days": 365}


async def test_s3_without_lifecycle_permission_starts_anyway(
    s3_store: S3Store, caplog: pytest.LogCaptureFixture
) -> None:
    from botocore.stub import Stubber

    with Stubber(s3_store.client) as stub:
        stub.add_client_error("get_bucket_lifecycle_configuration", "AccessDenied", http_status_code=403)
        await s3_store.prepare_staging()
    assert "add it yourself" in caplog.text
