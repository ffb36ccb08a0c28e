"""Shared plumbing: machine description, process CPU/RSS, pinned subprocesses, the load generator runner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RUNS_DIR = BENCH_DIR / "runs"
PYTHON = sys.executable
SERVER_CPU = "1"  # the server under test
CLIENT_CPU = "0"  # load generator, simulators
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- machine -------------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, str]:
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    libs = [
        "reelgate",
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "sqlalchemy",
        "psycopg",
        "aiohttp",
        "httpx",
        "av",
        "pydantic",
    ]
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": ", ".join(f"{name} {_version(name)}" for name in libs),
    }


def machine_markdown() -> str:
    m = machine()
    return f"{m['cpu']}; {m['memory']} RAM; {m['os']}; Python {m['python']}; {m['versions']}"


# -- numbers -------------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# -- processes -----------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL process on this machine (the postmaster and its backends), from
    /proc: the database's share of a run when PostgreSQL is local, as here. A backend that exits during the
    run takes its share with it; the pools keep theirs open, so a run's count misses little."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += proc_cpu_seconds(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # it exited while being read
    return total


def proc_rss_mb(pid: int) -> float:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE / 1024 / 1024


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (a gateway may fork workers)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            total += proc_rss_mb(p)
    return total


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError, IndexError):
            total += proc_cpu_seconds(p)
    return total


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    found.extend(children(int(child)))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") else list(argv)


@dataclass
class Proc:
    """A pinned child process, stopped by its own pid (never by name)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss(self) -> float:
        return tree_rss_mb(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGINT)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def spawn(
    name: str,
    cpu: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    port: int | None = None,
    run_dir: Path,
    timeout: float = 90.0,
) -> Proc:
    log = run_dir / f"{name}.log"
    if name in os.environ.get("BENCH_PYSPY", "").split(","):
        # Profile this process: `BENCH_PYSPY=server,worker python -m bench ...` (raw stacks in the run dir).
        spy = str(Path(PYTHON).parent / "py-spy")
        argv = [spy, "record", "-r", "250", "-f", "raw", "-o", str(run_dir / f"{name}.pyspy.txt"), "--", *argv]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("ab") as out:
        popen = subprocess.Popen(  # noqa: S603
            pinned(cpu, argv), cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    proc = Proc(name, popen, log, port)
    if port is not None:
        try:
            wait_port(port, popen, timeout)
        except Exception:
            proc.stop()
            raise RuntimeError(f"{name} did not start; see {log}:\n{log.read_text()[-3000:]}") from None
    return proc


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


def new_run_dir(name: str) -> Path:
    path = RUNS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- load ----------------------------------------------------------------------------------------
@dataclass
class Load:
    """One closed-loop load run's summary, as bench.loadgen reports it."""

    n: int
    concurrency: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    statuses: dict[str, int]
    bytes: int
    max_ms: float = float("nan")  # the slowest request: a freeze shows here when it is too short to move the p99
    server_cpu_ms_per_req: float = float("nan")
    database_cpu_ms_per_req: float = float("nan")  # every local PostgreSQL process, over the measured part
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else float("nan")


def run_load(
    base_url: str,
    requests: list[dict[str, Any]],
    *,
    n: int,
    concurrency: int,
    warmup: int = 50,
    run_dir: Path,
    server: Proc | None = None,
    time_limit: float = 120.0,
    label: str = "load",
) -> Load:
    """Runs bench.loadgen pinned to the client CPU: `warmup` requests, then `n` measured (server CPU sampled
    around the measured part only)."""
    plan = run_dir / f"plan-{label}-{time.monotonic_ns()}.json"
    plan.write_text(json.dumps({"base": base_url, "requests": requests}))
    argv = [PYTHON, "-m", "bench.loadgen", str(plan)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def go(count: int, offset: int) -> dict[str, Any]:
        cmd = [
            *argv,
            "--n",
            str(count),
            "--concurrency",
            str(concurrency),
            "--offset",
            str(offset),
            "--time-limit",
            str(time_limit),
        ]
        out = subprocess.run(
            pinned(CLIENT_CPU, cmd),
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,  # noqa: S603
            timeout=time_limit + 60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr.decode()[-2000:]}")
        return json.loads(out.stdout)

    if warmup:
        go(warmup, 0)
    cpu0, db0 = (server.cpu() if server else 0.0), postgres_cpu_seconds()
    result = go(n, warmup)
    cpu1, db1 = (server.cpu() if server else 0.0), postgres_cpu_seconds()
    plan.unlink(missing_ok=True)
    load = Load(**result)
    if server is not None and load.n:
        load.server_cpu_ms_per_req = (cpu1 - cpu0) * 1000 / load.n
    if load.n:
        load.database_cpu_ms_per_req = (db1 - db0) * 1000 / load.n
    return load


def fmt(value: float, digits: int = 2) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


async def run_in_process(operation: Callable[[int], Awaitable[object]], n: int, concurrency: int) -> dict[str, float]:
    """Operations 0..n-1 shared by `concurrency` tasks, in this process: rate, p50 and p99 latency, and this
    process's CPU and PostgreSQL's per operation."""
    latencies: list[float] = []
    numbers = iter(range(n))

    async def one_task() -> None:
        for i in numbers:
            started = time.perf_counter()
            await operation(i)
            latencies.append(time.perf_counter() - started)

    cpu0, pg0, wall0 = time.process_time(), postgres_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one_task() for _ in range(concurrency)))
    cpu1, pg1, wall1 = time.process_time(), postgres_cpu_seconds(), time.perf_counter()
    return {
        "rate": n / (wall1 - wall0),
        "p50_ms": 1000 * pct(latencies, 50),
        "p99_ms": 1000 * pct(latencies, 99),
        "cpu_ms": 1000 * (cpu1 - cpu0) / n,
        "pg_ms": 1000 * (pg1 - pg0) / n,
    }
