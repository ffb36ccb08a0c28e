"""Ledger entry kinds and the balance invariant, as pure functions over amounts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class EntryKind(StrEnum):
    GRANT = "grant"
    PURCHASE = "purchase"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    ADJUST = "adjust"
    EXPIRE = "expire"


# Kinds that change what an account was ever given ("deposits"); adjust may be negative.
DEPOSIT_SIGN: dict[EntryKind, int] = {
    EntryKind.GRANT: 1,
    EntryKind.PURCHASE: 1,
    EntryKind.ADJUST: 1,
    EntryKind.EXPIRE: -1,
}


@dataclass(frozen=True)
class BalanceSnapshot:
    available: int
    held: int
    captured: int


@dataclass(frozen=True)
class InvariantViolation:
    account: str
    message: str


def deposits(entries: Iterable[tuple[EntryKind, int]]) -> int:
    return sum(DEPOSIT_SIGN.get(kind, 0) * amount for kind, amount in entries)


def expected_balance(entries: Iterable[tuple[EntryKind, int]]) -> BalanceSnapshot:
    """Replays entries into the balance they must produce."""
    available = held = captured = 0
    for kind, amount in entries:
        if kind in DEPOSIT_SIGN:
            available += DEPOSIT_SIGN[kind] * amount
        elif kind is EntryKind.HOLD:
            available -= amount
            held += amount
        elif kind is EntryKind.CAPTURE:
            held -= amount
            captured += amount
        elif kind is EntryKind.RELEASE:
            held -= amount
            available += amount
    return BalanceSnapshot(available, held, captured)


def check_account(
    account: str, entries: list[tuple[EntryKind, int]], stored: BalanceSnapshot
) -> list[InvariantViolation]:
    """deposits = available + held + captured, the stored row equals the replay, nothing negative."""
    problems: list[InvariantViolation] = []
    replay = expected_balance(entries)
    if replay != stored:
        problems.append(InvariantViolation(account, f"balance row {stored} differs from ledger replay {replay}"))
    total = deposits(entries)
    if total != stored.available + stored.held + stored.captured:
        problems.append(
            InvariantViolation(
                account,
                f"deposits {total} != available {stored.available} + held {stored.held} + captured {stored.captured}",
            )
        )
    for name in ("available", "held", "captured"):
        if getattr(stored, name) < 0:
            problems.append(InvariantViolation(account, f"{name} is negative: {getattr(stored, name)}"))
    return problems
