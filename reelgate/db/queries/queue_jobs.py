"""A generation's step job in production mode's queue, deferred by the statement that created the work.

Production mode runs steps as procrastinate jobs (reelgate/queue.py). Deferring the job after the commit would
cost the API process a second transaction per submission, and a crash between the two would leave the work to
the reconciler's next pass. Instead the submission's own statement defers the job through
`procrastinate_defer_jobs_v1`, the versioned SQL function procrastinate's own `defer` calls, so the job exists
exactly when the generation does, and procrastinate's insert trigger wakes a listening worker at the commit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepJobs:
    """Where a generation's step job goes: procrastinate's queue and the task that drives the generation."""

    queue: str
    task: str

    def params(self) -> dict[str, str]:
        return {"job_queue": self.queue, "job_task": self.task}


def defer_sql(generation_ids: str, *, when: str) -> str:
    """A SELECT that defers one job per id in `generation_ids` (a FROM clause naming `id`), where `when` holds:
    the job's lock and queueing lock are the generation's id (one waiting and one running per generation, as
    queue.py's own deferrals), its arguments name the generation, and it is due at once. Its result must be read
    by the enclosing statement: PostgreSQL runs a plain SELECT in a WITH only when something reads it."""
    return (
        "SELECT procrastinate_defer_jobs_v1(array_agg(ROW(CAST(:job_queue AS varchar), CAST(:job_task AS varchar), 0, "
        "d.id, d.id, jsonb_build_object('generation_id', d.id), NULL)::procrastinate_job_to_defer_v1)) AS ids "
        f"FROM {generation_ids} WHERE {when}"
    )
