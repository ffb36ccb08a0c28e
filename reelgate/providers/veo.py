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
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.wire import Maybe, Text, WireModel

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


class VeoVideo(WireModel):
    uri: Text = None
    encodedVideo: Text = None  # noqa: N815 - the vendor's field name
    encoding: Text = None


class VeoSample(WireModel):
    video: Maybe[VeoVideo] = None


class VeoResult(WireModel):
    generatedSamples: Maybe[list[Maybe[VeoSample]]] = None  # noqa: N815 - the vendor's field name
    generatedVideos: Maybe[list[Maybe[VeoSample]]] = None  # noqa: N815
    raiMediaFilteredReasons: Maybe[list[Any]] = None  # noqa: N815

    def samples(self) -> list[VeoSample | None]:
        return list(self.generatedSamples or self.generatedVideos or [])


class VeoResponse(VeoResult):
    generateVideoResponse: Maybe[VeoResult] = None  # noqa: N815 - the vendor's field name

    def result(self) -> VeoResult:
        return self.generateVideoResponse or self


class VeoError(WireModel):
    message: Text = None
    status: Text = None


class VeoOperation(WireModel):
    """A long-running operation (docs/providers/veo.md#status-values)."""

    name: Text = None
    done: bool = False
    error: Maybe[VeoError] = None
    response: Maybe[VeoResponse] = None


class VeoProvider(HTTPProvider):
    name = "veo"
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def _path(self, path: str) -> str:
        return f"{API_VERSION}/{path}"

    async def submit(self, request: JobRequest) -> SubmitResult:
        what = "veo submit"
        model = request.model_ref.removeprefix("models/")
        path = self._path(f"models/{model}:predictLongRunning")
        body = await self.call("POST", path, what=what, creates_job=True, json=build_body(request))
        operation = self.parse(VeoOperation, body, what=what, creates_job=True)
        if not operation.name:
            raise SubmitOutcomeUnknown(f"{what}: no operation name in {body!r}")
        return SubmitResult(provider_job_id=operation.name, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        """Finished when `done`, with `error` or `response.generateVideoResponse.generatedSamples[].video`
        (docs/providers/veo.md#status-values)."""
        what = "veo status"
        body = await self.call("GET", self._path(provider_job_id), what=what)
        operation = self.parse(VeoOperation, body, what=what)
        job_id = provider_job_id
        if not operation.done:
            return ProviderUpdate(job_id, ProviderState.RUNNING, raw=body)
        if operation.error is not None:
            message = operation.error.message or operation.error.status or "failed"
            policy = http.is_content_policy_text(message)
            code = ProviderRejected.CONTENT_POLICY if policy else ProviderRejected.FAILED
            return ProviderUpdate(job_id, ProviderState.FAILED, error_code=code, error_message=message, raw=body)
        result = operation.response.result() if operation.response else VeoResult()
        samples = result.samples()
        if not samples:
            # A content filter ends the operation with no samples and its reasons
            # (docs/providers/veo.md#status-values).
            filtered = result.raiMediaFilteredReasons
            reasons = filtered or ["no video generated"]
            return ProviderUpdate(
                job_id,
                ProviderState.FAILED,
                error_code=ProviderRejected.CONTENT_POLICY if filtered else ProviderRejected.FAILED,
                error_message="; ".join(str(r) for r in reasons),
                raw=body,
            )
        video = (samples[0].video if samples[0] else None) or VeoVideo()
        return ProviderUpdate(
            job_id, ProviderState.SUCCEEDED, progress=100, output=await self._output(video), raw=_trim(body)
        )

    async def _output(self, video: VeoVideo) -> OutputRef:
        if video.encodedVideo is not None:
            return OutputRef(base64_data=video.encodedVideo, content_type=video.encoding or "video/mp4")
        match = _FILE_ID.search(video.uri or "")
        if match is None:
            raise RetryLater(f"veo: finished operation without a file: {video.model_dump(exclude_none=True)!r}")
        file_id = match.group(1)
        # The download needs the API key header, so the adapter fetches it (the services' URL fetch sends no
        # credentials); the file lands in the spool directory once (docs/providers/veo.md#output).
        dest = transfer.spool_dir(self.config.extra, self.name) / f"{file_id}.mp4"
        path = await transfer.spool(
            self.client,
            self.url(self._path(f"files/{file_id}:download?alt=media")),
            dest,
            what="veo download",
            max_bytes=transfer.max_bytes(self.config.extra),
        )
        return OutputRef(path=str(path), content_type="video/mp4")


def _trim(body: Mapping[str, Any]) -> dict[str, Any]:
    """Keep inline base64 video out of the stored raw payload."""
    text = str(body)
    return dict(body) if len(text) < 4096 else {"name": body.get("name"), "done": True, "trimmed": len(text)}
