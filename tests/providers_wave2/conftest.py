"""Fixtures for the wave-2 adapter tests: loopback-only sockets, a webhook receiver, one simulator each."""

from __future__ import annotations

import pytest

from tests.providers.conftest import loopback_only, receiver  # noqa: F401 - re-exported fixtures


@pytest.fixture
def modelslab_sim():
    from tests.simulators.modelslab import ModelsLabSimulator

    with ModelsLabSimulator() as sim:
        yield sim


@pytest.fixture
def edenai_sim():
    from tests.simulators.edenai import EdenAISimulator

    with EdenAISimulator() as sim:
        yield sim


@pytest.fixture
def poe_sim():
    from tests.simulators.poe import PoeSimulator

    with PoeSimulator() as sim:
        yield sim


@pytest.fixture
def openai_videos_sim():
    from tests.simulators.openai_videos import OpenAIVideosSimulator

    with OpenAIVideosSimulator() as sim:
        yield sim


@pytest.fixture
def fal_sim():
    from tests.simulators.fal import FalSimulator

    with FalSimulator() as sim:
        yield sim


@pytest.fixture
def runway_sim():
    from tests.simulators.runway import RunwaySimulator

    with RunwaySimulator() as sim:
        yield sim


@pytest.fixture
def luma_sim():
    from tests.simulators.luma import LumaSimulator

    with LumaSimulator() as sim:
        yield sim


@pytest.fixture
def veo_sim():
    from tests.simulators.veo import VeoSimulator

    with VeoSimulator() as sim:
        yield sim


OPENROUTER_SECRET = "openrouter-signing-secret"


@pytest.fixture
def openrouter_sim():
    from tests.simulators.openrouter import OpenRouterSimulator

    with OpenRouterSimulator(webhook_secret=OPENROUTER_SECRET) as sim:
        yield sim
