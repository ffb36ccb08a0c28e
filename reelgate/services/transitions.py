"""The one place a generation's status changes: compare-and-set, an event row, and settlement on terminal.

These run inside a write transaction (`ctx.db.write(...)`): they take the transaction's Tx, never a context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reelgate.db.queries import generations as generation_queries
from reelgate.db.queries.inbox import ChangeIfStillSent
from reelgate.db.queries.ledger import settle_hold, settle_hold_in_part
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.jobs import TERMINAL_STATES, GenerationStatus, ProviderState, allowed_sources, settles_by_capture
from reelgate.providers.base import OutputRef, ProviderUpdate
from reelgate.services import events

log = logging.getLogger("reelgate.jobs")


@dataclass(frozen=True)
class PartialCapture:
    """A success that costs less than its hold (a per-token text job): `charged` of `held` is captured."""

    charged: int
    held: int


def transition(
    tx: Tx,
    generation_id: str,
    target: GenerationStatus,
    *,
    now: datetime,
    from_states: frozenset[GenerationStatus] | None = None,
    detail: Mapping[str, Any] | None = None,
    increments: tuple[str, ...] = (),
    partial: PartialCapture | None = None,
    **fields: Any,
) -> Generation | None:
    """Moves the generation to `target` if it is in an allowed state; None (and no change) otherwise.

    Entering a terminal state settles the credit hold in the same transaction: capture on success, release
    otherwise, or with `partial` a capture of part and a release of the rest. The ledger's unique settlement
    index makes a second settlement impossible."""
    if partial is not None and target is not GenerationStatus.SUCCEEDED:
        raise ValueError("only a success captures part of a hold")
    sources = from_states if from_states is not None else allowed_sources(target)
    values: dict[str, Any] = {"status": target.value, "updated_at": now, **fields}
    copies: dict[str, str] = {}
    if target in TERMINAL_STATES:
        values.setdefault("completed_at", now)
        values.update(lease_owner=None, lease_until=None, next_poll_at=None)
        # What the hold became, recorded by the same compare-and-set that ends the job (so exactly once).
        copies = {"credits_charged" if settles_by_capture(target) else "credits_refunded": "credits_held"}
        if partial is not None:
            copies = {}
            values.update(credits_charged=partial.charged, credits_refunded=partial.held - partial.charged)
    event = _event(sources, target, detail, now)
    generation = generation_queries.change_status(
        tx, generation_id, sources, values, event=event, increments=increments, copies=copies
    )
    if generation is None:
        return None
    if partial is not None:
        settle_hold_in_part(
            tx, generation.account_id, generation.credits_held, partial.charged, generation_id=generation.id
        )
        events.record_terminal_event(tx, generation)
    elif target in TERMINAL_STATES:
        settle_hold(
            tx,
            generation.account_id,  # the account that held: the owner's own, or an organization's wallet
            generation.credits_held,
            generation_id=generation.id,
            capture=settles_by_capture(target),
        )
        events.record_terminal_event(tx, generation)
    _log_change(generation_id, target.value)
    return generation


def _event(
    sources: frozenset[GenerationStatus], target: GenerationStatus, detail: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    previous = next(iter(sources)).value if len(sources) == 1 else None
    return {"from_status": previous, "to_status": target.value, "detail": detail or {}, "at": now}


def _log_change(generation_id: str, status: str) -> None:
    log.info("generation %s -> %s", generation_id, status, extra={"generation_id": generation_id})


def fail(
    tx: Tx,
    generation_id: str,
    *,
    now: datetime,
    code: str,
    message: str,
    target: GenerationStatus = GenerationStatus.FAILED,
) -> Generation | None:
    return transition(
        tx, generation_id, target, now=now, error_code=code, error_message=message[:2000], detail={"code": code}
    )


_STORING_FROM = frozenset({GenerationStatus.SUBMITTING, GenerationStatus.PROCESSING})


def _stored_fields(update_: ProviderUpdate, raw: dict[str, Any]) -> dict[str, Any]:
    """What a success with its video sets besides the status (the download step takes the video from here)."""
    return {
        "needs_review": False,
        "raw_provider": {"output": _output_to_json(update_.output), "payload": raw},
        "progress": 100,
        "next_poll_at": None,
    }


def success_if_still_sent(update_: ProviderUpdate, *, now: datetime, account: str | None) -> ChangeIfStillSent | None:
    """For a success that carries its video, the change apply_provider_update makes for it (to storing), for the
    database to make with the delivery's record when the job is still the sender's (db/queries/inbox.py); None for
    any other update, which apply_provider_update decides from the row as read."""
    if update_.state is not ProviderState.SUCCEEDED or update_.output is None:
        return None
    target = GenerationStatus.STORING
    return ChangeIfStillSent(
        sources=tuple(sorted(state.value for state in _STORING_FROM)),
        values={"status": target.value, "updated_at": now, **_stored_fields(update_, _trim_raw(update_.raw))},
        event=_event(_STORING_FROM, target, None, now),
        account=account,
        job_id=update_.provider_job_id,
    )


def made_with_delivery(generation: Generation) -> Generation:
    """A change the database made with the delivery's record (success_if_still_sent), logged as transition() logs."""
    _log_change(generation.id, generation.status)
    return generation


def _output_to_json(output: OutputRef | None) -> dict[str, Any] | None:
    if output is None:
        return None
    return {
        k: v
        for k, v in {
            "url": output.url,
            "base64": output.base64_data,
            "path": output.path,
            "staged": output.staged_key,
            "content_type": output.content_type,
        }.items()
        if v is not None
    }


def _trim_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the provider's payload for debugging, without multi-megabyte base64 videos."""
    trimmed: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and len(value) > 2000:
            trimmed[key] = f"<{len(value)} characters>"
        elif isinstance(value, Mapping):
            trimmed[key] = _trim_raw(value)
        else:
            trimmed[key] = value
    return trimmed


def apply_provider_update(
    tx: Tx, generation_id: str, update_: ProviderUpdate, *, now: datetime, current: Generation | None = None
) -> Generation | None:
    """Applies what a provider said about a job (webhook or poll). Late, stale or duplicate updates change nothing.

    `current` is the generation as this transaction already read it, if it did. Returns the generation after the
    update, or None when the update was ignored."""
    generation = current if current is not None else generation_queries.generation_by_id(tx, generation_id)
    if generation is None or GenerationStatus(generation.status) in TERMINAL_STATES:
        return None
    if generation.provider_job_id and update_.provider_job_id and generation.provider_job_id != update_.provider_job_id:
        log.warning(
            "ignoring update for job %s: generation %s belongs to job %s",
            update_.provider_job_id,
            generation_id,
            generation.provider_job_id,
        )
        return None
    status = GenerationStatus(generation.status)
    raw = _trim_raw(update_.raw)
    if update_.state in (ProviderState.QUEUED, ProviderState.RUNNING):
        return _note_progress(tx, generation, status, update_, raw, now)
    if update_.state is ProviderState.SUCCEEDED:
        if update_.output is None:
            return fail(
                tx,
                generation_id,
                now=now,
                code="provider_no_output",
                message="The provider reported success but returned no video.",
            )
        return transition(
            tx,
            generation_id,
            GenerationStatus.STORING,
            now=now,
            from_states=_STORING_FROM,
            # The same rule as ChangeIfStillSent's: a job id the row has is kept, else the update's is taken.
            provider_job_id=generation.provider_job_id or update_.provider_job_id,
            **_stored_fields(update_, raw),
        )
    if update_.state is ProviderState.CANCELED:
        return fail(
            tx,
            generation_id,
            now=now,
            code="provider_canceled",
            message=update_.error_message or "The provider canceled this job.",
            target=GenerationStatus.CANCELED,
        )
    return fail(
        tx,
        generation_id,
        now=now,
        code=update_.error_code or "provider_failed",
        message=update_.error_message or "The provider could not generate this video.",
    )


def changes_only_the_generation(update_: ProviderUpdate) -> bool:
    """Whether applying this update writes nothing but the generation's own rows (its row and events): progress,
    or a success that hands the video to the download step. Anything that can end the job settles the ledger."""
    if update_.state is ProviderState.SUCCEEDED:
        return update_.output is not None
    return update_.state in (ProviderState.QUEUED, ProviderState.RUNNING)


def _note_progress(
    tx: Tx,
    generation: Generation,
    status: GenerationStatus,
    update_: ProviderUpdate,
    raw: dict[str, Any],
    now: datetime,
) -> Generation | None:
    progress = max(generation.progress, min(update_.progress or 0, 99))
    if status is GenerationStatus.SUBMITTING and update_.provider_job_id:
        # A "started" webhook can beat our own submit call back: record the job id it carries.
        return transition(
            tx,
            generation.id,
            GenerationStatus.PROCESSING,
            now=now,
            from_states=frozenset({GenerationStatus.SUBMITTING}),
            provider_job_id=update_.provider_job_id,
            # The provider told us the job exists: nothing is left for the operator to review.
            needs_review=False,
            progress=progress,
            raw_provider={"payload": raw},
        )
    if status is not GenerationStatus.PROCESSING or progress == generation.progress:
        return None
    if not generation_queries.set_progress(tx, generation.id, progress, now):
        # The status moved on since the read: answer with the row as it is now.
        return generation_queries.generation_by_id(tx, generation.id)
    generation.progress = progress
    generation.updated_at = now
    return generation
