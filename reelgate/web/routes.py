"""mount(app): the studio's pages, its vendored static files, and the answers to signed-out visitors."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from reelgate.api.storable_text import refuse_unstorable_form
from reelgate.web import (
    account,
    admin_pages,
    auth,
    gallery,
    library_pages,
    mail_pages,
    org_pages,
    share_page,
    studio,
    webhooks_page,
)
from reelgate.web.common import AdminOnly, LoginRequired, PageViewer, render, viewer

STATIC = Path(__file__).parent / "static"


async def _login_required(request: Request, _exc: Exception) -> Response:
    target = "/login"
    if request.method == "GET" and not request.headers.get("hx-request"):
        target += "?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if request.headers.get("hx-request"):
        # htmx follows HX-Redirect with a full page load instead of swapping a login form into a fragment.
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _admin_only(request: Request, _exc: Exception) -> Response:
    current = await viewer(request, request.app.state.ctx)
    message = "This page is for the site's administrators."
    return render(request, "error.html", current, status_code=403, title="Administrators only", message=message)


async def guide(request: Request, current: PageViewer) -> HTMLResponse:
    return render(request, "guide.html", current)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    modules = (auth, studio, gallery, library_pages, account, webhooks_page, admin_pages, mail_pages, share_page)
    for module in (*modules, org_pages):
        app.include_router(module.router, dependencies=[Depends(refuse_unstorable_form)])
    app.add_api_route("/guide", guide, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(AdminOnly, _admin_only)
