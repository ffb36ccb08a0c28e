"""/api/v1/videos in OpenRouter's shape, backed by the same services (and billing) as /api/v1/generations.

docs/providers/openrouter.md describes the protocol: submit, poll, download, and the models list.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from reelgate.api.deps import Ctx, CurrentUser
from reelgate.api.media_responses import serve_object
from reelgate.api.storable_text import first_problem
from reelgate.domain.errors import Conflict, ValidationFailed
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import generations, uploads, videos
from reelgate.services.context import ServiceContext
from reelgate.services.generations import GenerationOrder

from .errors import OpenRouterError, OpenRouterRoute
from .mapping import RESOLUTION_IN, job_out, sizes_of, video_models

router = APIRouter(prefix="/api/v1/videos", tags=["OpenRouter-compatible videos"], route_class=OpenRouterRoute)

_FIELDS = {
    "model",
    "prompt",
    "duration",
    "resolution",
    "aspect_ratio",
    "size",
    "seed",
    "generate_audio",
    "frame_images",
    "input_references",
    "callback_url",
    # Observability only at OpenRouter (never sent to a provider); accepted and not recorded here.
    "user",
    "session_id",
}
# OpenRouter fields reelgate cannot honour: refused by name rather than silently dropped.
_UNSUPPORTED = {
    "previous_job_id": "Continuing a previous job is not offered; submit a new video.",
    "provider": "Provider passthrough options are not offered; reelgate picks the provider from its catalog.",
    "creativity": "creativity applies to upscaling models, which reelgate does not offer.",
    "upscale_factor": "upscale_factor applies to upscaling models, which reelgate does not offer.",
    "trace": "Trace metadata is not offered.",
}
_TEXT_LIMITS = {"model": 80, "callback_url": 2048, "user": 256, "session_id": 256, "size": 32}
_SEED_MAX = 2**32 - 1
_FRAME_TYPES = {"first_frame": "start", "last_frame": "end"}


def _bad(message: str, field: str | None, code: str = "invalid_value") -> OpenRouterError:
    return OpenRouterError(400, message, field=field, code=code)


async def _read_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise _bad("The body is not valid JSON.", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object.", None, "invalid_json")
    found = first_problem(body)
    if found is not None:
        where, reason = found
        field = where.split(".", 1)[0].split("[", 1)[0] or None
        raise _bad(f"'{field or 'body'}' {reason}.", field)
    for key in body:
        if key in _UNSUPPORTED:
            raise _bad(_UNSUPPORTED[key], key, "unsupported_parameter")
        if key not in _FIELDS:
            raise _bad(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"'{name}' must be a non-empty string.", name)
    if name in _TEXT_LIMITS and len(value) > _TEXT_LIMITS[name]:
        raise _bad(f"'{name}' may be at most {_TEXT_LIMITS[name]} characters.", name)
    return value


def _whole(body: dict[str, Any], name: str, maximum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _bad(f"'{name}' must be a whole number from 0 to {maximum}.", name)
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise _bad(f"'{name}' must be true or false.", name)
    return value


def _shape(ctx: ServiceContext, model: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """resolution and aspect_ratio, from themselves or from `size` (which must agree with them when both come)."""
    resolution = _text(body, "resolution")
    resolution = RESOLUTION_IN.get(resolution, resolution) if resolution else None
    aspect_ratio = _text(body, "aspect_ratio")
    size = _text(body, "size")
    if size is None:
        return resolution, aspect_ratio
    spec = ctx.catalog.get(model)  # an unknown model is a 404
    offered = sizes_of(spec)
    wanted = size.strip().lower()
    if wanted not in offered:
        raise _bad(f"{spec.id} offers sizes {', '.join(offered)}; got {size!r}.", "size")
    sized_resolution, sized_ratio = offered[wanted]
    if (resolution and resolution != sized_resolution) or (aspect_ratio and aspect_ratio != sized_ratio):
        message = f"size {size} is {sized_resolution} at {sized_ratio}; it disagrees with resolution or aspect_ratio."
        raise _bad(message, "size")
    return sized_resolution, sized_ratio


async def _image(ctx: ServiceContext, user_id: str, url: str, field: str) -> str:
    """An image given as a data URL or an http(s) URL becomes an upload (the same checks as any upload)."""
    try:
        return (await uploads.upload_from_url(ctx, user_id, url, field)).id
    except ValidationFailed as exc:
        raise _bad(exc.message, field) from exc


def _image_url(item: Any, field: str) -> str:
    """The URL of one `{"type": "image_url", "image_url": {"url": ...}}` part."""
    if not isinstance(item, dict) or item.get("type") != "image_url":
        kind = item.get("type") if isinstance(item, dict) else None
        raise _bad(f"{field} accepts image_url parts only; got type {kind!r}.", field)
    inner = item.get("image_url")
    url = inner.get("url") if isinstance(inner, dict) else None
    if not isinstance(url, str) or not url:
        raise _bad(f"Each {field} entry needs image_url.url.", field)
    return url


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name) or []
    if not isinstance(value, list) or len(value) > 2:
        raise _bad(f"'{name}' must be a list of at most 2 entries.", name)
    return value


async def _frames(ctx: ServiceContext, user_id: str, body: dict[str, Any]) -> dict[str, str]:
    """frame_images → start and end image uploads; one image input_reference → the start image when no first
    frame is given (reelgate's models take reference images only as a start frame)."""
    urls: dict[str, str] = {}
    for item in _list(body, "frame_images"):
        url = _image_url(item, "frame_images")
        frame = _FRAME_TYPES.get(item.get("frame_type"))
        if frame is None:
            raise _bad("frame_type must be first_frame or last_frame.", "frame_images")
        if frame in urls:
            raise _bad(f"Only one {item['frame_type']} may be given.", "frame_images")
        urls[frame] = url
    references = _list(body, "input_references")
    if len(references) > 1:
        raise _bad("At most one input reference is accepted; it is used as the start image.", "input_references")
    if references:
        url = _image_url(references[0], "input_references")
        if "start" in urls:
            raise _bad("An input reference is used as the start image; give it or a first_frame.", "input_references")
        urls["start"] = url
    return {frame: await _image(ctx, user_id, url, "frame_images") for frame, url in urls.items()}


async def _order(ctx: ServiceContext, user_id: str, body: dict[str, Any]) -> GenerationOrder:
    model = _text(body, "model")
    if model is None:
        raise _bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    ctx.catalog.get(model)  # an unknown model is a 404 before any image is fetched
    prompt = _text(body, "prompt")
    resolution, aspect_ratio = _shape(ctx, model, body)
    duration = _whole(body, "duration", 3600)
    seed = _whole(body, "seed", _SEED_MAX)
    audio = _flag(body, "generate_audio")
    _text(body, "user"), _text(body, "session_id")
    callback_url = _text(body, "callback_url")
    images = await _frames(ctx, user_id, body)
    return GenerationOrder(
        model=model,
        prompt=prompt,
        duration=duration,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        seed=seed,
        start_image=images.get("start"),
        end_image=images.get("end"),
        audio=audio,
        callback_url=callback_url,
    )


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _credit_value(ctx: ServiceContext) -> float:
    return float(ctx.catalog.credit_unit.value)


_CREATE_BODY = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": {"type": "string", "maxLength": 80},
        "prompt": {"type": "string"},
        "duration": {"type": "integer", "minimum": 0},
        "resolution": {"type": "string", "examples": ["720p", "1080p"]},
        "aspect_ratio": {"type": "string", "examples": ["16:9"]},
        "size": {"type": "string", "examples": ["1280x720"]},
        "seed": {"type": "integer", "minimum": 0, "maximum": _SEED_MAX},
        "generate_audio": {"type": "boolean"},
        "frame_images": {"type": "array", "maxItems": 2, "items": {"type": "object"}},
        "input_references": {"type": "array", "maxItems": 1, "items": {"type": "object"}},
        "callback_url": {"type": "string", "maxLength": 2048},
        "user": {"type": "string", "maxLength": 256},
        "session_id": {"type": "string", "maxLength": 256},
    },
    "additionalProperties": False,
}


@router.get("/models")
async def list_video_models(ctx: Ctx) -> dict[str, Any]:
    """The catalog's video models with what each accepts and its prices in credits."""
    return {"data": video_models(ctx)}


@router.post(
    "",
    status_code=202,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _CREATE_BODY}}}},
)
async def create_video(request: Request, user: CurrentUser, ctx: Ctx) -> JSONResponse:
    """Submit a video; poll `polling_url` until it is completed, failed, cancelled or expired."""
    body = await _read_json(request)
    order = await _order(ctx, user.id, body)
    generation, _ = await generations.create_generation(ctx, user.id, order)
    return JSONResponse(job_out(generation, _base_url(request), _credit_value(ctx)), status_code=202)


@router.get("/{job_id}")
async def get_video(job_id: str, request: Request, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    generation = await videos.get_video(ctx, user.id, job_id)
    return job_out(generation, _base_url(request), _credit_value(ctx))


@router.get("/{job_id}/content", response_class=Response)
async def get_video_content(
    job_id: str,
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    index: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The video's bytes, streamed from storage with Range support; a job makes one video (index 0)."""
    generation = await videos.get_video(ctx, user.id, job_id)
    if generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
        raise Conflict(
            "This video is not completed yet.", code="video_not_ready", details={"status": generation.status}
        )
    if index != 0:
        raise OpenRouterError(404, f"This job has one output (index 0); there is no index {index}.", field="index")
    extension = generation.output_key.rsplit(".", 1)[-1]
    content_type = generation.output_content_type or "video/mp4"
    return await serve_object(
        request,
        ctx.store,
        generation.output_key,
        content_type=content_type,
        filename=f"{generation.id}.{extension}",
        download=False,
    )
