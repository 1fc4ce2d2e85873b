"""The log lines of one run, kept with its history.

A handler is attached, for the run only, to the job's loggers (``JobContext.logger``, i.e.
``jobs.<name>``, and the logger of the job's module); it keeps the last lines within a
bound. When the run has secrets, a filter on the same loggers also masks them in what goes
on to the console.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from scheduler.runs.redaction import Redactor

#: Lines kept per run (the last ones), and their total size in characters.
MAX_LINES = 500
MAX_CHARS = 64 * 1024
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogCapture(logging.Handler):
    """Keeps the last ``max_lines`` formatted records, at most ``max_chars`` in all.
    Thread-safe: ``logging.Handler.handle`` holds the handler's lock around ``emit``."""

    def __init__(self, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS):
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT))
        self.lines: deque[str] = deque()
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.size = 0
        self.dropped = 0
        self.loggers: list[logging.Logger] = []
        self.redacting: _RedactingFilter | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        line = line[: self.max_chars]
        self.lines.append(line)
        self.size += len(line) + 1
        while len(self.lines) > self.max_lines or self.size > self.max_chars:
            self.size -= len(self.lines.popleft()) + 1
            self.dropped += 1

    def attach(self, names: Iterable[str], redactor: Redactor) -> LogCapture:
        if redactor:
            self.redacting = _RedactingFilter(redactor)
        for name in dict.fromkeys(names):  # each logger once, in order
            logger = logging.getLogger(name)
            if self.redacting is not None:
                logger.addFilter(self.redacting)
            logger.addHandler(self)
            self.loggers.append(logger)
        return self

    def detach(self) -> None:
        for logger in self.loggers:
            logger.removeHandler(self)
            if self.redacting is not None:
                logger.removeFilter(self.redacting)
        self.loggers.clear()

    def text(self) -> str:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            lines = list(self.lines)
            dropped = self.dropped
        if dropped:
            lines.insert(0, f"[{dropped} earlier line(s) not kept]")
        return "\n".join(lines)


class _RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler sees it: the console's included."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # let the handler report the broken record
        masked = self.redactor.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redactor.text(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        return True
