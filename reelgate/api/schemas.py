"""Request and response shapes of the HTTP contract. Requests reject unknown fields."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reelgate.api.storable_text import StorableText
from reelgate.services.budgets import MAX_BUDGET

# Option values are checked against the model's catalog; finite numbers only (JSON's NaN and Infinity are not).
OptionValue = str | int | Annotated[float, Field(allow_inf_nan=False)] | bool
MAX_OPTIONS = 32


class Strict(StorableText):
    """Request bodies: unknown fields are refused, and so is text that cannot be stored."""

    model_config = ConfigDict(extra="forbid")


class ModelChoice(Strict):
    """`model` names a model, a tier or `auto`; `tier` is the same choice in the shape `{"tier": "basic"}`. With a
    tier or `auto` the cheapest available model that fits is picked (and named in the answer's `model`)."""

    model: str | None = Field(default=None, max_length=80, examples=["sandbox-t2v"])
    tier: str | None = Field(default=None, max_length=80, examples=["basic"])
    max_credits: int | None = Field(default=None, ge=1, le=10**9, description="The quote may not exceed it")
    min_resolution: str | None = Field(
        default=None, max_length=16, description="With a tier or auto: the pick offers at least this", examples=["720p"]
    )

    @model_validator(mode="after")
    def _one_choice(self) -> Self:
        if (self.model is None) == (self.tier is None):
            raise ValueError("give exactly one of `model` (a model, a tier or auto) and `tier`")
        return self

    @property
    def choice(self) -> str:
        return self.model if self.model is not None else str(self.tier)


class GenerationCreate(ModelChoice):
    prompt: str | None = Field(default=None, max_length=8000, examples=["a paper boat drifting on a pond"])
    negative_prompt: str | None = Field(default=None, max_length=4000)
    duration: int | None = Field(default=None, ge=0, le=600, description="Seconds", examples=[5])
    resolution: str | None = Field(default=None, max_length=16, examples=["720p"])
    aspect_ratio: str | None = Field(default=None, max_length=16, examples=["16:9"])
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    start_image: str | None = Field(
        default=None, max_length=2048, description="Upload id, or an https URL of the image (fetched and stored)"
    )
    end_image: str | None = Field(
        default=None, max_length=2048, description="Upload id, or an https URL of the image (fetched and stored)"
    )
    audio: bool = False
    enhance_prompt: bool = False
    project_id: str | None = Field(default=None, max_length=40)
    callback_url: str | None = Field(default=None, max_length=2048)
    options: dict[str, OptionValue] = Field(default_factory=dict, max_length=MAX_OPTIONS)
    organization: str | None = Field(
        default=None,
        max_length=40,
        description="An organization's id: its shared wallet pays (you must belong to it); default: your own credits",
    )


class EstimateRequest(ModelChoice):
    prompt: str | None = Field(default=None, max_length=8000)
    negative_prompt: str | None = Field(default=None, max_length=4000)
    duration: int | None = Field(default=None, ge=0, le=600, examples=[5])
    resolution: str | None = Field(default=None, max_length=16, examples=["720p"])
    aspect_ratio: str | None = Field(default=None, max_length=16)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    start_image: bool | str | None = None
    end_image: bool | str | None = None
    audio: bool = False
    enhance_prompt: bool = False
    options: dict[str, OptionValue] = Field(default_factory=dict, max_length=MAX_OPTIONS)


class EstimateResponse(BaseModel):
    model: str
    total: int
    breakdown: dict[str, int]
    currency_value: dict[str, Any]
    available: bool
    resolved: dict[str, Any]


class ErrorInfo(BaseModel):
    code: str
    message: str


class GenerationOut(BaseModel):
    id: str
    object: str = "generation"
    status: str
    progress: int
    model: str
    provider: str
    kind: str
    project_id: str
    prompt: str
    negative_prompt: str | None
    duration: int | None
    resolution: str | None
    aspect_ratio: str | None
    seed: int | None
    options: dict[str, Any]
    start_image: str | None
    end_image: str | None
    credits_quoted: int
    credits_held: int
    credits_charged: int
    credits_refunded: int
    quote_breakdown: dict[str, Any]
    error: ErrorInfo | None
    needs_review: bool
    video_url: str | None
    thumbnail_url: str | None
    output: dict[str, Any] | None
    retry_of: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    # The catalog model that served the job: `model` itself, or one of its fallbacks (then `provider`
    # is the fallback's). The price is the quote accepted for `model` either way.
    served_model: str | None = None
    enhanced_prompt: str | None = None
    favorite: bool = False
    media_removed: bool = False  # deleted by retention: the record stays, the video is gone
    # The organization whose wallet paid; None when the owner's own credits paid.
    organization: str | None = None
    # In the create answer: how long a job of this model usually takes (its latest completions, else the
    # catalog's figure); None when neither is known.
    estimated_seconds: int | None = None


class GenerationList(BaseModel):
    object: str = "list"
    data: list[GenerationOut]
    next_cursor: str | None
    has_more: bool


# A campaign's budget: whole credits only (strict: "5" or 5.5 is refused, not coerced).
BudgetCredits = Annotated[int, Field(strict=True, ge=1, le=MAX_BUDGET)]


class ProjectCreate(Strict):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    budget_credits: BudgetCredits | None = Field(default=None, description="A cap on the project's spend; null: none")
    organization: str | None = Field(
        default=None,
        max_length=40,
        description="An organization's id (you must own or administer it): the project is the team's, its members "
        "file generations into it on the organization's wallet; default: your own project",
    )


class ProjectUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    budget_credits: BudgetCredits | None = Field(
        default=None, description="Sets or changes the budget; null removes it; left out: unchanged"
    )


class ProjectOut(BaseModel):
    id: str
    name: str
    description: str
    budget_credits: int | None
    # The organization whose project this is; None for your own.
    organization: str | None = None
    created_at: str
    updated_at: str


class UploadOut(BaseModel):
    id: str
    width: int
    height: int
    size: int
    content_type: str
    sha256: str
    created_at: str


class CreditsOut(BaseModel):
    available: int
    held: int


class MeOut(BaseModel):
    id: str
    email: str
    display_name: str
    is_admin: bool
    credits: CreditsOut


class ApiKeyCreate(Strict):
    name: str = Field(default="", max_length=120)
    # Asked for when a studio session creates the key and its password was typed more than a few minutes ago.
    password: str | None = Field(default=None, max_length=1024)


class PasswordChange(Strict):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)
    revoke_api_keys: bool = True  # every API key of the account is revoked unless this is false


GenerationId = Annotated[str, Field(min_length=1, max_length=40)]


class BulkIds(Strict):
    ids: list[GenerationId] = Field(min_length=1, max_length=100, description="1 to 100 generation ids")


class BulkMove(BulkIds):
    project_id: str = Field(min_length=1, max_length=40)


class BulkItem(BaseModel):
    id: str
    status: int  # 200: done; 404: not found (or another user's)


class BulkOut(BaseModel):
    succeeded: list[str]
    not_found: list[str]
    results: list[BulkItem]


class ShareCreate(Strict):
    expires_in_days: int | None = Field(default=None, ge=1, le=365, description="None: the link never expires")
    show_prompt: bool = Field(default=False, description="Show the prompt on the public page")


class ShareOut(BaseModel):
    id: str
    object: str = "share_link"
    generation_id: str
    url: str
    show_prompt: bool
    created_at: str
    expires_at: str | None
    revoked: bool


class ShareList(BaseModel):
    data: list[ShareOut]


class StorageOut(BaseModel):
    used_bytes: int
    outputs_bytes: int
    uploads_bytes: int
    quota_bytes: int | None
    retention_days: int
    expiring_within_week: int


class ProjectTotalsOut(BaseModel):
    generations: int
    credits_spent: int
    output_bytes: int


class ProjectSpendOut(BaseModel):
    """What the project (a campaign) has cost. Provider cost and margin are the operator's figures: given to
    administrators only, null for everyone else."""

    budget_credits: int | None
    credits_captured: int
    credits_held: int
    credits_remaining: int | None = Field(description="budget − captured − held, never below zero; null: no budget")
    generations: dict[str, int] = Field(description="Generations per state, deleted ones included")
    currency: str
    revenue_micros: int | None
    provider_cost_micros: int | None
    margin_micros: int | None


class ProjectDetail(ProjectOut):
    totals: ProjectTotalsOut
    spend: ProjectSpendOut
    generations: list[GenerationOut]
    next_cursor: str | None
    has_more: bool


class ProjectDeleted(BaseModel):
    deleted: str
    generations_moved_to: str | None
