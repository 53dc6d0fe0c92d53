"""The join page's modules import one way, as docs/web_client.md "Code layout" lists them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_CLIENT = ROOT / "web_client"
DOC = ROOT / "docs" / "web_client.md"
IMPORT = re.compile(r'^import\s[^;]*?from\s+"\./([\w.-]+\.js)";', re.MULTILINE | re.DOTALL)
ROW = re.compile(r"^\| `([\w.-]+\.js)` \|", re.MULTILINE)
# Read back from the DOM, the screen would have two sources of truth.
DOM_STATE_READ = re.compile(r"body\.dataset\.state\s*(?:===|!==|==|!=|\)|;|,)|currentState")


def layout() -> list[str]:
    """The modules of the "Code layout" table, top (boot) to bottom (DOM)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Code layout", 1)[1].split("\n## ", 1)[0]
    return ROW.findall(section)


def imports(module: str) -> set[str]:
    return set(IMPORT.findall((WEB_CLIENT / module).read_text(encoding="utf-8")))


def test_every_listed_module_exists_and_none_is_too_long() -> None:
    modules = layout()
    assert "app.js" in modules
    assert "state.js" in modules
    for module in modules:
        lines = (WEB_CLIENT / module).read_text(encoding="utf-8").count("\n")
        assert lines <= 400, f"{module} has {lines} lines"


def test_every_module_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [path.name for path in WEB_CLIENT.glob("*.js") if f"`{path.name}`" not in text]
    assert not missing, f"not in docs/web_client.md: {missing}"


def test_imports_only_point_down_the_table() -> None:
    modules = layout()
    for index, module in enumerate(modules):
        above = set(modules[: index + 1])
        wrong = imports(module) & above
        assert not wrong, f"{module} imports {sorted(wrong)}, listed above it (or itself)"


def test_library_modules_import_none_of_the_layout_but_screens() -> None:
    flow = set(layout()) - {"screens.js"}
    for path in sorted(WEB_CLIENT.glob("*.js")):
        if path.name in flow:
            continue
        wrong = imports(path.name) & flow
        assert not wrong, f"{path.name} imports {sorted(wrong)}"


def test_the_screen_is_never_read_back_from_the_dom() -> None:
    for path in sorted(WEB_CLIENT.glob("*.js")):
        found = DOM_STATE_READ.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name} reads the state from the DOM: {found}"
