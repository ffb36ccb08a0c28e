"""Whole rows for Core inserts, and the detached ORM objects built from them."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect

from reelgate.db.rows import instance_from_row, with_defaults
from reelgate.db.tables import Generation


def _row() -> dict[str, object]:
    return with_defaults(
        Generation.__table__,  # type: ignore[arg-type]
        {"id": "gen_1", "user_id": "usr_1", "status": "queued", "model": "m", "provider": "p", "prompt": "a fox"},
    )


def test_with_defaults_fills_every_column() -> None:
    row = _row()
    assert set(row) == {column.key for column in Generation.__table__.columns}
    assert row["prompt"] == "a fox"


def test_instance_from_row_reads_like_the_constructor_built_one() -> None:
    row = _row()
    built, loaded = Generation(**row), instance_from_row(Generation, row)
    for column in Generation.__table__.columns:
        assert getattr(loaded, column.key) == getattr(built, column.key), column.key
    state = inspect(loaded)
    assert state.transient and state.session is None


def test_instance_from_row_keeps_its_own_copy_of_the_values() -> None:
    row = _row()
    loaded = instance_from_row(Generation, row)
    row["status"] = "failed"
    assert loaded.status == "queued"
    loaded.status = "processing"  # still an ordinary instrumented attribute
    assert loaded.status == "processing" and row["status"] == "failed"


def test_instance_from_row_works_as_a_process_first_orm_object() -> None:
    # A worker process may build its first ORM object here, before any constructor has set the mappers up.
    script = (
        "from reelgate.db.rows import instance_from_row, with_defaults\n"
        "from reelgate.db.tables import Generation\n"
        "row = with_defaults(Generation.__table__, {'id': 'gen_1', 'status': 'processing'})\n"
        "print(instance_from_row(Generation, row).status)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "processing"
