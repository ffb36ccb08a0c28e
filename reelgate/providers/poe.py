"""Poe adapter: media bots over the synchronous chat API, `/v1/videos` bots, and prompt enhancement."""

from __future__ import annotations

import hashlib

import httpx

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
from reelgate.providers.base import (
    HealthReport,
    JobRequest,
    OutputRef,
    ProviderConfig,
    ProviderRejected,
    ProviderUpdate,
    SubmitResult,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.openai_videos import VideosUpstream
from reelgate.providers.wire import Maybe, Text, WireModel

DEFAULT_BASE_URL = "https://api.poe.com/v1"
# docs/providers/poe.md#endpoints: the bots Poe serves in the OpenAI Videos format; `extra["videos_models"]` adds more.
VIDEOS_MODELS = frozenset({"Sora-2", "Sora-2-Pro", "Veo-2", "Veo-3", "Veo-3-Fast", "Veo-3.1", "Veo-3.1-Fast"})
# A media bot answers only when the video is done (no job id, no polling); 10 min covers a 15 s clip.
CHAT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
DEFAULT_ENHANCE_BOT = "GPT-4o-Mini"
ENHANCE_INSTRUCTION = (
    "Rewrite the user's idea as one vivid, concrete prompt for a text-to-video model: subject, action, "
    "setting, camera movement, lighting and style. Keep the user's language and intent. "
    "Answer with the prompt only, no preamble, at most 900 characters."
)
# Job ids: "chat:<url>" keeps a chat bot's video URL in the database itself (provider_job_id is 255
# characters); longer URLs are kept in memory under "chat#<sha256>". Plain ids are /v1/videos jobs.
CHAT_PREFIX, CHAT_REF_PREFIX, MAX_JOB_ID = "chat:", "chat#", 255


class ChatMessage(WireModel):
    content: Text = None


class ChatChoice(WireModel):
    message: Maybe[ChatMessage] = None


class ChatCompletion(WireModel):
    choices: Maybe[list[Maybe[ChatChoice]]] = None

    def text(self) -> str:
        choice = self.choices[0] if self.choices else None
        return (choice.message.content if choice and choice.message else None) or ""


class PoeProvider(HTTPProvider):
    name = "poe"
    default_base_url = DEFAULT_BASE_URL
    timeout = CHAT_TIMEOUT

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._videos = VideosUpstream(self.name, self.base_url, config.api_key, config.extra)
        extra_models = {m.strip() for m in config.extra.get("videos_models", "").split(",") if m.strip()}
        self._videos_models = VIDEOS_MODELS | extra_models
        self._long_urls: dict[str, str] = {}

    def uses_videos_api(self, model_ref: str) -> bool:
        return model_ref in self._videos_models

    async def _chat(self, model: str, messages: list[dict[str, str]], *, what: str, creates_job: bool) -> str:
        """docs/providers/poe.md#endpoints: `stream: false` as the docs advise for media bots; returns the first
        choice's text."""
        payload = {"model": model, "messages": messages, "stream": False}
        body = await self.call("POST", "chat/completions", what=what, creates_job=creates_job, json=payload)
        return self.parse(ChatCompletion, body, what=what, creates_job=creates_job).text()

    async def submit(self, request: JobRequest) -> SubmitResult:
        if self.uses_videos_api(request.model_ref):
            body = await self._videos.create(request, request.model_ref)
            return SubmitResult(provider_job_id=str(body["id"]), raw=body)
        text = await self._chat(
            request.model_ref, [{"role": "user", "content": request.prompt}], what="poe chat", creates_job=True
        )
        url = transfer.first_video_url(text)
        if url is None:
            # The call is done and billed; there is simply no video in the answer (docs/providers/poe.md#endpoints:
            # treat as failure).
            raise ProviderRejected(f"poe chat: no video URL in the reply: {text[:200]!r}")
        job_id = CHAT_PREFIX + url
        if len(job_id) > MAX_JOB_ID:
            job_id = CHAT_REF_PREFIX + hashlib.sha256(url.encode()).hexdigest()
            self._long_urls[job_id] = url
        return SubmitResult(provider_job_id=job_id, raw={"content": text, "video_url": url})

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        if provider_job_id.startswith(CHAT_PREFIX):
            url = provider_job_id[len(CHAT_PREFIX) :]
        elif provider_job_id.startswith(CHAT_REF_PREFIX):
            url = self._long_urls.get(provider_job_id, "")
            if not url:
                return ProviderUpdate(
                    provider_job_id,
                    ProviderState.FAILED,
                    error_code=ProviderRejected.FAILED,
                    error_message="poe chat: the video URL was lost in a restart",
                )
        else:
            return await self._videos.status(provider_job_id, provider_job_id)
        return ProviderUpdate(
            provider_job_id,
            ProviderState.SUCCEEDED,
            progress=100,
            output=OutputRef(url=url),
            raw={"video_url": url},
        )

    async def cancel(self, provider_job_id: str) -> None:
        """Chat jobs are already finished; /v1/videos jobs have only DELETE (docs/providers/openai-videos.md#cancel)."""
        if not provider_job_id.startswith((CHAT_PREFIX, CHAT_REF_PREFIX)):
            await self._videos.delete(provider_job_id)

    async def enhance_prompt(self, prompt: str) -> str:
        """A richer prompt from a Poe text bot (`extra["enhance_bot"]`); the original when the bot says nothing."""
        bot = self.config.extra.get("enhance_bot", DEFAULT_ENHANCE_BOT)
        messages = [
            {"role": "system", "content": ENHANCE_INSTRUCTION},
            {"role": "user", "content": prompt},
        ]
        text = (await self._chat(bot, messages, what="poe enhance", creates_job=False)).strip().strip('"')
        return text or prompt

    async def health(self) -> HealthReport:
        """`GET /v1/models` proves the key and host (the balance route is unverified,
        docs/providers/poe.md#cancel-progress-webhooks)."""
        if not self.configured():
            return HealthReport(healthy=False, detail="not configured")
        try:
            response = await self.client.get(self.url("models"))
        except httpx.HTTPError as exc:
            return HealthReport(healthy=False, detail=f"unreachable ({type(exc).__name__})")
        if response.status_code == 402 or http.is_out_of_credit_text(response.text):
            return HealthReport(healthy=False, detail="out of credit", out_of_credit=True)
        if response.status_code in (401, 403):
            return HealthReport(healthy=False, detail="auth")
        return HealthReport(healthy=response.status_code < 400, detail=f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await super().aclose()
        await self._videos.aclose()
