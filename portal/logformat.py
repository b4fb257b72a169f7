"""Logging set-up, and LOG_FORMAT=json: one JSON object per log line, for log
shippers.

Structured fields a caller attaches with `extra={"fields": {...}}` (the
request log line, apiproxy.requestlog) become keys of the object; the message is
kept as written, so the plain and JSON formats carry the same information.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Keys of the object that a caller's fields may not replace.
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in _RESERVED:
                    data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            data["exception"] = self.formatStack(record.stack_info)
        # default=str: a stray object in a message argument must not lose the line.
        return json.dumps(data, default=str, ensure_ascii=False)


class SecurityNotesShort(logging.Filter):
    """Django's security log (an oversized body, a bad Host header) keeps its
    line but drops the traceback: any client can cause one, and a traceback
    per request would flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security"):
            record.exc_info = None
            record.exc_text = None
        return True


def logging_config(*, level: str, log_format: str) -> dict[str, Any]:
    """Django's LOGGING: every line on stderr in one format (plain or json),
    and no key in uvicorn's access lines (portal.accesslog)."""
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "json": {"()": "portal.logformat.JsonFormatter"},
        },
        "filters": {
            "access_keys_masked": {"()": "portal.accesslog.AccessKeysMasked"},
            "security_notes_short": {"()": "portal.logformat.SecurityNotesShort"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["security_notes_short"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
    if log_format == "json":
        # uvicorn's own lines too, so that a log shipper sees one format.
        for name in ("uvicorn", "uvicorn.error"):
            config["loggers"][name] = {
                "handlers": ["console"],
                "level": "INFO",
                "propagate": False,
            }
        # The access line too; its key mask is added in PortalConfig.ready
        # (portal.accesslog), in this format and in uvicorn's plain one alike.
        config["loggers"]["uvicorn.access"] = {
            "handlers": ["console"],
            "filters": ["access_keys_masked"],
            "propagate": False,
        }
    return config
