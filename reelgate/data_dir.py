"""The data dir's private files: the folder is created 0700 and secrets in it 0600, once, shared by every
process that uses the same data dir (the API, an embedded worker, the CLI)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_KEY_FILE = "secret-key"  # noqa: S105 - a file name, not a secret


def ensure_private_dir(path: Path) -> Path:
    """Create the folder owner-only; tighten an existing one (it holds the database and its webhook secrets)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def secret_key(data_dir: Path) -> str:
    """The key that signs studio sessions when the operator set none: random, made on first start, kept."""
    return _read_or_create_secret(ensure_private_dir(data_dir) / SECRET_KEY_FILE)


def _read_or_create_secret(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    # Written whole under a temporary name, then linked into place: two processes starting together agree on
    # one key (link refuses to replace), and no reader ever sees a half-written file.
    fresh = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(fresh + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty; delete it to have a new key made")
    return value
