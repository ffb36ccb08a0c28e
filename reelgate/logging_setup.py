"""Log configuration: JSON lines (or plain text) carrying the generation and request ids, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from reelgate.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("reelgate_request_id", default=None)
generation_id_var: ContextVar[str | None] = ContextVar("reelgate_generation_id", default=None)

# Credentials that may end up in a message (an echoed header, a URL with a key) even when no setting
# holds them: our API keys, bearer tokens and the `t=` webhook token in provider webhook URLs.
_PATTERNS = (
    re.compile(r"rg_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{8,}"),
    re.compile(r"(?i)([?&](?:t|token|key|api_key|signature|X-Amz-Signature)=)[^&\s\"']+"),
)
_MASK = "[redacted]"
# Fields of a LogRecord that are not "extra" values passed by the caller.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# The host's own settings whose values are credentials, recognised by name.
_SECRET_NAME = re.compile(r"(api_key|_secret|_token|secret_key|^fal_key|password)$")


class Redactor:
    """Replaces the configured secret values and credential-shaped strings in a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short values would mask ordinary words; real keys are long.
        self.secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + _MASK, text)
        return text


def secrets_of(settings: Settings) -> list[str]:
    values = [getattr(settings, name, None) for name in type(settings).model_fields if _SECRET_NAME.search(name)]
    # Provider settings say themselves which of them are secret (reelgate.providers.plugin.setting).
    values.extend(settings.provider_secrets())
    if settings.database_url and "@" in settings.database_url:
        # The password part of postgresql://user:password@host/db.
        userinfo = settings.database_url.split("://", 1)[-1].rsplit("@", 1)[0]
        values.append(userinfo.partition(":")[2])
    return [v for v in values if isinstance(v, str) and v]


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        entry.setdefault("generation_id", generation_id_var.get())
        entry.setdefault("request_id", request_id_var.get())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps({k: v for k, v in entry.items() if v is not None}, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            v for v in (getattr(record, "generation_id", None) or generation_id_var.get(), request_id_var.get()) if v
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return self.redact(super().format(record))


def configure_logging(settings: Settings) -> None:
    """Installs one handler on the root logger; uvicorn's and procrastinate's loggers go through it too."""
    redact = Redactor(secrets_of(settings))
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(redact) if settings.log_json else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "procrastinate"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # procrastinate logs every job start and end at INFO: useful when debugging, noise otherwise.
    logging.getLogger("procrastinate").setLevel(max(root.level, logging.WARNING))


@contextmanager
def generation_context(generation_id: str) -> Iterator[None]:
    """Every log line written while a worker handles this generation carries its id."""
    token = generation_id_var.set(generation_id)
    try:
        yield
    finally:
        generation_id_var.reset(token)
