"""Random sequences of grants, submits, successes, failures, cancels, crashes and expiries keep the ledger
invariant after every step (a Hypothesis state machine over the real services and a real database). An
organization's wallet is one more account: members join and leave, and submit on it or on their own credits."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from reelgate import media
from reelgate.bootstrap import build_context, close_context
from reelgate.db.queries import organizations as org_queries
from reelgate.db.queries.ledger import credit_account
from reelgate.db.records import Generation, OrganizationMember
from reelgate.db.sql import columns, query
from reelgate.domain.errors import Conflict, InsufficientCredits, NotFound
from reelgate.domain.jobs import GenerationStatus, ProviderState, is_terminal
from reelgate.domain.ledger import EntryKind
from reelgate.providers.base import OutputRef, ProviderUpdate
from reelgate.services import accounts, generations, ledger, organizations, outputs, pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.generations import GenerationOrder
from reelgate.services.transitions import apply_provider_update, transition
from tests.conftest import (
    PG_AVAILABLE,
    _create_pg_database,
    _drop_pg_database,
    _pg_url,
    _skip_or_fail_without_pg,
    make_settings,
)
from tests.helpers import generation_row

_TINY = Path(tempfile.gettempdir()) / "reelgate-stateful-tiny.mp4"


def _tiny_video() -> Path:
    if not _TINY.exists():
        media.render_preview_video(media.RenderSpec(width=64, height=64, duration=1, fps=8), _TINY)
    return _TINY


_SET_DEADLINE = query("UPDATE generations SET deadline_at = :at WHERE id = :id")
_ALL_GENERATIONS = query(f"SELECT {columns(Generation)} FROM generations", row=Generation)


class LedgerMachine(RuleBasedStateMachine):
    users = Bundle("users")
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="reelgate-stateful-"))
        self.ctx: ServiceContext = self.run(build_context(make_settings(self.tmp, self.database_url())))
        self.deposits: dict[str, int] = {}
        self.counter = 0
        self.org = ""
        self.members: set[str] = set()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def database_url(self) -> str:
        return f"sqlite:///{self.tmp / 'db.sqlite'}"

    def teardown(self) -> None:
        self.run(close_context(self.ctx))
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(target=users)
    def first_user(self) -> str:
        owner = self._new_user(20)
        # The organization's wallet: an account of the same ledger, empty until granted.
        self.org = self.run(organizations.create(self.ctx, owner, "Team")).organization.id
        self.deposits[self.org] = 0
        self.members = {owner}
        return owner

    def _new_user(self, credits: int) -> str:
        self.counter += 1
        user = self.run(accounts.create_user(self.ctx, f"u{self.counter}@example.com", None, credits=credits))
        self.deposits[user.id] = credits
        return user.id

    @rule(target=users, credits=st.integers(0, 40))
    def sign_up(self, credits: int) -> str:
        return self._new_user(credits)

    @rule(user=users, amount=st.integers(1, 30))
    def grant(self, user: str, amount: int) -> None:
        self.counter += 1

        async def body() -> None:
            reference = f"g{self.counter}"
            await self.ctx.db.write(
                lambda tx: credit_account(tx, user, amount, kind=EntryKind.GRANT, reference=reference)
            )

        self.run(body())
        self.deposits[user] += amount

    @rule(amount=st.integers(1, 30))
    def grant_organization(self, amount: int) -> None:
        self.grant(self.org, amount)

    @rule(user=users, member=st.booleans())
    def join_or_leave(self, user: str, member: bool) -> None:
        async def body() -> None:
            if member:
                row = OrganizationMember(self.org, user, "member", self.ctx.clock())
                await self.ctx.db.write(lambda tx: org_queries.add_member(tx, row))
            else:
                await self.ctx.db.write(lambda tx: org_queries.remove_member(tx, self.org, user))

        self.run(body())
        (self.members.add if member else self.members.discard)(user)

    @rule(target=jobs, user=users, duration=st.sampled_from([2, 5, 10]), on_wallet=st.booleans())
    def submit(self, user: str, duration: int, on_wallet: bool) -> str:
        order = GenerationOrder(
            model="sandbox-t2v",
            prompt="a state machine fox",
            duration=duration,
            organization=self.org if on_wallet else None,
        )
        try:
            generation, _ = self.run(generations.create_generation(self.ctx, user, order))
        except InsufficientCredits:
            return "refused"
        except NotFound:
            assert on_wallet and user not in self.members  # only a non-member is refused the wallet
            return "refused"
        assert not on_wallet or user in self.members
        assert generation.account_id == (self.org if on_wallet else user)
        return generation.id

    @rule(job=jobs)
    def dispatch(self, job: str) -> None:
        if job != "refused":
            self.run(pipeline.submit(self.ctx, job))

    @rule(job=jobs, twice=st.booleans())
    def provider_succeeds(self, job: str, twice: bool) -> None:
        if job == "refused":
            return
        update_ = ProviderUpdate(f"sbx_{job}", ProviderState.SUCCEEDED, output=OutputRef(path=str(_tiny_video())))
        for _ in range(2 if twice else 1):
            self.run(self._apply(job, update_))
        self.run(outputs.store_output(self.ctx, job))

    @rule(job=jobs, twice=st.booleans())
    def provider_fails(self, job: str, twice: bool) -> None:
        if job == "refused":
            return
        update_ = ProviderUpdate(f"sbx_{job}", ProviderState.FAILED, error_message="boom")
        for _ in range(2 if twice else 1):
            self.run(self._apply(job, update_))

    async def _apply(self, job: str, update_: ProviderUpdate) -> None:
        await self.ctx.db.write(lambda tx: apply_provider_update(tx, job, update_, now=self.ctx.clock()))

    @rule(job=jobs)
    def cancel(self, job: str) -> None:
        if job == "refused":
            return
        user = self.run(self._owner(job))
        try:
            self.run(generations.cancel_generation(self.ctx, user, job))
        except Conflict:
            pass

    @rule(job=jobs)
    def crash_mid_submit_then_recover(self, job: str) -> None:
        """The worker died after marking `submitting` and before the provider answered."""
        if job == "refused":
            return

        async def body() -> None:
            await self.ctx.db.write(lambda tx: transition(tx, job, GenerationStatus.SUBMITTING, now=self.ctx.clock()))
            await pipeline.resume_all(self.ctx)
            await pipeline.reconcile(self.ctx, job)

        self.run(body())

    @rule(job=jobs)
    def deadline_passes(self, job: str) -> None:
        if job == "refused":
            return

        async def body() -> None:
            past = self.ctx.clock() - timedelta(seconds=1)
            await self.ctx.db.write(lambda tx: tx.run(_SET_DEADLINE, {"id": job, "at": past}))
            await pipeline.expire(self.ctx, job)

        self.run(body())

    async def _owner(self, job: str) -> str:
        return (await generation_row(self.ctx, job)).user_id

    @invariant()
    def ledger_balances(self) -> None:
        async def body() -> None:
            assert await ledger.check_ledger(self.ctx) == []
            for user, deposited in self.deposits.items():
                c = await ledger.credits_of(self.ctx, user)
                assert c.available + c.held + c.captured == deposited
                assert min(c.available, c.held, c.captured) >= 0
            rows = await self.ctx.db.read(lambda tx: tx.all(_ALL_GENERATIONS))
            for g in rows:
                if is_terminal(g.status):
                    assert (g.credits_charged > 0) != (g.credits_refunded > 0), g.id
                    assert (g.status == "succeeded") == (g.credits_charged > 0)

        self.run(body())


class PostgresLedgerMachine(LedgerMachine):
    """The same machine on PostgreSQL: a fresh database per example, dropped afterwards."""

    def database_url(self) -> str:
        self.pg_name = _create_pg_database()
        return _pg_url(self.pg_name)

    def teardown(self) -> None:
        super().teardown()
        _drop_pg_database(self.pg_name)


_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = _SETTINGS
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_ledger_machine_on_postgresql() -> None:
    if not PG_AVAILABLE:
        _skip_or_fail_without_pg()
    run_state_machine_as_test(PostgresLedgerMachine, settings=settings(_SETTINGS, max_examples=10))
