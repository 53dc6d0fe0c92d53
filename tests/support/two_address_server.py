"""The real app on one port of two addresses: loopback, and a network namespace's host end.

A browser on the machine uses loopback (a secure context, as https would be);
one inside a namespace (tests/support/netns.py) reaches the other address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from signalling.app import make_app
from signalling.config import Settings
from tests.conftest import LiveServer


class TwoAddressServer(LiveServer):
    """`base_url` on loopback, `namespace_url` on the other address; `book` as LiveServer."""

    def __init__(self, runner: web.AppRunner, base_url: str, namespace_url: str) -> None:
        self.runner = runner
        self.base_url = base_url
        self.namespace_url = namespace_url

    @property
    def app(self) -> web.Application:
        app = self.runner.app
        assert isinstance(app, web.Application)
        return app


@asynccontextmanager
async def two_address_server(settings: Settings, address: str) -> AsyncIterator[TwoAddressServer]:
    runner = web.AppRunner(make_app(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        await web.TCPSite(runner, address, port).start()
        yield TwoAddressServer(runner, f"http://127.0.0.1:{port}", f"http://{address}:{port}")
    finally:
        await runner.cleanup()


def link_on(base_url: str, link: str) -> str:
    """The same join link on `base_url`."""
    return base_url + "/c/" + link.split("/c/", 1)[1]
