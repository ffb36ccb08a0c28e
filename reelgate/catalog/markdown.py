"""A catalog as a Markdown table: the README's list of the default catalog's models is this output, and a test
keeps the two the same (`reelgate models --markdown` prints it)."""

from __future__ import annotations

from reelgate.domain.catalog import Catalog
from reelgate.domain.model_summary import features_of, price_at_defaults
from reelgate.domain.pricing import PerTokenPricing

HEADER = (
    "| model | provider | tier | what it takes | credits at the defaults |",
    "|---|---|---|---|---|",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def models_markdown(catalog: Catalog) -> str:
    rows = list(HEADER)
    for spec in catalog.models:
        name = f"`{spec.id}` {spec.name}" + (" (local preview, not an AI model)" if spec.preview else "")
        price = price_at_defaults(spec)
        shown = "—" if price is None else str(price)
        if price is not None and isinstance(spec.pricing, PerTokenPricing):
            shown = f"at most {price}, per token"
        cells = (name, spec.provider, spec.tier or "—", ", ".join(features_of(spec)), shown)
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"
