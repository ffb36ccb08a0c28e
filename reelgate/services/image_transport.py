"""How a job's start and end images travel to the provider: inline, or as a signed input link of reelgate's own.

An image goes by link when the provider takes only links, or when it takes both and the image is larger than the
provider takes inline (RunPod: a /run body of 10 MB holds about 7.4 MB of image as base64). A link needs the
server's public URL to be reachable from the provider; when it is not (a loopback address in embedded mode) an
image too large to send inline fails the job at once with a clear reason and its credits released, rather than
a request the provider refuses or a link it can never open.
"""

from __future__ import annotations

import dataclasses

from reelgate.db.records import Generation
from reelgate.providers.base import ImageInput, ImageTransport, JobRequest, Provider, ProviderRejected
from reelgate.services import input_links
from reelgate.services.context import ServiceContext


def _needs_link(provider: Provider, image: ImageInput) -> bool:
    if provider.image_transport is ImageTransport.URL:
        return True
    if provider.image_transport is ImageTransport.EITHER:
        limit = provider.max_inline_image_bytes
        return limit is not None and len(image.data) > limit
    return False


def _unreachable(ctx: ServiceContext, provider: Provider, image: ImageInput) -> ProviderRejected:
    limit = provider.max_inline_image_bytes or 0
    return ProviderRejected(
        f"This image ({len(image.data) / 1e6:.1f} MB) is larger than {provider.name} takes inside a request "
        f"({limit / 1e6:.1f} MB), and {provider.name} cannot fetch it from this server: its public URL "
        f"({ctx.config.public_url}) is not reachable from outside. Use a smaller image, or set REELGATE_PUBLIC_URL "
        "to an address the provider can reach.",
        code=ProviderRejected.BAD_INPUT,
    )


def _carried(
    ctx: ServiceContext, provider: Provider, generation: Generation, upload_id: str | None, image: ImageInput | None
) -> ImageInput | None:
    if image is None or upload_id is None or not _needs_link(provider, image):
        return image
    if not provider.can_fetch(ctx.config.public_url):
        if provider.image_transport is ImageTransport.URL:
            # No size limit is known: the adapter sends a data URL, as before links existed, and the vendor judges it.
            return image
        raise _unreachable(ctx, provider, image)
    expires_at = input_links.expiry_for(generation, ctx.clock())
    return dataclasses.replace(image, url=input_links.input_url(ctx, generation, upload_id, expires_at))


def with_image_transport(
    ctx: ServiceContext, provider: Provider, generation: Generation, request: JobRequest
) -> JobRequest:
    """`request` with a signed link on each image that must travel by address; ProviderRejected when one must but
    cannot."""
    start = _carried(ctx, provider, generation, generation.start_upload_id, request.start_image)
    end = _carried(ctx, provider, generation, generation.end_upload_id, request.end_image)
    if start is request.start_image and end is request.end_image:
        return request
    return dataclasses.replace(request, start_image=start, end_image=end)
