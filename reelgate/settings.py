"""The only module that reads the environment: every setting, with its default for embedded mode."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The placeholder earlier releases signed sessions with when no key was set. It is public, so it is refused.
PUBLIC_PLACEHOLDER_KEY = "reelgate-embedded-default-secret-change-me"  # noqa: S105 - refused, never used


def _alias(name: str) -> AliasChoices:
    """Provider variables keep the names the seeds use (RUNPOD_API_KEY), with a REELGATE_ form accepted too."""
    return AliasChoices(name, f"REELGATE_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELGATE_", extra="ignore", populate_by_name=True)

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
    signup_credits: int = 100
    signup_enabled: bool = True
    sandbox_delay_seconds: float = 3.0
    host: str = "127.0.0.1"
    port: int = 8000
    # None: on with SQLite (one process does everything), off with PostgreSQL (`reelgate worker` runs the jobs).
    embedded_worker: bool | None = None
    worker_concurrency: int = 4
    poll_initial_seconds: float = 2.0
    poll_max_seconds: float = 60.0
    low_credit_threshold: int = 20
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

    runpod_api_key: str | None = Field(default=None, validation_alias=_alias("RUNPOD_API_KEY"))
    runpod_ltx_endpoint_id: str | None = Field(default=None, validation_alias=_alias("RUNPOD_LTX_ENDPOINT_ID"))
    runpod_wan_endpoint_id: str | None = Field(default=None, validation_alias=_alias("RUNPOD_WAN_ENDPOINT_ID"))
    runpod_base_url: str | None = None
    runpod_ltx_endpoint_url: str | None = None
    runpod_wan_endpoint_url: str | None = None
    replicate_api_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REPLICATE_API_TOKEN", "REPLICATE_API_KEY", "REELGATE_REPLICATE_API_TOKEN"),
    )
    replicate_webhook_secret: str | None = Field(default=None, validation_alias=_alias("REPLICATE_WEBHOOK_SECRET"))
    replicate_base_url: str | None = None
    pollo_api_key: str | None = Field(default=None, validation_alias=_alias("POLLO_API_KEY"))
    pollo_webhook_secret: str | None = Field(default=None, validation_alias=_alias("POLLO_WEBHOOK_SECRET"))
    pollo_base_url: str | None = None
    modelslab_api_key: str | None = Field(default=None, validation_alias=_alias("MODELSLAB_API_KEY"))
    modelslab_base_url: str | None = None
    edenai_api_key: str | None = Field(default=None, validation_alias=_alias("EDENAI_API_KEY"))
    edenai_base_url: str | None = None
    poe_api_key: str | None = Field(default=None, validation_alias=_alias("POE_API_KEY"))
    poe_base_url: str | None = None
    stripe_secret_key: str | None = Field(default=None, validation_alias=_alias("STRIPE_SECRET_KEY"))
    stripe_webhook_secret: str | None = Field(default=None, validation_alias=_alias("STRIPE_WEBHOOK_SECRET"))
    stripe_api_base: str | None = None
    # Wave-2 providers: vendor variable names as their SDKs read them (provider-protocols §3, §9–§11).
    fal_key: str | None = Field(default=None, validation_alias=_alias("FAL_KEY"))
    fal_base_url: str | None = None
    fal_jwks_url: str | None = None
    runwayml_api_secret: str | None = Field(default=None, validation_alias=_alias("RUNWAYML_API_SECRET"))
    runway_base_url: str | None = None
    lumaai_api_key: str | None = Field(default=None, validation_alias=_alias("LUMAAI_API_KEY"))
    luma_base_url: str | None = None
    gemini_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY", "REELGATE_GEMINI_API_KEY")
    )
    veo_base_url: str | None = None
    edenai_webhook_public_key: str | None = Field(default=None, validation_alias=_alias("EDENAI_WEBHOOK_PUBLIC_KEY"))
    openai_videos_base_url: str | None = Field(default=None, validation_alias=_alias("OPENAI_VIDEOS_BASE_URL"))
    openai_videos_api_key: str | None = Field(default=None, validation_alias=_alias("OPENAI_VIDEOS_API_KEY"))
    # Per-model upstreams for openai_videos: JSON {"<provider_model>": {"base_url": ..., "api_key": ...}}.
    openai_videos_upstreams: str | None = None
    poe_enhance_bot: str | None = None
    provider_spool_dir: Path | None = None
    # Billing (reelgate.services.billing/limits/expiry). Packages: a JSON list of
    # {"id", "credits", "bonus", "price" (minor units), "currency"}; empty means the seed's four packages.
    credit_packages: str = ""
    credit_expiry_days: int = 0  # 0: credits never expire (seed 001 §11 suggests 90)
    rate_limit_per_key: str = "1200/minute"  # `limits` notation; generous so status polling never trips it
    rate_limit_per_user: str = "2400/minute"
    # Per client address: every studio request, and estimates asked for without an API key or session.
    rate_limit_studio_per_address: str = "1800/minute"
    rate_limit_estimate_per_address: str = "120/minute"
    max_in_flight: int = 20  # generations a user may have queued or running at once
    daily_spend_cap_user: int = 0  # credits per user per UTC day; 0: no cap
    daily_spend_cap_global: int = 0  # credits across all users per UTC day; 0: no cap
    # Production mode (reelgate.queue, `reelgate worker`): procrastinate on the same PostgreSQL.
    s3_presign_downloads: bool = False  # redirect downloads to a short-lived presigned URL instead of streaming
    lease_seconds: float = 120.0  # a generation's claim lapses this long after its holder died
    queue_poll_seconds: float = 1.0  # how often workers look for jobs scheduled for later (polls)
    queue_heartbeat_seconds: float = 10.0  # a worker silent for 3x this is presumed dead; its jobs re-run
    reconcile_interval_seconds: int = 10  # the reconciler re-enqueues due work no job covers
    stale_upload_hours: float = 24.0  # abandoned multipart uploads older than this are aborted
    worker_metrics_port: int = 0  # `reelgate worker` serves /metrics on this port; 0: off
    # `reelgate serve`'s /metrics: with a token it answers on the public listener to `Bearer <token>` only;
    # with a port it answers on its own listener (metrics_host:metrics_port) and not on the public one.
    # Neither set: /metrics is not served.
    metrics_token: str | None = None
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    database_pool_size: int = 10  # per process; it may grow to 3x this under bursts (see docs/deploy.md)

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def serves_https(self) -> bool:
        """The public URL is https: cookies are Secure and HSTS is sent, whatever the proxy in front says."""
        return self.public_url.lower().startswith("https://")

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [entry.strip() for entry in self.trusted_proxies.split(",") if entry.strip()]

    @property
    def embedded(self) -> bool:
        """Embedded mode: SQLite under the data dir, no external services needed."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def runs_embedded_worker(self) -> bool:
        return self.embedded if self.embedded_worker is None else self.embedded_worker

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the URLs operators paste from their hosting panels; we drive PostgreSQL with psycopg 3.
            for prefix in ("postgres://", "postgresql://", "postgresql+asyncpg://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            if url.startswith("sqlite://") and "+aiosqlite" not in url:
                return url.replace("sqlite://", "sqlite+aiosqlite://", 1)
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'reelgate.db').resolve()}"

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
