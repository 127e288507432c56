"""The service's log: one line per event, no exception message or traceback (they quote data)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["OneLineFormatter", "configure_logging"]


class OneLineFormatter(logging.Formatter):
    """One line per record: newlines escaped, an exception shown as its type only.

    An exception's message or traceback can quote the data being processed
    (a request body, a child's birth date); its type cannot.
    """

    def formatException(self, ei: Any) -> str:
        exc_type = ei[0]
        return f"[exception {exc_type.__name__ if exc_type else 'unknown'}]"

    def formatStack(self, stack_info: str) -> str:
        return ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\r", "\\r").replace("\n", " | ")


def configure_logging(level: str = "info") -> logging.Handler:
    """Send the service's log (and uvicorn's) to stderr, one line per event.

    Parameters
    ----------
    level
        ``debug``, ``info``, ``warning``, ``error`` or ``critical``.

    Returns
    -------
    logging.Handler
        The handler installed on the root logger (replacing any other).

    Raises
    ------
    ValueError
        An unknown level.
    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(lvl)
    return handler
