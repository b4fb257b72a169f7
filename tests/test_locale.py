"""The shipped translations (locale/): every catalogue is complete, compiled and
in step with its .po, so a fresh clone needs no gettext to show them."""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

LOCALE = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ["hu", "et", "de"]
ENTRY = re.compile(
    r'^((?:#.*\n)*)msgid "(.*)"\n(?:msgid_plural "(.*)"\n)?((?:msgstr.*\n)+)', re.M
)


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _entries(language: str) -> list[tuple[str, str, list[str]]]:
    """(flags, msgid, msgstrs) for each entry of `language`'s .po (no-wrap)."""
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text("utf-8")
    entries = []
    for match in ENTRY.finditer(text + "\n"):
        flags, msgid, _plural, msgstrs = match.groups()
        strings = re.findall(r'^msgstr(?:\[\d\])? "(.*)"$', msgstrs, re.M)
        if msgid:
            entries.append((flags, _unquote(msgid), [_unquote(s) for s in strings]))
    return entries


def test_the_settings_offer_the_shipped_languages() -> None:
    codes = [code for code, _name in settings.LANGUAGES]
    assert codes == ["en", *LANGUAGES]
    assert LOCALE in [Path(path) for path in settings.LOCALE_PATHS]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_entry_is_translated_and_none_is_fuzzy(language: str) -> None:
    entries = _entries(language)
    assert len(entries) > 50
    assert not [msgid for flags, msgid, _ in entries if "fuzzy" in flags]
    assert not [msgid for _, msgid, strings in entries if not all(strings)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language: str) -> None:
    for _, msgid, strings in _entries(language):
        wanted = sorted(set(re.findall(r"%\(\w+\)s", msgid)))
        for string in strings:
            assert sorted(set(re.findall(r"%\(\w+\)s", string))) == wanted, msgid


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_is_in_step_with_the_po(language: str) -> None:
    folder = LOCALE / language / "LC_MESSAGES"
    with open(folder / "django.mo", "rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    for _, msgid, strings in _entries(language):
        if len(strings) == 1:
            assert catalogue.gettext(msgid) == strings[0], msgid


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="GNU gettext is not installed")
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_po_compiles_cleanly(language: str, tmp_path: Path) -> None:
    po = LOCALE / language / "LC_MESSAGES" / "django.po"
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(tmp_path / "x.mo"), str(po)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fuzzy" not in result.stderr and "untranslated" not in result.stderr
