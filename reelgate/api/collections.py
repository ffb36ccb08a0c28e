"""Request collections generated from the OpenAPI schema: a Postman collection (v2.1) and an HTTP-client file
(`.http`, read by JetBrains IDEs and VS Code's REST Client). `reelgate api-collections` writes them to
docs/api/, and a test keeps the committed files equal to what the running code generates."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
BASE_URL = "http://127.0.0.1:8000"
POSTMAN_FILE = "reelgate.postman_collection.json"
HTTP_FILE = "reelgate.http"
# Called by providers, Stripe or probes, not with a user's API key.
_NO_AUTH_PREFIXES = ("/webhooks/", "/media/inputs/", "/healthz", "/readyz")
_METHODS = ("get", "post", "put", "patch", "delete")


def _resolve(schema: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def example(schema: Mapping[str, Any], spec: Mapping[str, Any], depth: int = 0) -> Any:
    """A plausible value for a schema: its own example or default, else one made from its type."""
    schema = _resolve(schema, spec)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("default") is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = [c for c in schema.get(key, []) if _resolve(c, spec).get("type") != "null"]
        if choices:
            return example(choices[0], spec, depth)
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        if depth > 3:
            return {}
        # The required fields and those the schema gives an example for: a body one can send as it is.
        required = set(schema.get("required", []))
        properties = {
            name: sub
            for name, sub in schema.get("properties", {}).items()
            if name in required or {"example", "examples"} & set(_resolve(sub, spec))
        }
        return {name: example(sub, spec, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [example(schema.get("items", {}), spec, depth + 1)] if depth <= 3 else []
    return {"integer": 0, "number": 0, "boolean": False}.get(str(kind), "string")


def operations(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _json_body(operation: Mapping[str, Any], spec: Mapping[str, Any]) -> Any | None:
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json")
    return example(media.get("schema", {}), spec) if media is not None else None


def _parameters(operation: Mapping[str, Any], where: str) -> list[Mapping[str, Any]]:
    return [p for p in operation.get("parameters", []) if p.get("in") == where]


def _title(operation: Mapping[str, Any], method: str, path: str) -> str:
    return str(operation.get("summary") or operation.get("operationId") or f"{method} {path}")


def postman_collection(spec: Mapping[str, Any]) -> dict[str, Any]:
    folders: dict[str, list[dict[str, Any]]] = {}
    for method, path, operation in operations(spec):
        segments = [s for s in path.split("/") if s]
        query = [{"key": p["name"], "value": "", "disabled": True} for p in _parameters(operation, "query")]
        headers = [
            {"key": p["name"], "value": "", "disabled": not p.get("required", False)}
            for p in _parameters(operation, "header")
        ]
        url: dict[str, Any] = {
            "raw": "{{baseUrl}}/" + "/".join(_postman_segment(s) for s in segments),
            "host": ["{{baseUrl}}"],
            "path": [_postman_segment(s) for s in segments],
        }
        variables = [{"key": p["name"], "value": ""} for p in _parameters(operation, "path")]
        if variables:
            url["variable"] = variables
        if query:
            url["query"] = query
        request: dict[str, Any] = {"method": method, "header": headers, "url": url}
        if operation.get("description"):
            request["description"] = operation["description"]
        body = _json_body(operation, spec)
        if body is not None:
            request["header"] = [{"key": "Content-Type", "value": "application/json"}, *headers]
            request["body"] = {
                "mode": "raw",
                "raw": json.dumps(body, indent=2),
                "options": {"raw": {"language": "json"}},
            }
        if path.startswith(_NO_AUTH_PREFIXES):
            request["auth"] = {"type": "noauth"}
        tag = str((operation.get("tags") or ["other"])[0])
        folders.setdefault(tag, []).append({"name": _title(operation, method, path), "request": request})
    info = spec.get("info", {})
    return {
        "info": {
            "name": f"{info.get('title', 'reelgate')} {info.get('version', '')}".strip(),
            "description": info.get("description", ""),
            "schema": POSTMAN_SCHEMA,
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "variable": [{"key": "baseUrl", "value": BASE_URL}, {"key": "apiKey", "value": ""}],
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
    }


def _postman_segment(segment: str) -> str:
    return f":{segment[1:-1]}" if segment.startswith("{") and segment.endswith("}") else segment


def http_collection(spec: Mapping[str, Any]) -> str:
    info = spec.get("info", {})
    lines = [
        f"# {info.get('title', 'reelgate')} {info.get('version', '')}: every operation of the OpenAPI schema.",
        "# Generated by `reelgate api-collections`; set the variables below, or in http-client.env.json.",
        f"@baseUrl = {BASE_URL}",
        "@apiKey = rg_your_api_key",
        "",
    ]
    for method, path, operation in operations(spec):
        target = path
        for parameter in _parameters(operation, "path"):
            target = target.replace("{" + parameter["name"] + "}", "{{" + parameter["name"] + "}}")
        lines.append(f"### {_title(operation, method, path)}")
        lines.append(f"{method} {{{{baseUrl}}}}{target}")
        if not path.startswith(_NO_AUTH_PREFIXES):
            lines.append("Authorization: Bearer {{apiKey}}")
        body = _json_body(operation, spec)
        if body is not None:
            lines += ["Content-Type: application/json", "", json.dumps(body, indent=2)]
        lines.append("")
    return "\n".join(lines)


def render(spec: Mapping[str, Any]) -> dict[str, str]:
    """File name to content, exactly as committed under docs/api/."""
    return {
        POSTMAN_FILE: json.dumps(postman_collection(spec), indent=2, ensure_ascii=False) + "\n",
        HTTP_FILE: http_collection(spec),
    }
