"""Keys never reach an access log.

The proxy refuses a key sent in the URL (`?api_key=sk-...`), but uvicorn's
access line records the path with its query string before anyone looks at it,
and log files outlive keys' revocation and are read by more people than the
keys' owners. `AccessKeysMasked` rewrites each "uvicorn.access" record
(`'%s - "%s %s HTTP/%s" %d'`, the path with its query among the arguments) so
that the path stays and the key does not:

- a query parameter named like a credential (`key`, `api_key`, `apikey`,
  `token`, `access_token`, `client_secret`, `password`, ...) has its value
  replaced by `***`, whatever the value;
- any other parameter whose decoded value holds an `sk-` key has its value
  replaced too (a key that arrives percent-encoded is masked as well);
- an `sk-` key anywhere else in the text (the path) becomes `sk-***`.

portal.logformat attaches the filter to the "uvicorn.access" logger in
Django's LOGGING. Infrastructure: imports nothing from the apps.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

MASK = "***"
# `sk-` and key characters: Portico's keys (`sk-ptc_` + base62) and other
# providers' (`sk-proj-...`), not preceded by a letter or digit ("task-...").
_KEY = re.compile(r"(?<![0-9A-Za-z])sk-[0-9A-Za-z_-]+", re.ASCII)
# Parameter names whose value is a credential, whatever the value looks like.
_SECRET_NAME = re.compile(r"(key|token|secret|password|passwd)$", re.IGNORECASE)
# Parameters are split on `&` and on the old `;` alike, so that neither hides
# a second parameter inside the first one's value.
_SEPARATORS = re.compile(r"([&;])")


def _parameter_mask(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if not equals or not value:
        return _KEY.sub("sk-" + MASK, parameter)
    decoded_name = unquote_plus(name).strip()
    if _SECRET_NAME.search(decoded_name) or _KEY.search(unquote_plus(value)):
        return f"{_KEY.sub('sk-' + MASK, name)}={MASK}"
    return parameter


def path_mask(text: str) -> str:
    """The path (with its query) as it may be logged: no key in it."""
    if "?" not in text and "sk-" not in text:
        return text  # the common case costs two scans
    path, question, query = text.partition("?")
    path = _KEY.sub("sk-" + MASK, path)
    if not question:
        return path
    parts = _SEPARATORS.split(query)
    masked = [
        part if index % 2 else _parameter_mask(part) for index, part in enumerate(parts)
    ]
    return f"{path}?{''.join(masked)}"


class AccessKeysMasked(logging.Filter):
    """Rewrites an access record's text arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                path_mask(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str) and not record.args:
            record.msg = path_mask(record.msg)
        return True

    # dictConfig never removes a logger's filters, and Django applies LOGGING
    # on every django.setup(): equal filters keep the logger to one
    # (Logger.addFilter skips a filter equal to one it has).
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


def access_mask_install() -> None:
    """Put the mask on uvicorn's access logger, keeping its handlers: with
    `--no-access-log` uvicorn gives it none, and that choice must stand.
    (Django's LOGGING cannot add a filter to a logger without replacing its
    handlers.) Adding it twice is harmless: equal filters are added once."""
    logging.getLogger("uvicorn.access").addFilter(AccessKeysMasked())
