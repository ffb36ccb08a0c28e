"""Production mode's queue jobs, deferred inside the transaction that created the work.

Production mode runs a generation's steps as procrastinate jobs (reelgate/queue.py). Deferring a new
generation's job after its commit would cost the API process a queue transaction of its own, and a crash between
the two would leave the work to the reconciler's next pass. Instead the submission asks for its job with
`Tx.before_commit`, and one statement, sent with the COMMIT, defers the jobs of every submission of the
transaction (of a whole group commit on PostgreSQL) through `procrastinate_defer_jobs_v1`, the versioned SQL
function that procrastinate's own `defer` calls. The job therefore exists exactly when the generation does, and
procrastinate's insert trigger wakes a listening worker at the COMMIT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reelgate.db.sql import Query, Tx, query

# One job per id: its lock and queueing lock are the generation's id (one waiting and one running per
# generation, as queue.py's own deferrals), its arguments name the generation, and it is due at once.
_DEFER = query(
    """
    SELECT procrastinate_defer_jobs_v1(array_agg(ROW(CAST(:job_queue AS varchar), CAST(:job_task AS varchar), 0,
        d.id, d.id, jsonb_build_object('generation_id', d.id), NULL)::procrastinate_job_to_defer_v1 ORDER BY d.n))
    FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS d(id, n)
    """
)


@dataclass(frozen=True)
class StepJobs:
    """Where a generation's step job goes: procrastinate's queue and the task that drives the generation."""

    queue: str
    task: str

    def defer(self, generation_ids: list[str]) -> tuple[Query, dict[str, Any]]:
        """The statement that defers the step job of each generation (new ones: none has a job waiting yet): a
        Tx.before_commit action, so the jobs commit with the generations."""
        return _DEFER, {"job_queue": self.queue, "job_task": self.task, "ids": generation_ids}


def defer_step_jobs(tx: Tx, *, jobs: StepJobs, generation_ids: list[str]) -> None:
    """Defers the step jobs of generations that already exist (a wake-up after their commit). All or none: a
    generation that already has a job waiting fails the statement."""
    tx.run(*jobs.defer(generation_ids))
