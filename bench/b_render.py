"""Sandbox render: seconds of 720p video per CPU second, against raw PyAV encoding of the same frames."""

from __future__ import annotations

import json
import subprocess

from bench.common import PYTHON, ROOT, SERVER_CPU, fmt, median, pinned, ratio
from bench.report import Section


def run(quick: bool) -> Section:
    rounds, duration = (2, 5.0) if quick else (4, 10.0)
    cmd = [PYTHON, "-m", "bench.render_worker", "--duration", str(duration), "--rounds", str(rounds)]
    out = subprocess.run(
        pinned(SERVER_CPU, cmd),
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=1800,  # noqa: S603
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    if out.returncode:
        raise RuntimeError(out.stderr.decode()[-2000:])
    r = json.loads(out.stdout)
    secs = r["video_seconds"]
    render_cpu, raw_cpu = median([x["cpu"] for x in r["render"]]), median([x["cpu"] for x in r["raw"]])
    draw_cpu = median([x["cpu"] for x in r["draw"]])
    render_wall, raw_wall = median([x["wall"] for x in r["render"]]), median([x["wall"] for x in r["raw"]])
    print(
        f"  render {secs / render_cpu:.2f} video-s/CPU-s, raw encode {secs / raw_cpu:.2f}, draw {draw_cpu:.2f}s CPU",
        flush=True,
    )
    section = Section(
        "render",
        "Sandbox render (1280×720, 24 fps) vs raw PyAV encoding of the same frames",
        ["", "video s per CPU s", "ratio to raw", "CPU s", "wall s", "file KB"],
    )
    section.rows.append(
        [
            "sandbox render (draw + encode + probe)",
            fmt(secs / render_cpu),
            f"{ratio(secs / render_cpu, secs / raw_cpu):.2f}",
            fmt(render_cpu),
            fmt(render_wall),
            fmt(median([x["bytes"] for x in r["render"]]) / 1024),
        ]
    )
    section.rows.append(
        [
            "raw PyAV encode of the same frames",
            fmt(secs / raw_cpu),
            "1",
            fmt(raw_cpu),
            fmt(raw_wall),
            fmt(median([x["bytes"] for x in r["raw"]]) / 1024),
        ]
    )
    section.rows.append(["(drawing the frames alone, PIL)", fmt(secs / draw_cpu), "-", fmt(draw_cpu), "-", "-"])
    section.notes.append(
        f"{secs:g} s clip ({r['frames']} frames), {r['codec']}; {rounds} interleaved rounds in one process pinned to "
        f"CPU {SERVER_CPU}, medians; CPU = process CPU time (all threads, x264's included)."
    )
    return section
