"""Replicate's loopback simulator holding `count` predictions that stay "processing" (job ids job0000000...).
Prints `URL <base>` once listening; keeps no request log (it would grow with every poll)."""

from __future__ import annotations

import argparse
import threading
import time

from tests.simulators.base import Job
from tests.simulators.replicate import ReplicateSimulator


class _Counter(list):  # type: ignore[type-arg]
    """Stands in for the simulator's request log: counts instead of keeping."""

    count = 0

    def append(self, _item: object) -> None:
        self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=900)
    args = parser.parse_args()
    sim = ReplicateSimulator(api_key="bench-token")
    sim.requests = _Counter()
    for i in range(args.count):
        job = Job(id=f"job{i:07d}", body={"input": {"prompt": "bench"}}, state="running", progress=40)
        job.extra.update(
            model="wan-video/wan-2.1-t2v-14b",
            version="a" * 64,
            created_at="2026-01-01T00:00:00Z",
            started_at="2026-01-01T00:00:01Z",
        )
        sim.jobs[job.id] = job
    print("URL", sim.start(), flush=True)
    stop = threading.Event()
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline and not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    print("REQUESTS", sim.requests.count, flush=True)
    sim.stop()


if __name__ == "__main__":
    main()
