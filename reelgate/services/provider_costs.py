"""What a job cost the operator at its provider, in millionths of the catalog's currency.

One computation for both uses: the figure recorded with a job when it succeeds, and the revenue pages, which read
the record (or work it out the same way for jobs finished before costs were recorded). A fallback costs what its
route charges for the request it was sent; a per-token text job costs the tokens its provider reported."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from reelgate.db.records import Generation
from reelgate.domain.catalog import Catalog, ModelSpec, ResolvedRequest, resolve_request
from reelgate.domain.costs import ProviderCost, provider_cost_estimate, token_cost
from reelgate.domain.errors import NotFound, ReelgateError
from reelgate.domain.fallbacks import fallback_request
from reelgate.services.job_inputs import asked_input

MICROS = 1_000_000  # money is reported in millionths of a currency unit, as integers


def _spec(catalog: Catalog, model_id: str) -> ModelSpec | None:
    try:
        return catalog.get(model_id)
    except NotFound:  # a model removed from the catalog keeps its history, at no known cost
        return None


def _sent_request(catalog: Catalog, generation: Generation, served: ModelSpec) -> ResolvedRequest | None:
    """The request the serving route received: the one asked of the chosen model, mapped by the fallback that
    served it."""
    asked = asked_input(generation)
    chosen = _spec(catalog, generation.model)
    fallback = next((f for f in chosen.fallbacks if f.model == served.id), None) if chosen is not None else None
    if chosen is None or fallback is None:
        return resolve_request(served, asked, require_prompt=False)
    return fallback_request(chosen, resolve_request(chosen, asked, require_prompt=False), fallback, served)


def _usage(generation: Generation, usage: Mapping[str, int] | None) -> Mapping[str, int] | None:
    if usage is not None:
        return usage
    kept = (generation.output_meta or {}).get("usage")
    return kept if isinstance(kept, Mapping) else None


def to_work_out(catalog: Catalog, served_unrecorded: Iterable[str]) -> frozenset[str]:
    """Of the models that served jobs with no recorded provider cost, those whose jobs must be costed one by one:
    the models a job can cost something on, as the catalog prices them in the currency credits are sold in. A job
    served by any other model costs 0 here, whatever it was asked."""
    costs = ((spec.id, _cost_in_credits_currency(catalog, spec)) for spec in catalog.models)
    costed = {model for model, cost in costs if cost is not None and not cost.free}
    return frozenset(served_unrecorded) & costed


def _cost_in_credits_currency(catalog: Catalog, spec: ModelSpec) -> ProviderCost | None:
    # A cost in another currency cannot be set against revenue without an exchange rate.
    cost = spec.provider_cost
    return cost if cost is not None and cost.currency == catalog.credit_unit.currency else None


def job_provider_cost_micros(
    catalog: Catalog, generation: Generation, *, usage: Mapping[str, int] | None = None
) -> int:
    """The provider cost of `generation` as the catalog prices it; 0 when the catalog gives none, or gives it in
    another currency than credits are sold in (it cannot be set against revenue without an exchange rate)."""
    served = _spec(catalog, generation.served_model or generation.model)
    cost = _cost_in_credits_currency(catalog, served) if served is not None else None
    if served is None or cost is None:
        return 0
    tokens = _usage(generation, usage)
    money: Decimal | None
    if cost.per_1k_input_tokens is not None and tokens is not None:
        money = token_cost(cost, int(tokens.get("input_tokens", 0)), int(tokens.get("output_tokens", 0)))
    else:
        try:
            request = _sent_request(catalog, generation, served)
        except ReelgateError:  # the catalog changed since: the request no longer resolves
            return 0
        money = provider_cost_estimate(served, request) if request is not None else None
    return int((money or Decimal(0)) * MICROS)
