"""The column type of every moment in the schema (as the migrations name it)."""

from __future__ import annotations

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[object]):
    """A timestamp with time zone. Only the schema uses it: values are written and read as UTC by db/codec.py
    (on SQLite as text 'YYYY-MM-DD HH:MM:SS.ffffff', the format earlier releases stored)."""

    impl = DateTime(timezone=True)
    cache_ok = True
