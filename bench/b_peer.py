"""Against the peer: the same OpenAI-Videos upstream simulator behind reelgate (its openai_videos adapter,
model sora-2 from examples/catalogs/wave2-providers.yaml) and behind LiteLLM's proxy (from PyPI, in
bench/.peer-venv), the same closed-loop load, runs interleaved. Method of peer-litellm-videos.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import fixtures, mp4noise
from bench.common import (
    BENCH_DIR,
    CLIENT_CPU,
    PYTHON,
    ROOT,
    SERVER_CPU,
    Load,
    Proc,
    fmt,
    free_port,
    median,
    new_run_dir,
    ratio,
    run_load,
    spawn,
)
from bench.report import Section

PEER_VENV = BENCH_DIR / ".peer-venv"
LITELLM_SPEC = os.environ.get("BENCH_LITELLM", "litellm[proxy]")
MASTER_KEY = "sk-litellm-bench-master"
UPSTREAM_KEY = "sk-upstream-bench"
CREATE_BODY = json.dumps(
    {"model": "sora-2", "prompt": "a red fox running through snow", "seconds": "4", "size": "1280x720"}
)


def ensure_litellm() -> Path:
    exe = PEER_VENV / "bin" / "litellm"
    if not exe.exists():
        print(f"  installing {LITELLM_SPEC} into {PEER_VENV} (one time)", flush=True)
        subprocess.run(["python3", "-m", "venv", str(PEER_VENV)], check=True)  # noqa: S607
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", LITELLM_SPEC], check=True)
    return exe


def litellm_version() -> str:
    out = subprocess.run(
        [str(PEER_VENV / "bin" / "python"), "-c", "from importlib.metadata import version; print(version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def _post_json(url: str, body: str, headers: dict[str, str]) -> dict[str, Any]:
    headers = {"content-type": "application/json", **headers}
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def run(quick: bool, databases: list[str]) -> Section:  # noqa: C901 - one linear script: start, interleave, tabulate
    rounds = 2
    n_json, n_content, warm = (300, 100, 30) if quick else (2000, 500, 50)
    section = Section(
        "peer",
        "Against the peer: reelgate vs LiteLLM proxy on the OpenAI Videos endpoints (same upstream, same load)",
        [
            "route",
            "c",
            "reelgate on",
            "direct rps",
            "LiteLLM rps (added p50/p99 ms)",
            "reelgate rps (added p50/p99 ms)",
            "throughput reelgate/LiteLLM",
            "added p50 reelgate/LiteLLM",
            "server CPU ms/req LiteLLM / reelgate",
        ],
    )
    run_dir = new_run_dir("peer")
    content_path = run_dir / "content.mp4"
    mp4noise.make(content_path)
    up_port = free_port()
    upstream = spawn(
        "upstream",
        CLIENT_CPU,
        [PYTHON, "-m", "bench.upstream_sim", "--port", str(up_port), "--content", str(content_path)],
        port=up_port,
        run_dir=run_dir,
    )
    procs: list[Proc] = [upstream]
    missing: list[str] = []
    with contextlib.ExitStack() as stack:
        try:
            up = f"http://127.0.0.1:{up_port}"
            targets: dict[str, dict[str, Any]] = {"direct": {"base": up, "headers": {}, "ids": ["video_direct"]}}
            # -- reelgate, once per database, each in its own process -----------------------------------
            for db, url in fixtures.open_databases(stack, databases, section.notes):
                try:
                    targets[f"reelgate:{db}"] = _start_reelgate(run_dir / db, up, content_path, procs, url)
                except Exception as exc:  # report it, carry on with the others
                    missing.append(f"reelgate on {db} did not start: {exc}")
            # -- LiteLLM ---------------------------------------------------------------------------
            lite: dict[str, Any] | None = None
            try:
                lite = _start_litellm(run_dir, up, procs)
                targets["litellm"] = lite
            except Exception as exc:
                missing.append(f"LiteLLM side did not start: {exc}")
            results: dict[tuple[str, str, int], list[Load]] = {}
            rss: dict[str, list[float]] = {name: [targets[name]["proc"].rss()] for name in targets if name != "direct"}
            gateways = list(targets)
            for r in range(rounds):
                for route in ("create", "retrieve", "content"):
                    for c in (1, 16):
                        order = gateways[r % len(gateways) :] + gateways[: r % len(gateways)]
                        for gw in order:
                            t = targets[gw]
                            n = n_content if route == "content" else n_json
                            load = run_load(
                                t["base"],
                                _plan(route, t),
                                n=n,
                                concurrency=c,
                                warmup=warm,
                                run_dir=run_dir,
                                server=t.get("proc"),
                                label=f"{gw.replace(':', '-')}-{route}",
                                time_limit=300,
                            )
                            results.setdefault((gw, route, c), []).append(load)
                            print(
                                f"  round {r + 1} {route} c={c} {gw}: {load.rps:.0f} rps p50 {load.p50_ms:.2f} "
                                f"p99 {load.p99_ms:.2f} cpu {load.server_cpu_ms_per_req:.2f} ms errors {load.errors} "
                                f"{load.statuses}",
                                flush=True,
                            )
            for name, values in rss.items():
                values.append(targets[name]["proc"].rss())
        finally:
            for p in reversed(procs):
                p.stop()
    _table(section, results, [g for g in gateways if g.startswith("reelgate:")])
    section.notes.append(
        f"Upstream: bench/upstream_sim.py (aiohttp, CPU {CLIENT_CPU}, no delay; content = a real 1 MiB MP4 of noise). "
        f"Gateways pinned to CPU {SERVER_CPU}, one process each (LiteLLM {litellm_version() if lite else '?'} "
        f"`--num_workers 1`, master key, no database; reelgate API process on each database: SQLite synchronous=FULL, "
        "or PostgreSQL on this machine (fsync on, a fresh database); embedded worker off). Load: closed-loop aiohttp "
        f"on CPU {CLIENT_CPU}, keep-alive, {warm} warm-up then {n_json} requests "
        f"({n_content} for content) per run, {rounds} interleaved rounds (gateway order rotated), medians. Added = "
        "gateway − direct to the upstream in the same round. Content requests send `Accept-Encoding: gzip` like "
        "the SDK."
    )
    section.notes.append(
        "What each side does per request: LiteLLM forwards every call to the upstream. reelgate's create "
        "authenticates, validates and quotes, holds the credits and writes the ledger entry and the generation in "
        "one transaction and answers; its worker submits upstream afterwards (not in this figure). reelgate's "
        "retrieve and content answer from its own database and storage (the video was already fetched and stored), "
        "so they never touch the upstream."
    )
    for name, values in rss.items():
        if len(values) == 2:
            section.notes.append(f"{name} RSS: {values[0]:.0f} MB after start-up → {values[1]:.0f} MB after the runs.")
    section.notes.extend(f"MISSING: {m}" for m in missing)
    return section


def _plan(route: str, t: dict[str, Any]) -> list[dict[str, Any]]:
    headers = dict(t["headers"])
    if route == "create":
        return [
            {
                "method": "POST",
                "path": "/v1/videos",
                "body": CREATE_BODY,
                "headers": {**headers, "content-type": "application/json"},
            }
        ]
    suffix = "/content" if route == "content" else ""
    if route == "content":
        headers["accept-encoding"] = "gzip"
    return [{"method": "GET", "path": f"/v1/videos/{vid}{suffix}", "headers": headers} for vid in t["ids"]]


def _start_reelgate(
    run_dir: Path, up: str, content: Path, procs: list[Proc], database_url: str | None
) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    values = fixtures.settings_values(
        run_dir / "data",
        database_url,
        catalog=str(ROOT / "examples" / "catalogs" / "wave2-providers.yaml"),
        openai_videos_base_url=f"{up}/v1",
        openai_videos_api_key=UPSTREAM_KEY,
    )
    key_name = "bench/content.mp4"
    stored = run_dir / "data" / "media" / key_name
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(content.read_bytes())

    async def setup() -> tuple[str, list[str]]:
        async with fixtures.context(values) as ctx:
            user_id, key = await fixtures.user_with_key(ctx)
            gens = await fixtures.insert_generations(
                ctx,
                user_id,
                200,
                provider="openai_videos",
                model="sora-2",
                status="succeeded",
                output_key=key_name,
                output_content_type="video/mp4",
                output_size=stored.stat().st_size,
            )
            return key, [g.id for g in gens]

    key, ids = asyncio.run(setup())
    port = free_port()
    proc = spawn(
        "reelgate",
        SERVER_CPU,
        [PYTHON, "-m", "bench.server", "--port", str(port)],
        env=fixtures.settings_env(values),
        port=port,
        run_dir=run_dir,
    )
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {key}"}
    created = _post_json(f"{base}/v1/videos", CREATE_BODY, headers)  # the route exists and accepts the model
    if "id" not in created:
        raise RuntimeError(f"reelgate create answered {created}")
    return {"base": base, "headers": headers, "ids": ids, "proc": proc}


def _start_litellm(run_dir: Path, up: str, procs: list[Proc]) -> dict[str, Any]:
    exe = ensure_litellm()
    config = run_dir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: sora-2\n"
        "    litellm_params:\n"
        "      model: openai/sora-2\n"
        f"      api_base: {up}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
    )
    port = free_port()
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "PATH": f"{exe.parent}:/usr/bin:/bin",
    }
    proc = spawn(
        "litellm",
        SERVER_CPU,
        [str(exe), "--config", str(config), "--port", str(port), "--host", "127.0.0.1", "--num_workers", "1"],
        env=env,
        port=port,
        run_dir=run_dir,
        timeout=240,
    )
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    deadline = time.monotonic() + 120
    while True:
        try:
            created = _post_json(f"{base}/v1/videos", CREATE_BODY, headers)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    return {"base": base, "headers": headers, "ids": [str(created["id"])], "proc": proc}


def _table(section: Section, results: dict[tuple[str, str, int], list[Load]], reelgates: list[str]) -> None:
    def m(gw: str, route: str, c: int, attr: str) -> float:
        runs = results.get((gw, route, c))
        return median([getattr(x, attr) for x in runs]) if runs else float("nan")

    def cell(gw: str, route: str, c: int, d50: float, d99: float) -> tuple[float, float, float, float]:
        return (
            m(gw, route, c, "rps"),
            m(gw, route, c, "p50_ms") - d50,
            m(gw, route, c, "p99_ms") - d99,
            m(gw, route, c, "server_cpu_ms_per_req"),
        )

    for route in ("create", "retrieve", "content"):
        for c in (1, 16):
            d50, d99 = m("direct", route, c, "p50_ms"), m("direct", route, c, "p99_ms")
            lite = cell("litellm", route, c, d50, d99)
            for gw in reelgates:
                reel = cell(gw, route, c, d50, d99)
                section.rows.append(
                    [
                        route,
                        str(c),
                        gw.split(":", 1)[1],
                        fmt(m("direct", route, c, "rps")),
                        f"{fmt(lite[0])} (+{fmt(lite[1])} / +{fmt(lite[2])})",
                        f"{fmt(reel[0])} (+{fmt(reel[1])} / +{fmt(reel[2])})",
                        f"{ratio(reel[0], lite[0]):.1f}×",
                        f"{ratio(reel[1], lite[1]):.2f}",
                        f"{fmt(lite[3])} / {fmt(reel[3])}",
                    ]
                )
    errors = {
        f"{gw} {route} c={c}": sum(x.errors for x in runs)
        for (gw, route, c), runs in results.items()
        if sum(x.errors for x in runs)
    }
    if errors:
        section.notes.append(f"Errors (non-2xx or transport): {errors}")
