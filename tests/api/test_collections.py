"""docs/api/: the Postman collection and the .http file are what `reelgate api-collections` generates from the
current OpenAPI schema, and cover every operation in it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reelgate.api.collections import HTTP_FILE, POSTMAN_FILE, POSTMAN_SCHEMA, operations, render
from reelgate.app import create_app
from tests.conftest import make_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return create_app(make_settings(tmp_path_factory.mktemp("openapi"))).openapi()


def test_committed_collections_are_up_to_date(spec: dict[str, Any]) -> None:
    for name, text in render(spec).items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/api/{name} is out of date: run `reelgate api-collections`"


def test_every_operation_is_in_both_collections(spec: dict[str, Any]) -> None:
    expected = {(method, path) for method, path, _ in operations(spec)}
    assert len(expected) > 40

    postman = json.loads((DOCS / POSTMAN_FILE).read_text(encoding="utf-8"))
    assert postman["info"]["schema"] == POSTMAN_SCHEMA
    found = set()
    for folder in postman["item"]:
        for item in folder["item"]:
            request = item["request"]
            assert request["url"]["raw"].startswith("{{baseUrl}}/")
            if "body" in request:
                json.loads(request["body"]["raw"])
            path = "/" + "/".join(re.sub(r"^:(.+)$", r"{\1}", s) for s in request["url"]["path"])
            found.add((request["method"], path))
    assert found == expected

    text = (DOCS / HTTP_FILE).read_text(encoding="utf-8")
    lines = re.findall(r"^### .+\n([A-Z]+) \{\{baseUrl\}\}(\S+)$", text, re.MULTILINE)
    assert {(method, re.sub(r"\{\{(\w+)\}\}", r"{\1}", path)) for method, path in lines} == expected
