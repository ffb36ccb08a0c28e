"""Every table module, imported once so Alembic and the schema test see the whole metadata."""

from reelgate.db import tables, tables_accounts, tables_billing, tables_mail, tables_orgs, tables_queue, tables_webhooks

metadata = tables.metadata

__all__ = [
    "metadata",
    "tables",
    "tables_accounts",
    "tables_billing",
    "tables_mail",
    "tables_orgs",
    "tables_queue",
    "tables_webhooks",
]
