"""The browser side: the join page, static files and the headers that protect them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The token lives in the fragment, which browsers never send; no-referrer
    # also keeps the room id out of any third party's logs.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def add_page_routes(app: web.Application, web_root: Path) -> None:
    index = web_root / "index.html"

    async def join_page(request: web.Request) -> web.FileResponse:
        # Same page for every room and role: what it shows depends on the token,
        # which only the browser sees.
        response = web.FileResponse(index)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def desk_page(request: web.Request) -> web.FileResponse:
        response = web.FileResponse(web_root / "desk.html")
        response.headers["Cache-Control"] = "no-store"
        return response

    async def home(request: web.Request) -> web.Response:
        return web.Response(
            text="teleconsult is running. Open the join link you were sent.\n",
            content_type="text/plain",
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/", home)
    app.router.add_get("/healthz", health)
    app.router.add_get("/c/{room_id}", join_page)
    app.router.add_get("/d", desk_page)
    app.router.add_static("/static/", web_root, show_index=False, follow_symlinks=False)
