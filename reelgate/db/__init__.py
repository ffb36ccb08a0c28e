"""Persistence: SQLAlchemy tables, the unit of work, named queries, and Alembic migrations."""
