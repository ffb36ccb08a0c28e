"""Turns rows into the contract's JSON shapes (kept apart from routes so the studio can reuse them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reelgate.api.schemas import ErrorInfo, GenerationOut, ProjectOut, ProjectSpendOut, ShareOut, UploadOut
from reelgate.db.records import Generation, Payment, Project, ShareLink, Upload
from reelgate.domain.jobs import GenerationStatus, is_terminal
from reelgate.services.budgets import ProjectSpend

_MEDIA_PARAMS = frozenset({"duration", "resolution", "aspect_ratio"})


def generation_out(generation: Generation, public_url: str) -> GenerationOut:
    params = generation.params or {}
    if generation.kind == "text":  # a text model has no duration, size or shape (its params keep neutral values)
        params = {key: value for key, value in params.items() if key not in _MEDIA_PARAMS}
    succeeded = generation.status == GenerationStatus.SUCCEEDED.value
    base = f"{public_url}/api/v1/generations/{generation.id}"
    error = (
        ErrorInfo(code=generation.error_code, message=generation.error_message or "")
        if generation.error_code and generation.status != GenerationStatus.SUCCEEDED.value
        else None
    )
    output = None
    if succeeded:
        output = {
            "content_type": generation.output_content_type,
            "size": generation.output_size,
            "sha256": generation.output_sha256,
            **(generation.output_meta or {}),
        }
    succeeded = succeeded and generation.output_key is not None  # media removed by a delete or by retention
    return GenerationOut(
        id=generation.id,
        status=generation.status,
        progress=generation.progress,
        model=generation.model,
        provider=generation.provider,
        kind=generation.kind,
        project_id=generation.project_id,
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        duration=params.get("duration"),
        resolution=params.get("resolution"),
        aspect_ratio=params.get("aspect_ratio"),
        seed=params.get("seed"),
        options=params.get("options") or {},
        start_image=generation.start_upload_id,
        end_image=generation.end_upload_id,
        credits_quoted=generation.quote_total,
        credits_held=0 if is_terminal(generation.status) else generation.credits_held,
        credits_charged=generation.credits_charged,
        credits_refunded=generation.credits_refunded,
        quote_breakdown=generation.quote_breakdown or {},
        error=error,
        needs_review=generation.needs_review,
        video_url=f"{base}/content" if succeeded else None,
        thumbnail_url=f"{base}/thumbnail" if succeeded and generation.thumbnail_key else None,
        output=output,
        retry_of=generation.retry_of,
        created_at=generation.created_at.isoformat(),
        updated_at=generation.updated_at.isoformat(),
        completed_at=generation.completed_at.isoformat() if generation.completed_at else None,
        served_model=generation.served_model,
        enhanced_prompt=generation.enhanced_prompt,
        favorite=generation.favorite,
        media_removed=generation.media_removed_at is not None,
        organization=generation.account_id if generation.account_id != generation.user_id else None,
    )


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        description=project.description,
        budget_credits=project.budget_credits,
        organization=project.organization_id,
        created_at=project.created_at.isoformat(),
        updated_at=project.updated_at.isoformat(),
    )


def spend_out(spend: ProjectSpend, *, operator: bool) -> ProjectSpendOut:
    """Credits for every owner; provider cost and margin (what the operator pays and earns) for operators only."""
    return ProjectSpendOut(
        budget_credits=spend.budget,
        credits_captured=spend.captured,
        credits_held=spend.held,
        credits_remaining=spend.remaining,
        generations=spend.generations,
        currency=spend.currency,
        revenue_micros=spend.revenue_micros if operator else None,
        provider_cost_micros=spend.provider_cost_micros if operator else None,
        margin_micros=spend.margin_micros if operator else None,
    )


def upload_out(upload: Upload) -> UploadOut:
    return UploadOut(
        id=upload.id,
        width=upload.width,
        height=upload.height,
        size=upload.size,
        content_type=upload.content_type,
        sha256=upload.sha256,
        created_at=upload.created_at.isoformat(),
    )


def share_out(share: ShareLink, url: str, now: datetime) -> ShareOut:
    expired = share.expires_at is not None and share.expires_at <= now
    return ShareOut(
        id=share.id,
        generation_id=share.generation_id,
        url=url,
        show_prompt=share.show_prompt,
        created_at=share.created_at.isoformat(),
        expires_at=share.expires_at.isoformat() if share.expires_at else None,
        revoked=share.revoked_at is not None or expired,
    )


def payment_out(payment: Payment) -> dict[str, Any]:
    """A Stripe purchase: who bought it (user_id) and which wallet it credited (account_id)."""
    return {
        "id": payment.id,
        "user_id": payment.user_id,
        "account_id": payment.account_id,
        "package": payment.package,
        "credits": payment.credits,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status,
        "amount_refunded": payment.amount_refunded,
        "amount_disputed": payment.amount_disputed,
        "credits_reversed": payment.credits_reversed,
        "credits_unrecovered": payment.credits_unrecovered,
        "stripe_session_id": payment.stripe_session_id,
        "created_at": payment.created_at.isoformat(),
        "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
    }
