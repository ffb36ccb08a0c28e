"""The README's model table is the default catalog's: `reelgate models --markdown` printed it, and a catalog change
that leaves it behind fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelgate.catalog import load_default_catalog
from reelgate.catalog.markdown import models_markdown
from reelgate.cli import app
from reelgate.domain.model_summary import price_at_defaults

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = re.compile(r"<!-- models:start[^>]*-->\n(.*?)<!-- models:end -->", re.S)


def _committed_table() -> str:
    found = SECTION.search(README.read_text(encoding="utf-8"))
    assert found, "README.md has no models section between its markers"
    return found.group(1)


def test_the_readme_lists_every_default_model_as_the_catalog_prices_it() -> None:
    catalog = load_default_catalog()
    committed = _committed_table()
    assert committed == models_markdown(catalog), (
        "README.md's model table is out of date: run `reelgate models --markdown`"
    )
    for spec in catalog.models:
        assert f"| `{spec.id}` " in committed
    # Every kind the catalog sells is there, text and images included.
    assert {spec.kind for spec in catalog.models} == {"t2v", "i2v", "image", "text"}


def test_the_table_quotes_what_the_estimate_would() -> None:
    catalog = load_default_catalog()
    rows = {line.split("`")[1]: line for line in models_markdown(catalog).splitlines() if line.startswith("| `")}
    for spec in catalog.models:
        price = price_at_defaults(spec)
        last_cell = rows[spec.id].rsplit("|", 2)[1].strip()
        assert (str(price) if price is not None else "—") in last_cell


def test_the_command_prints_the_configured_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = tmp_path / "one.yaml"
    catalog.write_text(
        "models:\n"
        "  - id: only-one\n"
        "    name: Only one\n"
        "    provider: sandbox\n"
        "    provider_model: sandbox-t2v\n"
        "    kind: t2v\n"
        "    capabilities: {durations: [5], resolutions: [720p]}\n"
        "    pricing: {rule: grid, keys: [], table: 7}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("REELGATE_CATALOG", str(catalog))
    monkeypatch.setenv("REELGATE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["models", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2] == "| `only-one` Only one | sandbox | — | Text to video, 5 s, 720p | 7 |"
