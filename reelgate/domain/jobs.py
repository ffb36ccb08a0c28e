"""Generation states and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class GenerationStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    PROCESSING = "processing"
    STORING = "storing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


TERMINAL_STATES: frozenset[GenerationStatus] = frozenset(
    {GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.CANCELED, GenerationStatus.EXPIRED}
)
ACTIVE_STATES: frozenset[GenerationStatus] = frozenset(set(GenerationStatus) - TERMINAL_STATES)

# The happy path only moves forward; any active state may end early. Terminal states never change.
_FORWARD: dict[GenerationStatus, frozenset[GenerationStatus]] = {
    GenerationStatus.QUEUED: frozenset({GenerationStatus.SUBMITTING}),
    GenerationStatus.SUBMITTING: frozenset({GenerationStatus.PROCESSING, GenerationStatus.QUEUED}),
    GenerationStatus.PROCESSING: frozenset({GenerationStatus.STORING}),
    GenerationStatus.STORING: frozenset({GenerationStatus.SUCCEEDED}),
}
_EARLY_END = frozenset({GenerationStatus.FAILED, GenerationStatus.CANCELED, GenerationStatus.EXPIRED})


def allowed_sources(target: GenerationStatus) -> frozenset[GenerationStatus]:
    """States from which `target` may be entered (used as the compare-and-set condition)."""
    if target in _EARLY_END:
        return ACTIVE_STATES
    return frozenset(src for src, targets in _FORWARD.items() if target in targets)


def can_transition(source: GenerationStatus, target: GenerationStatus) -> bool:
    return source in allowed_sources(target)


def is_terminal(status: GenerationStatus | str) -> bool:
    return GenerationStatus(status) in TERMINAL_STATES


def settles_by_capture(target: GenerationStatus) -> bool:
    """Success captures the hold; every other terminal state releases it."""
    return target is GenerationStatus.SUCCEEDED


class ProviderState(StrEnum):
    """A provider's job state, normalized across vendors."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
