"""structlog, configured once: JSON lines in production, readable lines at a terminal.

Every line of a call carries `call_sid`, `stream_sid` and `carrier` through contextvars (bound by the
media handler). Secrets registered here are scrubbed from every line as a last line of defence; the
code is written not to log them in the first place. Records of the standard `logging` module (aiohttp,
websockets, asyncio, libraries) go through the same processors: the same format, the same redaction,
their tracebacks rendered into the line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

_secrets: set[str] = set()
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Never print this value; short values are ignored (they would redact ordinary words)."""
    if value and len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _redact_processor(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if _secrets:
        return {k: _scrub(v) for k, v in event_dict.items()}
    return event_dict


def _json_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


_HANDLER_NAME = "gateway-structlog"


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=False) if fmt == "console"
                     else structlog.processors.JSONRenderer(serializer=_json_dumps))
    numeric_level = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _redact_processor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # The standard library's records: rendered by the same renderer after the same redaction, with the
    # logger's name, and exceptions formatted into the line (never a raw multi-line traceback).
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    _redact_processor, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:  # configured again: replace
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric_level, logging.INFO))  # libraries' debug chatter stays out even at debug
