"""Named queries' two forms, the records' match with the schema, and values stored as earlier releases did."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reelgate.db.codec import JsonValue, decode_row, moment_from_sqlite, postgresql_params, sqlite_params
from reelgate.db.records import TABLE_OF, Generation, User
from reelgate.db.schema import metadata
from reelgate.db.sql import in_states, query


def test_one_text_two_dialects() -> None:
    q = query("SELECT id FROM t WHERE id = ANY(:ids) AND note LIKE 'a:%' AND x::text = :x FOR UPDATE")
    assert (
        q.sqlite
        == "SELECT id FROM t WHERE id IN (SELECT value FROM json_each(:ids)) AND note LIKE 'a:%' AND x::text = :x"
    )
    assert q.postgresql == (
        "SELECT id FROM t WHERE id = ANY(%(ids)s) AND note LIKE 'a:%%' AND x::text = %(x)s FOR UPDATE"
    )
    explicit = query("SELECT 1 WHERE now() > :t", sqlite="SELECT 1 WHERE datetime('now') > :t")
    assert explicit.sqlite == "SELECT 1 WHERE datetime('now') > :t"


def test_status_lists_written_into_sql_accept_only_plain_names() -> None:
    assert in_states({"queued", "storing"}) == "('queued', 'storing')"
    with pytest.raises(ValueError):
        in_states({"x'); DROP TABLE users; --"})


def test_every_record_has_exactly_its_tables_columns() -> None:
    for record, table_name in TABLE_OF.items():
        table = metadata.tables[table_name]
        assert [f.name for f in dataclasses.fields(record)] == [c.name for c in table.columns], table_name
    recorded = set(TABLE_OF.values())
    assert recorded <= set(metadata.tables)


def test_moments_are_stored_in_the_format_earlier_releases_wrote() -> None:
    moment = datetime(2026, 12, 4, 15, 26, 8, tzinfo=timezone(timedelta(hours=2)))
    stored = sqlite_params({"at": moment})["at"]
    assert stored == "2026-12-04 13:26:08.000000"  # UTC, fixed width: text order is time order
    assert moment_from_sqlite(stored) == moment
    assert moment_from_sqlite("2025-01-02 03:04:05.678901").tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        sqlite_params({"at": datetime(2026, 1, 1)})
    with pytest.raises(ValueError, match="naive"):
        postgresql_params({"at": datetime(2026, 1, 1)})


def test_json_and_booleans_round_trip_through_sqlite() -> None:
    params = sqlite_params({"d": {"a": [1, 2]}, "l": JsonValue(["x"]), "ids": ["a", "b"], "b": True})
    assert params == {"d": '{"a":[1,2]}', "l": '["x"]', "ids": '["a","b"]', "b": True}
    user = decode_row(User, "sqlite", ("usr_1", "a@b.c", None, "", 1, 0, 0, "2026-01-01 00:00:00.000000"))
    assert user.is_admin is True and user.flagged is False
    assert user.created_at == datetime(2026, 1, 1, tzinfo=UTC)
    fields = [f.name for f in dataclasses.fields(Generation)]
    row = [None] * len(fields)
    row[fields.index("params")] = '{"duration": 5}'
    row[fields.index("needs_review")] = 0
    generation = decode_row(Generation, "sqlite", row)
    assert generation.params == {"duration": 5} and generation.needs_review is False
