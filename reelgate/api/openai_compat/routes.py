"""/v1/videos in the OpenAI shape, backed by the same services (and billing) as /api/v1/generations."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from reelgate.api.deps import Ctx, CurrentUser
from reelgate.api.media_responses import serve_object
from reelgate.api.storable_text import first_problem
from reelgate.domain.errors import Conflict, NotFound, ValidationFailed
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import generations, uploads, videos
from reelgate.services.context import ServiceContext
from reelgate.services.generations import GenerationOrder

from .errors import OpenAIError, OpenAIRoute
from .mapping import seconds_of, shown, size_of, video_out

router = APIRouter(prefix="/v1/videos", tags=["OpenAI-compatible videos"], route_class=OpenAIRoute)

# The SDK's poll helper waits this long between retrievals when the header is present (default 1 s).
POLL_AFTER_MS = "500"
_FIELDS = {"prompt", "model", "seconds", "size", "input_reference"}
# reelgate's own fields, accepted too (the SDK sends them with extra_body).
_EXTENSIONS = {"negative_prompt", "seed", "callback_url"}
_REFERENCE = "input_reference"
_SEED_MAX = 2**32 - 1
_TEXT_LIMITS = {"model": 80, "negative_prompt": 4000, "callback_url": 2048}


async def _read_body(request: Request) -> tuple[dict[str, Any], UploadFile | None]:
    """JSON or multipart, as sent, with every string in it storable (no NUL, no unpaired surrogate)."""
    body, upload = await _parse_body(request)
    found = first_problem(body)
    if found is None and upload is not None:
        found = first_problem(upload.filename or "", _REFERENCE)
    if found is not None:
        if upload is not None:
            await upload.close()
        param, reason = found
        param = param.split(".", 1)[0].split("[", 1)[0] or None
        raise OpenAIError(400, f"'{param or 'body'}' {reason}.", param=param, code="invalid_value")
    return body, upload


async def _parse_body(request: Request) -> tuple[dict[str, Any], UploadFile | None]:
    """JSON or multipart, as sent; a nested `input_reference[image_url]` form field becomes a dict."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise OpenAIError(400, "The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise OpenAIError(400, "The body must be a JSON object.")
        return body, None
    form = await request.form(max_files=1, max_fields=32)
    fields: dict[str, Any] = {}
    upload: UploadFile | None = None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != _REFERENCE:
                raise OpenAIError(400, f"Unexpected file field '{key}'.", param=key)
            upload = value
        elif key.startswith(f"{_REFERENCE}[") and key.endswith("]"):
            fields.setdefault(_REFERENCE, {})[key[len(_REFERENCE) + 1 : -1]] = value
        else:
            fields[key] = value
    return fields, upload


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        message = "Missing required parameter: 'prompt'."
        raise OpenAIError(400, message, param="prompt", code="missing_required_parameter")
    return prompt


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise OpenAIError(400, f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")


async def _reference(ctx: ServiceContext, user_id: str, given: Any, upload: UploadFile | None) -> str | None:
    """The upload id of the start image: a file, an upload id (`file_id`) or an `image_url`."""
    if upload is not None:
        data = await upload.read(ctx.config.max_upload_bytes + 1)
        return (await uploads.create_upload(ctx, user_id, data, upload.filename or "")).id
    if given is None or given == "":
        return None
    if isinstance(given, str):
        given = {"image_url": given}
    if not isinstance(given, dict):
        raise OpenAIError(400, "input_reference must be a file, {'image_url'} or {'file_id'}.", param=_REFERENCE)
    file_id, url = given.get("file_id"), given.get("image_url") or ""
    if file_id:
        if not isinstance(file_id, str) or len(file_id) > 40:
            raise OpenAIError(400, "input_reference.file_id must be an upload id.", param=_REFERENCE)
        return file_id
    if not isinstance(url, str):
        raise OpenAIError(400, "input_reference.image_url must be a URL string.", param=_REFERENCE)
    if not url:
        raise OpenAIError(400, "input_reference needs an image_url or a file_id.", param=_REFERENCE)
    try:
        return (await uploads.upload_from_url(ctx, user_id, url, _REFERENCE)).id
    except ValidationFailed as exc:  # a data URL that is not base64, an address the SSRF guard refuses, ...
        raise OpenAIError(400, exc.message, param=_REFERENCE) from exc


def _default_model(ctx: ServiceContext, with_image: bool) -> str:
    """OpenAI defaults to its own model; we default to the catalog's first available one of the right kind."""
    kind = "i2v" if with_image else "t2v"
    for spec in ctx.catalog.models:
        if spec.kind == kind and generations.model_available(ctx, spec)[0]:
            return spec.id
    raise OpenAIError(400, f"No {kind} model is available; name one in 'model'.", param="model")


def _optional_int(value: Any, name: str, maximum: int) -> int | None:
    """A whole number from 0 to `maximum`, as a JSON number or a form string; anything else is a 400."""
    if value is None or value == "":
        return None
    problem = OpenAIError(400, f"'{name}' must be a whole number from 0 to {maximum}; got {shown(value)}.", param=name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise problem
    try:
        number = int(value)
    except ValueError:  # also a string of more digits than Python converts
        raise problem from None
    if not 0 <= number <= maximum:
        raise problem
    return number


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OpenAIError(400, f"'{name}' must be a string; got {shown(value)}.", param=name, code="invalid_type")
    if len(value) > _TEXT_LIMITS[name]:
        raise OpenAIError(400, f"'{name}' may be at most {_TEXT_LIMITS[name]} characters.", param=name)
    return value


async def _order(ctx: ServiceContext, user_id: str, body: dict[str, Any], upload: UploadFile | None) -> GenerationOrder:
    _check_fields(body, _FIELDS | _EXTENSIONS)
    prompt = _prompt(body)
    with_image = upload is not None or bool(body.get(_REFERENCE))
    model = _optional_text(body, "model") or _default_model(ctx, with_image)
    spec = ctx.catalog.get(model)  # an unknown model is a 404 model_not_found
    resolution, aspect_ratio = size_of(spec, body.get("size"))
    start_image = await _reference(ctx, user_id, body.get(_REFERENCE), upload)
    return GenerationOrder(
        model=model,
        prompt=prompt,
        negative_prompt=_optional_text(body, "negative_prompt"),
        duration=seconds_of(body.get("seconds")),
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        seed=_optional_int(body.get("seed"), "seed", _SEED_MAX),
        start_image=start_image,
        callback_url=_optional_text(body, "callback_url"),
    )


def _video_response(payload: dict[str, Any]) -> JSONResponse:
    headers = {"openai-poll-after-ms": POLL_AFTER_MS} if payload["status"] in ("queued", "in_progress") else {}
    return JSONResponse(payload, headers=headers)


# The bodies are read by hand (JSON or multipart, as OpenAI's SDK sends them); these describe them for /docs
# and for clients that generate code from the schema.
_CREATE_BODY = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "model": {"type": "string", "maxLength": 80},
        "seconds": {"type": "string", "examples": ["4", "8"]},
        "size": {"type": "string", "examples": ["1280x720"]},
        "input_reference": {
            "type": "object",
            "properties": {"image_url": {"type": "string"}, "file_id": {"type": "string", "maxLength": 40}},
        },
        "negative_prompt": {"type": "string", "maxLength": _TEXT_LIMITS["negative_prompt"]},
        "seed": {"type": "integer", "minimum": 0, "maximum": _SEED_MAX},
        "callback_url": {"type": "string", "maxLength": _TEXT_LIMITS["callback_url"]},
    },
    "additionalProperties": False,
}
_REMIX_BODY = {
    "type": "object",
    "required": ["prompt"],
    "properties": {"prompt": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post("", openapi_extra=_json_body(_CREATE_BODY))
async def create_video(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """Create a video: JSON, or multipart with `input_reference` as a file (image to video)."""
    body, upload = await _read_body(request)
    try:
        order = await _order(ctx, user.id, body, upload)
    finally:
        if upload is not None:
            await upload.close()
    generation, _ = await generations.create_generation(ctx, user.id, order, idempotency_key=idempotency_key)
    return _video_response(video_out(generation))


@router.get("")
async def list_videos(
    user: CurrentUser,
    ctx: Ctx,
    after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    rows, has_more = await videos.list_videos(ctx, user.id, after=after, limit=limit, descending=order == "desc")
    remixes = await videos.remix_sources(ctx, [g.id for g in rows])
    data = [video_out(g, remixes.get(g.id)) for g in rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


@router.get("/{video_id}")
async def retrieve_video(video_id: str, user: CurrentUser, ctx: Ctx) -> JSONResponse:
    generation, remixed_from = await videos.get_video_and_source(ctx, user.id, video_id)
    return _video_response(video_out(generation, remixed_from))


@router.delete("/{video_id}")
async def delete_video(video_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """A running video is canceled (and refunded) first."""
    await videos.delete_video(ctx, user.id, video_id)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get("/{video_id}/content", response_class=Response)
async def download_content(
    video_id: str,
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> Response:
    """Streamed from storage with Range support; never buffered whole, never compressed."""
    generation = await videos.get_video(ctx, user.id, video_id)
    if generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
        raise Conflict(
            "This video is not completed yet.", code="video_not_ready", details={"status": generation.status}
        )
    if variant == "spritesheet":
        # A grid of evenly spaced frames, made when the video was stored; older videos have none.
        key = await videos.spritesheet_of(ctx, generation)
        content_type, filename = "image/jpeg", f"{generation.id}-spritesheet.jpg"
    elif variant == "thumbnail":
        if not generation.thumbnail_key:
            raise NotFound("This video has no thumbnail.")
        key, content_type, filename = generation.thumbnail_key, "image/jpeg", f"{generation.id}.jpg"
    else:
        extension = generation.output_key.rsplit(".", 1)[-1]
        key, filename = generation.output_key, f"{generation.id}.{extension}"
        content_type = generation.output_content_type or "video/mp4"
    return await serve_object(request, ctx.store, key, content_type=content_type, filename=filename, download=False)


@router.post("/{video_id}/remix", openapi_extra=_json_body(_REMIX_BODY))
async def remix_video(
    video_id: str,
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """A new video with the source's model and settings and a new prompt."""
    body, upload = await _read_body(request)
    if upload is not None:
        await upload.close()
        raise OpenAIError(400, "A remix takes only a prompt.", param=_REFERENCE)
    _check_fields(body, {"prompt"})
    prompt = _prompt(body)
    generation = await videos.remix_video(ctx, user.id, video_id, prompt, idempotency_key=idempotency_key)
    return _video_response(video_out(generation, video_id))
