"""`teleconsult`: the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from signalling.app import HUB, make_app
from signalling.config import ConfigError, settings_from_env
from signalling.demo import create_demo_room, demo_banner


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teleconsult", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run signalling and the media relay in one process")
    serve.add_argument("--host", help="listen address (TELECONSULT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (TELECONSULT_PORT, default 8080)")
    serve.add_argument("--public-url", help="base of join links (TELECONSULT_PUBLIC_URL)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="print a demo appointment even when secrets are configured",
    )
    serve.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # aiortc and aioice log peer IP addresses below WARNING: personal data.
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        settings = settings_from_env(host=args.host, port=args.port, public_url=args.public_url)
    except ConfigError as exc:
        print(f"teleconsult: configuration error: {exc}", file=sys.stderr)
        return 2
    app = make_app(settings)
    if settings.secrets_generated:
        print(
            "teleconsult: no TELECONSULT_TOKEN_SECRET / TELECONSULT_WEBHOOK_SECRET set; "
            "generated throwaway secrets (links die with this process).",
            file=sys.stderr,
        )
    if settings.secrets_generated or args.demo:

        async def demo(app: web.Application) -> AsyncIterator[None]:
            hub = app[HUB]
            room = await create_demo_room(hub, settings, hub.clock())
            print(demo_banner(settings, room), flush=True)
            yield

        app.cleanup_ctx.append(demo)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
