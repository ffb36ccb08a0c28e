"""The in-process moving-window counter, driven by a fake clock: exact counts, a window that moves with the
oldest hit (not a fixed bucket), independent identities, reset times, and the sweep of emptied windows."""

from __future__ import annotations

import limits
import pytest

from reelgate.services.rate_window import LocalMovingWindow

START = 1_700_000_000.0  # an arbitrary epoch second


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def window(clock: FakeClock) -> LocalMovingWindow:
    return LocalMovingWindow(clock=clock)


THREE_PER_MINUTE = limits.parse("3/minute")


async def test_allows_exactly_the_limit_then_refuses(window: LocalMovingWindow, clock: FakeClock) -> None:
    assert [await window.hit(THREE_PER_MINUTE, "key") for _ in range(3)] == [True, True, True]
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    clock.advance(59.9)
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    stats = await window.get_window_stats(THREE_PER_MINUTE, "key")
    assert stats.remaining == 0


async def test_refused_hits_are_not_counted(window: LocalMovingWindow, clock: FakeClock) -> None:
    assert await window.hit(THREE_PER_MINUTE, "key") is True
    for _ in range(2):
        clock.advance(1)
        assert await window.hit(THREE_PER_MINUTE, "key") is True
    for _ in range(10):  # hammering a full window must not push its opening further away
        clock.advance(1)
        assert await window.hit(THREE_PER_MINUTE, "key") is False
    clock.now = START + 60  # the first hit (at START) leaves the window
    assert await window.hit(THREE_PER_MINUTE, "key") is True


async def test_the_window_moves_with_the_oldest_hit(window: LocalMovingWindow, clock: FakeClock) -> None:
    for offset in (0, 10, 20):
        clock.now = START + offset
        assert await window.hit(THREE_PER_MINUTE, "key") is True
    clock.now = START + 59.999
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    # One minute after the first hit only that hit has left: one slot frees, not the whole minute's three
    # (which a fixed window starting at START would allow).
    clock.now = START + 60
    assert await window.hit(THREE_PER_MINUTE, "key") is True
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    clock.now = START + 69.5
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    clock.now = START + 70  # the hit at +10 leaves
    assert await window.hit(THREE_PER_MINUTE, "key") is True
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    clock.now = START + 80  # the hit at +20 leaves
    assert await window.hit(THREE_PER_MINUTE, "key") is True
    stats = await window.get_window_stats(THREE_PER_MINUTE, "key")
    assert stats.remaining == 0
    assert stats.reset_time == START + 60 + 60  # the oldest live hit is the one at +60


async def test_identities_are_independent(window: LocalMovingWindow) -> None:
    for _ in range(3):
        assert await window.hit(THREE_PER_MINUTE, "alice") is True
    assert await window.hit(THREE_PER_MINUTE, "alice") is False
    assert await window.hit(THREE_PER_MINUTE, "bob") is True
    assert await window.hit(THREE_PER_MINUTE, "alice", "key-1") is True  # a different identity tuple
    assert (await window.get_window_stats(THREE_PER_MINUTE, "bob")).remaining == 2
    assert (await window.get_window_stats(THREE_PER_MINUTE, "alice")).remaining == 0
    assert (await window.get_window_stats(THREE_PER_MINUTE, "carol")).remaining == 3


async def test_limits_of_different_items_count_separately(window: LocalMovingWindow) -> None:
    one_per_second = limits.parse("1/second")
    assert await window.hit(one_per_second, "alice") is True
    assert await window.hit(one_per_second, "alice") is False
    # The same identity under another limit has its own window.
    assert await window.hit(THREE_PER_MINUTE, "alice") is True
    assert (await window.get_window_stats(THREE_PER_MINUTE, "alice")).remaining == 2


async def test_window_stats_reset_time_is_oldest_hit_plus_expiry(window: LocalMovingWindow, clock: FakeClock) -> None:
    empty = await window.get_window_stats(THREE_PER_MINUTE, "key")
    assert empty.remaining == 3
    assert empty.reset_time == START + 60  # nothing counted: a full window from now

    clock.now = START + 5
    await window.hit(THREE_PER_MINUTE, "key")
    clock.now = START + 30
    await window.hit(THREE_PER_MINUTE, "key")
    clock.now = START + 40
    stats = await window.get_window_stats(THREE_PER_MINUTE, "key")
    assert stats.remaining == 1
    assert stats.reset_time == START + 5 + 60

    clock.now = START + 65  # the hit at +5 has left; the one at +30 is now the oldest
    stats = await window.get_window_stats(THREE_PER_MINUTE, "key")
    assert stats.remaining == 2
    assert stats.reset_time == START + 30 + 60

    clock.now = START + 200  # everything has left
    stats = await window.get_window_stats(THREE_PER_MINUTE, "key")
    assert stats.remaining == 3
    assert stats.reset_time == START + 200 + 60


async def test_reset_forgets_every_window(window: LocalMovingWindow) -> None:
    for _ in range(3):
        await window.hit(THREE_PER_MINUTE, "key")
    assert await window.hit(THREE_PER_MINUTE, "key") is False
    await window.reset()
    assert await window.hit(THREE_PER_MINUTE, "key") is True
    assert (await window.get_window_stats(THREE_PER_MINUTE, "key")).remaining == 2


async def test_sweep_drops_identities_whose_windows_emptied(window: LocalMovingWindow, clock: FakeClock) -> None:
    for identity in ("idle-1", "idle-2", "idle-3"):
        assert await window.hit(THREE_PER_MINUTE, identity) is True
    clock.advance(30)
    assert await window.hit(THREE_PER_MINUTE, "recent") is True  # still inside its window at the sweep
    assert len(window._windows) == 4

    clock.advance(31)  # the idle identities' hits are now older than a minute
    busy = limits.parse("10000/minute")
    for _ in range(4000):  # fewer hits than a sweep period: nothing is dropped yet
        assert await window.hit(busy, "busy") is True
    assert len(window._windows) == 5
    for _ in range(200):  # crosses 4096 hits in all
        assert await window.hit(busy, "busy") is True

    assert len(window._windows) == 2  # "recent" and "busy" stay; the idle ones were swept
    # The survivors keep their counts; the swept identities start from an empty window.
    assert (await window.get_window_stats(busy, "busy")).remaining == 10000 - 4200
    assert (await window.get_window_stats(THREE_PER_MINUTE, "recent")).remaining == 2
    for _ in range(3):
        assert await window.hit(THREE_PER_MINUTE, "idle-1") is True
    assert await window.hit(THREE_PER_MINUTE, "idle-1") is False
