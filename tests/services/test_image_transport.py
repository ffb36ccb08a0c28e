"""Which images travel to a provider by signed link, per adapter: by what each declares (URL only, either with an
inline limit, inline only) and whether the provider can reach the server's public URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reelgate.domain.addresses import is_loopback_url
from reelgate.providers.base import ImageInput, ProviderConfig, ProviderRejected
from reelgate.providers.registry import build_provider
from reelgate.services.context import ServiceConfig, ServiceContext
from reelgate.services.image_transport import with_image_transport
from tests.helpers import generation_record
from tests.providers.helpers import job_request

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PUBLIC = "https://videos.example.com"


def context(public_url: str = PUBLIC) -> ServiceContext:
    return ServiceContext(
        db=None,  # type: ignore[arg-type]
        catalog=None,  # type: ignore[arg-type]
        providers=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        config=ServiceConfig(public_url=public_url, link_signing_key="k" * 64),
        clock=lambda: NOW,
    )


def image(size: int) -> ImageInput:
    return ImageInput(data=b"\x89PNG" + bytes(size - 4), content_type="image/png", width=64, height=64)


def sent(provider_name: str, size: int, *, public_url: str = PUBLIC, base_url: str | None = None) -> ImageInput:
    provider = build_provider(
        provider_name, ProviderConfig(api_key="key", base_url=base_url, extra={"ltx_endpoint_id": "ltx"})
    )
    generation = generation_record(
        id="gen_1", user_id="usr_1", start_upload_id="upl_1", deadline_at=NOW + timedelta(minutes=10)
    )
    request = with_image_transport(context(public_url), provider, generation, job_request(start_image=image(size)))
    assert request.start_image is not None
    return request.start_image


@pytest.mark.parametrize(
    ("provider_name", "size", "by_link"),
    [
        ("runpod", 1_000_000, False),
        ("runpod", 7_400_000, False),  # its base64 still fits a 10 MB /run body
        ("runpod", 7_600_000, True),
        ("replicate", 200_000, False),
        ("replicate", 300_000, True),  # Replicate's data URLs are meant for files up to 256 kB
        ("runway", 3_000_000, False),
        ("runway", 4_000_000, True),  # a data URI of 5 MB at most
        ("luma", 1_000, True),  # URLs only
        ("pollo", 1_000, True),
        ("veo", 9_000_000, False),  # bytes only
        ("openai_videos", 9_000_000, False),
        ("fal", 9_000_000, False),  # both, no limit stated
    ],
)
def test_an_image_goes_by_link_when_the_provider_takes_only_links_or_it_is_too_large_inline(
    provider_name: str, size: int, by_link: bool
) -> None:
    start = sent(provider_name, size)
    assert (start.url is not None) is by_link
    if by_link:
        assert start.url is not None and start.url.startswith(f"{PUBLIC}/media/inputs/upl_1?g=gen_1&expires=")
        # Bounded by the model's deadline (10 minutes here), never past an hour.
        assert f"expires={int((NOW + timedelta(minutes=10)).timestamp())}&" in start.url


def test_a_link_lasts_an_hour_at_most() -> None:
    provider = build_provider("luma", ProviderConfig(api_key="key"))
    generation = generation_record(id="gen_1", start_upload_id="upl_1", deadline_at=NOW + timedelta(days=1))
    request = with_image_transport(context(), provider, generation, job_request(start_image=image(100)))
    assert request.start_image is not None and request.start_image.url is not None
    assert f"expires={int((NOW + timedelta(hours=1)).timestamp())}&" in request.start_image.url


def test_a_loopback_public_url_is_reachable_only_by_a_provider_on_this_host() -> None:
    loopback = "http://127.0.0.1:8000"
    with pytest.raises(ProviderRejected) as refused:
        sent("runpod", 7_600_000, public_url=loopback)
    assert refused.value.code == ProviderRejected.BAD_INPUT
    assert "REELGATE_PUBLIC_URL" in str(refused.value) and loopback in str(refused.value)
    # A worker answering on loopback (RunPod's local test server, a simulator) shares the host: it can fetch.
    assert sent("runpod", 7_600_000, public_url=loopback, base_url="http://127.0.0.1:9000/v2").url
    # A small image needs no link, so nothing is refused.
    assert sent("runpod", 1_000, public_url=loopback).url is None
    # URL-only providers get the inline data URL they got before links existed; the vendor judges it.
    assert sent("luma", 1_000, public_url=loopback).url is None


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.8.0.1", True),
        ("http://localhost:8000/x", True),
        ("http://[::1]:8000", True),
        ("http://0.0.0.0:8000", True),
        ("https://videos.example.com", False),
        ("http://10.0.0.5:8000", False),
    ],
)
def test_loopback_urls(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
