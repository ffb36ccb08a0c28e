"""Poe adapter: media bots over the synchronous chat API, `/v1/videos` bots, text bots, and prompt enhancement."""

from __future__ import annotations

import base64
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
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.openai_videos import VideosUpstream
from reelgate.providers.wire import Maybe, Number, Text, WireModel

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
# A text model's job id: its completion arrives with the submit's answer, so nothing is looked up by it later.
TEXT_PREFIX = "text:"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


class ChatMessage(WireModel):
    content: Text = None


class ChatChoice(WireModel):
    message: Maybe[ChatMessage] = None
    finish_reason: Text = None


class ChatUsage(WireModel):
    prompt_tokens: Number = None
    completion_tokens: Number = None


class ChatCompletion(WireModel):
    id: Text = None
    choices: Maybe[list[Maybe[ChatChoice]]] = None
    usage: Maybe[ChatUsage] = None

    def finish_reason(self) -> str | None:
        choice = self.choices[0] if self.choices else None
        return choice.finish_reason if choice else None

    def usage_counts(self) -> dict[str, int] | None:
        """docs/providers/poe.md#text-bots: the tokens Poe counted, which per-token prices are charged on."""
        usage = self.usage
        if usage is None or usage.prompt_tokens is None or usage.completion_tokens is None:
            return None
        return {"input_tokens": int(usage.prompt_tokens), "output_tokens": int(usage.completion_tokens)}

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

    async def _completion(
        self, model: str, messages: list[dict[str, str]], *, what: str, creates_job: bool, max_tokens: int | None = None
    ) -> ChatCompletion:
        """docs/providers/poe.md#endpoints: `stream: false` as the docs advise for media bots (and so that the
        answer carries `usage`)."""
        payload: dict[str, object] = {"model": model, "messages": messages, "stream": False}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        body = await self.call("POST", "chat/completions", what=what, creates_job=creates_job, json=payload)
        return self.parse(ChatCompletion, body, what=what, creates_job=creates_job)

    async def _chat(self, model: str, messages: list[dict[str, str]], *, what: str, creates_job: bool) -> str:
        """The first choice's text."""
        return (await self._completion(model, messages, what=what, creates_job=creates_job)).text()

    async def _submit_text(self, request: JobRequest) -> SubmitResult:
        """A text bot answers within the call: the job is done when it returns, and its completion is the output.
        A call whose answer was lost started no job that could be looked up or run on, so it is asked again
        (Poe may bill that call; the user pays once)."""
        messages = [{"role": "user", "content": request.prompt}]
        if request.system_prompt:
            messages.insert(0, {"role": "system", "content": request.system_prompt})
        try:
            completion = await self._completion(
                request.model_ref, messages, what="poe text", creates_job=True, max_tokens=request.max_output_tokens
            )
        except SubmitOutcomeUnknown as exc:
            raise RetryLater(str(exc)) from exc
        text = completion.text()
        if not text.strip():
            raise ProviderRejected("poe text: the bot answered with no text")
        job_id = TEXT_PREFIX + (completion.id or request.generation_id)[: MAX_JOB_ID - len(TEXT_PREFIX)]
        raw = {"usage": completion.usage_counts(), "finish_reason": completion.finish_reason()}
        output = OutputRef(
            base64_data=base64.b64encode(text.encode("utf-8")).decode("ascii"), content_type=TEXT_CONTENT_TYPE
        )
        update = ProviderUpdate(job_id, ProviderState.SUCCEEDED, progress=100, output=output, raw=raw)
        return SubmitResult(provider_job_id=job_id, raw=raw, update=update)

    async def submit(self, request: JobRequest) -> SubmitResult:
        if request.kind == "text":
            return await self._submit_text(request)
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
        if provider_job_id.startswith(TEXT_PREFIX):
            # Its completion came with the submit's answer and was recorded then; there is nothing to ask Poe.
            return ProviderUpdate(
                provider_job_id,
                ProviderState.FAILED,
                error_code=ProviderRejected.FAILED,
                error_message="poe text: the completion was not recorded with its submit",
            )
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
        if not provider_job_id.startswith((CHAT_PREFIX, CHAT_REF_PREFIX, TEXT_PREFIX)):
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
