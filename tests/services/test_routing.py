"""Routing rules with scripted providers: when a submit moves to a fallback, when it waits, and when it
stays pinned to the route it may already have reached."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reelgate.db.database import open_database
from reelgate.db.errors import DatabaseUnavailable
from reelgate.db.records import Generation
from reelgate.domain.catalog import parse_catalog
from reelgate.domain.request_rates import RequestRate
from reelgate.providers.base import (
    HealthReport,
    JobRequest,
    Provider,
    ProviderConfig,
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
)
from reelgate.providers.registry import ProviderRegistry
from reelgate.services import accounts, pipeline
from reelgate.services.context import ServiceConfig, ServiceContext
from reelgate.services.generations import GenerationOrder, create_generation
from reelgate.storage import store_from_url
from tests.helpers import generation_row

PROMPT = "a lighthouse at dusk, waves rolling in"
Outcome = SubmitResult | Exception


class Scripted(Provider):
    """Answers each submit with the next scripted outcome (then accepts); records the model refs sent."""

    idempotent_submit = True

    def __init__(self, name: str, outcomes: list[Outcome] | None = None) -> None:
        super().__init__(ProviderConfig(api_key=f"{name}-key"))
        self.name = name
        self.outcomes = list(outcomes or [])
        self.sent: list[str] = []
        self.requests: list[JobRequest] = []
        self.health_report = HealthReport(healthy=True)

    async def submit(self, request: JobRequest) -> SubmitResult:
        self.sent.append(request.model_ref)
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if self.outcomes else SubmitResult(f"{self.name}-job-{len(self.sent)}")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        raise NotImplementedError

    async def health(self) -> HealthReport:
        return self.health_report


class ScriptedRegistry(ProviderRegistry):
    def __init__(self, providers: Mapping[str, Scripted]) -> None:
        super().__init__({name: p.config for name, p in providers.items()})
        self.providers = dict(providers)

    def get(self, name: str) -> Provider:
        return self.providers[name]


def model(model_id: str, provider: str, durations: list[int], fallbacks: list[Any], **caps: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": model_id,
        "provider": provider,
        "provider_model": f"{model_id}-ref",
        "kind": "t2v",
        "capabilities": {"durations": durations, **caps},
        "pricing": {"rule": "per_second", "credits_per_second": 2},
        "fallbacks": fallbacks,
    }


def _catalog() -> Any:

    return parse_catalog(
        {
            "models": [
                model("primary", "runway", [5, 10], ["short-only", "twin", "fallback"]),
                model("short-only", "luma", [5], []),  # cannot take a 10 s request: never a route for one
                model("twin", "runway", [5, 10], []),  # another model on the primary's account
                model("fallback", "luma", [5, 10], []),
            ]
        },
        source="routing-test",
    )


def _mapped_catalog() -> Any:
    """A 720p model whose only fallback renders 480p without its `mode` option: it fires through its map."""
    hd = model(
        "hd",
        "runway",
        [5, 10],
        [{"model": "sd", "map": {"resolution": {"720p": "480p"}, "options": {"mode": "drop"}}}],
        resolutions=["720p"],
        options={"mode": {"values": ["fast", "pro"]}},
    )
    return parse_catalog({"models": [hd, model("sd", "luma", [5, 10], [], resolutions=["480p"])]}, source="mapped")


@asynccontextmanager
async def _context(tmp_path: Path, catalog: Any) -> AsyncIterator[ServiceContext]:
    db = await open_database(f"sqlite:///{tmp_path / 'routing.db'}")
    providers = {"runway": Scripted("runway"), "luma": Scripted("luma")}
    context = ServiceContext(
        db=db,
        catalog=catalog,
        providers=ScriptedRegistry(providers),
        store=store_from_url(f"file://{tmp_path / 'media'}"),
        config=ServiceConfig(max_submit_attempts=2),
    )
    yield context
    await db.close()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ServiceContext]:
    async with _context(tmp_path, _catalog()) as context:
        yield context


@pytest.fixture
async def mapped_ctx(tmp_path: Path) -> AsyncIterator[ServiceContext]:
    async with _context(tmp_path, _mapped_catalog()) as context:
        yield context


def _scripted(ctx: ServiceContext, name: str) -> Scripted:
    provider = ctx.providers.get(name)
    assert isinstance(provider, Scripted)
    return provider


async def _submitted(ctx: ServiceContext, model_id: str = "primary", **order: Any) -> Generation:
    user = await accounts.create_user(ctx, "routing@example.com", None, credits=100)
    given = GenerationOrder(model=model_id, prompt=PROMPT, duration=10, **order)
    generation, _ = await create_generation(ctx, user.id, given)
    await pipeline.submit(ctx, generation.id)
    return await generation_row(ctx, generation.id)


async def _submit_again(ctx: ServiceContext, generation_id: str) -> Generation:
    await pipeline.submit(ctx, generation_id)
    found = await generation_row(ctx, generation_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("code", "served", "provider"),
    [
        # No capacity for one model: the next route, here another model of the same account.
        (ProviderRejected.CAPACITY, "twin", "runway"),
        # No credit: the whole account is skipped, so the twin is never tried.
        (ProviderRejected.OUT_OF_CREDIT, "fallback", "luma"),
    ],
)
async def test_capacity_or_credit_refusal_moves_on_in_the_same_step(
    ctx: ServiceContext, code: str, served: str, provider: str
) -> None:
    _scripted(ctx, "runway").outcomes = [ProviderRejected("no room", code=code)]
    generation = await _submitted(ctx)
    assert generation.status == "processing" and generation.served_model == served
    assert generation.provider == provider and (generation.provider_job_id or "").startswith(provider)
    assert f"{served}-ref" in _scripted(ctx, provider).sent
    assert "short-only-ref" not in _scripted(ctx, "luma").sent  # a 10 s request never fits a 5 s model
    assert generation.credits_held == generation.quote_total == 20  # the primary's quote, not re-quoted
    assert generation.provider_account is not None and generation.provider_account["fingerprint"]


async def test_retry_later_waits_on_the_primary_until_attempts_run_out(ctx: ServiceContext) -> None:
    _scripted(ctx, "runway").outcomes = [RetryLater("busy", after=0), RetryLater("busy", after=0)]
    first = await _submitted(ctx)
    assert first.status == "queued" and first.served_model is None and _scripted(ctx, "luma").sent == []
    second = await _submit_again(ctx, first.id)  # the second attempt is the last one allowed
    assert second.status == "processing" and second.served_model == "twin"


async def test_a_fallback_at_its_request_rate_is_waited_for_not_marked(ctx: ServiceContext) -> None:
    """Our own pacing is no refusal: a fallback whose rate is used up is neither marked nor counted against, and the
    job waits, queued, for the moment its window frees a place."""
    ctx.config = replace(ctx.config, provider_rate_limits={"luma": RequestRate(1, 60.0)})
    no_room = ProviderRejected("no room", code=ProviderRejected.CAPACITY)
    _scripted(ctx, "runway").outcomes = [no_room] * 4  # the primary and its twin, for each of two jobs
    user = await accounts.create_user(ctx, "paced@example.com", None, credits=100)
    first, _ = await create_generation(ctx, user.id, GenerationOrder(model="primary", prompt=PROMPT, duration=10))
    second, _ = await create_generation(ctx, user.id, GenerationOrder(model="primary", prompt=PROMPT, duration=10))
    served = await _submit_again(ctx, first.id)
    assert served.status == "processing" and served.served_model == "fallback"
    before = ctx.clock()
    waiting = await _submit_again(ctx, second.id)
    assert waiting.status == "queued" and waiting.error_code is None and waiting.served_model is None
    assert waiting.next_poll_at is not None and waiting.next_poll_at >= before + timedelta(seconds=59)
    assert _scripted(ctx, "luma").sent == ["fallback-ref"]  # the second job never reached it
    assert "luma" not in ctx.degraded_providers and ctx.provider_health["luma"][1].healthy


async def test_a_step_whose_only_route_is_at_its_rate_counts_no_attempt(ctx: ServiceContext) -> None:
    ctx.config = replace(ctx.config, provider_rate_limits={"luma": RequestRate(1, 60.0)})
    _scripted(ctx, "runway").health_report = HealthReport(healthy=False, detail="HTTP 503")  # only luma is left
    user = await accounts.create_user(ctx, "paced@example.com", None, credits=100)
    first, _ = await create_generation(ctx, user.id, GenerationOrder(model="primary", prompt=PROMPT, duration=10))
    second, _ = await create_generation(ctx, user.id, GenerationOrder(model="primary", prompt=PROMPT, duration=10))
    assert (await _submit_again(ctx, first.id)).status == "processing"
    waiting = await _submit_again(ctx, second.id)
    assert waiting.status == "queued" and waiting.submit_attempts == 0 and waiting.error_code is None
    assert _scripted(ctx, "luma").sent == ["fallback-ref"] and _scripted(ctx, "runway").sent == []


async def test_an_unknown_outcome_pins_the_job_to_its_route(ctx: ServiceContext) -> None:
    """The first provider may have started the job: it is resent there (idempotent), never elsewhere."""
    runway = _scripted(ctx, "runway")
    runway.outcomes = [SubmitOutcomeUnknown("connection reset after sending")]
    first = await _submitted(ctx)
    assert first.status == "queued" and first.served_model == "primary"
    runway.health_report = HealthReport(healthy=False, detail="down")  # would otherwise route around it
    second = await _submit_again(ctx, first.id)
    assert second.status == "processing" and second.provider == "runway"
    assert runway.sent == ["primary-ref", "primary-ref"] and _scripted(ctx, "luma").sent == []


async def test_unhealthy_primary_is_skipped_and_a_bad_request_never_falls_back(ctx: ServiceContext) -> None:
    _scripted(ctx, "runway").health_report = HealthReport(healthy=False, detail="HTTP 503")
    _scripted(ctx, "luma").outcomes = [ProviderRejected("bad prompt", code=ProviderRejected.BAD_INPUT)]
    generation = await _submitted(ctx)
    assert generation.status == "failed" and generation.error_code == ProviderRejected.BAD_INPUT
    assert _scripted(ctx, "runway").sent == [] and generation.credits_refunded == 20


async def test_out_of_credit_on_the_only_account_fails_after_one_refusal(ctx: ServiceContext) -> None:
    _scripted(ctx, "luma").health_report = HealthReport(healthy=False, detail="down")
    _scripted(ctx, "runway").outcomes = [ProviderRejected("top up", code=ProviderRejected.OUT_OF_CREDIT)]
    generation = await _submitted(ctx)
    assert generation.status == "failed" and generation.error_code == ProviderRejected.OUT_OF_CREDIT
    assert _scripted(ctx, "runway").sent == ["primary-ref"] and ctx.degraded_providers == {
        "runway": "out of provider credit"
    }


async def test_a_fallback_receives_the_request_its_map_makes_at_the_accepted_price(
    mapped_ctx: ServiceContext,
) -> None:
    ctx = mapped_ctx
    _scripted(ctx, "runway").outcomes = [ProviderRejected("top up", code=ProviderRejected.OUT_OF_CREDIT)]
    generation = await _submitted(ctx, "hd", options={"mode": "pro"})
    assert generation.status == "processing" and generation.served_model == "sd"
    (sent,) = _scripted(ctx, "luma").requests
    assert (sent.resolution, sent.width, sent.height, sent.duration) == ("480p", 854, 480, 10)
    assert sent.options == {}  # `mode` is dropped: the fallback has no such option
    assert generation.params["resolution"] == "720p" and generation.params["options"] == {"mode": "pro"}
    assert generation.credits_held == generation.quote_total == 20  # hd's quote; the map never re-quotes


async def test_a_pinned_fallback_is_sent_the_same_mapped_request_again(mapped_ctx: ServiceContext) -> None:
    ctx = mapped_ctx
    _scripted(ctx, "runway").outcomes = [ProviderRejected("top up", code=ProviderRejected.OUT_OF_CREDIT)]
    luma = _scripted(ctx, "luma")
    luma.outcomes = [SubmitOutcomeUnknown("connection reset after sending")]
    first = await _submitted(ctx, "hd")
    assert first.status == "queued" and first.served_model == "sd"
    second = await _submit_again(ctx, first.id)
    assert second.status == "processing" and second.served_model == "sd"
    assert [(r.resolution, r.height, dict(r.options)) for r in luma.requests] == [("480p", 480, {})] * 2


class _DatabaseDownWhileAccepting:
    """Passes every write through, except that the first `failures` writes after the provider accepted the job
    fail as an unreachable database would."""

    def __init__(self, db: Any, provider: Scripted, failures: int) -> None:
        self._db, self._provider, self.failures = db, provider, failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def write(self, work: Any, *, grouped: bool = False, confined_to: str | None = None) -> Any:
        if self._provider.sent and self.failures:
            self.failures -= 1
            raise DatabaseUnavailable()
        return await self._db.write(work, grouped=grouped, confined_to=confined_to)


async def test_the_accepted_job_id_is_recorded_once_the_database_is_back(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's job id exists nowhere else: a database blip right after the submit does not lose it."""
    monkeypatch.setattr(pipeline, "RECORD_ACCEPTED_WAITS", (0.01, 0.01, 0.01))
    real = ctx.db
    flaky = _DatabaseDownWhileAccepting(real, _scripted(ctx, "runway"), failures=2)
    user = await accounts.create_user(ctx, "blip@example.com", None, credits=100)
    generation, _ = await create_generation(ctx, user.id, GenerationOrder(model="primary", prompt=PROMPT, duration=10))
    ctx.db = flaky
    await pipeline.submit(ctx, generation.id)
    ctx.db = real
    recorded = await generation_row(ctx, generation.id)
    assert flaky.failures == 0
    assert recorded.status == "processing" and recorded.provider_job_id == "runway-job-1"
    assert _scripted(ctx, "runway").sent == ["primary-ref"]  # sent once, never again


async def test_a_database_down_for_good_leaves_the_outcome_to_recovery(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "RECORD_ACCEPTED_WAITS", (0.01, 0.01))
    real = ctx.db
    user = await accounts.create_user(ctx, "down@example.com", None, credits=100)
    generation, _ = await create_generation(ctx, user.id, GenerationOrder(model="primary", prompt=PROMPT, duration=10))
    ctx.db = _DatabaseDownWhileAccepting(real, _scripted(ctx, "runway"), failures=99)
    with pytest.raises(DatabaseUnavailable):
        await pipeline.submit(ctx, generation.id)
    ctx.db = real
    assert (await generation_row(ctx, generation.id)).status == "submitting"  # for the reconciler, not lost
