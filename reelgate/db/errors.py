"""What the database layer raises, whatever the driver: services catch these, never a driver's own classes."""

from __future__ import annotations

from reelgate.domain.errors import ServiceUnavailable


class UniqueViolation(Exception):
    """A row with the same unique key exists (a concurrent twin won, or the value is taken)."""


class IntegrityViolation(Exception):
    """A check or foreign-key constraint refused the statement (a bug or a race the caller must handle)."""


class DatabaseUnavailable(ServiceUnavailable):
    """The database refused, failed or could not be reached; the API answers 503 and the client may retry.

    Raised only when the caller's transaction did not commit, or when whether it did cannot be known (a
    connection lost during COMMIT and the server unreachable long enough to ask): an idempotency key makes
    the retry safe either way."""

    def __init__(self, message: str = "The database is unavailable; try again shortly.") -> None:
        super().__init__(message, details={"retry_after": 5})
        self.retry_after = 5


class TransactionLost(DatabaseUnavailable):
    """The database ended the transaction on its own (SQLite does on a full disk, an I/O error or out of memory):
    nothing of it, and nothing of any transaction committed with it, was kept."""

    def __init__(self) -> None:
        super().__init__("The database failed while writing; nothing was saved. Try again shortly.")
