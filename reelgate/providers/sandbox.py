"""The built-in sandbox provider: a local preview renderer (not an AI model) that needs no keys or network.

It behaves like a real asynchronous provider: `submit` queues a job, `status` reports progress over
REELGATE_SANDBOX_DELAY_SECONDS of simulated provider time, then renders a real H.264 MP4 with PyAV.
Jobs live as small JSON files in a spool folder, so they survive a restart of the server.

Test hooks, written into the prompt: `[fail]` makes the job fail at the provider; `[hang]` makes it
never finish (for deadline tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from PIL import Image

from reelgate import media
from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import (
    HealthReport,
    JobRequest,
    OutputRef,
    Provider,
    ProviderConfig,
    ProviderUpdate,
    SubmitResult,
)

FAIL_MARKER = "[fail]"
HANG_MARKER = "[hang]"
_SPOOL_TTL_SECONDS = 24 * 3600


class SandboxProvider(Provider):
    name = "sandbox"
    # The job id is derived from the generation id, so resending a submit cannot start a second job.
    idempotent_submit = True
    supports_lookup = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.spool = Path(config.extra.get("spool_dir", "./data/sandbox"))
        self.delay = float(config.extra.get("delay_seconds", "3"))
        self._render_locks: dict[str, asyncio.Lock] = {}

    def configured(self) -> bool:
        return True

    def _job_path(self, job_id: str, suffix: str) -> Path:
        if not job_id.startswith("sbx_") or "/" in job_id or ".." in job_id:
            raise ValueError(f"not a sandbox job id: {job_id!r}")
        return self.spool / f"{job_id}{suffix}"

    async def submit(self, request: JobRequest) -> SubmitResult:
        job_id = f"sbx_{request.generation_id}"
        await asyncio.to_thread(self._write_job, job_id, request)
        return SubmitResult(provider_job_id=job_id, raw={"id": job_id, "status": "queued"})

    def _write_job(self, job_id: str, request: JobRequest) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        self._sweep_old()
        spec_path = self._job_path(job_id, ".json")
        if spec_path.exists():
            return  # a resent submit joins the job already running
        images: dict[str, str] = {}
        for name, image in (("start", request.start_image), ("end", request.end_image)):
            if image is not None:
                image_path = self._job_path(job_id, f".{name}.img")
                image_path.write_bytes(image.data)
                images[name] = str(image_path)
        record = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "duration": request.duration,
            "seed": request.seed or 0,
            "images": images,
            "submitted_at": time.time(),
            "canceled": False,
            "kind": request.kind,
        }
        temp = spec_path.with_suffix(".json.part")
        temp.write_text(json.dumps(record))
        os.replace(temp, spec_path)

    def _sweep_old(self) -> None:
        cutoff = time.time() - _SPOOL_TTL_SECONDS
        for path in self.spool.glob("sbx_*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue

    def _read_job(self, job_id: str) -> dict[str, Any] | None:
        path = self._job_path(job_id, ".json")
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        job = await asyncio.to_thread(self._read_job, provider_job_id)
        if job is None:
            return ProviderUpdate(
                provider_job_id,
                ProviderState.FAILED,
                error_code="provider_job_not_found",
                error_message="The sandbox has no record of this job.",
            )
        if job["canceled"]:
            return ProviderUpdate(provider_job_id, ProviderState.CANCELED, raw={"status": "canceled"})
        prompt = job["prompt"].lower()
        if FAIL_MARKER in prompt:
            return ProviderUpdate(
                provider_job_id,
                ProviderState.FAILED,
                error_code="provider_failed",
                error_message="The sandbox failed this job on request ([fail] in the prompt).",
                raw={"status": "failed"},
            )
        elapsed = time.time() - job["submitted_at"]
        if HANG_MARKER in prompt or elapsed < self.delay:
            progress = 5 if HANG_MARKER in prompt else int(90 * elapsed / max(self.delay, 0.001))
            return ProviderUpdate(
                provider_job_id,
                ProviderState.RUNNING,
                progress=progress,
                raw={"status": "running", "progress": progress},
                poll_after_seconds=max(0.2, min(1.0, self.delay - elapsed)),
            )
        path = await self._render(provider_job_id, job)
        return ProviderUpdate(
            provider_job_id,
            ProviderState.SUCCEEDED,
            progress=100,
            output=OutputRef(path=str(path), content_type="video/mp4"),
            raw={"status": "succeeded", "output": str(path)},
        )

    async def _render(self, job_id: str, job: dict[str, Any]) -> Path:
        out = self._job_path(job_id, ".mp4")
        lock = self._render_locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            if not out.exists():
                # The start and end images are decoded once, on the bounded decode threads, and only the frame-sized
                # result is kept for the render.
                decoded = {
                    name: await media.in_decode_pool(self._decode_image, Path(path), job["width"], job["height"])
                    for name, path in job["images"].items()
                }
                await asyncio.to_thread(self._render_sync, job, out, decoded)
        self._render_locks.pop(job_id, None)
        return out

    @staticmethod
    def _decode_image(path: Path, width: int, height: int) -> Image.Image:
        return media.decode_frame_source(path.read_bytes(), width, height)

    @staticmethod
    def _render_sync(job: dict[str, Any], out: Path, decoded: dict[str, Image.Image]) -> None:
        spec = media.RenderSpec(
            width=job["width"],
            height=job["height"],
            duration=float(job["duration"]),
            seed=int(job["seed"]),
            prompt=job["prompt"],
        )
        media.render_preview_video(spec, out, start=decoded.get("start"), end=decoded.get("end"))

    async def cancel(self, provider_job_id: str) -> None:
        await asyncio.to_thread(self._mark_canceled, provider_job_id)

    def _mark_canceled(self, job_id: str) -> None:
        job = self._read_job(job_id)
        if job is None:
            return
        job["canceled"] = True
        path = self._job_path(job_id, ".json")
        temp = path.with_suffix(".json.part")
        temp.write_text(json.dumps(job))
        os.replace(temp, path)

    async def lookup(self, generation_id: str) -> ProviderUpdate | None:
        job_id = f"sbx_{generation_id}"
        if await asyncio.to_thread(self._read_job, job_id) is None:
            return None
        return await self.status(job_id)

    async def health(self) -> HealthReport:
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return HealthReport(healthy=False, detail=f"spool folder not writable: {exc}")
        return HealthReport(healthy=True, detail="local preview renderer")
