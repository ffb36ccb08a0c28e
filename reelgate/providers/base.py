"""The provider interface: typed requests and updates, and the two exceptions that carry intent.

Adapters translate between reelgate and one vendor's wire protocol. They never touch the ledger or
the database: they return a normalized `ProviderUpdate` (keeping the raw payload for debugging) and
the services decide what it means for the generation.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reelgate.domain.addresses import is_loopback_url
from reelgate.domain.jobs import ProviderState


@dataclass(frozen=True)
class ProviderConfig:
    """Credentials and endpoints of one provider account, read from settings by the composition root."""

    api_key: str | None = None
    base_url: str | None = None
    webhook_secret: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageInput:
    """An uploaded image handed to a provider: the bytes, and when it is to travel by address, a short-lived signed
    URL of reelgate's own (services/image_transport.py decides; adapters send `url` when it is set)."""

    data: bytes
    content_type: str
    width: int
    height: int
    url: str | None = None


@dataclass(frozen=True)
class JobRequest:
    """Everything a provider needs to start one job; values are already validated and defaulted."""

    generation_id: str
    model_ref: str
    kind: str
    prompt: str
    duration: int
    resolution: str
    aspect_ratio: str
    width: int
    height: int
    negative_prompt: str | None = None
    seed: int | None = None
    start_image: ImageInput | None = None
    end_image: ImageInput | None = None
    audio: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    # Text models: the catalog's instruction for the bot, and the most tokens it may answer with.
    system_prompt: str | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class SubmitResult:
    provider_job_id: str
    raw: Mapping[str, Any] = field(default_factory=dict)
    # A provider that answers synchronously (a text model's completion) gives its final update here, so the job
    # is finished from the submit's own answer, with no poll that would need the answer kept in memory.
    update: ProviderUpdate | None = None


@dataclass(frozen=True)
class OutputRef:
    """Where a finished job's media is: exactly one of a URL, inline base64, a local file, or (once reelgate has
    taken the bytes in) a key under the object store's staging prefix."""

    url: str | None = None
    base64_data: str | None = None
    path: str | None = None
    content_type: str | None = None
    staged_key: str | None = None


@dataclass(frozen=True)
class ProviderUpdate:
    """A provider's view of one job, from a webhook or a poll."""

    provider_job_id: str
    state: ProviderState
    progress: int | None = None
    output: OutputRef | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Set when the provider tells us when to look again (e.g. ModelsLab's `eta`).
    poll_after_seconds: float | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: a delivery id for the inbox (dedupe) and the update it carries."""

    delivery_id: str
    update: ProviderUpdate


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    detail: str = ""
    out_of_credit: bool = False


class RetryLater(Exception):
    """A transient failure (5xx, 429, reset): try again, after `after` seconds when the provider said."""

    def __init__(self, message: str, *, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class ProviderRejected(Exception):
    """A permanent refusal; retrying cannot help. `code` is one of the codes below."""

    BAD_INPUT = "provider_bad_input"
    CONTENT_POLICY = "content_policy"
    OUT_OF_CREDIT = "provider_out_of_credit"
    CAPACITY = "provider_capacity"
    AUTH = "provider_auth"
    NOT_FOUND = "provider_job_not_found"
    FAILED = "provider_failed"

    def __init__(self, message: str, *, code: str = FAILED) -> None:
        super().__init__(message)
        self.code = code


class SubmitOutcomeUnknown(Exception):
    """The request may have reached the provider (the connection broke after sending): never resend blindly."""


class WebhookRejected(Exception):
    """A webhook that failed verification or could not be parsed; it changes nothing."""


class ImageTransport(StrEnum):
    """How a provider takes a start or end image."""

    INLINE = "inline"  # the bytes only (base64 in the JSON, a multipart file, a local file)
    EITHER = "either"  # the bytes, or a URL it fetches
    URL = "url"  # a URL it fetches (an inline data URL is not documented)


def file_fitting(encoded_bytes: int) -> int:
    """The largest file whose base64 form takes at most `encoded_bytes` (base64 writes 4 bytes for every 3)."""
    return encoded_bytes * 3 // 4


class Provider(abc.ABC):
    """One vendor. Subclasses set `name` and implement the abstract methods."""

    name: str = ""
    # True when the provider can find a job by our generation id, so an unknown submit can be reconciled.
    supports_lookup: bool = False
    # True when submitting twice with the same generation id starts only one job (safe to resend).
    idempotent_submit: bool = False
    # True when webhooks carry no signature: the per-generation URL token is the only proof.
    unsigned_webhooks: bool = False
    # How images travel, and the largest image file (in bytes, before base64) one request may carry inline; None: no
    # documented limit. A larger image goes by URL when the provider takes one.
    image_transport: ImageTransport = ImageTransport.INLINE
    max_inline_image_bytes: int | None = None

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def configured(self) -> bool:
        """Whether credentials are present; unconfigured providers are listed as unavailable."""
        return bool(self.config.api_key)

    def api_urls(self) -> list[str]:
        """The addresses this adapter calls."""
        return [self.config.base_url] if self.config.base_url else []

    def can_fetch(self, url: str) -> bool:
        """Whether the provider's servers can open `url`: a loopback address only from this host, that is only when
        the provider's own API answers on loopback too (a local worker, a test server)."""
        return not is_loopback_url(url) or any(is_loopback_url(api) for api in self.api_urls())

    @abc.abstractmethod
    async def submit(self, request: JobRequest) -> SubmitResult: ...

    @abc.abstractmethod
    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate: ...

    async def cancel(self, provider_job_id: str) -> None:
        """Best effort; providers without a cancel endpoint simply stop being polled."""
        return None

    async def lookup(self, generation_id: str) -> ProviderUpdate | None:
        """Find a job by our generation id after an unknown submit outcome; None when impossible."""
        return None

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        raise WebhookRejected(f"{self.name} does not send webhooks")

    async def health(self) -> HealthReport:
        return HealthReport(healthy=self.configured(), detail="" if self.configured() else "not configured")

    async def aclose(self) -> None:
        return None
