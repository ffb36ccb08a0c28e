"""The shared base of adapters that speak one HTTP API: client, base URL, auth header, error mapping, parsing.

A subclass sets `default_base_url` and, when the vendor does not use a bearer token, `auth_headers`. Calls go
through `call` (a JSON answer) or `send` (the raw answer), which map transport failures and vendor errors to
RetryLater, ProviderRejected and SubmitOutcomeUnknown the same way for every vendor (reelgate.providers.http),
and answers are read into typed models with `parse`.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from reelgate.providers import http, transfer
from reelgate.providers.base import Provider, ProviderConfig, RetryLater, SubmitOutcomeUnknown

Model = TypeVar("Model", bound=BaseModel)


class HTTPProvider(Provider):
    """One vendor behind one HTTP API; the adapter adds only what is specific to the vendor."""

    default_base_url: ClassVar[str] = ""
    timeout: ClassVar[httpx.Timeout] = http.DEFAULT_TIMEOUT
    # Connection attempts repeated by the transport when nothing reached the vendor (never a sent request).
    connect_retries: ClassVar[int] = 0

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        headers = {**self.fixed_headers(), **(self.auth_headers(config.api_key) if config.api_key else {})}
        self.client = http.make_client(headers=headers, timeout=self.timeout, connect_retries=self.connect_retries)

    def api_urls(self) -> list[str]:
        return [self.base_url]

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """How the key travels; a bearer token unless the vendor says otherwise."""
        return {"Authorization": f"Bearer {api_key}"}

    def fixed_headers(self) -> dict[str, str]:
        """Headers every request carries (an API version, say)."""
        return {}

    def url(self, path: str) -> str:
        """`path` below the base URL; an absolute URL is used as it is."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def send(
        self, method: str, path: str, *, what: str, creates_job: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """The answer, unchecked; transport failures already mapped to intent."""
        return await transfer.send(self.client, method, self.url(path), what=what, creates_job=creates_job, **kwargs)

    async def call(
        self, method: str, path: str, *, what: str, creates_job: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """The JSON object of a 2xx answer; any other answer raised as RetryLater or ProviderRejected."""
        return await transfer.call(self.client, method, self.url(path), what=what, creates_job=creates_job, **kwargs)

    @staticmethod
    def parse(model: type[Model], data: Any, *, what: str, creates_job: bool = False) -> Model:
        """`data` read into a typed model. An answer of the wrong shape after a submit leaves the outcome
        unknown; elsewhere it is worth asking again."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            message = f"{what}: unexpected answer: {exc.errors()[0].get('msg', exc)} in {str(data)[:200]}"
            if creates_job:
                raise SubmitOutcomeUnknown(message) from exc
            raise RetryLater(message) from exc

    async def aclose(self) -> None:
        await self.client.aclose()
