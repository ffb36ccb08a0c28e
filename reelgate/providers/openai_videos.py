"""OpenAI Videos upstreams (LiteLLM, new-api, Poe, OpenAI itself): multipart create, polling, spooled content."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
from reelgate.providers.base import (
    JobRequest,
    OutputRef,
    Provider,
    ProviderConfig,
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.wire import Maybe, Number, Text, WireModel

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# docs/providers/openai-videos.md#status-values: the video object's status values.
_STATES = {
    "queued": ProviderState.QUEUED,
    "in_progress": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}
# Job ids of a per-model upstream carry the model ref, so status and cancel find the same upstream.
_SEP = "|"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class VideoError(WireModel):
    code: Text = None
    message: Text = None


class Video(WireModel):
    """The video object (docs/providers/openai-videos.md#status-values); its MP4 is fetched separately."""

    id: Text = None
    status: str = ""
    progress: Number = None
    error: Maybe[VideoError] = None


def parse_video(body: Mapping[str, Any], job_id: str | None = None) -> ProviderUpdate:
    """A video object without its output; the caller downloads `/content` on success."""
    video = HTTPProvider.parse(Video, body, what="videos status")
    state = _STATES.get(video.status)
    if not video.id or state is None:
        raise RetryLater(f"videos: unreadable video object (id={video.id!r}, status={video.status!r})")
    raw = dict(body)
    job_id = job_id or video.id
    if state is ProviderState.FAILED:
        error = video.error or VideoError()
        message = error.message or error.code or "failed"
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    progress = http.clamp_percent(video.progress)
    return ProviderUpdate(job_id, state, progress=100 if state is ProviderState.SUCCEEDED else progress, raw=raw)


class VideosUpstream:
    """One server of the OpenAI Videos shape: a base URL ending in /v1 and a bearer key."""

    def __init__(self, name: str, base_url: str, api_key: str | None, extra: Mapping[str, str]) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = http.make_client(headers=headers)
        self.extra = extra

    async def create(self, request: JobRequest, model: str) -> dict[str, Any]:
        """docs/providers/openai-videos.md#endpoints: multipart form; `size` is WxH (Poe and LiteLLM accept any size
        their model supports)."""
        form: dict[str, str] = {
            "model": model,
            "prompt": request.prompt,
            "seconds": str(request.duration),
            "size": f"{request.width}x{request.height}",
        }
        # Always multipart, as the SDK sends it (docs/providers/openai-videos.md#endpoints): text fields as (None,
        # value) parts.
        parts: list[tuple[str, Any]] = [(key, (None, value)) for key, value in form.items()]
        if request.start_image is not None:
            image = request.start_image
            extension = image.content_type.rpartition("/")[2] or "png"
            parts.append(("input_reference", (f"start.{extension}", image.data, image.content_type)))
        what = f"{self.name} create"
        url = f"{self.base_url}/videos"
        body = await transfer.call(self.client, "POST", url, what=what, creates_job=True, files=parts)
        if not HTTPProvider.parse(Video, body, what=what, creates_job=True).id:
            raise SubmitOutcomeUnknown(f"{what}: no video id in {body!r}")
        return body

    async def retrieve(self, video_id: str) -> dict[str, Any]:
        return await transfer.call(self.client, "GET", f"{self.base_url}/videos/{video_id}", what=f"{self.name} status")

    async def delete(self, video_id: str) -> None:
        """docs/providers/openai-videos.md#cancel: there is no cancel; DELETE removes the video (whether it stops a
        running job is unverified)."""
        try:
            await transfer.call(self.client, "DELETE", f"{self.base_url}/videos/{video_id}", what=f"{self.name} delete")
        except ProviderRejected as exc:
            if exc.code != ProviderRejected.NOT_FOUND:
                raise

    async def status(self, video_id: str, job_id: str) -> ProviderUpdate:
        body = await self.retrieve(video_id)
        update = parse_video(body, job_id)
        if update.state is not ProviderState.SUCCEEDED:
            return update
        # docs/providers/openai-videos.md#output: the MP4 is served at /content behind the same key, so it is fetched
        # here, not by URL.
        dest = transfer.spool_dir(self.extra, _SAFE_NAME.sub("_", self.name)) / f"{_SAFE_NAME.sub('_', video_id)}.mp4"
        path = await transfer.spool(
            self.client,
            f"{self.base_url}/videos/{video_id}/content?variant=video",
            dest,
            what=f"{self.name} content",
            headers={"Accept": "application/binary"},
            max_bytes=transfer.max_bytes(self.extra),
        )
        output = OutputRef(path=str(path), content_type="video/mp4")
        return ProviderUpdate(job_id, update.state, progress=100, output=output, raw=update.raw)

    async def aclose(self) -> None:
        await self.client.aclose()


class OpenAIVideosProvider(Provider):
    """Generic adapter. Upstream per catalog entry: config `extra["<model_ref>.base_url"]` and
    `extra["<model_ref>.api_key"]` override the provider-wide `base_url`/`api_key`; the video id of such a
    job is stored as `<model_ref>|<id>` so polling and cancel find the same server without the catalog."""

    name = "openai_videos"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._default = VideosUpstream(self.name, config.base_url or DEFAULT_BASE_URL, config.api_key, config.extra)
        self._per_model: dict[str, VideosUpstream] = {}

    def configured(self) -> bool:
        return bool(self.config.api_key) or any(k.endswith(".api_key") for k in self.config.extra)

    def _upstream(self, model_ref: str | None) -> VideosUpstream:
        if not model_ref or f"{model_ref}.base_url" not in self.config.extra:
            return self._default
        upstream = self._per_model.get(model_ref)
        if upstream is None:
            extra = self.config.extra
            upstream = self._per_model[model_ref] = VideosUpstream(
                f"{self.name}:{model_ref}",
                extra[f"{model_ref}.base_url"],
                extra.get(f"{model_ref}.api_key", self.config.api_key),
                extra,
            )
        return upstream

    def _split(self, provider_job_id: str) -> tuple[VideosUpstream, str]:
        model_ref, sep, video_id = provider_job_id.rpartition(_SEP)
        return (self._upstream(model_ref), video_id) if sep else (self._default, provider_job_id)

    async def submit(self, request: JobRequest) -> SubmitResult:
        upstream = self._upstream(request.model_ref)
        body = await upstream.create(request, request.model_ref)
        video_id = str(body["id"])
        job_id = video_id if upstream is self._default else f"{request.model_ref}{_SEP}{video_id}"
        return SubmitResult(provider_job_id=job_id, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        upstream, video_id = self._split(provider_job_id)
        return await upstream.status(video_id, provider_job_id)

    async def cancel(self, provider_job_id: str) -> None:
        upstream, video_id = self._split(provider_job_id)
        await upstream.delete(video_id)

    async def aclose(self) -> None:
        for upstream in [self._default, *self._per_model.values()]:
            await upstream.aclose()
