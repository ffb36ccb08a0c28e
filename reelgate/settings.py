"""The only module that reads the environment: every setting, with its default for embedded mode."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelgate.domain.request_rates import RequestRate, parse_rate
from reelgate.providers.plugin import ProviderSettings, ProviderSpec, discover

# The placeholder earlier releases signed sessions with when no key was set. It is public, so it is refused.
PUBLIC_PLACEHOLDER_KEY = "reelgate-embedded-default-secret-change-me"  # noqa: S105 - refused, never used


def _alias(name: str) -> AliasChoices:
    """Stripe's variables keep Stripe's names (STRIPE_SECRET_KEY), with a REELGATE_ form accepted too."""
    return AliasChoices(name, f"REELGATE_{name}")


def rate_overrides(text: str) -> dict[str, RequestRate | None]:
    """REELGATE_PROVIDER_RATE_LIMIT: `<provider>=<count>/<period>` items separated by commas; `0` lifts a rate."""
    overrides: dict[str, RequestRate | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sign, value = (part.strip() for part in item.partition("="))
        if not sign or not name:
            raise ValueError(f"REELGATE_PROVIDER_RATE_LIMIT: {item!r} is not <provider>=<count>/<period>")
        try:
            overrides[name] = None if value == "0" else parse_rate(value)
        except ValueError as exc:
            raise ValueError(f"REELGATE_PROVIDER_RATE_LIMIT: {item!r}: {exc}") from None
    return overrides


def default_poll_concurrency(step_concurrency: int) -> int:
    return max(32, 8 * step_concurrency)


class Settings(BaseSettings):
    # Provider settings are not fields: each provider declares its own (reelgate.providers.plugin), read in
    # `providers` below. "allow" keeps them when given as keyword arguments, e.g. Settings(fal_key=...).
    model_config = SettingsConfigDict(env_prefix="REELGATE_", extra="allow", populate_by_name=True)

    data_dir: Path = Path("./data")
    database_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    catalog: Path | None = None
    # Signs studio sessions. Unset: embedded mode makes a random one and keeps it in the data dir (0600);
    # production mode refuses to start, since processes on several hosts must share one key.
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses or networks,
    # "*" for any); uvicorn's own default trusts a proxy on the same host only.
    trusted_proxies: str = "127.0.0.1"
    redis_url: str | None = None
    # Every key reelgate writes to Redis starts with this: deployments that share one Redis need different ones.
    redis_key_prefix: str = Field(default="reelgate", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    signup_credits: int = 100
    signup_enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    # None: on with SQLite (one process does everything), off with PostgreSQL (`reelgate worker` runs the jobs).
    embedded_worker: bool | None = None
    worker_concurrency: int = Field(default=4, ge=1)  # steps at once: submits, downloads and output checks
    # Polls at once, on their own budget: a poll is one small request that mostly waits on the provider, and
    # thousands of jobs in flight need many at a time without taking the slots of submits and downloads.
    # 0: max(32, 8 x worker_concurrency).
    worker_poll_concurrency: int = Field(default=0, ge=0)
    poll_initial_seconds: float = 2.0
    poll_max_seconds: float = 60.0
    low_credit_threshold: int = 20
    # Outgoing email: smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (implicit TLS).
    # Unset: embedded mode writes each email as an .eml file under <data dir>/mail (shown at /admin/mail);
    # production mode sends none. With SMTP set, sign-up credits wait until the address is verified.
    smtp_url: str | None = None
    smtp_timeout_seconds: float = 30.0
    mail_from: str = ""  # the From header; default "reelgate <noreply@host of the public URL>"
    fetch_allow_hosts: str = ""  # comma-separated hosts the SSRF guard lets through (tests' loopback simulators)
    max_output_bytes: int = 2 * 1024**3
    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    # Memory an uploaded image may take once decoded: width × height × channels × bytes per channel.
    max_upload_decoded_bytes: int = 128 * 1024 * 1024
    idempotency_ttl_hours: int = 24
    request_timeout_seconds: float = 30.0
    log_json: bool = False
    log_level: str = "INFO"
    # Error reporting through the official Sentry SDK (reelgate.error_reporting); off unless a DSN is set.
    sentry_dsn: str | None = Field(default=None, validation_alias=AliasChoices("SENTRY_DSN", "REELGATE_SENTRY_DSN"))
    sentry_environment: str | None = Field(
        default=None, validation_alias=AliasChoices("SENTRY_ENVIRONMENT", "REELGATE_SENTRY_ENVIRONMENT")
    )

    stripe_secret_key: str | None = Field(default=None, validation_alias=_alias("STRIPE_SECRET_KEY"))
    stripe_webhook_secret: str | None = Field(default=None, validation_alias=_alias("STRIPE_WEBHOOK_SECRET"))
    stripe_api_base: str | None = None
    provider_spool_dir: Path | None = None
    # Billing (reelgate.services.billing/limits/expiry). Packages: a JSON list of
    # {"id", "credits", "bonus", "price" (minor units), "currency"}; empty means the four default packages.
    credit_packages: str = ""
    credit_expiry_days: int = 0  # 0: credits never expire (90 is a common choice)
    rate_limit_per_key: str = "1200/minute"  # `limits` notation; generous so status polling never trips it
    rate_limit_per_user: str = "2400/minute"
    # New generations per user, counted apart from the request limits (reads and polling never count); in
    # `limits` notation, several separated by ";" (e.g. "10/15 minutes"). Empty: no such limit.
    generate_limit: str = ""
    # Jobs each provider takes at once, over the providers' own declarations (ModelsLab: 5), e.g.
    # "modelslab=10,runway=4"; 0 lifts a declared limit. Further submissions wait, queued, for a free place.
    provider_max_in_flight: str = ""
    # Requests each provider takes per period, over the providers' published rates (Replicate 600/minute, EdenAI
    # 10/second, Poe 500/minute), e.g. "modelslab=5/minute,replicate=300/minute"; 0 lifts a declared rate. Submits
    # over a rate wait, queued, until the moment a place in the window frees.
    provider_rate_limit: str = ""
    # Per client address: every studio request, and estimates asked for without an API key or session.
    rate_limit_studio_per_address: str = "1800/minute"
    rate_limit_estimate_per_address: str = "120/minute"
    # Password guesses (sign-in, and the current password before a change), in `limits` notation; the tiers of a
    # list make the wait grow. Per account whatever the address, per address whatever the account, and failures
    # across the site. Counted in Redis when REELGATE_REDIS_URL is set, else in the process.
    sign_in_limit_per_account: str = "5/minute;10/15 minutes;20/hour;50/day"
    sign_in_limit_per_address: str = "30/10 minutes;200/day"
    sign_in_failures_global: str = "1000/10 minutes"
    # Sign-ups per address, and how many new accounts per address get the free sign-up credits.
    signup_limit_per_address: str = "5/hour;20/day"
    signup_credits_per_address: str = "3/day"
    max_in_flight: int = 20  # generations a user may have queued or running at once
    daily_spend_cap_user: int = 0  # credits per user per UTC day; 0: no cap
    daily_spend_cap_global: int = 0  # credits across all users per UTC day; 0: no cap
    # The user's library: storage per user (outputs + uploads) in MB, 0: no quota (an administrator may set
    # another per user); media of generations finished this many days ago are removed, 0: kept forever.
    storage_quota_mb: int = Field(default=0, ge=0)
    retention_days: int = Field(default=0, ge=0)
    retention_keep_favorites: bool = True  # favourites keep their media whatever their age
    # Production mode (reelgate.queue, `reelgate worker`): workers scanning the generations table, and
    # procrastinate on the same PostgreSQL for the periodic jobs.
    s3_presign_downloads: bool = False  # redirect downloads to a short-lived presigned URL instead of streaming
    # A generation's claim lapses this long after its holder died (embedded mode: one process, which drops them
    # all at start-up). Production workers use 3x the heartbeat instead and renew their claims on each beat.
    lease_seconds: float = 120.0
    queue_poll_seconds: float = 1.0  # the step budget scans once per this (and when notified), polls 4x
    queue_heartbeat_seconds: float = 2.0  # a worker silent for 3x this is presumed dead; its leases lapse
    # Each worker's reconciler (dead workers' periodic jobs released) and housekeeping.
    reconcile_interval_seconds: float = Field(default=3.0, gt=0, le=300)
    worker_shutdown_seconds: float = 30.0  # on SIGTERM, running steps get this long to finish, then are handed back
    stale_upload_hours: float = 24.0  # abandoned multipart uploads older than this are aborted
    worker_metrics_port: int = 0  # `reelgate worker` serves /metrics on this port; 0: off
    # `reelgate serve`'s /metrics: with a token it answers on the public listener to `Bearer <token>` only;
    # with a port it answers on its own listener (metrics_host:metrics_port) and not on the public one.
    # Neither set: /metrics is not served.
    metrics_token: str | None = None
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    database_pool_size: int = 10  # PostgreSQL connections per process, never more (see docs/deploy.md)

    @cached_property
    def providers(self) -> dict[str, ProviderSettings]:
        """Every registered provider's typed settings, from keyword arguments or the environment."""
        given = self.model_extra or {}
        environ = {name.upper(): value for name, value in os.environ.items()}
        return {name: _provider_settings(spec, given, environ) for name, spec in discover().items()}

    def provider_secrets(self) -> list[str]:
        """The values of every provider setting declared secret, for the log redactor."""
        return [value for name, values in self.providers.items() for value in values.secret_values(name)]

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def provider_in_flight_caps(self) -> dict[str, int]:
        """Each provider's cap on jobs at once: its declaration, then REELGATE_PROVIDER_MAX_IN_FLIGHT."""
        caps = {name: spec.max_in_flight for name, spec in discover().items() if spec.max_in_flight}
        for item in filter(None, (part.strip() for part in self.provider_max_in_flight.split(","))):
            name, _, value = item.partition("=")
            if not value.strip().isdigit():
                raise ValueError(f"REELGATE_PROVIDER_MAX_IN_FLIGHT: {item!r} is not <provider>=<number>")
            caps[name.strip()] = int(value)
        return {name: cap for name, cap in caps.items() if cap > 0}

    @field_validator("provider_rate_limit")
    @classmethod
    def _check_rates(cls, value: str) -> str:
        rate_overrides(value)  # refused when the settings are read, not at the first submit
        return value

    @property
    def provider_rate_limits(self) -> dict[str, RequestRate]:
        """Each provider's request rate: its declaration, then REELGATE_PROVIDER_RATE_LIMIT (None lifts one)."""
        rates = {name: spec.rate_limit for name, spec in discover().items() if spec.rate_limit}
        rates.update(rate_overrides(self.provider_rate_limit))
        return {name: rate for name, rate in rates.items() if rate is not None}

    def poll_concurrency_for(self, concurrency: int) -> int:
        """The poll budget beside `concurrency` step slots: the setting, or 8 per step slot (at least 32)."""
        return self.worker_poll_concurrency or default_poll_concurrency(concurrency)

    @property
    def serves_https(self) -> bool:
        """The public URL is https: cookies are Secure and HSTS is sent, whatever the proxy in front says."""
        return self.public_url.lower().startswith("https://")

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [entry.strip() for entry in self.trusted_proxies.split(",") if entry.strip()]

    @property
    def mail_dir(self) -> Path | None:
        """Where emails are written when no SMTP server is set: embedded mode only."""
        return None if self.smtp_url or not self.embedded else self.data_dir / "mail"

    @property
    def embedded(self) -> bool:
        """Embedded mode: SQLite under the data dir, no external services needed."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def runs_embedded_worker(self) -> bool:
        return self.embedded if self.embedded_worker is None else self.embedded_worker

    @cached_property
    def resolved_database_url(self) -> str:
        """`sqlite:///path` or `postgresql://...`: the URLs operators paste from hosting panels (`postgres://`, a
        `+driver` suffix) are accepted and normalized."""
        if not self.database_url:
            return f"sqlite:///{(self.data_dir / 'reelgate.db').resolve()}"
        scheme, _, rest = self.database_url.partition("://")
        base = scheme.split("+", 1)[0]
        return f"{'postgresql' if base == 'postgres' else base}://{rest}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'media').resolve()}"

    @property
    def allowed_fetch_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.fetch_allow_hosts.split(",") if h.strip())

    def check_production_safety(self) -> None:
        """A known or missing secret key would let anyone who knows a user's id forge that user's session."""
        if self.secret_key == PUBLIC_PLACEHOLDER_KEY:
            raise RuntimeError(
                "REELGATE_SECRET_KEY is the placeholder published with reelgate's source; set a long random value "
                "(or unset it in embedded mode to have one made and kept in the data dir)."
            )
        if not self.embedded and not self.secret_key:
            raise RuntimeError(
                "REELGATE_SECRET_KEY is not set; production mode needs the same long random value in every process."
            )

    @cached_property
    def session_secret(self) -> str:
        """The key studio sessions and flash messages are signed with."""
        self.check_production_safety()
        if self.secret_key:
            return self.secret_key
        from reelgate.data_dir import secret_key

        return secret_key(self.data_dir)


def _provider_settings(spec: ProviderSpec, given: Mapping[str, Any], environ: Mapping[str, str]) -> ProviderSettings:
    """A keyword argument wins over the environment; variables are looked up case-insensitively, as above."""
    values: dict[str, Any] = {}
    for declared in spec.settings.fields_for(spec.name):
        if declared.attr in given:
            values[declared.field] = given[declared.attr]
            continue
        for name in declared.env:
            if name.upper() in environ:
                values[declared.field] = environ[name.upper()]
                break
    return spec.load_settings(values)
