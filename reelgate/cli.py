"""The `reelgate` command: serve, worker, doctor, migrate, user, credits, models, estimate, generate, ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reelgate.bootstrap import build_context, close_context, load_configured_catalog
from reelgate.catalog.markdown import models_markdown
from reelgate.cli_billing import register as _register_billing
from reelgate.cli_storage import register as _register_storage
from reelgate.domain.catalog import GenerationInput
from reelgate.domain.errors import ReelgateError
from reelgate.domain.jobs import is_terminal
from reelgate.error_reporting import configure_error_reporting
from reelgate.logging_setup import configure_logging
from reelgate.services import accounts, billing, generations, ledger, uploads, user_admin
from reelgate.services.context import ServiceContext
from reelgate.services.generations import GenerationOrder
from reelgate.settings import Settings
from reelgate.worker import Worker, register_default_housekeeping

if TYPE_CHECKING:
    from reelgate.queue import Queue

app = typer.Typer(help="reelgate: sell AI video generation.", no_args_is_help=True, add_completion=False)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
credits_app = typer.Typer(help="Manage credits.", no_args_is_help=True)
ledger_app = typer.Typer(help="Check the credit ledger.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(user_app, name="users", hidden=True)  # `reelgate users disable ...` reads naturally too
app.add_typer(credits_app, name="credits")
app.add_typer(ledger_app, name="ledger")
_register_billing(app, credits_app)
_register_storage(app)
console = Console()
T = TypeVar("T")
FIRST_ADMIN_FILE = "first-admin.txt"


def _run(body: Callable[[ServiceContext], Awaitable[T]], settings: Settings | None = None) -> T:
    async def main() -> T:
        ctx = await build_context(settings or Settings())
        try:
            return await body(ctx)
        finally:
            await close_context(ctx)

    try:
        return asyncio.run(main())
    except ReelgateError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        if exc.details:
            console.print(json.dumps(exc.details))
        raise typer.Exit(1) from exc


async def _ensure_first_admin(ctx: ServiceContext, settings: Settings) -> tuple[str, str | None]:
    """Embedded mode starts with one admin account, so a new user can sign in straight away."""
    marker = settings.data_dir / FIRST_ADMIN_FILE
    if await accounts.count_users(ctx) == 0:
        password = secrets.token_urlsafe(12)
        email = "admin@reelgate.local"
        await accounts.create_user(ctx, email, password, is_admin=True, credits=1000)
        marker.write_text(f"{email}\n{password}\n")
        marker.chmod(0o600)
    if marker.exists():
        email, password = marker.read_text().split("\n")[:2]
        return email, password
    admin = await accounts.first_admin(ctx)
    return (admin.email if admin else "(create one with `reelgate user create`)"), None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Run the API and the studio (and, in embedded mode, the worker)."""
    import uvicorn

    from reelgate.app import create_app

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    email, password = (
        _run(lambda ctx: _ensure_first_admin(ctx, settings), settings) if settings.embedded else ("", None)
    )
    url = f"http://{host}:{port}"
    console.print(f"\n[bold]reelgate[/bold] is starting at [link={url}]{url}[/link]  (API docs: {url}/docs)")
    if email:
        console.print(
            f"Sign in as [bold]{email}[/bold]" + (f" with password [bold]{password}[/bold]" if password else "")
        )
        console.print(f"(the first sign-in is kept in {settings.data_dir / FIRST_ADMIN_FILE})\n")
    configure_logging(settings)
    configure_error_reporting(settings)
    if not settings.runs_embedded_worker:
        console.print("production mode: this process serves the API; run `reelgate worker` processes for the jobs")
    # proxy_headers=False: the app applies REELGATE_TRUSTED_PROXIES itself (uvicorn's would trust 127.0.0.1 first).
    # ws="none": reelgate serves no WebSocket, so none of uvicorn's WebSocket implementations is even loaded.
    uvicorn.run(
        create_app(settings), host=host, port=port, log_config=None, access_log=False, proxy_headers=False, ws="none"
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Steps (submits, downloads, output checks) this process runs at once")
    ] = None,
    poll_concurrency: Annotated[
        int | None, typer.Option(help="Polls this process runs at once, beside the steps (default: 8 per step)")
    ] = None,
) -> None:
    """Run queue workers (production mode, PostgreSQL); any number of these processes may run."""
    settings = Settings()
    if settings.embedded:
        console.print("[red]error:[/red] embedded mode (SQLite) runs its worker inside `reelgate serve`")
        raise typer.Exit(1)
    configure_logging(settings)
    configure_error_reporting(settings)
    steps = concurrency or settings.worker_concurrency
    asyncio.run(_work(settings, steps, poll_concurrency or settings.poll_concurrency_for(steps)))


async def _work(settings: Settings, concurrency: int, poll_concurrency: int) -> None:
    from reelgate.queue import Queue

    register_default_housekeeping()
    ctx = await build_context(settings)
    # Steps and polls run on the database's own pool; procrastinate's serves its one periodic slot and the worker.
    queue = Queue(settings, pool_size=4)
    await queue.open(ctx)
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.host)
    try:
        await _run_until_signalled(queue, settings, concurrency, poll_concurrency)
    finally:
        await queue.close()
        await close_context(ctx)


async def _run_until_signalled(
    queue: Queue, settings: Settings, concurrency: int, poll_concurrency: int | None = None
) -> None:
    """SIGTERM or SIGINT: stop taking jobs, let running ones finish (REELGATE_WORKER_SHUTDOWN_SECONDS), exit.
    A worker that stops on its own (its database connection was lost, e.g. PostgreSQL restarted) starts again
    after a heartbeat instead of leaving the machine without a worker."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        while not stopping.is_set():
            running = asyncio.create_task(queue.run_worker(concurrency=concurrency, poll_concurrency=poll_concurrency))
            await asyncio.wait({running, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                console.print(f"stopping: running steps get {settings.worker_shutdown_seconds:g} s to finish")
                running.cancel()  # the orderly stop: no new work, running steps finish or are aborted
            try:
                await running
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - logged; the loop starts the worker again
                logging.getLogger("reelgate.worker").exception("the worker stopped")
            if not stopping.is_set():
                await asyncio.sleep(settings.queue_heartbeat_seconds)
    finally:
        stop_wait.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@app.command()
def doctor() -> None:
    """Print what is configured and what is unreachable (exit status 1 if the core is not usable)."""
    from reelgate.doctor import diagnose

    settings = Settings()
    table = Table("check", "status", "detail")
    failed = False
    for check in asyncio.run(diagnose(settings)):
        failed |= check.fatal
        colour = "green" if check.ok else ("red" if check.fatal else "yellow")
        table.add_row(check.name, f"[{colour}]{check.status}[/{colour}]", check.detail)
    console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""

    async def body(ctx: ServiceContext) -> None:
        console.print(f"database is up to date ({ctx.db.dialect})")

    _run(body)


@user_app.command("create")
def user_create(
    email: str,
    password: Annotated[str, typer.Option(help="Password for signing in to the studio")],
    credits: Annotated[int | None, typer.Option(help="Starting credits (default: the sign-up credits)")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make this user an administrator")] = False,
    api_key: Annotated[bool, typer.Option("--api-key", help="Also create an API key (printed last)")] = False,
) -> None:
    """Create a user; with --api-key the new key is printed as the last line."""

    async def body(ctx: ServiceContext) -> None:
        # An operator's account needs no address verification: its credits are granted at once.
        grant = ctx.config.signup_credits if credits is None else credits
        user = await accounts.create_user(ctx, email, password, credits=grant, is_admin=admin)
        console.print(f"created {user.email} ({user.id})")
        if api_key:
            key = await accounts.create_api_key(ctx, user.id, "cli")
            print(key.secret)

    _run(body)


def _user_action(email: str, action: str) -> None:
    async def body(ctx: ServiceContext) -> None:
        user = await accounts.find_user_by_email(ctx, email)
        if action in ("disable", "enable"):
            changed = await user_admin.set_disabled(ctx, None, user.id, action == "disable")
        else:
            changed = await user_admin.set_admin(ctx, None, user.id, action == "promote")
        console.print(f"{action}d {user.email}" if changed else f"{user.email}: nothing to change")

    _run(body)


@user_app.command("disable")
def user_disable(email: str) -> None:
    """Disable a user: their sessions end and their API keys stop working at once; running jobs finish."""
    _user_action(email, "disable")


@user_app.command("enable")
def user_enable(email: str) -> None:
    """Enable a disabled user again (their API keys work again; they sign in again)."""
    _user_action(email, "enable")


@user_app.command("promote")
def user_promote(email: str) -> None:
    """Make a user an administrator."""
    _user_action(email, "promote")


@user_app.command("demote")
def user_demote(email: str) -> None:
    """Remove a user's administrator role (never the last enabled administrator's)."""
    _user_action(email, "demote")


@credits_app.command("grant")
def credits_grant(
    email: str,
    amount: int,
    reason: Annotated[
        str, typer.Option(help="Why these credits are granted (kept in the ledger)")
    ] = "Granted by an operator",
) -> None:
    """Grant credits to a user."""

    async def body(ctx: ServiceContext) -> None:
        user = await accounts.find_user_by_email(ctx, email)
        result = await billing.grant_credits(ctx, user.id, amount, reason=reason)
        await user_admin.record_credit_change(ctx, None, user.id, amount, reason=reason)
        console.print(f"granted {amount} credits to {user.email}; available now {result.available}")

    if amount <= 0:
        console.print("[red]error:[/red] amount must be positive")
        raise typer.Exit(1)
    _run(body)


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify deposits = available + held + captured for every account, nothing negative, no stray hold."""

    async def body(ctx: ServiceContext) -> int:
        problems = await ledger.check_ledger(ctx)
        for problem in problems:
            console.print(f"[red]{problem.account}[/red]: {problem.message}")
        if not problems:
            console.print("ledger OK: every account balances")
        return len(problems)

    if _run(body):
        raise typer.Exit(1)


@app.command("api-collections")
def api_collections(
    out: Annotated[Path, typer.Option(help="Directory to write the collections to")] = Path("docs/api"),
) -> None:
    """Write the Postman collection and the .http file generated from the OpenAPI schema."""
    from reelgate.api.collections import render
    from reelgate.app import create_app

    out.mkdir(parents=True, exist_ok=True)
    for name, text in render(create_app(Settings()).openapi()).items():
        (out / name).write_text(text, encoding="utf-8")
        console.print(f"wrote {out / name}")


@app.command()
def models(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the catalog as the README's Markdown table (no database needed)")
    ] = False,
) -> None:
    """List the catalog's models with availability and default price."""
    if markdown:
        typer.echo(models_markdown(load_configured_catalog(Settings())), nl=False)
        return

    async def body(ctx: ServiceContext) -> None:
        table = Table("model", "provider", "kind", "available", "default price")
        for spec in ctx.catalog.models:
            ok, why = generations.model_available(ctx, spec)
            try:
                price = str(generations.estimate(ctx, GenerationInput(prompt=None), spec.id).quote.total)
            except ReelgateError:
                price = "-"
            table.add_row(spec.id, spec.provider, spec.kind, "yes" if ok else f"no ({why})", price)
        console.print(table)

    _run(body)


def _input_options(
    duration: int | None, resolution: str | None, aspect_ratio: str | None, mode: str | None
) -> dict[str, Any]:
    return {
        "duration": duration,
        "resolution": resolution,
        "aspect_ratio": aspect_ratio,
        "options": {"mode": mode} if mode else {},
    }


@app.command()
def estimate(
    model: Annotated[str, typer.Option()],
    duration: Annotated[int | None, typer.Option()] = None,
    resolution: Annotated[str | None, typer.Option()] = None,
    aspect_ratio: Annotated[str | None, typer.Option()] = None,
    mode: Annotated[str | None, typer.Option(help="Model option `mode`, e.g. fast or pro")] = None,
    image: Annotated[bool, typer.Option("--image", help="Price with a start image")] = False,
) -> None:
    """Show what a generation would cost, with its breakdown."""

    async def body(ctx: ServiceContext) -> None:
        given = GenerationInput(
            prompt=None, start_image=image, **_input_options(duration, resolution, aspect_ratio, mode)
        )
        result = generations.estimate(ctx, given, model)
        console.print(
            json.dumps({"model": model, "total": result.quote.total, "breakdown": dict(result.quote.breakdown)})
        )

    _run(body)


@app.command()
def generate(
    prompt: str,
    model: Annotated[str, typer.Option()] = "sandbox-t2v",
    duration: Annotated[int | None, typer.Option()] = None,
    resolution: Annotated[str | None, typer.Option()] = None,
    aspect_ratio: Annotated[str | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    mode: Annotated[str | None, typer.Option()] = None,
    image: Annotated[Path | None, typer.Option(help="Start image (PNG, JPEG or WebP)")] = None,
    end_image: Annotated[Path | None, typer.Option(help="End image")] = None,
    out: Annotated[Path, typer.Option(help="Where to save the video")] = Path("video.mp4"),
    user: Annotated[str | None, typer.Option(help="Email of the paying user (default: the first admin)")] = None,
) -> None:
    """Submit a generation as a local user, show its progress, and save the result."""

    async def body(ctx: ServiceContext) -> None:
        owner = await accounts.find_user_by_email(ctx, user) if user else await accounts.first_admin(ctx)
        if owner is None:
            raise ReelgateError("No user to pay for this: pass --user or run `reelgate serve` once.")
        start = await uploads.create_upload(ctx, owner.id, image.read_bytes(), image.name) if image else None
        end = await uploads.create_upload(ctx, owner.id, end_image.read_bytes(), end_image.name) if end_image else None
        order = GenerationOrder(
            model=model,
            prompt=prompt,
            seed=seed,
            start_image=start.id if start else None,
            end_image=end.id if end else None,
            **_input_options(duration, resolution, aspect_ratio, mode),
        )
        generation, _ = await generations.create_generation(ctx, owner.id, order)
        console.print(f"{generation.id}: {generation.quote_total} credits held for {model}")
        final = await _follow(ctx, owner.id, generation.id)
        if final.status != "succeeded":
            raise ReelgateError(f"generation {final.status}: {final.error_message or ''} (credits returned)")
        assert final.output_key is not None
        await _save(ctx, final.output_key, out)
        console.print(f"saved {out} ({final.output_size} bytes); charged {final.credits_charged} credits")

    _run(body)


async def _follow(ctx: ServiceContext, user_id: str, generation_id: str) -> Any:
    """Drives the job with a local worker (a running server may take it instead) and shows progress."""
    worker = Worker(ctx, concurrency=1)
    ctx.wake = worker.wake
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("queued", total=100)
        while True:
            await worker.run_once()
            current = await generations.get_generation(ctx, user_id, generation_id)
            progress.update(task, completed=current.progress, description=current.status)
            if is_terminal(current.status):
                await worker.stop()
                return current
            await asyncio.sleep(0.25)


async def _save(ctx: ServiceContext, key: str, out: Path) -> None:
    local = ctx.store.local_path(key)
    out.parent.mkdir(parents=True, exist_ok=True)
    if local is not None:
        await asyncio.to_thread(shutil.copyfile, local, out)
        return
    with out.open("wb") as handle:
        async for chunk in ctx.store.iter_range(key):
            handle.write(chunk)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
