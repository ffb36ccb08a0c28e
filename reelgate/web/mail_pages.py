"""Email in the studio: forgot/reset password, address verification, one-click unsubscribe, email preferences,
and for administrators the mail folder (embedded mode without SMTP) and "send reset link"."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from reelgate.api.deps import Ctx
from reelgate.domain.errors import ReelgateError
from reelgate.services import account_unlock, email_verification, mail, password_reset, user_admin
from reelgate.web.common import (
    AdminFormViewer,
    AdminViewer,
    FormViewer,
    login_csrf,
    redirect,
    render,
    set_login_csrf,
)

router = APIRouter(include_in_schema=False)

NEUTRAL_ANSWER = (
    "If an account uses this address, an email with a link to set a new password is on its way. "
    "The link works once, for one hour."
)


def _page(request: Request, mode: str, *, status_code: int = 200, **values: object) -> Response:
    """The signed-out forms: they use the sign-in page's double-submit CSRF token."""
    token = login_csrf(request)
    fields: dict[str, object] = {"form_error": "", "token": "", "message": "", "mail_on": True, **values}
    response = render(request, "password.html", mode=mode, login_token=token, status_code=status_code, **fields)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token in the address never leaves in a Referer
    set_login_csrf(request, response, token)
    return response


def _csrf_ok(request: Request, presented: str) -> bool:
    cookie = request.cookies.get("rg_login_csrf", "")
    return bool(cookie) and hmac.compare_digest(cookie, presented)


# ---------------------------------------------------------------- forgot / reset password


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_page(request: Request, ctx: Ctx) -> Response:
    return _page(request, "forgot", mail_on=mail.enabled(ctx))


@router.post("/forgot-password")
async def forgot(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not _csrf_ok(request, csrf_token):
        return _page(request, "forgot", mail_on=mail.enabled(ctx), form_error="Your form expired; please try again.")
    await password_reset.request_reset(ctx, email)
    # The same answer whether or not the account exists.
    return _page(request, "forgot_sent", mail_on=mail.enabled(ctx), message=NEUTRAL_ANSWER)


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_page(request: Request, ctx: Ctx, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    if not token or not await password_reset.check_token(ctx, token):
        return _page(request, "reset_invalid", status_code=404)
    return _page(request, "reset", token=token)


@router.post("/reset-password")
async def reset(
    request: Request,
    ctx: Ctx,
    token: Annotated[str, Form(max_length=200)],
    new_password: Annotated[str, Form(max_length=1024)],
    confirm_password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not _csrf_ok(request, csrf_token):
        return _page(request, "reset", token=token, form_error="Your form expired; please try again.", status_code=403)
    if new_password != confirm_password:
        return _page(request, "reset", token=token, form_error="The passwords do not match.", status_code=422)
    try:
        await password_reset.redeem(ctx, token, new_password)
    except ReelgateError as exc:
        if exc.status_code == 404:
            return _page(request, "reset_invalid", status_code=404)
        return _page(request, "reset", token=token, form_error=exc.message, status_code=exc.status_code)
    return redirect(request, "/login", notice="Your password is changed. Sign in with the new one.")


# ---------------------------------------------------------------- lifting a sign-in lock


@router.get("/unlock-account", response_class=HTMLResponse)
async def unlock_page(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    # A button, not the link itself, uses the token: mail scanners that open links must not spend it.
    return _page(request, "unlock", token=token)


@router.post("/unlock-account")
async def unlock(
    request: Request, ctx: Ctx, token: Annotated[str, Form(max_length=200)], csrf_token: Annotated[str, Form()] = ""
) -> Response:
    if not _csrf_ok(request, csrf_token):
        return _page(request, "unlock", token=token, form_error="Your form expired; please try again.", status_code=403)
    try:
        await account_unlock.redeem(ctx, token)
    except ReelgateError:
        return _page(request, "unlock_invalid", status_code=404)
    return redirect(request, "/login", notice="The lock is lifted: sign in again.")


# ---------------------------------------------------------------- address verification


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_page(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    # A button, not the link itself, uses the token: mail scanners that open links must not spend it.
    return _page(request, "verify", token=token)


@router.post("/verify-email")
async def verify(
    request: Request, ctx: Ctx, token: Annotated[str, Form(max_length=200)], csrf_token: Annotated[str, Form()] = ""
) -> Response:
    if not _csrf_ok(request, csrf_token):
        return _page(request, "verify", token=token, form_error="Your form expired; please try again.", status_code=403)
    try:
        credits = await email_verification.verify(ctx, token)
    except ReelgateError:
        return _page(request, "verify_invalid", status_code=404)
    notice = "Your email address is confirmed."
    if credits:
        notice += f" {credits} free credits are in your balance."
    return redirect(request, "/studio", notice=notice)


@router.post("/settings/verify-email")
async def resend_verification(request: Request, current: FormViewer, ctx: Ctx) -> Response:
    if await email_verification.resend(ctx, current.user.id):
        return redirect(request, "/settings", notice=f"A new confirmation email is on its way to {current.user.email}.")
    return redirect(request, "/settings", error="No new confirmation email was sent; try again in a quarter hour.")


# ---------------------------------------------------------------- unsubscribe (RFC 8058)


@router.get("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, ctx: Ctx, token: Annotated[str, Query(max_length=500)] = "") -> Response:
    found = mail.read_unsubscribe_token(ctx, token)
    if found is None:
        return render(request, "unsubscribe.html", valid=False, status_code=404)
    return render(request, "unsubscribe.html", valid=True, token=token, label=mail.OPTIONAL_KINDS[found[1]], done=False)


@router.post("/unsubscribe")
async def unsubscribe(request: Request, ctx: Ctx, token: Annotated[str, Query(max_length=500)] = "") -> Response:
    """One click: the mail client POSTs `List-Unsubscribe=One-Click` to the link itself. The signed token is the
    authority, so no session or CSRF token is asked for."""
    kind = await mail.unsubscribe(ctx, token)
    if kind is None:
        return render(request, "unsubscribe.html", valid=False, status_code=404)
    return render(request, "unsubscribe.html", valid=True, token=token, label=mail.OPTIONAL_KINDS[kind], done=True)


# ---------------------------------------------------------------- preferences


@router.post("/settings/email")
async def save_preferences(request: Request, current: FormViewer, ctx: Ctx) -> Response:
    form = await request.form()
    wanted = {kind for kind in mail.OPTIONAL_KINDS if form.get(f"kind_{kind}") == "on"}
    await mail.set_preferences(ctx, current.user.id, wanted)
    return redirect(request, "/settings", notice="Email preferences saved.")


# ---------------------------------------------------------------- administrators


@router.get("/admin/mail", response_class=HTMLResponse)
async def admin_mail(request: Request, current: AdminViewer, ctx: Ctx) -> HTMLResponse:
    emails = await mail.folder_emails(ctx)
    return render(
        request,
        "admin_mail.html",
        current,
        emails=emails,
        smtp=bool(ctx.config.smtp_url),
        folder=ctx.config.mail_dir,
        tab="mail",
    )


@router.get("/admin/mail/{name}", response_class=HTMLResponse)
async def admin_mail_message(name: str, request: Request, current: AdminViewer, ctx: Ctx) -> HTMLResponse:
    email = await mail.folder_email(ctx, name)
    if email is None:
        message = "No such email in the mail folder."
        return render(request, "error.html", current, status_code=404, title="Not found", message=message)
    return render(request, "admin_mail_message.html", current, email=email, tab="mail")


@router.post("/admin/users/{user_id}/send-reset")
async def admin_send_reset(
    user_id: str, request: Request, current: AdminFormViewer, ctx: Ctx, q: Annotated[str, Form(max_length=320)] = ""
) -> Response:
    back = f"/admin?q={q}" if q else "/admin"
    try:
        await password_reset.send_reset_link(ctx, user_id)
    except ReelgateError as exc:
        return redirect(request, back, error=exc.message)
    await user_admin.record_reset_link(ctx, current.user.id, user_id)
    return redirect(request, back, notice="A password reset link is on its way.")
