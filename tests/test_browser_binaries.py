"""A missing browser, driver or sound server fails the browser tests, naming the package.

Never a skip: `make test` installs them, so a missing one is a broken machine.
"""

from __future__ import annotations

import pytest

from tests.support import firefox, sound_server, webkit

MISSING = "/nonexistent/teleconsult-test-binary"


def test_missing_firefox_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firefox, "FIREFOX", MISSING)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="firefox-esr"):
        firefox.require_firefox()


def test_missing_puppeteer_says_to_run_npm_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firefox, "PUPPETEER", firefox.REPO / "nonexistent")
    with pytest.raises(RuntimeError, match="npm ci"):
        firefox.require_firefox()


@pytest.mark.parametrize(
    ("name", "package"),
    [("WEBDRIVER", "webkit2gtk-driver"), ("MINIBROWSER", "webkit2gtk-driver"), ("XVFB", "xvfb")],
)
def test_missing_webkit_part_names_its_package(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str
) -> None:
    monkeypatch.setattr(webkit, name, MISSING)
    with pytest.raises(RuntimeError, match=f"{MISSING} \\({package}\\)"):
        webkit.require_webkit()


def test_missing_pulseaudio_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sound_server, "PULSEAUDIO", MISSING)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="pulseaudio"):
        sound_server.require_pulseaudio()


def test_everything_is_installed_here() -> None:
    """On the test machine they are all there (the browser tests would fail otherwise)."""
    assert firefox.require_firefox()
    assert all(webkit.require_webkit())
    assert sound_server.require_pulseaudio()
