"""The user's library: deleting generations (one or many), favourites, and removing a generation's media.

A deleted generation stays as a row (a tombstone: the ledger, analytics and exports keep its history) but reads
as not found to its owner; its output, thumbnail and the uploads only it used leave storage. A running job is
canceled first, with the usual refund.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from reelgate.db.queries import generations as generation_queries
from reelgate.db.queries import library as library_queries
from reelgate.db.queries import projects as project_queries
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, NotFound, ValidationFailed
from reelgate.domain.jobs import TERMINAL_STATES, GenerationStatus
from reelgate.services import generations, projects
from reelgate.services.context import ServiceContext
from reelgate.storage import spritesheet_key

log = logging.getLogger("reelgate.library")

MAX_BULK = 100


@dataclass
class BulkOutcome:
    """What a bulk request did: the ids it acted on, and those that are not the caller's (or do not exist)."""

    succeeded: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


def check_bulk(ids: list[str]) -> list[str]:
    """The ids of a bulk request, each once, in the order given."""
    unique = list(dict.fromkeys(ids))
    if not 1 <= len(unique) <= MAX_BULK:
        raise ValidationFailed("ids", f"Give 1 to {MAX_BULK} ids.", allowed={"min_items": 1, "max_items": MAX_BULK})
    return unique


async def remove_media(ctx: ServiceContext, generation: Generation, *, uploads: bool) -> int:
    """Deletes the generation's stored objects (and, with `uploads`, the uploads no other live generation uses),
    then forgets their keys; returns the bytes freed (as recorded)."""
    # The spritesheet's key is fixed, not recorded: it goes with the output it was made from.
    sprites = spritesheet_key(generation.id) if generation.output_key else None
    keys = [key for key in (generation.output_key, generation.thumbnail_key, sprites) if key]
    alone = await ctx.db.read(lambda tx: library_queries.uploads_used_only_by(tx, generation.user_id, generation))
    freed = (generation.output_size or 0) if generation.output_key else 0
    for key in keys:
        await ctx.store.delete(key)
    if uploads:
        for upload in alone:
            await ctx.store.delete(upload.object_key)
            freed += upload.size

    def forget(tx: Tx) -> None:
        library_queries.clear_media(tx, generation.id, ctx.clock())
        if uploads:
            for upload in alone:
                library_queries.delete_upload(tx, generation.user_id, upload.id)

    await ctx.db.write(forget)
    return freed


async def delete_generation(ctx: ServiceContext, user_id: str, generation_id: str) -> None:
    if not await _delete_one(ctx, user_id, generation_id):
        raise NotFound("Generation not found.")


async def delete_generations(ctx: ServiceContext, user_id: str, ids: list[str]) -> BulkOutcome:
    """Each id on its own: another user's (or an unknown) id is reported as not found and nothing is done to it."""
    outcome = BulkOutcome()
    for generation_id in check_bulk(ids):
        done = await _delete_one(ctx, user_id, generation_id)
        (outcome.succeeded if done else outcome.not_found).append(generation_id)
    return outcome


async def _delete_one(ctx: ServiceContext, user_id: str, generation_id: str) -> bool:
    current = await ctx.db.read(lambda tx: generation_queries.generation_of_user(tx, user_id, generation_id))
    if current is None:
        return False
    if GenerationStatus(current.status) not in TERMINAL_STATES:
        try:
            await generations.cancel_generation(ctx, user_id, generation_id)
        except (Conflict, NotFound):
            pass  # it ended (or was deleted) meanwhile; the tombstone below decides
    tombstone = await ctx.db.write(lambda tx: library_queries.mark_deleted(tx, user_id, generation_id, ctx.clock()))
    if tombstone is None:
        return False  # a concurrent delete won
    # Terminal now: a job still storing was canceled above, and the output step removes what it stored when its
    # own compare-and-set to `succeeded` then fails; a job that succeeded first has its keys in this row.
    await remove_media(ctx, tombstone, uploads=True)
    log.info("generation %s deleted", generation_id, extra={"generation_id": generation_id})
    return True


async def set_favorite(ctx: ServiceContext, user_id: str, generation_id: str, favorite: bool) -> Generation:
    found = await ctx.db.write(lambda tx: library_queries.set_favorite(tx, user_id, generation_id, favorite))
    if found is None:
        raise NotFound("Generation not found.")
    return found


# ---------------------------------------------------------------- projects


async def move_generations(ctx: ServiceContext, user_id: str, ids: list[str], project_id: str) -> BulkOutcome:
    """Moves the user's generations into one of their projects; other users' ids are reported as not found."""
    wanted = check_bulk(ids)
    now = ctx.clock()

    def move(tx: Tx) -> BulkOutcome:
        if projects.project_in(tx, user_id, project_id).organization_id is not None:
            raise ValidationFailed(
                "project_id",
                "Generations go into an organization's project when they are made on its wallet; "
                "they cannot be moved into one.",
            )
        outcome = BulkOutcome()
        for generation_id in wanted:
            moved = library_queries.move_generation(tx, user_id, generation_id, project_id, now)
            (outcome.succeeded if moved else outcome.not_found).append(generation_id)
        return outcome

    return await ctx.db.write(move)


class DeleteChoice(StrEnum):
    """What becomes of a project's videos when it is deleted."""

    MOVE = "move"  # into the default project (the user's first other project, made if there is none)
    DELETE = "delete"  # deleted too (their rows stay as tombstones, in the default project)


async def delete_project(
    ctx: ServiceContext, user_id: str, project_id: str, choice: DeleteChoice | None = None
) -> str | None:
    """Deletes a project. With videos in it the caller chooses (`generations`); without a choice a project that
    still has videos is refused, so none disappears by accident. Returns the project that received its rows
    (deleted ones included: their history needs a project)."""
    project = await projects.get_project(ctx, user_id, project_id)
    if project.organization_id is not None:
        return await _delete_organization_project(ctx, user_id, project_id, choice)
    if choice is DeleteChoice.DELETE:
        live = await ctx.db.read(lambda tx: library_queries.live_ids_in_project(tx, user_id, project_id))
        for generation_id in live:
            await _delete_one(ctx, user_id, generation_id)
    now = ctx.clock()

    def delete(tx: Tx) -> str | None:
        projects.project_in(tx, user_id, project_id)
        project_queries.lock_project(tx, project_id)
        if choice is None and library_queries.live_ids_in_project(tx, user_id, project_id):
            raise Conflict(
                "This project still has generations; choose to move them to the default project or delete them.",
                details={"choices": [choice.value for choice in DeleteChoice]},
            )
        target: str | None = None
        if generation_queries.count_in_project(tx, project_id):
            target = library_queries.other_project_id(tx, user_id, project_id)
            if target is None:
                project = projects.new_project(ctx, user_id, projects.DEFAULT_PROJECT_NAME)
                project_queries.insert_project(tx, project)
                target = project.id
            library_queries.move_all(tx, user_id, project_id, target, now)
        project_queries.delete_project(tx, user_id, project_id)
        return target

    return await ctx.db.write(delete)


async def _delete_organization_project(
    ctx: ServiceContext, user_id: str, project_id: str, choice: DeleteChoice | None
) -> str | None:
    """An organization's project is deleted by its owners and admins. Its generations belong to the members who
    made them, so they go back to each member's own default project; a manager cannot delete them with it.
    Returns the caller's default project when any rows moved."""
    if choice is DeleteChoice.DELETE:
        raise ValidationFailed(
            "generations",
            "An organization's project returns its generations to the members who made them: choose move.",
            allowed=[DeleteChoice.MOVE.value],
        )
    now = ctx.clock()

    def delete(tx: Tx) -> str | None:
        projects.managed_project_in(tx, user_id, project_id)
        project_queries.lock_project(tx, project_id)
        if choice is None and library_queries.project_totals(tx, project_id)[0]:
            raise Conflict(
                "This project still has generations; choose to move them back to their members' default projects.",
                details={"choices": [DeleteChoice.MOVE.value]},
            )
        target: str | None = None
        for owner in library_queries.owners_in_project(tx, project_id):
            moved_to = projects.default_project_in(tx, owner)
            library_queries.move_all(tx, owner, project_id, moved_to, now)
            if owner == user_id:
                target = moved_to
        project_queries.delete_project(tx, user_id, project_id)
        return target

    return await ctx.db.write(delete)
