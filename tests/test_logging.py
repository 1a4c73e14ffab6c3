"""Logging: one access line per request, no secrets, and a traceback only for a 500."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Registry, cli, start_server, stop_server
from warp_registry.ids import new_uuid
from warp_registry.logs import (
    LINE_FORMAT,
    MAX_PENDING_CHARS,
    AccessLog,
    BufferedStderrHandler,
    line_chunks,
    log_target,
)
from warp_registry.secrets import hash_secret, new_global_key

ACCESS = "warp_registry.access"
ACCESS_LINE = re.compile(
    r"(?P<method>[A-Z]+) (?P<target>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d{2})ms "
    r"rid=(?P<rid>[0-9a-f]{16})"
)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="warp_registry")
    return caplog


def _path(registry: Registry, registration_id: str | None = None) -> str:
    registration_id = registration_id or registry.fleet.registrations[0].id
    return f"/accounts/{registry.account_id}/devices/registrations/{registration_id}"


def _access_lines(logs: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = []
    for record in logs.records:
        if record.name == ACCESS:
            assert record.levelno == logging.INFO
            match = ACCESS_LINE.fullmatch(record.getMessage())
            assert match, record.getMessage()
            lines.append(match)
    return lines


async def test_one_access_line_per_request(
    api: httpx.AsyncClient, registry: Registry, logs: pytest.LogCaptureFixture
) -> None:
    calls = [
        ("GET", _path(registry) + "?include=policy", 200),
        ("GET", _path(registry, str(uuid.uuid4())), 404),
        ("PUT", _path(registry), 405),
        ("GET", "/nowhere", 400),
    ]
    request_ids = []
    for method, path, status in calls:
        response = await api.request(method, path)
        assert response.status_code == status
        request_ids.append(response.headers["x-request-id"])

    lines = _access_lines(logs)
    assert len(lines) == len(calls)
    for line, (method, path, status), rid in zip(lines, calls, request_ids, strict=True):
        assert line["method"] == method
        assert line["target"] == "/client/v4" + path
        assert int(line["status"]) == status
        assert line["rid"] == rid
    assert len(set(request_ids)) == len(calls)


async def test_credentials_never_reach_the_log(
    anon: httpx.AsyncClient, registry: Registry, logs: pytest.LogCaptureFixture
) -> None:
    key = new_global_key()
    assert await registry.store.create_global_key(
        new_uuid(), "ops@example.com", hash_secret(key), registry.account_id
    )
    wrong_key = new_global_key()
    attempts = [
        {"Authorization": f"Bearer {registry.token}"},
        {"Authorization": f"Bearer {registry.token}x"},
        {"Authorization": f"Basic {registry.token}"},
        {"X-Auth-Email": "ops@example.com", "X-Auth-Key": key},
        {"X-Auth-Email": "ops@example.com", "X-Auth-Key": wrong_key},
        {"X-Auth-Email": "not-an-email", "X-Auth-Key": key + "!"},
    ]
    for headers in attempts:
        await anon.get(_path(registry), headers=headers)

    assert len(_access_lines(logs)) == len(attempts)
    for secret in (registry.token, key, wrong_key):
        assert secret not in logs.text


async def test_ordinary_client_errors_log_no_traceback(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, registry: Registry,
    logs: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await anon.get(_path(registry))  # 400 no credentials
    await api.get(_path(registry) + "?include=nope")  # 400 bad parameter
    await api.get(_path(registry, str(uuid.uuid4())))  # 404 unknown
    await api.get(_path(registry, "not-a-uuid"))  # 404 malformed
    await api.delete("/nowhere")  # 400 no route

    assert len(_access_lines(logs)) == 5
    assert all(record.exc_info is None for record in logs.records)
    assert all(record.levelno < logging.WARNING for record in logs.records)


async def test_a_500_logs_exactly_one_traceback(
    api: httpx.AsyncClient,
    registry: Registry,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("marker-7731")

    monkeypatch.setattr(registry.store, "get_registration", broken)
    response = await api.get(_path(registry))
    assert response.status_code == 500
    assert "marker-7731" not in response.text

    tracebacks = [record for record in logs.records if record.exc_info is not None]
    assert len(tracebacks) == 1
    assert tracebacks[0].levelno == logging.ERROR
    assert "marker-7731" in logs.text
    assert registry.token not in logs.text

    (line,) = _access_lines(logs)
    assert line["status"] == "500"
    assert line["rid"] in tracebacks[0].getMessage()


def _server_style_logger(
    name: str, flush_interval: float = 0.2
) -> tuple[logging.Logger, io.StringIO, BufferedStderrHandler]:
    """A logger set up as `logging_config` sets up "warp_registry", writing to a string."""
    stream = io.StringIO()
    handler = BufferedStderrHandler(stream, flush_interval)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    parent = logging.getLogger(name)
    parent.handlers = [handler]
    parent.propagate = False
    parent.setLevel(logging.INFO)
    return parent, stream, handler


def test_direct_access_line_is_what_the_formatter_writes() -> None:
    _, stream, handler = _server_style_logger("wr_direct_case")
    log = AccessLog("wr_direct_case.access")
    try:
        assert log._direct_handler() is handler
        log.write("GET", "/a?b=1", 200, 1.234, "00ff00ff00000001")
        handler.flush_now()  # the timer thread's job, done here at once
        direct = stream.getvalue()

        record = log.logger.makeRecord(
            log.logger.name, logging.INFO, __file__, 1,
            "%s %s %d %.2fms rid=%s", ("GET", "/a?b=1", 200, 1.234, "00ff00ff00000001"), None,
        )  # fmt: skip
        expected = logging.Formatter(LINE_FORMAT).format(record) + "\n"
        stamp = len("2026-01-01 00:00:00,000")
        assert direct[stamp:] == expected[stamp:]
        assert log.asctime(record.created) == expected[:stamp]
        for moment in (0.0, 1.999, 1_780_000_000.0005, 1_780_000_000.5):
            record.created, record.msecs = moment, int((moment - int(moment)) * 1000)
            assert log.asctime(moment) == logging.Formatter().formatTime(record)
    finally:
        handler.close()


def test_queued_access_lines_stay_before_a_later_warning() -> None:
    parent, stream, handler = _server_style_logger("wr_direct_order", flush_interval=3600)
    log = AccessLog("wr_direct_order.access")
    try:
        log.write("GET", "/first", 200, 0.5, "00ff00ff00000011")
        assert stream.getvalue() == ""  # queued until the next flush

        parent.warning("after the first request")
        log.write("GET", "/second", 200, 0.5, "00ff00ff00000012")
        handler.flush_now()

        lines = stream.getvalue().splitlines()
        assert len(lines) == 3
        assert "/first" in lines[0]
        assert lines[1].endswith("WARNING wr_direct_order after the first request")
        assert "/second" in lines[2]
    finally:
        handler.close()


def test_a_burst_of_access_lines_is_written_without_waiting_for_the_timer() -> None:
    # The timer is slowed down so only the burst itself can write the lines.
    _, stream, handler = _server_style_logger("wr_direct_burst", flush_interval=3600)
    log = AccessLog("wr_direct_burst.access")
    try:
        queued = 0
        while not stream.getvalue():
            log.write("GET", f"/n/{queued}", 200, 0.5, f"{queued:016x}")
            queued += 1
            assert queued < 100_000, "the queue never wrote itself out"
        written = stream.getvalue().splitlines(keepends=True)
        assert len(written) == queued  # the line that crossed the budget, and all before it
        assert sum(map(len, written)) >= MAX_PENDING_CHARS > sum(map(len, written[:-1]))
    finally:
        handler.close()


def test_line_chunks_fit_one_atomic_pipe_write_each() -> None:
    rng = random.Random(5)
    limit = 4096
    for _ in range(300):
        lines = [
            ("é" * rng.choice([0, 1, 40, 2047, 2048, 3000]) + "x" * rng.choice([0, 99, 5000]))
            for _ in range(rng.randint(0, 40))
        ]
        data = "".join(line + "\n" for line in lines).encode()
        chunks = list(line_chunks(data, limit))

        assert all(len(chunk) <= limit and chunk.endswith(b"\n") for chunk in chunks)
        out = b"".join(chunks).decode()  # never cut inside a UTF-8 character
        kept = out.splitlines()
        assert len(kept) == len(lines)
        for line, shown in zip(lines, kept, strict=True):
            if len(line.encode()) < limit:
                assert shown == line
            else:
                assert shown.endswith(f"…[{len(line.encode()) + 1:,} bytes, cut]")
                assert line.startswith(shown.split("…[")[0])


def test_another_handler_or_format_takes_the_logging_path() -> None:
    parent, stream, handler = _server_style_logger("wr_direct_other")
    log = AccessLog("wr_direct_other.access")
    try:
        handler.setFormatter(logging.Formatter("%(message)s"))
        assert log._direct_handler() is None
        log.write("GET", "/x", 404, 0.5, "00ff00ff00000002")
        assert stream.getvalue() == "GET /x 404 0.50ms rid=00ff00ff00000002\n"

        handler.setFormatter(logging.Formatter(LINE_FORMAT))
        capture = logging.handlers.BufferingHandler(10)
        log.logger.addHandler(capture)
        assert log._direct_handler() is None
        log.write("GET", "/y", 200, 0.5, "00ff00ff00000003")
        messages = [record.getMessage() for record in capture.buffer]
        assert messages == ["GET /y 200 0.50ms rid=00ff00ff00000003"]
        log.logger.removeHandler(capture)

        parent.setLevel(logging.WARNING)
        log.write("GET", "/z", 200, 0.5, "00ff00ff00000004")
        assert "/z" not in stream.getvalue()
    finally:
        handler.close()


def test_a_server_stopped_at_once_still_writes_its_last_access_lines(tmp_path: Path) -> None:
    """The lines sit in a buffer flushed every 0.2 s; stopping must not drop them."""
    database = str(tmp_path / "stop.db")
    assert cli("init", "--database", database).returncode == 0
    log_path = tmp_path / "server.log"
    process, base_url = start_server(database, log_path=log_path)
    try:
        ids = [httpx.get(f"{base_url}/nowhere/{n}").headers["x-request-id"] for n in range(4)]
    finally:
        stop_server(process)
    logged = log_path.read_text()
    assert all(f"rid={rid}" in logged for rid in ids), logged[-2000:]


_PIPE_WRITER = """
import logging, sys
from warp_registry.logs import LINE_FORMAT, AccessLog, BufferedStderrHandler, log_target
handler = BufferedStderrHandler()
handler.setFormatter(logging.Formatter(LINE_FORMAT))
parent = logging.getLogger("wr_pipe")
parent.handlers, parent.propagate = [handler], False
parent.setLevel(logging.INFO)
log = AccessLog("wr_pipe.access")
worker = sys.argv[1]
for n in range(int(sys.argv[2])):
    path = "/client/v4/accounts/" + "a" * (9000 if n % 20 == 0 else 90)
    log.write("GET", log_target(path, ""), 200, 0.5, f"{worker}{n:015x}")
handler.close()
"""


def test_two_processes_on_one_slow_pipe_never_cut_into_each_others_lines() -> None:
    """Server workers share stderr; a pipe keeps only writes of up to 4 KiB whole. One
    line in 20 has a 9,000-character path, cut by `log_target` to fit."""
    lines_each = 20_000
    read_end, write_end = os.pipe()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _PIPE_WRITER, worker, str(lines_each)],
            stderr=write_end,
            stdout=subprocess.DEVNULL,
        )
        for worker in "ab"
    ]
    os.close(write_end)
    received = bytearray()
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(4096):  # a slow reader: the pipe fills up
            received += chunk
            time.sleep(0.0002)
    for writer in writers:
        assert writer.wait(timeout=60) == 0

    lines = received.decode().splitlines()
    shape = re.compile(r"\S+ \S+ INFO wr_pipe\.access GET /client/v4/accounts/(?:a{90}|a{880}"
                       r"…\(\+8120chars\)) 200 0\.50ms rid=([ab])[0-9a-f]{15}")  # fmt: skip
    workers = [shape.fullmatch(line) for line in lines]
    assert all(workers), [line for line, m in zip(lines, workers, strict=True) if not m][:3]
    assert sorted(m.group(1) for m in workers if m) == ["a"] * lines_each + ["b"] * lines_each


@pytest.mark.parametrize(
    ("path", "query", "logged"),
    [
        ("/a/b", "include=policy", "/a/b?include=policy"),
        # A decoded %20 must not fake the line's status, time or rid fields.
        ("/r/y 200 0.01ms rid=0000000000000000", "", "/r/y%20200%200.01ms%20rid=0000000000000000"),
        ("/a\nb\x1b[2J", "", "/a\\nb\\x1b[2J"),
        ("/a", "access_token=s3cr3t&per_page=5", "/a?access_token=***&per_page=5"),
        ("/a", "x=1&API_KEY=s3cr3t&Signature=s3cr3t", "/a?x=1&API_KEY=***&Signature=***"),
        ("/a", "client_secret=s3cr3t&password=s3cr3t", "/a?client_secret=***&password=***"),
        ("/a", "token", "/a?token"),
        ("/a", "to%6Ben=s3cr3t&sig=s3cr3t&jwt=s3cr3t", "/a?to%6Ben=***&sig=***&jwt=***"),
        ("/" + "a" * 2000, "", "/" + "a" * 899 + "…(+1101chars)"),
    ],
)
def test_the_logged_target_is_one_field_without_secrets(path: str, query: str, logged: str) -> None:
    assert log_target(path, query) == logged


async def test_a_token_in_the_query_string_stays_out_of_the_log(
    api: httpx.AsyncClient, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="warp_registry"):
        response = await api.get(
            f"/accounts/{registry.account_id}/devices/registrations",
            params={"access_token": registry.token, "per_page": 1},
        )
    assert response.status_code == 200
    assert "access_token=***" in caplog.text
    assert registry.token not in caplog.text
