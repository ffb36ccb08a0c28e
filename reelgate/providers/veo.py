"""Google Veo adapter (Gemini API): predictLongRunning operations, polling, and `files/{id}:download`."""

from __future__ import annotations

import base64
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

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
# docs/providers/veo.md#output: the SDK takes the file id from the URI with this pattern and ignores the URI's host,
# always downloading from the configured base URL; we do the same, so our key never goes to another host.
_FILE_ID = re.compile(r"files/([a-z0-9]+)")


def _image(image: Any) -> dict[str, str]:
    return {"bytesBase64Encoded": base64.b64encode(image.data).decode("ascii"), "mimeType": image.content_type}


def build_body(request: JobRequest) -> dict[str, Any]:
    """The body as the SDK's `_GenerateVideosParameters_to_mldev` builds it (docs/providers/veo.md#endpoints).
    The Gemini API refuses `seed` and
    `generate_audio` (Vertex only), so they are not sent; Veo 3 renders audio by itself."""
    instance: dict[str, Any] = {"prompt": request.prompt}
    if request.start_image is not None:
        instance["image"] = _image(request.start_image)
    if request.end_image is not None:
        instance["lastFrame"] = _image(request.end_image)
    parameters: dict[str, Any] = {
        "sampleCount": 1,
        "durationSeconds": request.duration,
        "aspectRatio": request.aspect_ratio,
        "resolution": request.resolution,
        "negativePrompt": request.negative_prompt,
    }
    for key in ("personGeneration", "enhancePrompt"):
        if key in request.options:
            parameters[key] = request.options[key]
    return {"instances": [instance], "parameters": {k: v for k, v in parameters.items() if v is not None}}


def _samples(body: Mapping[str, Any]) -> tuple[list[Any], Mapping[str, Any]]:
    response = body.get("response") if isinstance(body.get("response"), Mapping) else {}
    wrapped = response.get("generateVideoResponse")
    result = wrapped if isinstance(wrapped, Mapping) else response
    samples = result.get("generatedSamples") or result.get("generatedVideos") or []
    return (samples if isinstance(samples, list) else []), result


class VeoProvider(Provider):
    name = "veo"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        headers = {"x-goog-api-key": config.api_key} if config.api_key else {}
        self._client = http.make_client(headers=headers)
        self._base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _url(self, path: str) -> str:
        return f"{self._base_url}/{API_VERSION}/{path}"

    async def submit(self, request: JobRequest) -> SubmitResult:
        what = "veo submit"
        model = request.model_ref.removeprefix("models/")
        url = self._url(f"models/{model}:predictLongRunning")
        body = await transfer.call(self._client, "POST", url, what=what, creates_job=True, json=build_body(request))
        if not body.get("name"):
            raise SubmitOutcomeUnknown(f"{what}: no operation name in {body!r}")
        return SubmitResult(provider_job_id=str(body["name"]), raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        """docs/providers/veo.md#status-values: `done` with `error` or
        `response.generateVideoResponse.generatedSamples[].video`."""
        body = await transfer.call(self._client, "GET", self._url(provider_job_id), what="veo status")
        job_id = provider_job_id
        if not body.get("done"):
            return ProviderUpdate(job_id, ProviderState.RUNNING, raw=body)
        error = body.get("error")
        if isinstance(error, Mapping):
            message = str(error.get("message") or error.get("status") or "failed")
            policy = http.is_content_policy_text(message)
            code = ProviderRejected.CONTENT_POLICY if policy else ProviderRejected.FAILED
            return ProviderUpdate(job_id, ProviderState.FAILED, error_code=code, error_message=message, raw=body)
        samples, result = _samples(body)
        if not samples:
            # docs/providers/veo.md#status-values: a content filter ends the operation with no samples and the reasons.
            filtered = result.get("raiMediaFilteredReasons")
            reasons = filtered or ["no video generated"]
            return ProviderUpdate(
                job_id,
                ProviderState.FAILED,
                error_code=ProviderRejected.CONTENT_POLICY if filtered else ProviderRejected.FAILED,
                error_message="; ".join(str(r) for r in reasons),
                raw=body,
            )
        video = samples[0].get("video") if isinstance(samples[0], Mapping) else None
        video = video if isinstance(video, Mapping) else {}
        return ProviderUpdate(
            job_id, ProviderState.SUCCEEDED, progress=100, output=await self._output(video, job_id), raw=_trim(body)
        )

    async def _output(self, video: Mapping[str, Any], job_id: str) -> OutputRef:
        if isinstance(video.get("encodedVideo"), str):
            return OutputRef(base64_data=video["encodedVideo"], content_type=str(video.get("encoding") or "video/mp4"))
        match = _FILE_ID.search(str(video.get("uri") or ""))
        if match is None:
            raise RetryLater(f"veo: finished operation without a file: {video!r}")
        file_id = match.group(1)
        # docs/providers/veo.md#output: the download needs the API key header, so the adapter fetches it (the services'
        # URL fetch sends no credentials); the file lands in the spool directory once.
        dest = transfer.spool_dir(self.config.extra, self.name) / f"{file_id}.mp4"
        path = await transfer.spool(
            self._client,
            self._url(f"files/{file_id}:download?alt=media"),
            dest,
            what="veo download",
            max_bytes=transfer.max_bytes(self.config.extra),
        )
        return OutputRef(path=str(path), content_type="video/mp4")

    async def aclose(self) -> None:
        await self._client.aclose()


def _trim(body: Mapping[str, Any]) -> dict[str, Any]:
    """Keep inline base64 video out of the stored raw payload."""
    text = str(body)
    return dict(body) if len(text) < 4096 else {"name": body.get("name"), "done": True, "trimmed": len(text)}
