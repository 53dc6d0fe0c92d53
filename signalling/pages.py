"""The browser side: the join page, static files and the headers that protect them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

# What a Host header may hold to be named in the policy (a name or address, a port).
HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def content_security_policy(host: str) -> str:
    """The page's policy: scripts, styles and connections to its own origin only.

    `connect-src 'self'` covers ws:/wss: to the same host only in CSP Level 3
    browsers (older Safari reads it as http(s) only), so the page's own host is
    named for WebSockets, and no other host: an injected script could not send
    anything elsewhere.
    """
    sockets = f"ws://{host} wss://{host}" if HOST.match(host) else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob:",
            f"connect-src 'self' {sockets}".rstrip(),
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


SECURITY_HEADERS = {
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
    response.headers.setdefault("Content-Security-Policy", content_security_policy(request.host))
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# The pages say which language they start in; the deployment's default is written in.
HTML_LANG = '<html lang="fr" data-default-locale="fr">'


def page_html(path: Path, default_locale: str) -> str:
    """The page with `<html lang>` and its `data-default-locale` set to the deployment's."""
    text = path.read_text(encoding="utf-8")
    tag = f'<html lang="{default_locale}" data-default-locale="{default_locale}">'
    return text.replace(HTML_LANG, tag, 1)


def add_page_routes(app: web.Application, web_root: Path, default_locale: str = "fr") -> None:
    def page(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            # Same page for every room and role: what it shows depends on the token,
            # which only the browser sees.
            response = web.Response(
                text=page_html(web_root / name, default_locale), content_type="text/html"
            )
            response.headers["Cache-Control"] = "no-store"
            return response

        return handler

    join_page = page("index.html")
    desk_page = page("desk.html")

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
