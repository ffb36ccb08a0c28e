"""Signed input links: a short-lived URL of reelgate's own through which a provider fetches one image of a job.

A link names a generation, one of its uploads (its start or end image) and an expiry, signed with the server's key
(services/signing.py). It opens only that upload, only while the signature matches, the expiry has not passed and
the generation is still running and still uses that upload; anything else reads as not found. The object served
is the upload row's own key: nothing in the URL names an object.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from reelgate.db.queries.generations import generation_by_id
from reelgate.db.queries.uploads import upload_by_id
from reelgate.db.records import Generation, Upload
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound
from reelgate.domain.jobs import is_terminal
from reelgate.services import signing
from reelgate.services.context import ServiceContext

# However long the model's deadline, a link lasts at most this long: a provider fetches its input when the job
# starts, and a leaked link stops working soon.
MAX_LIFETIME = timedelta(hours=1)
_PURPOSE = "input-link"
_MAX_PART = 100  # ids and expiries are far shorter; longer values are refused before any work


def _message(generation_id: str, upload_id: str, expires: int) -> str:
    return f"{generation_id}:{upload_id}:{expires}"


def expiry_for(generation: Generation, now: datetime) -> datetime:
    """The model's deadline, or an hour from now when that comes first."""
    return min(generation.deadline_at, now + MAX_LIFETIME)


def input_url(ctx: ServiceContext, generation: Generation, upload_id: str, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    query = {
        "g": generation.id,
        "expires": str(expires),
        "signature": signing.sign(ctx, _PURPOSE, _message(generation.id, upload_id, expires)),
    }
    return f"{ctx.config.public_url}/media/inputs/{upload_id}?{urlencode(query)}"


def _checked(ctx: ServiceContext, upload_id: str, generation_id: str, expires: str, signature: str) -> bool:
    if any(len(part) > _MAX_PART for part in (upload_id, generation_id, expires, signature)):
        return False
    # isdigit() alone lets through digits int() cannot read ("²"): ASCII only.
    if not (expires.isascii() and expires.isdigit()) or int(expires) <= ctx.clock().timestamp():
        return False
    return signing.verify(ctx, _PURPOSE, _message(generation_id, upload_id, int(expires)), signature)


async def open_input(ctx: ServiceContext, upload_id: str, generation_id: str, expires: str, signature: str) -> Upload:
    """The upload a valid, live link names; NotFound for a forged, altered or expired link, or a finished job."""
    if not _checked(ctx, upload_id, generation_id, expires, signature):
        raise NotFound("This link does not exist or has expired.")

    def find(tx: Tx) -> Upload | None:
        generation = generation_by_id(tx, generation_id)
        if generation is None or is_terminal(generation.status) or generation.deleted_at is not None:
            return None
        if upload_id not in (generation.start_upload_id, generation.end_upload_id):
            return None
        upload = upload_by_id(tx, upload_id)
        # The job's uploads are its owner's (checked when it was created); checked again, as every lookup is scoped.
        return upload if upload is not None and upload.user_id == generation.user_id else None

    upload = await ctx.db.read(find)
    if upload is None:
        raise NotFound("This link does not exist or has expired.")
    return upload
