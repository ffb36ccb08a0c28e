"""A real reelgate served by uvicorn on 127.0.0.1 for the official `openrouter` SDK; loopback image and callback
hosts allowed, so frame images by URL and signed callbacks can be checked against local servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reelgate.app import create_app
from tests.conftest import make_settings
from tests.openai_compat.conftest import LiveServer, serve


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path / "data",
        None,  # embedded mode: SQLite under the data dir, the worker inside the server
        sandbox_delay_seconds=0.5,
        poll_initial_seconds=0.1,
        poll_max_seconds=0.3,
        public_url="http://127.0.0.1",
        fetch_allow_hosts="127.0.0.1",
    )
    app = create_app(settings)
    for url, loop in serve(app):
        yield LiveServer(url=url, app=app, loop=loop)


# A loopback webhook receiver verifying Standard Webhooks signatures, and retries in seconds.
from tests.client_webhooks.conftest import fast_retries, receiver  # noqa: E402, F401
