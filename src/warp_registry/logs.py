"""Server logging: one line per request at INFO without a system call per line.

The standard `StreamHandler` flushes after every record, and stderr is line-buffered, so
each access line used to cost a write(2): about a third of a GET's CPU at INFO. Here the
records go through `logging` as usual (so handlers, levels and test capture all work),
but the handler keeps them in memory and a background thread writes them out every
`FLUSH_INTERVAL` seconds. A line reaches the terminal at most that late; records at
WARNING and above are written at once, with every access line queued before them, and
so is a queue that has grown past MAX_PENDING_CHARS.

Several worker processes share one stderr, often a pipe (a terminal, `| tee`, a container
runtime, systemd). A pipe keeps a write(2) whole only up to PIPE_BUF bytes (4 KiB on
Linux), so the lines go out in writes of at most that size, each ending on a line
boundary: two workers' lines can alternate in the output, but never cut into each other.

`AccessLog` writes the per-request line. Building a `LogRecord` and running it through
`Formatter` costs about as much as the rest of a GET, so when the server's own handler is
the only place the line can go, the line is formatted once, with the handler's format,
and appended to the handler's list of pending lines (a text stream's `write` under the
handler's lock cost a GET about 10% of its CPU). Anywhere else (a test's capture handler,
a user's logging configuration) it goes through `logging` as any other record.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import select
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO
from urllib.parse import unquote_plus

FLUSH_INTERVAL = 0.2
MAX_PENDING_CHARS = 1 << 20  # queued access lines written at once beyond this much text
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
ACCESS_LOGGER = "warp_registry.access"


def tune_logging_module() -> None:
    """Skip the per-record work the access log never prints.

    The logging HOWTO's "Optimization" section documents these switches: no caller
    lookup (a walk up the stack), no thread, process or multiprocessing names.
    """
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class LineAlignedWriter:
    """A text sink for a file descriptor other processes write to as well.

    `write` only collects; `flush` encodes what was collected and writes it in chunks of
    at most PIPE_BUF bytes that end on a newline, so no other writer's bytes can land in
    the middle of a line. A line that would not fit in one such write is cut to fit and
    says how much was cut: access lines never need that (their target is bounded, see
    `log_target`), but a warning quoting a very long path could.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if not self._parts:
            return
        data = "".join(self._parts).encode("utf-8", "backslashreplace")
        self._parts = []
        for chunk in line_chunks(data, select.PIPE_BUF):
            while chunk:
                chunk = chunk[os.write(self._fd, chunk) :]


def line_chunks(data: bytes, limit: int) -> Iterator[bytes]:
    """`data` cut into pieces of at most `limit` bytes, each ending after a newline where
    the data has one. A line longer than `limit` becomes one piece, cut to `limit`."""
    start = 0
    while start < len(data):
        end = start + limit
        if end >= len(data):
            yield data[start:]
            return
        cut = data.rfind(b"\n", start, end)
        if cut != -1:
            yield data[start : cut + 1]
            start = cut + 1
            continue
        # One line longer than the limit: keep its head, skip the rest of it.
        line_end = data.find(b"\n", end)
        line_end = len(data) if line_end == -1 else line_end + 1
        yield _cut_line(data[start:line_end], limit)
        start = line_end


def _cut_line(line: bytes, limit: int) -> bytes:
    """`line` shortened to at most `limit` bytes, ending in a note of what was cut."""
    note = f"…[{len(line):,} bytes, cut]\n".encode()
    head = line[: limit - len(note)]
    while head and head[-1] & 0xC0 == 0x80:  # do not end inside a UTF-8 character
        head = head[:-1]
    if head and head[-1] >= 0xC0:
        head = head[:-1]
    return head + note


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that holds records in memory and writes them from a timer thread.

    It writes to `stream` when given one (tests), else to stderr's file descriptor
    through a `LineAlignedWriter`.
    """

    def __init__(
        self, stream: TextIO | None = None, flush_interval: float = FLUSH_INTERVAL
    ) -> None:
        super().__init__(stream or LineAlignedWriter(sys.stderr.fileno()))
        # Access lines waiting for the next flush, in order. Their own small lock, held
        # only to append or to take the list, so a request never waits for a write(2).
        self._pending: list[str] = []
        self._pending_chars = 0
        self._pending_lock = threading.Lock()
        self._flush_interval = flush_interval
        self._stop = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_periodically, name="log-flusher", daemon=True
        )
        self._flusher.start()
        atexit.register(self.close)

    def writes_plain_lines(self) -> bool:
        """Whether a line formatted with LINE_FORMAT is exactly what `emit` would write."""
        formatter = self.formatter
        return (
            type(formatter) is logging.Formatter
            and formatter._fmt == LINE_FORMAT
            and formatter.datefmt is None
            and not self.filters
        )

    def write_line(self, line: str) -> None:
        """Queue one already formatted line; the timer thread writes it with the rest."""
        with self._pending_lock:
            self._pending.append(line)
            self._pending_chars += len(line)
            backlog = self._pending_chars
        if backlog >= MAX_PENDING_CHARS:
            # Faster than the timer, or stderr's reader is slow: write now, from the
            # request's thread, so the server slows down rather than holding ever more.
            self.flush_now()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + self.terminator
            with self.lock:  # type: ignore[union-attr]
                self._write_pending()  # access lines queued before this record stay first
                self.stream.write(text)
            if record.levelno >= logging.WARNING:
                self.flush_now()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        # logging calls this after every record; the timer thread does the real flushing.
        pass

    def flush_now(self) -> None:
        with self.lock, contextlib.suppress(ValueError, OSError):  # closed at interpreter exit
            self._write_pending()
            self.stream.flush()

    def _write_pending(self) -> None:
        """Move the queued access lines into the stream (caller holds `self.lock`)."""
        with self._pending_lock:
            lines, self._pending, self._pending_chars = self._pending, [], 0
        if lines:
            self.stream.write("".join(lines))

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self._flush_interval):
            self.flush_now()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(ValueError):  # the stream may be closed at interpreter exit
            self.flush_now()
        super().close()


# Words that make a query parameter's name look like a credential's (`access_token`,
# `api_key`, `X-Amz-Signature`, `jwt`, `passwd`, `session_id`...). Cloudflare's API
# takes no credential in the query, but clients and scripts sometimes send one anyway.
# Matched against lowered text (IGNORECASE would make each search five times slower).
# Literal alternatives only: a search stays linear in the text's length.
_SECRET_WORD = re.compile(
    "token|key|secret|pass|pwd|sig|auth|jwt|bearer|credential|session|cookie|clearance"
)
# An access line must fit in one atomic pipe write (see `LineAlignedWriter`) with room for
# its other fields, even if every character of the target takes four bytes in UTF-8.
MAX_TARGET_CHARS = 900


def _mask_secrets(query_string: str) -> str:
    """Replace the values of credential-like parameters with `***`.

    Names are compared decoded (`%74oken` is `token` to the app too). Every step is
    linear in the query's length, so a long query cannot stall the worker.
    """
    if "%" not in query_string and _SECRET_WORD.search(query_string.lower()) is None:
        return query_string  # the common case, in one scan

    parts = query_string.split("&")
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        if equals and value and _SECRET_WORD.search(unquote_plus(name).lower()):
            parts[index] = f"{name}=***"
    return "&".join(parts)


def log_target(path: str, query_string: str) -> str:
    """The request target as the access line shows it: one bounded field, no secrets.

    The path is decoded, so a client could put spaces (which would fake the line's later
    fields), newlines or escape codes (which would fake whole lines) into it: spaces become
    `%20` and anything unprintable a Python escape. Values of parameters named like a
    credential become `***`. A target longer than MAX_TARGET_CHARS is cut, saying by how
    much, so the line keeps its status, time and request id.
    """
    target = path
    if query_string:
        target = f"{path}?{_mask_secrets(query_string)}"
    if " " in target:
        target = target.replace(" ", "%20")
    if not target.isprintable():
        target = target.encode("unicode_escape").decode("ascii")
    if len(target) > MAX_TARGET_CHARS:
        target = f"{target[:MAX_TARGET_CHARS]}…(+{len(target) - MAX_TARGET_CHARS}chars)"
    return target


class AccessLog:
    """One line per request at INFO: `METHOD target status 1.23ms rid=…`."""

    def __init__(self, name: str = ACCESS_LOGGER) -> None:
        self.logger = logging.getLogger(name)
        self._second = -1
        self._second_text = ""

    def write(self, method: str, target: str, status: int, elapsed_ms: float, rid: str) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return

        handler = self._direct_handler()
        if handler is None:
            logger.info("%s %s %d %.2fms rid=%s", method, target, status, elapsed_ms, rid)
            return
        handler.write_line(
            f"{self.asctime(time.time())} INFO {logger.name} "
            f"{method} {target} {status} {elapsed_ms:.2f}ms rid={rid}\n"
        )

    def _direct_handler(self) -> BufferedStderrHandler | None:
        """The server's handler when it is the only one the record would reach.

        Checked on every call (a few attribute reads), so a handler added later, by a
        test or by a user's configuration, takes over at once.
        """
        logger = self.logger
        parent = logger.parent
        if logger.handlers or logger.filters or not logger.propagate or parent is None:
            return None
        handlers = parent.handlers
        if len(handlers) != 1 or parent.propagate or parent.filters:
            return None
        handler = handlers[0]
        if type(handler) is not BufferedStderrHandler or handler.level > logging.INFO:
            return None
        return handler if handler.writes_plain_lines() else None

    def asctime(self, now: float) -> str:
        """`%(asctime)s` as logging.Formatter writes it: local time, then ,milliseconds."""
        second = int(now)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        return f"{self._second_text},{int((now - second) * 1000):03d}"


def flush_buffered(logger_name: str = "warp_registry") -> None:
    """Write out what the server's handlers still hold (a worker stopping may not run
    `atexit`, and the timer thread would only flush it up to FLUSH_INTERVAL later)."""
    for handler in logging.getLogger(logger_name).handlers:
        if isinstance(handler, BufferedStderrHandler):
            handler.flush_now()
