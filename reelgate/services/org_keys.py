"""Organization API keys: made by an owner or admin, they act as the organization (its wallet pays their submits,
they see its generations). Only the key's hash is stored, as for every API key; a revoked key stops at once (these
keys are never cached, see accounts.authenticate_api_key)."""

from __future__ import annotations

from reelgate.db.queries import organizations as org_queries
from reelgate.db.records import ApiKey
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound
from reelgate.services import accounts
from reelgate.services import organizations as orgs
from reelgate.services.context import ServiceContext


async def create(ctx: ServiceContext, organization_id: str, actor_id: str, name: str) -> accounts.NewApiKey:
    await ctx.db.read(lambda tx: orgs.managing_in(tx, organization_id, actor_id))
    return await accounts.create_api_key(ctx, actor_id, name, organization_id=organization_id)


async def list_keys(ctx: ServiceContext, organization_id: str, actor_id: str) -> list[ApiKey]:
    def read(tx: Tx) -> list[ApiKey]:
        orgs.managing_in(tx, organization_id, actor_id)
        return org_queries.organization_keys(tx, organization_id)

    return await ctx.db.read(read)


async def revoke(ctx: ServiceContext, organization_id: str, actor_id: str, key_id: str) -> None:
    def drop(tx: Tx) -> None:
        orgs.managing_in(tx, organization_id, actor_id)
        if not org_queries.revoke_organization_key(tx, organization_id, key_id, ctx.clock()):
            raise NotFound("API key not found.")

    await ctx.db.write(drop)
