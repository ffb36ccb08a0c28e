"""What every use case needs, assembled once by the composition root (reelgate.bootstrap)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reelgate.db.database import Database
from reelgate.db.sql import BeforeCommit, Tx
from reelgate.domain.catalog import Catalog
from reelgate.domain.request_rates import RequestRate
from reelgate.providers.base import HealthReport
from reelgate.providers.registry import ProviderRegistry
from reelgate.services.generate_limit import GenerateLimit
from reelgate.services.rate_window import DEFAULT_KEY_PREFIX, CounterStore
from reelgate.services.throttle import Throttle
from reelgate.storage import ObjectStore


@dataclass(frozen=True)
class ServiceConfig:
    """Plain values from settings; services never read the environment themselves."""

    public_url: str = "http://127.0.0.1:8000"
    signup_credits: int = 100
    fetch_allow_hosts: frozenset[str] = frozenset()
    max_output_bytes: int = 2 * 1024**3
    provider_spool_dir: str = ""  # adapters' downloaded outputs; deleted once stored (see outputs.py)
    max_output_fetch_seconds: float = 900.0  # the most one output download may take, whatever its pace
    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    max_upload_decoded_bytes: int = 128 * 1024 * 1024  # width × height × channels × bytes per channel
    idempotency_ttl_hours: int = 24
    # Polling: first look after `poll_initial`, growing by `poll_growth` up to `poll_max` seconds.
    poll_initial: float = 2.0
    poll_growth: float = 1.5
    poll_max: float = 60.0
    max_submit_attempts: int = 5
    max_transient_errors: int = 20
    lease_seconds: float = 120.0
    # Billing: Stripe credentials, packages (JSON; empty: the four defaults), expiry and limits (0 disables a cap).
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    credit_packages: str = ""
    credit_expiry_days: int = 0
    rate_limit_per_key: str = "1200/minute"
    rate_limit_per_user: str = "2400/minute"
    rate_limit_storage: str = "memory://"
    rate_limit_key_prefix: str = DEFAULT_KEY_PREFIX  # the start of every key in shared storage (Redis)
    generate_limit: str = ""  # new generations per user, `limits` notation ("10/15 minutes"); empty: none
    # Jobs a provider takes at once (configured providers with a limit only); more wait, queued.
    provider_in_flight_caps: Mapping[str, int] = field(default_factory=dict)
    # Requests a provider takes per period (configured providers with a rate only); submits over it wait, queued.
    provider_rate_limits: Mapping[str, RequestRate] = field(default_factory=dict)
    sign_in_limit_per_account: str = "5/minute;10/15 minutes;20/hour;50/day"
    sign_in_limit_per_address: str = "30/10 minutes;200/day"
    sign_in_failures_global: str = "1000/10 minutes"
    signup_limit_per_address: str = "5/hour;20/day"
    signup_credits_per_address: str = "3/day"
    max_in_flight: int = 20
    daily_spend_cap_user: int = 0
    daily_spend_cap_global: int = 0
    # Email (services/mail.py): SMTP when smtp_url is set, else .eml files in mail_dir (embedded mode); neither: off.
    smtp_url: str | None = None
    smtp_timeout: float = 30.0
    mail_dir: str = ""
    mail_from: str = ""
    mail_signing_key: str = ""  # signs unsubscribe links
    low_credit_threshold: int = 20  # a low-balance email when a generation's hold takes the balance below it
    # The library: a storage quota per user in MB (0: none), retention in days (0: forever).
    storage_quota_mb: int = 0
    retention_days: int = 0
    retention_keep_favorites: bool = True
    # The key that signs share links and provider input links (services/signing.py); empty: a key made for this
    # process, so its links end with it.
    link_signing_key: str = ""


class ProviderMarks(dict[str, str]):
    """Providers this process found degraded (e.g. out of provider credit), remembering what it changed so
    services/provider_marks.py can share the changes with every other process through the database."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: dict[str, str | None] = {}

    def __setitem__(self, provider: str, reason: str) -> None:
        super().__setitem__(provider, reason)
        self.changed[provider] = reason

    def __delitem__(self, provider: str) -> None:
        super().__delitem__(provider)
        self.changed[provider] = None

    def pop(self, provider: str, default: object = None) -> object:  # type: ignore[override]
        if provider in self:
            self.changed[provider] = None
        return super().pop(provider, default)

    def replace_all(self, marks: dict[str, str]) -> None:
        """Adopt the shared view without recording it as this process's own change."""
        super().clear()
        super().update(marks)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServiceContext:
    db: Database
    catalog: Catalog
    providers: ProviderRegistry
    store: ObjectStore
    config: ServiceConfig = field(default_factory=ServiceConfig)
    # Called after a commit that created work for the worker (embedded: sets an event; production: notifies the
    # workers).
    wake: Callable[[str], None] = lambda _generation_id: None
    # Production mode: a submission's transaction wakes the workers with its own COMMIT through this action
    # (db/queries/step_wakeups.py) and needs no wake-up after it.
    steps_due_notice: BeforeCommit | None = None
    clock: Callable[[], datetime] = _utcnow
    # Providers found out of credit or failing health, for /readyz and routing.
    degraded_providers: ProviderMarks = field(default_factory=ProviderMarks)
    # Routing's recent health checks: provider name -> (time.monotonic() of the check, report).
    provider_health: dict[str, tuple[float, HealthReport]] = field(default_factory=dict)
    # Each model's expected job time for create answers: model id -> (time.monotonic() when read, seconds).
    expected_times: dict[str, tuple[float, int | None]] = field(default_factory=dict)
    # The last Stripe readiness check: (time.monotonic() of it, its result).
    payments_health: tuple[float, dict[str, Any]] | None = None
    # Password guesses and sign-ups (services/throttle.py), made from `config` on first use.
    _throttle: Throttle | None = None
    _counters: CounterStore | None = None
    _generate_limit: GenerateLimit | None = None

    def wake_with_commit(self, tx: Tx, generation_id: str) -> None:
        """In production mode, the workers hear of the work `tx` creates with its own COMMIT (a wake-up sent after
        it would be lost should the process die in between); elsewhere `wake_after_commit` does it."""
        if self.steps_due_notice is not None:
            tx.before_commit(self.steps_due_notice, generation_id)

    def wake_after_commit(self, generation_id: str) -> None:
        """The wake-up for work a committed transaction created, unless its COMMIT already sent it."""
        if self.steps_due_notice is None:
            self.wake(generation_id)

    @property
    def counters(self) -> CounterStore:
        """Where this process's rate limits count (`config.rate_limit_storage`), made on first use."""
        if self._counters is None:
            self._counters = CounterStore(self.config.rate_limit_storage, self.config.rate_limit_key_prefix)
        return self._counters

    async def close_counters(self) -> None:
        """Lets the shared counters' connections go (before the event loop that opened them closes)."""
        if self._counters is not None:
            await self._counters.close()

    @property
    def generate_limit(self) -> GenerateLimit | None:
        """The per-user generation limit, made from `config` on first use; None when none is set."""
        if self._generate_limit is None and self.config.generate_limit:
            c = self.config
            self._generate_limit = GenerateLimit(self.counters, c.generate_limit)
        return self._generate_limit

    @property
    def throttle(self) -> Throttle:
        if self._throttle is None:
            c = self.config
            self._throttle = Throttle(
                self.counters,
                per_account=c.sign_in_limit_per_account,
                per_address=c.sign_in_limit_per_address,
                global_failures=c.sign_in_failures_global,
                signups_per_address=c.signup_limit_per_address,
                signup_credits_per_address=c.signup_credits_per_address,
            )
        return self._throttle
