"""Download of a 1 GiB stored video through the authenticated content endpoint vs a bare static FileResponse
of the same file on the same server: MB/s ratio and server memory growth."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from bench import fixtures
from bench.common import PYTHON, SERVER_CPU, Load, fmt, free_port, median, new_run_dir, ratio, run_load, spawn
from bench.report import Section

SIZE = 1 << 30
KEY = "bench/video-1g.mp4"


class RssSampler(threading.Thread):
    def __init__(self, read: object, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.read, self.interval, self.peak, self._halt = read, interval, 0.0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.read())  # type: ignore[operator]
            time.sleep(self.interval)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak


def run(quick: bool) -> Section:
    rounds = 2 if quick else 4
    run_dir = new_run_dir("download")
    values = fixtures.settings_values(run_dir / "data")
    media = run_dir / "data" / "media" / KEY
    media.parent.mkdir(parents=True, exist_ok=True)
    with media.open("wb") as f:  # incompressible, like a real video
        for _ in range(SIZE // (16 << 20)):
            f.write(os.urandom(16 << 20))
    static = run_dir / "data" / "bench-static" / "video-1g.mp4"
    static.parent.mkdir(parents=True, exist_ok=True)
    os.link(media, static)  # the same inode: both routes read the same cached pages

    async def setup() -> tuple[str, str]:
        async with fixtures.context(values) as ctx:
            user_id, key = await fixtures.user_with_key(ctx)
            gen = (
                await fixtures.insert_generations(
                    ctx,
                    user_id,
                    1,
                    provider="sandbox",
                    model="sandbox-t2v",
                    status="succeeded",
                    output_key=KEY,
                    output_content_type="video/mp4",
                    output_size=SIZE,
                )
            )[0]
            return key, gen.id

    key, gid = asyncio.run(setup())
    port = free_port()
    server = spawn(
        "server",
        SERVER_CPU,
        [PYTHON, "-m", "bench.server", "--port", str(port)],
        env=fixtures.settings_env(values),
        port=port,
        run_dir=run_dir,
    )
    base = f"http://127.0.0.1:{port}"
    plans = {
        "static": [{"method": "GET", "path": "/bench/static/video-1g.mp4"}],
        "content": [
            {
                "method": "GET",
                "path": f"/api/v1/generations/{gid}/content",
                "headers": {"authorization": f"Bearer {key}"},
            }
        ],
    }
    results: dict[tuple[str, int], list[tuple[Load, float]]] = {}
    try:
        run_load(base, plans["static"], n=1, concurrency=1, warmup=0, run_dir=run_dir)  # page cache warm
        rss0 = server.rss()
        for r in range(rounds):
            for c in (1, 4):
                for route in ["static", "content"] if r % 2 == 0 else ["content", "static"]:
                    before = server.rss()
                    sampler = RssSampler(server.rss)
                    sampler.start()
                    load = run_load(
                        base,
                        plans[route],
                        n=c * 2,
                        concurrency=c,
                        warmup=0,
                        run_dir=run_dir,
                        server=server,
                        time_limit=300,
                    )
                    growth = sampler.stop() - before
                    results.setdefault((route, c), []).append((load, growth))
                    print(
                        f"  round {r + 1} c={c} {route}: {load.mb_per_s:.0f} MB/s, peak RSS +{growth:.1f} MB, "
                        f"cpu {load.server_cpu_ms_per_req:.0f} ms/GiB, {load.statuses}",
                        flush=True,
                    )
        rss1 = server.rss()
    finally:
        server.stop()
        media.unlink(missing_ok=True)
        static.unlink(missing_ok=True)
    section = Section(
        "download",
        "Download of a 1 GiB stored video: authenticated content endpoint vs bare static FileResponse",
        [
            "c",
            "content MB/s",
            "static MB/s",
            "ratio",
            "server CPU s/GiB content / static",
            "peak RSS growth MB content / static",
        ],
    )
    for c in (1, 4):
        con, sta = results[("content", c)], results[("static", c)]
        cm, sm = median([x.mb_per_s for x, _ in con]), median([x.mb_per_s for x, _ in sta])
        section.rows.append(
            [
                str(c),
                fmt(cm),
                fmt(sm),
                f"{ratio(cm, sm):.2f}",
                f"{median([x.server_cpu_ms_per_req for x, _ in con]) / 1000:.2f} / "
                f"{median([x.server_cpu_ms_per_req for x, _ in sta]) / 1000:.2f}",
                f"{max(g for _, g in con):.1f} / {max(g for _, g in sta):.1f}",
            ]
        )
    section.notes.append(
        "Local store (embedded mode): the static route answers with Starlette's FileResponse (64 KiB reads, each "
        "through a worker thread), the content endpoint with reelgate's MediaFileResponse (the same class reading "
        "1 MiB at a time, so one chunk per download is in memory), of the same file (page cache warm). "
        f"{rounds} interleaved rounds × (c=1: 2 downloads, c=4: 8 downloads), medians; server RSS "
        f"sampled every 20 ms during each run (growth = peak − RSS before the run); server RSS {rss0:.0f} MB "
        f"before the first download, {rss1:.0f} MB after the last. The client (aiohttp, CPU 0) reads and discards."
    )
    return section
