"""Request bodies of the organization routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reelgate.api.schemas import Strict

Role = Literal["owner", "admin", "member"]


class OrganizationCreate(Strict):
    name: str = Field(min_length=1, max_length=120)


class InvitationCreate(Strict):
    email: str = Field(min_length=3, max_length=320)
    role: Role = "member"


class InvitationAccept(Strict):
    token: str = Field(min_length=1, max_length=200)


class MemberCaps(Strict):
    """Credits the member may spend from the organization's wallet; null: no cap."""

    daily_cap: int | None = Field(default=None, ge=0, le=10**12)
    monthly_cap: int | None = Field(default=None, ge=0, le=10**12)


class RoleChange(Strict):
    role: Role
