"""Checks of every screen state in the browser tests: language, axe-core, layout, screenshots."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page

REPO = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = REPO / "test-artifacts" / "screens"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CALL_CONTROLS = ("toggle-mic", "toggle-camera", "hang-up")
PLACEHOLDER = re.compile(r"\{\w+\}")

# Every text the page carries (hidden screens too, they show later), its
# accessible names, placeholders and title; not the language options, which
# are each in their own language, nor <noscript>.
PAGE_TEXTS = """
() => {
  const skip = (el) => !el || el.closest('[lang="en"]:not(html), noscript, script, style');
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (skip(node.parentElement)) continue;
    const text = node.textContent.trim();
    if (text) texts.push(text);
  }
  const named = '[aria-label], [placeholder], [title], [data-label]';
  for (const el of document.querySelectorAll(named)) {
    if (skip(el)) continue;
    for (const name of ['aria-label', 'placeholder', 'title', 'data-label']) {
      const value = el.getAttribute(name);
      if (value && value.trim()) texts.push(value.trim());
    }
  }
  texts.push(document.title);
  return texts;
}
"""

AXE_RUN = """
async () => {
  const result = await window.axe.run(document, { resultTypes: ['violations'] });
  return result.violations
    .filter((v) => v.impact === 'critical' || v.impact === 'serious')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
}
"""


def catalogue(locale: str) -> dict[str, str]:
    path = REPO / "web_client" / "locales" / f"{locale}.json"
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def markers(language: str, other: str) -> tuple[set[str], set[str]]:
    """Whole texts only `language` has, and its fragments of three words or more `other` lacks."""
    own, theirs = catalogue(language), catalogue(other)
    their_text = " ".join(theirs.values())
    whole = {text for key, text in own.items() if text != theirs[key] and "{" not in text}
    fragments: set[str] = set()
    for text in own.values():
        for part in PLACEHOLDER.split(text):
            part = part.strip(" .,:;()—·“”…")
            if len(part.split()) >= 3 and part not in their_text:
                fragments.add(part)
    return whole, fragments


async def page_texts(page: Page) -> list[str]:
    texts: list[str] = await page.evaluate(PAGE_TEXTS)
    return texts


async def left_over(page: Page, language: str) -> list[str]:
    """Texts of the `language` catalogue found on the page (on a page in the other: none)."""
    whole, fragments = markers(language, "fr" if language == "en" else "en")
    texts = await page_texts(page)
    joined = "\n".join(texts)
    found = sorted({text for text in texts if text in whole})
    found += sorted(fragment for fragment in fragments if fragment in joined)
    return found


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Critical and serious axe-core violations (axe injected from node_modules)."""
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run `make lint` (npm ci) first")
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated by the DevTools protocol: the page's CSP does not apply to it.
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    violations: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
    return violations


async def controls_on_screen(page: Page) -> list[str]:
    """The call controls that are not fully inside the viewport at the top of the page."""
    await page.evaluate("() => window.scrollTo(0, 0)")
    size = page.viewport_size or {"width": 0, "height": 0}
    outside = []
    for test_id in CALL_CONTROLS:
        box = await page.get_by_test_id(test_id).bounding_box()
        if (
            box is None
            or box["y"] < 0
            or box["x"] < 0
            or box["y"] + box["height"] > size["height"]
            or box["x"] + box["width"] > size["width"]
        ):
            outside.append(f"{test_id}: {box}")
    return outside


async def horizontal_overflow(page: Page) -> int:
    overflow: int = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


async def check_screen(page: Page, name: str, locale: str, *, call: bool = False) -> None:
    """One screen state: language, axe, layout at both sizes, and its screenshots."""
    language = locale.split("-")[0]
    assert await page.evaluate("() => document.documentElement.lang") == language, name
    other = "en" if language == "fr" else "fr"
    assert await left_over(page, other) == [], f"{name}: {other} text on a {language} page"
    violations = await axe_violations(page)
    assert violations == [], f"{name} ({locale}): {json.dumps(violations, indent=1)}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for size_name, (width, height) in SIZES.items():
        await page.set_viewport_size({"width": width, "height": height})
        if call:
            assert await controls_on_screen(page) == [], f"{name} {size_name}: controls off screen"
        assert await horizontal_overflow(page) <= 0, f"{name} {size_name}: scrolls sideways"
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{language}-{size_name}.png"))
    if original:
        await page.set_viewport_size(original)
