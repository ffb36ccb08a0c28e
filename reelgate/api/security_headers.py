"""Response headers every answer carries: a strict Content-Security-Policy, no framing, no MIME sniffing, a
Referrer-Policy, and HSTS when the public URL is https.

The studio's pages load only their own files (/static: htmx and studio.js/css), with no inline script or style
and no eval (htmx is told so by its `htmx-config` meta tag), so the policy needs no nonce or hash. The API's
interactive docs (/docs, /redoc) are FastAPI's pages, which load Swagger UI or ReDoc from a CDN with an inline
bootstrap script; they get a policy of their own that allows just that, and still cannot be framed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One year: the figure browsers' preload lists ask for; subdomains are the operator's business, not ours.
HSTS = "max-age=31536000"
STRIPE_CHECKOUT = "https://checkout.stripe.com"  # the studio's credit purchase form redirects there
DOCS_PATHS = ("/docs", "/redoc")
_DOCS_CDN = "https://cdn.jsdelivr.net"


def studio_policy(media_origins: tuple[str, ...] = ()) -> str:
    media = " ".join(("'self'", "blob:", *media_origins))
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": f"{media} data:",
        "media-src": media,
        "connect-src": "'self'",
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": f"'self' {STRIPE_CHECKOUT}",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' 'unsafe-inline' {_DOCS_CDN}",
        f"style-src 'self' 'unsafe-inline' {_DOCS_CDN} https://fonts.googleapis.com",
        "font-src 'self' https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


def media_origins(*, presigned_downloads: bool, s3_endpoint_url: str | None) -> tuple[str, ...]:
    """Where videos and thumbnails may come from besides this site: the bucket, when downloads redirect to it."""
    if not presigned_downloads:
        return ()
    if s3_endpoint_url:
        parts = urlsplit(s3_endpoint_url)
        return (f"{parts.scheme}://{parts.netloc}", f"{parts.scheme}://*.{parts.netloc}")
    return ("https://*.amazonaws.com",)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, https: bool, extra_media_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]
        if https:
            common.append((b"strict-transport-security", HSTS.encode()))
        self.page_headers = [*common, (b"content-security-policy", studio_policy(extra_media_origins).encode())]
        self.docs_headers = [*common, (b"content-security-policy", DOCS_POLICY.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = self.docs_headers if path.startswith(DOCS_PATHS) else self.page_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in extra if name not in present]
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)
