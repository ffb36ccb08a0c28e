"""A closed-loop HTTP load generator (aiohttp, keep-alive): `concurrency` workers each send their next request
as soon as the previous answer has been read in full. Reads a plan (base URL and a list of requests; the list
is cycled, and "{i}" in a header value becomes the request's global index), prints a JSON summary."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from typing import Any

import aiohttp


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def main(plan: dict[str, Any], n: int, concurrency: int, offset: int, time_limit: float) -> dict[str, Any]:
    base = plan["base"].rstrip("/")
    prepared = []
    for r in plan["requests"]:
        body = base64.b64decode(r["body_b64"]) if r.get("body_b64") else r.get("body", "").encode() or None
        prepared.append((r.get("method", "GET"), base + r["path"], r.get("headers", {}), body))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    received = 0
    next_index = 0
    deadline = time.monotonic() + time_limit
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=max(60.0, time_limit))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, errors, received
        while next_index < n and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            method, url, headers, body = prepared[(offset + i) % len(prepared)]
            headers = {k: v.replace("{i}", str(offset + i)) if "{i}" in v else v for k, v in headers.items()}
            started = time.perf_counter()
            try:
                async with session.request(method, url, headers=headers, data=body) as response:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        received += len(chunk)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status >= 400:
                errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    latencies.sort()
    done = len(latencies)
    return {
        "n": done,
        "concurrency": concurrency,
        "seconds": seconds,
        "rps": done / seconds if seconds else 0.0,
        "p50_ms": _pct(latencies, 50),
        "p90_ms": _pct(latencies, 90),
        "p99_ms": _pct(latencies, 99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "mean_ms": sum(latencies) / done if done else float("nan"),
        "errors": errors,
        "statuses": statuses,
        "bytes": received,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("plan")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=120.0)
    args = parser.parse_args()
    with open(args.plan) as f:
        plan_data = json.load(f)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(plan_data, args.n, args.concurrency, args.offset, args.time_limit))))
