"""Dependencies point one way: each rule reads every import of the production code with `ast`.

    rooms  <-  waiting_room  <-  store (ports, in-memory and Redis)  <-  signalling, media

The domain (rooms/, waiting_room/) is plain, deterministic Python: no I/O, no
clock, no event loop, no third-party package. `waiting_room` builds on `rooms`,
never the reverse. The store speaks Redis and the domain, never a transport.
Test support and benchmarks stay out of the server. A failure names the file,
the line and the import that breaks the rule.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("signalling", "media", "rooms", "waiting_room", "store", "turn", "logs")
DOMAIN = ("rooms", "waiting_room")

# Standard modules the domain may not use: I/O, processes, threads, event loops, clocks and
# randomness (the caller passes `now` and ids), logging (transitions return events instead).
IMPURE_STDLIB = frozenset(
    {
        "_thread",
        "asyncio",
        "concurrent",
        "dbm",
        "ftplib",
        "http",
        "imaplib",
        "io",
        "logging",
        "multiprocessing",
        "os",
        "pathlib",
        "poplib",
        "random",
        "secrets",
        "select",
        "selectors",
        "shelve",
        "shutil",
        "signal",
        "smtplib",
        "socket",
        "socketserver",
        "sqlite3",
        "ssl",
        "subprocess",
        "tempfile",
        "threading",
        "time",
        "urllib",
        "xmlrpc",
    }
)
PURE_STDLIB = frozenset(sys.stdlib_module_names) - IMPURE_STDLIB | {"__future__"}


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    line: int
    module: str
    in_function: bool = False

    @property
    def package(self) -> str:
        """The top-level package of the importing file."""
        return self.path.split("/", 1)[0]

    @property
    def top(self) -> str:
        """The top-level name of what is imported."""
        return self.module.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: import {self.module}"


class _Imports(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        parts = path.removesuffix(".py").split("/")
        # The package a relative import starts from.
        self.package = parts[:-1]
        self.depth = 0
        self.found: list[Import] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, line: int, module: str) -> None:
        self.found.append(Import(self.path, line, module, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node.lineno, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0:
            assert node.module is not None
            self._add(node.lineno, node.module)
            return
        base = ".".join(self.package[: len(self.package) - node.level + 1])
        if node.module is not None:
            self._add(node.lineno, f"{base}.{node.module}")
        else:
            for alias in node.names:
                self._add(node.lineno, f"{base}.{alias.name}")


def imports_in(path: str, source: str) -> list[Import]:
    """Every import in one file's source; `path` is relative to the project root."""
    visitor = _Imports(path)
    visitor.visit(ast.parse(source, filename=path))
    return visitor.found


def production_imports() -> Iterator[Import]:
    for package in PRODUCTION:
        for file in sorted((ROOT / package).rglob("*.py")):
            relative = file.relative_to(ROOT).as_posix()
            yield from imports_in(relative, file.read_text())


# --- the rules: each returns the imports that break it ---------------------------------------


def domain_is_pure(imports: Iterable[Import]) -> list[Import]:
    """rooms/ and waiting_room/ import pure standard modules and the domain only."""
    allowed = PURE_STDLIB | set(DOMAIN)
    return [i for i in imports if i.package in DOMAIN and i.top not in allowed]


def logs_stand_alone(imports: Iterable[Import]) -> list[Import]:
    """logs/ (how every process writes its lines) imports the standard library only."""
    allowed = frozenset(sys.stdlib_module_names) | {"__future__", "logs"}
    return [i for i in imports if i.package == "logs" and i.top not in allowed]


def rooms_is_the_core(imports: Iterable[Import]) -> list[Import]:
    """waiting_room/ builds on rooms/: rooms/ never imports waiting_room/."""
    return [i for i in imports if i.package == "rooms" and i.top == "waiting_room"]


def store_speaks_only_redis_and_the_domain(imports: Iterable[Import]) -> list[Import]:
    """store/ imports the standard library, redis, the domain and itself: never a transport."""
    allowed = frozenset(sys.stdlib_module_names) | {"__future__", "redis", "store", *DOMAIN}
    return [i for i in imports if i.package == "store" and i.top not in allowed]


def media_does_not_know_signalling(imports: Iterable[Import]) -> list[Import]:
    """media/ is used by signalling/, and never imports it, the benchmarks or the tests."""
    return [
        i for i in imports if i.package == "media" and i.top in {"signalling", "bench", "tests"}
    ]


def production_does_not_import_tests(imports: Iterable[Import]) -> list[Import]:
    """Test support (synthetic participants, test servers) is never part of the server."""
    return [i for i in imports if i.package in PRODUCTION and i.top == "tests"]


def bench_only_on_demand(imports: Iterable[Import]) -> list[Import]:
    """Only `teleconsult bench` loads the benchmarks: signalling/cli.py, inside a function."""
    return [
        i
        for i in imports
        if i.package in PRODUCTION
        and i.top == "bench"
        and not (i.path == "signalling/cli.py" and i.in_function)
    ]


Rule = Callable[[Iterable[Import]], list[Import]]

RULES: list[object] = [
    pytest.param(domain_is_pure, id="domain_is_pure"),
    pytest.param(rooms_is_the_core, id="rooms_is_the_core"),
    pytest.param(logs_stand_alone, id="logs_stand_alone"),
    pytest.param(store_speaks_only_redis_and_the_domain, id="store_speaks_only_redis"),
    pytest.param(media_does_not_know_signalling, id="media_does_not_know_signalling"),
    pytest.param(production_does_not_import_tests, id="production_does_not_import_tests"),
    pytest.param(bench_only_on_demand, id="bench_only_on_demand"),
]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return list(production_imports())


@pytest.mark.parametrize("rule", RULES)
def test_dependencies_point_one_way(rule: Rule, imports: list[Import]) -> None:
    broken = rule(imports)

    if broken:
        pytest.fail(f"{rule.__doc__}\n" + "\n".join(f"  {i}" for i in broken), pytrace=False)


def test_every_production_package_is_read(imports: list[Import]) -> None:
    assert {i.package for i in imports} == set(PRODUCTION)


# --- the reader itself -----------------------------------------------------------------------


def test_imports_are_found_everywhere_with_their_line() -> None:
    source = "\n".join(
        [
            "import os, redis.asyncio as r",
            "from rooms.room import Room",
            "from . import sibling",
            "from ..store import errors",
            "def command():",
            "    from bench.relay_bench import run_bench",
            "class Later:",
            "    async def method(self):",
            "        import aiohttp",
        ]
    )

    found = imports_in("signalling/sub/cli.py", source)

    assert [(i.line, i.module, i.in_function) for i in found] == [
        (1, "os", False),
        (1, "redis.asyncio", False),
        (2, "rooms.room", False),
        (3, "signalling.sub.sibling", False),
        (4, "signalling.store", False),
        (6, "bench.relay_bench", True),
        (9, "aiohttp", True),
    ]
    assert str(found[2]) == "signalling/sub/cli.py:2: import rooms.room"


@pytest.mark.parametrize(
    ("rule", "path", "source"),
    [
        (domain_is_pure, "rooms/room.py", "import asyncio"),
        (domain_is_pure, "waiting_room/day.py", "from redis import Redis"),
        (domain_is_pure, "rooms/room.py", "from signalling.clock import utc_now"),
        (domain_is_pure, "rooms/room.py", "import pydantic"),
        (domain_is_pure, "waiting_room/day.py", "def f():\n    import time"),
        (rooms_is_the_core, "rooms/room.py", "from waiting_room import practitioner_day"),
        (store_speaks_only_redis_and_the_domain, "store/x.py", "from aiohttp import web"),
        (store_speaks_only_redis_and_the_domain, "store/x.py", "import signalling.room_hub"),
        (media_does_not_know_signalling, "media/relay.py", "from signalling import tokens"),
        (media_does_not_know_signalling, "media/relay.py", "from tests.support import x"),
        (production_does_not_import_tests, "turn/x.py", "import tests.support.browser"),
        (bench_only_on_demand, "signalling/cli.py", "from bench.relay_bench import run"),
        (bench_only_on_demand, "signalling/app.py", "def f():\n    import bench"),
    ],
)
def test_each_rule_catches_what_it_forbids(rule: Rule, path: str, source: str) -> None:
    assert len(rule(imports_in(path, source))) == 1


@pytest.mark.parametrize(
    ("rule", "path", "source"),
    [
        (domain_is_pure, "waiting_room/day.py", "from rooms.room import Room"),
        (domain_is_pure, "rooms/room.py", "from dataclasses import dataclass"),
        (store_speaks_only_redis_and_the_domain, "store/x.py", "import asyncio, redis.asyncio"),
        (store_speaks_only_redis_and_the_domain, "store/x.py", "from rooms.room import Room"),
        (media_does_not_know_signalling, "media/relay.py", "from store import relay_directory"),
        (bench_only_on_demand, "signalling/cli.py", "def f():\n    from bench import relay_bench"),
    ],
)
def test_each_rule_allows_what_the_direction_allows(rule: Rule, path: str, source: str) -> None:
    assert rule(imports_in(path, source)) == []
