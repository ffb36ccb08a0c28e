"""Scenario 8, abuse: schemathesis drives every operation of the OpenAPI schema; nothing answers 500."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.reliability.conftest import LiveServer

EXAMPLES_PER_OPERATION = 12


def test_no_operation_answers_500(live_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(headers=live_server.headers, timeout=30)
            if response.status_code == 500:  # 503 is a designed answer for an unconfigured dependency
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        exercise()
    assert operations >= 10
    assert failures == [], "\n".join(failures[:20])
