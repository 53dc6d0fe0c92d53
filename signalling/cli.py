"""`teleconsult`: the command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

import uvloop
from aiohttp import web
from redis.exceptions import RedisError

from logs import line_format
from media.local_relay_nodes import LocalRelayNodes, worker_host
from media.relay_node_client import NodeRelay
from media.relay_node_server import (
    Address,
    RelayNode,
    advertised_address,
    check_secret,
    parse_address,
)
from media.relay_node_server import run as run_relay
from media.relay_service import IceServerConfig, RelayService
from media.worker_relay import WorkerRelay
from signalling.app import HUB, ice_server_configs, make_app
from signalling.config import (
    REDIS_SCHEMES,
    ConfigError,
    Settings,
    metrics_address,
    relay_worker_listen,
    relay_workers,
    settings_from_env,
)
from signalling.demo import create_demo_room, demo_banner
from signalling.metrics import MetricsListenError, listening, relay_node_metrics
from signalling.request_log_filter import BadRequestLogFilter
from store.redis_relay_directory import RedisRelayDirectory


def _parser(*, bench_arguments: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teleconsult", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run signalling and the media relay in one process")
    serve.add_argument("--host", help="listen address (TELECONSULT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (TELECONSULT_PORT, default 8080)")
    serve.add_argument("--public-url", help="base of join links (TELECONSULT_PUBLIC_URL)")
    serve.add_argument(
        "--redis-url",
        help="share rooms and Socket.IO events with other nodes (TELECONSULT_REDIS_URL)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="print a demo appointment even when secrets are configured",
    )
    serve.add_argument(
        "--relay-workers",
        type=int,
        help="relay worker processes (TELECONSULT_RELAY_WORKERS; default one per core, "
        "0 = relay inside this process)",
    )
    serve.add_argument(
        "--relay-worker-listen",
        help="with --redis-url: HOST or HOST:FIRST_PORT where this node's relay workers "
        "listen for other nodes (TELECONSULT_RELAY_WORKER_LISTEN; default: the address "
        "this machine reaches Redis from, any free port)",
    )
    serve.add_argument(
        "--metrics-addr",
        help="HOST:PORT for Prometheus /metrics, never the public port (TELECONSULT_METRICS_ADDR; "
        "off when unset)",
    )
    _log_level_argument(serve)
    relay = commands.add_parser(
        "relay",
        help="run a relay node: forwards media for rooms that signalling nodes place on it",
    )
    relay.add_argument(
        "--redis-url", help="where relay nodes register (TELECONSULT_REDIS_URL); required"
    )
    relay.add_argument(
        "--listen",
        default=os.environ.get("TELECONSULT_RELAY_LISTEN"),
        help="HOST:PORT for signalling nodes (TELECONSULT_RELAY_LISTEN); required",
    )
    relay.add_argument(
        "--advertise",
        default=os.environ.get("TELECONSULT_RELAY_ADVERTISE"),
        help="HOST:PORT signalling nodes connect to (TELECONSULT_RELAY_ADVERTISE; "
        "default: --listen, which must then not be a wildcard address)",
    )
    relay.add_argument(
        "--metrics-addr",
        default=os.environ.get("TELECONSULT_METRICS_ADDR"),
        help="HOST:PORT for Prometheus /metrics (TELECONSULT_METRICS_ADDR; off when unset)",
    )
    _log_level_argument(relay)
    bench = commands.add_parser("bench", help="measure the media relay or signalling")
    if bench_arguments:
        # Imported only for `bench`: the server never loads the benchmark or its extras.
        try:
            from bench.relay_bench import add_bench_arguments
        except ImportError as exc:
            sys.exit(
                f"teleconsult bench: {exc}; install the extra: pip install 'teleconsult[bench]'"
            )
        add_bench_arguments(bench)
    return parser


# Docker waits 10 s after SIGTERM before SIGKILL: stop well inside that. Sockets are
# closed first; a webhook or API call in flight takes milliseconds.
SHUTDOWN_GRACE = 1.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL"
    )


def configure_logging(level: str, log_format: str = "text") -> None:
    line_format.configure(level, log_format)
    # aiohttp logs a bad request at ERROR with the client's bytes (access logs are off).
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestLogFilter) for f in server.filters):
        server.addFilter(BadRequestLogFilter())


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    args = _parser(bench_arguments=given[:1] == ["bench"]).parse_args(given)
    if args.command == "bench" and args.target == "signalling":
        from bench.signalling_bench import run_signalling_bench

        return run_signalling_bench(args)
    if args.command == "bench":
        from bench.relay_bench import run_bench

        return run_bench(args)
    try:
        log_format = line_format.log_format_from_env(os.environ)
    except ValueError as exc:
        print(f"teleconsult: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level, log_format)
    if args.command == "relay":
        return run_relay_node(args)
    try:
        settings = settings_from_env(
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            redis_url=args.redis_url,
            metrics_addr=args.metrics_addr,
        )
        workers = relay_workers(os.environ, args.relay_workers)
        worker_listen = relay_worker_listen(os.environ, args.relay_worker_listen, workers)
    except ConfigError as exc:
        print(f"teleconsult: configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.relay_secret:
        workers = 0  # Media goes to relay nodes (`teleconsult relay`), placed through Redis.
    relay: RelayService | None = None
    if workers > 0 and settings.redis_url:
        relay = shared_worker_relay(settings, workers, worker_listen)
    elif workers > 0:
        relay = WorkerRelay(workers, ice_server_configs(settings))
    elif settings.redis_url and not settings.relay_secret:
        logging.getLogger(__name__).warning(
            "TELECONSULT_RELAY_WORKERS=0 with a Redis URL: the relay runs in this process and "
            "is not shared, so calls whose participants are on different nodes carry no media"
        )
    app = make_app(settings, relay=relay)
    if settings.secrets_generated:
        print(
            "teleconsult: no TELECONSULT_TOKEN_SECRET / TELECONSULT_WEBHOOK_SECRET set; "
            "generated throwaway secrets (links die with this process).",
            file=sys.stderr,
        )
    banner: list[str] = []
    if settings.secrets_generated or args.demo:

        async def demo(app: web.Application) -> AsyncIterator[None]:
            hub = app[HUB]
            room = await create_demo_room(hub, settings, hub.clock())
            banner.append(demo_banner(settings, room))
            yield

        app.cleanup_ctx.append(demo)

    def listening(_: str) -> None:
        # aiohttp calls this once the socket is bound: links printed earlier
        # could be opened before anything answers them.
        for text in banner:
            print(text, flush=True)

    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=listening,
            access_log=None,
            # Sockets are closed first (app.on_shutdown); requests in flight get this long.
            shutdown_timeout=SHUTDOWN_GRACE,
        )
    except MetricsListenError as exc:
        print(f"teleconsult: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Raised when binding; aiohttp has already stopped what it started.
        print(
            f"teleconsult: configuration error: cannot listen on {settings.host}:{settings.port} "
            f"(--host/--port, TELECONSULT_HOST/TELECONSULT_PORT): {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    return 0


def shared_worker_relay(
    settings: Settings, workers: int, listen: tuple[str, int] | None
) -> NodeRelay:
    """`serve --redis-url`: this node's relay workers are relay nodes in Redis, open to every node.

    Rooms are placed on the least-loaded worker of any node (docs/deployment.md,
    "Several nodes"); the link is authenticated with `Settings.relay_link_secret`.
    """
    assert settings.redis_url is not None
    host, port = listen or (worker_host(settings.redis_url), 0)
    directory = RedisRelayDirectory.from_url(settings.redis_url, settings.redis_prefix)
    secret = settings.relay_link_secret
    local = LocalRelayNodes(
        workers,
        redis_url=settings.redis_url,
        prefix=settings.redis_prefix,
        secret=secret,
        listen=Address(host, port),
        directory=directory,
        ice_servers=ice_server_configs(settings),
    )
    return NodeRelay(directory, secret, workers=local)


def run_relay_node(args: argparse.Namespace) -> int:
    """`teleconsult relay`: one relay node, registered in Redis, on uvloop."""
    redis_url = args.redis_url or os.environ.get("TELECONSULT_REDIS_URL") or ""
    try:
        if not redis_url.startswith(REDIS_SCHEMES):
            raise ValueError(
                "--redis-url (or TELECONSULT_REDIS_URL) must be a redis://, rediss:// or "
                "unix:// URL: relay nodes register there"
            )
        if not args.listen:
            raise ValueError("--listen HOST:PORT (or TELECONSULT_RELAY_LISTEN) is required")
        listen = parse_address(args.listen, "--listen")
        advertise = parse_address(args.advertise, "--advertise") if args.advertise else None
        secret = check_secret(os.environ.get("TELECONSULT_RELAY_SECRET"))
        node = RelayNode(
            RedisRelayDirectory.from_url(
                redis_url, os.environ.get("TELECONSULT_REDIS_PREFIX") or "teleconsult:"
            ),
            secret,
            listen,
            advertised_address(listen, advertise),
            stun_servers(os.environ),
        )
        metrics_at = metrics_address(args.metrics_addr) if args.metrics_addr else None
    except ValueError as exc:
        print(f"teleconsult relay: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        uvloop.run(_relay_node(node, metrics_at))
    except MetricsListenError as exc:
        print(f"teleconsult relay: configuration error: {exc}", file=sys.stderr)
        return 2
    except RedisError as exc:
        # Not registered: nothing can place a room here.
        print(f"teleconsult relay: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"teleconsult relay: configuration error: cannot listen on {args.listen} "
            f"(--listen, TELECONSULT_RELAY_LISTEN): {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    return 0


async def _relay_node(node: RelayNode, metrics_at: Address | None) -> None:
    if metrics_at is None:
        await run_relay(node)
        return
    async with listening(relay_node_metrics(node.relay), metrics_at):
        await run_relay(node)


def stun_servers(env: Mapping[str, str]) -> tuple[IceServerConfig, ...]:
    urls = tuple(u.strip() for u in env.get("TELECONSULT_STUN_URLS", "").split(",") if u.strip())
    return (IceServerConfig(urls),) if urls else ()


if __name__ == "__main__":
    sys.exit(main())
