"""The French and English catalogues hold the same keys, and every key the pages use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB_CLIENT = ROOT / "web_client"
LOCALES = ("fr", "en")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# A catalogue key written out in a page or a module: "area.name".
KEY_LITERAL = re.compile(r'"([a-z][a-z_]*\.[a-z0-9_]+)"')
HTML_KEY = re.compile(r'data-i18n="([^"]+)"')
HTML_ATTR_KEYS = re.compile(r"data-i18n-attrs='([^']+)'")


def catalogue(locale: str) -> dict[str, str]:
    data = json.loads((WEB_CLIENT / "locales" / f"{locale}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def used_keys() -> set[str]:
    namespaces = {key.split(".", 1)[0] for key in catalogue("en")}
    keys: set[str] = set()
    for path in WEB_CLIENT.glob("*.js"):
        for key in KEY_LITERAL.findall(path.read_text(encoding="utf-8")):
            if key.split(".", 1)[0] in namespaces:
                keys.add(key)
    for path in WEB_CLIENT.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        keys.update(HTML_KEY.findall(text))
        for attrs in HTML_ATTR_KEYS.findall(text):
            keys.update(key for key, *_ in json.loads(attrs).values())
    return keys


def test_both_languages_have_the_same_keys() -> None:
    french, english = catalogue("fr"), catalogue("en")
    assert sorted(set(english) - set(french)) == [], "missing in fr.json"
    assert sorted(set(french) - set(english)) == [], "missing in en.json"


@pytest.mark.parametrize("locale", LOCALES)
def test_no_text_is_empty(locale: str) -> None:
    empty = [key for key, text in catalogue(locale).items() if not str(text).strip()]
    assert empty == []


def test_the_same_placeholders_in_both_languages() -> None:
    french, english = catalogue("fr"), catalogue("en")
    different = {
        key: (sorted(PLACEHOLDER.findall(english[key])), sorted(PLACEHOLDER.findall(french[key])))
        for key in english
        if key in french
        and set(PLACEHOLDER.findall(english[key])) != set(PLACEHOLDER.findall(french[key]))
    }
    assert different == {}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_key_the_pages_use_is_in_the_catalogue(locale: str) -> None:
    missing = sorted(used_keys() - set(catalogue(locale)))
    assert missing == [], f"used by web_client/ but not in {locale}.json"


@pytest.mark.parametrize("locale", LOCALES)
def test_keys_made_on_the_fly_exist(locale: str) -> None:
    """Keys built from a code or a state (`errors.${code}`, `desk.state_${state}`...)."""
    keys = set(catalogue(locale))
    messages = (WEB_CLIENT / "messages.js").read_text(encoding="utf-8")
    codes = re.findall(
        r'^  "([a-z_]+)",$', messages.split("KNOWN_CODES", 1)[1].split("]);")[0], re.M
    )
    assert "room_closed" in codes
    wanted = {f"errors.{code}" for code in codes} | {"errors.generic"}
    wanted |= {
        f"desk.state_{state}"
        for state in ("scheduled", "waiting", "in_consultation", "ended", "no_show", "cancelled")
    }
    wanted |= {f"e2ee.{state}" for state in ("pending", "encrypted", "failing", "off")}
    wanted |= {f"call.tile_{role}" for role in ("practitioner", "patient", "guest")}
    wanted |= {"panel.admit_name", "panel.deny_name"}
    wanted |= {f"waiting.{key}_unnamed" for key in ("note", "returned")}
    assert sorted(wanted - keys) == []


def test_a_missing_key_is_caught(tmp_path: Path) -> None:
    """The comparison above really fails when one language lacks a key."""
    english = catalogue("en")
    french = dict(catalogue("fr"))
    french.pop("panel.admit")
    assert set(english) - set(french) == {"panel.admit"}
