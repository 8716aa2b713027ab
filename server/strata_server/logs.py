"""Structured logging: JSON lines on stderr (or readable console lines), via structlog."""

from __future__ import annotations

import logging
import re
import sys

import structlog

_GONE = re.compile(r"ExecuteBatchError raised in core by servicer method \[(.*)\]")


class _CallerGone(logging.Filter):
    """grpc's asyncio server logs an ERROR with a traceback when writing a response
    fails because the caller went away (a cancelled download or export) before the
    server noticed the cancellation, a race inside grpc. A caller going away is
    normal: this turns that record into one INFO line, or drops it below INFO."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        match = _GONE.fullmatch(record.getMessage())
        if match is None:
            return True
        if self._level > logging.INFO:
            return False
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "the caller went away mid-stream: %s", (match[1],)
        record.exc_info = record.exc_text = None
        return True


def configure(level: str, fmt: str) -> None:
    """Route structlog and stdlib logging to stderr at `level`, as JSON or console text."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING),
        stream=sys.stderr,
        format="%(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("grpc._cython.cygrpc").addFilter(_CallerGone(numeric))
