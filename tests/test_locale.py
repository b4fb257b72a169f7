"""The shipped translations (locale/): every catalogue (the pages' `django`
and the chat scripts' `djangojs`) is complete, compiled and in step with its
.po, so a fresh clone needs no gettext to show them."""

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
DOMAINS = ["django", "djangojs"]
CATALOGUES = [(language, domain) for language in LANGUAGES for domain in DOMAINS]
ENTRY = re.compile(
    r'^((?:#.*\n)*)msgid "(.*)"\n(?:msgid_plural "(.*)"\n)?((?:msgstr.*\n)+)', re.M
)


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _entries(
    language: str, domain: str = "django"
) -> list[tuple[str, str, list[str], str]]:
    """(flags, msgid, msgstrs, msgid_plural or "") for each entry of
    `language`'s .po of `domain` (no-wrap)."""
    text = (LOCALE / language / "LC_MESSAGES" / f"{domain}.po").read_text("utf-8")
    entries = []
    for match in ENTRY.finditer(text + "\n"):
        flags, msgid, plural, msgstrs = match.groups()
        strings = re.findall(r'^msgstr(?:\[\d\])? "(.*)"$', msgstrs, re.M)
        if msgid:
            entries.append(
                (
                    flags,
                    _unquote(msgid),
                    [_unquote(s) for s in strings],
                    _unquote(plural or ""),
                )
            )
    return entries


def _placeholders(text: str) -> tuple[list[str], int]:
    """The named placeholders (Python and Django's JS interpolate) and the
    number of positional ones (%s, JS interpolate)."""
    return sorted(set(re.findall(r"%\(\w+\)[sd]", text))), len(
        re.findall(r"(?<!%)%s", text)
    )


def test_the_settings_offer_the_shipped_languages() -> None:
    codes = [code for code, _name in settings.LANGUAGES]
    assert codes == ["en", *LANGUAGES]
    assert LOCALE in [Path(path) for path in settings.LOCALE_PATHS]


@pytest.mark.parametrize(("language", "domain"), CATALOGUES)
def test_every_entry_is_translated_and_none_is_fuzzy(
    language: str, domain: str
) -> None:
    entries = _entries(language, domain)
    assert len(entries) > 50
    assert not [msgid for flags, msgid, _, _ in entries if "fuzzy" in flags]
    assert not [msgid for _, msgid, strings, _ in entries if not all(strings)]


@pytest.mark.parametrize(("language", "domain"), CATALOGUES)
def test_translations_keep_their_placeholders(language: str, domain: str) -> None:
    for _, msgid, strings, plural in _entries(language, domain):
        # A plural form may name the count its singular leaves out.
        wanted = [_placeholders(msgid), _placeholders(plural or msgid)]
        for string in strings:
            assert _placeholders(string) in wanted, msgid


@pytest.mark.parametrize(("language", "domain"), CATALOGUES)
def test_the_compiled_catalogue_is_in_step_with_the_po(
    language: str, domain: str
) -> None:
    folder = LOCALE / language / "LC_MESSAGES"
    with open(folder / f"{domain}.mo", "rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    for _, msgid, strings, plural in _entries(language, domain):
        if plural:
            for n, string in ((1, strings[0]), (2, strings[-1])):
                assert catalogue.ngettext(msgid, plural, n) == string, msgid
        else:
            assert catalogue.gettext(msgid) == strings[0], msgid


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="GNU gettext is not installed")
@pytest.mark.parametrize(("language", "domain"), CATALOGUES)
def test_the_po_compiles_cleanly(language: str, domain: str, tmp_path: Path) -> None:
    po = LOCALE / language / "LC_MESSAGES" / f"{domain}.po"
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(tmp_path / "x.mo"), str(po)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fuzzy" not in result.stderr and "untranslated" not in result.stderr
