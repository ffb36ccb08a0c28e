"""What a stored generation asked for, read back as the catalog's input: routing resolves it again for each route,
and the provider cost resolves it for the route that served the job."""

from __future__ import annotations

from reelgate.db.records import Generation
from reelgate.domain.catalog import GenerationInput

# A text job keeps a neutral duration and size it was never asked for; resolving them on a text model is refused.
_MEDIA_FIELDS = ("duration", "resolution", "aspect_ratio")


def asked_input(generation: Generation) -> GenerationInput:
    """The generation's request as given. Prompt enhancement is left off: reelgate enhances the prompt itself
    before any route is tried, so a route need not offer it."""
    params = dict(generation.params or {})
    if generation.kind == "text":
        params = {key: value for key, value in params.items() if key not in _MEDIA_FIELDS}
    return GenerationInput(
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        duration=params.get("duration"),
        resolution=params.get("resolution"),
        aspect_ratio=params.get("aspect_ratio"),
        seed=params.get("seed"),
        start_image=generation.start_upload_id is not None,
        end_image=generation.end_upload_id is not None,
        audio=bool(params.get("audio")),
        enhance_prompt=False,
        options=dict(params.get("options") or {}),
    )
