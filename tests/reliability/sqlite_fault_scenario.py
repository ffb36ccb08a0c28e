"""A submit storm against embedded mode while the disk misbehaves, run in a process of its own.

    python -m tests.reliability.sqlite_fault_scenario io <dir>     # under `fiu-run -x`: fsync/fdatasync fail
    python -m tests.reliability.sqlite_fault_scenario full <dir>   # <dir> on a tiny tmpfs: the disk fills up

Both need a process of their own: libfiu's fault points are switched on in the process it started (by
`fiu-ctrl`, here on ourselves), and a tmpfs is mounted in a mount namespace the test created for us.
Prints one JSON line: the submits' outcomes and what the database holds afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from reelgate.app import create_app
from reelgate.services import ledger
from tests.conftest import make_account, make_settings

BODY = {"model": "sandbox-t2v", "prompt": "[hang] a fox waiting out the fault", "duration": 2}


def _fiu(command: str) -> None:
    """libfiu's remote control, pointed at this very process."""
    subprocess.run(["fiu-ctrl", "-c", command, str(os.getpid())], check=True, timeout=10)  # noqa: S603, S607


async def _submit(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[tuple[int, Any]]:
    async def one(i: int) -> tuple[int, Any]:
        response = await client.post(
            "/api/v1/generations", headers={**headers, "Idempotency-Key": f"k{i}-{os.urandom(4).hex()}"}, json=BODY
        )
        return response.status_code, response.json()

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def _fill(directory: Path) -> Path:
    """Takes all the space the tmpfs has left but a little, so the next writes find the disk full."""
    filler = directory / "filler"
    # Unbuffered: a buffered file would try to flush its last chunk again on close and raise ENOSPC there.
    with filler.open("wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 65536):
                pass
        except OSError:
            pass
    return filler


async def main(fault: str, directory: Path) -> dict[str, Any]:
    settings = make_settings(directory / "data", f"sqlite:///{directory / 'reelgate.db'}", max_in_flight=0)
    app = create_app(settings)
    report: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        ctx = app.state.ctx
        user = await make_account(ctx, credits=100_000)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            before = await _submit(client, user.headers, 4)
            filler = None
            if fault == "io":
                _fiu("enable name=posix/io/sync/*")
            else:
                filler = _fill(directory)
            during = await _submit(client, user.headers, 12)
            if fault == "io":
                _fiu("disable name=posix/io/sync/*")
            elif filler is not None:
                filler.unlink()
            after = await _submit(client, user.headers, 4)
            listed = await client.get("/api/v1/generations?limit=100", headers=user.headers)
            me = await client.get("/api/v1/me", headers=user.headers)
        report = {
            "before": before,
            "during": during,
            "after": after,
            "listed": [g["id"] for g in listed.json()["data"]],
            "quoted": sum(g["credits_quoted"] for g in listed.json()["data"]),
            "credits": me.json()["credits"],
            "ledger_problems": [p.message for p in await ledger.check_ledger(ctx)],
        }
    return report


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
    print(json.dumps(result))
