"""GET-registration benchmark: warp-registry against a ceiling server, on granian and uvicorn.

One command, bounded in time (about 5 minutes with the defaults):

    .venv/bin/python bench/run_get.py

It builds a fresh SQLite registry (demo fleet + 100,000 registrations, `make_fleet.py`),
starts warp-registry on granian with `--log-level warning` and with `--log-level info`
(its log lines go to a file), and on uvicorn; fetches every benchmarked URL once from
warp-registry to write the ceiling's bodies file; starts the ceiling app (`ceiling.py`)
on granian and on uvicorn; checks that both answer with the same bytes; then runs
`--rounds` interleaved rounds of wrk against each server (a warm-up, then the measured
run), stops every server and writes a table to `bench/results/get.md`.

Every server runs on CPU 0 (`taskset -c 0`, inherited by its worker processes) and
listens on a free port of 127.0.0.1; wrk runs on CPU 1. "Server CPU µs/req" is the
user+system time of the server's whole process tree during the measured run, read from
/proc, divided by the requests wrk completed.

`--profile-seconds N` adds a py-spy recording of warp-registry's worker (granian,
warning) under the same load, written to `bench/results/profile-get.{svg,txt}`.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LUA_SCRIPT = HERE / "get_registration.lua"
BIN = Path(sys.executable).parent
SERVER_CPU = "0"
LOAD_CPU = "1"
READY_TIMEOUT_S = 90
FETCH_THREADS = 4
VERIFY_SAMPLE = 500
# Headers the HTTP server adds by itself; every other response header comes from the app.
SERVER_HEADERS = frozenset({"server", "date", "content-length", "transfer-encoding"})
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- servers ---


@dataclass
class Server:
    """One server under test: how to start it and, once started, its process."""

    name: str
    app: str  # "warp-registry" or "ceiling"
    stack: str  # "granian" or "uvicorn"
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: TextIO | None = None

    def start(self, work: Path) -> None:
        """Start pinned to the server CPU, in its own session so it can be stopped whole."""
        self.log_path = self.log_path or work / f"{self.name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGINT (graceful), then SIGTERM, then SIGKILL, to this server's process group."""
        if self.process is not None and self.process.poll() is None:
            for sig, wait_s in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_argv(target: str, port: int, extra: list[str]) -> list[str]:
    """The same uvicorn settings for both apps: uvloop, httptools, 1 process, no access log."""
    return [
        str(BIN / "python"), "-m", "uvicorn", target, "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
        "--no-access-log", "--log-level", "warning", *extra,
    ]  # fmt: skip


def registry_servers(
    database: str, src: str | None, prefix: str = "registry", with_uvicorn: bool = True
) -> list[Server]:
    """warp-registry as a user starts it (granian, two log levels), and on uvicorn."""
    env = {"PYTHONPATH": src} if src else {}
    servers = []
    for level in ("warning", "info"):
        port = free_port()
        argv = [
            str(BIN / "warp-registry"), "serve", "--database", database,
            "--port", str(port), "--log-level", level,
        ]  # fmt: skip
        servers.append(Server(f"{prefix}-granian-{level}", "warp-registry", "granian", argv,
                              port, env))  # fmt: skip
    if not with_uvicorn:
        return servers

    port = free_port()
    argv = uvicorn_argv("warp_registry.http.server:app_from_env", port, [])
    servers.append(Server(f"{prefix}-uvicorn", "warp-registry", "uvicorn", argv, port,
                          {**env, "WARP_REGISTRY_DATABASE": database}))  # fmt: skip
    return servers


def ceiling_servers(bodies: Path) -> list[Server]:
    """The ceiling app on granian (same settings as `serve`) and on uvicorn."""
    granian_port = free_port()
    granian = Server(
        "ceiling-granian", "ceiling", "granian",
        [str(BIN / "python"), str(HERE / "ceiling.py"), "--bodies", str(bodies),
         "--port", str(granian_port)],
        granian_port,
    )  # fmt: skip
    uvicorn_port = free_port()
    uvicorn = Server(
        "ceiling-uvicorn", "ceiling", "uvicorn",
        uvicorn_argv("ceiling:app_from_env", uvicorn_port, ["--app-dir", str(HERE)]),
        uvicorn_port, {"CEILING_BODIES": str(bodies)},
    )  # fmt: skip
    return [granian, uvicorn]


# --- HTTP checks and the bodies file ---


@dataclass(frozen=True)
class Fleet:
    account_id: str
    token: str
    ids_file: Path
    ids: list[str]

    def path(self, registration_id: str) -> str:
        return f"/client/v4/accounts/{self.account_id}/devices/registrations/{registration_id}"

    def url(self, registration_id: str) -> str:
        return self.path(registration_id) + "?include=policy"


def http_get(
    conn: http.client.HTTPConnection, url: str, headers: dict[str, str]
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn.request("GET", url, headers=headers)
    response = conn.getresponse()
    return response.status, response.getheaders(), response.read()


def wait_ready(server: Server, fleet: Fleet) -> None:
    """Poll until the server answers the first benchmarked URL with 200."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    auth = {"Authorization": f"Bearer {fleet.token}"}
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited early; see {server.log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            status, _, _ = http_get(conn, fleet.url(fleet.ids[0]), auth)
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{server.name} not ready after {READY_TIMEOUT_S} s; see {server.log_path}")


def fetch_bodies(server: Server, fleet: Fleet, out: Path) -> None:
    """Fetch every benchmarked URL once from warp-registry and write the bodies file."""
    auth = {"Authorization": f"Bearer {fleet.token}"}

    def fetch(ids: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        found: dict[str, str] = {}
        headers: list[tuple[str, str]] = []
        for registration_id in ids:
            status, headers, body = http_get(conn, fleet.url(registration_id), auth)
            if status != 200:
                raise SystemExit(f"{fleet.url(registration_id)} answered {status}: {body!r}")
            found[fleet.path(registration_id)] = body.decode()
        conn.close()
        return found, headers

    chunks = [fleet.ids[i::FETCH_THREADS] for i in range(FETCH_THREADS)]
    bodies: dict[str, str] = {}
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        results = list(pool.map(fetch, chunks))
    for found, _ in results:
        bodies.update(found)

    # The ceiling sends the app's own headers; the request id is fixed but as long.
    app_headers = [
        [name, "0" * len(value) if name == "x-request-id" else value]
        for name, value in results[0][1]
        if name.lower() not in SERVER_HEADERS
    ]
    out.write_text(json.dumps({"headers": app_headers, "bodies": bodies}))


def verify(registry: Server, ceiling: Server, fleet: Fleet) -> None:
    """Same status, header sizes and body bytes from both apps; errors only from ours."""
    auth = {"Authorization": f"Bearer {fleet.token}"}
    ours = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    theirs = http.client.HTTPConnection("127.0.0.1", ceiling.port, timeout=10)
    step = max(1, len(fleet.ids) // VERIFY_SAMPLE)
    for registration_id in fleet.ids[::step]:
        url = fleet.url(registration_id)
        a_status, a_headers, a_body = http_get(ours, url, auth)
        b_status, b_headers, b_body = http_get(theirs, url, auth)
        if (a_status, a_body) != (b_status, b_body) or _size(a_headers) != _size(b_headers):
            raise SystemExit(
                f"{ceiling.name} differs from {registry.name} on {url}; if warp-registry's "
                "output changed since the bodies file was written, rerun without --reuse"
            )

    # The real app checks credentials on every request; the ceiling does not.
    status, _, _ = http_get(ours, fleet.url(fleet.ids[0]), {})
    bad, _, _ = http_get(ours, fleet.url(fleet.ids[0]), {"Authorization": "Bearer nope"})
    if (status, bad) != (400, 403):
        raise SystemExit(f"{registry.name}: no token -> {status}, bad token -> {bad}")
    ours.close()
    theirs.close()


def _size(headers: list[tuple[str, str]]) -> int:
    return sum(len(k) + len(v) for k, v in headers if k.lower() != "date")


# --- measuring ---


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of a process tree (all threads of each process)."""
    return sum(process_cpu_seconds(Path(f"/proc/{pid}/stat")) for pid in process_tree(root))


def process_cpu_seconds(stat: Path, name: str | None = None) -> float:
    """User + system CPU time from a /proc/<pid>/stat file (all threads); 0 when the
    process is gone or, with `name`, is another program."""
    try:
        text = stat.read_text()
    except OSError:
        return 0.0
    if name is not None and f"({name})" not in text:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def tree_rss_mib(root: int) -> float:
    total_kib = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


@dataclass
class Sample:
    """One measured wrk run against one server."""

    server: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    wrk_cpu_pct: float
    cpu0_other_pct: float
    server_cpu_pct: float
    bytes_per_resp: float
    errors: dict[str, int]


def wrk_argv(args: argparse.Namespace, port: int, seconds: int, fleet: Fleet) -> list[str]:
    return [
        "taskset", "-c", LOAD_CPU, "wrk", f"-t{args.threads}", f"-c{args.connections}",
        f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}",
        "--", str(fleet.ids_file), fleet.account_id, fleet.token,
    ]  # fmt: skip


def run_wrk(argv: list[str], seconds: float, raw_log: TextIO) -> dict[str, Any]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    raw_log.write(" ".join(argv) + "\n" + result.stdout + result.stderr + "\n")
    raw_log.flush()
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return dict(json.loads(line.removeprefix("BENCH_JSON ")))
    raise SystemExit(f"wrk gave no result:\n{result.stdout}\n{result.stderr}")


def cpu_busy_seconds(cpu: str) -> float:
    """Busy time of one CPU (everything but idle and iowait), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK
    return 0.0


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    server: Server, round_no: int, args: argparse.Namespace, fleet: Fleet, raw_log: TextIO
) -> Sample:
    """Warm up (discarded), then one measured run with the server's CPU time around it."""
    run_wrk(wrk_argv(args, server.port, args.warmup, fleet), args.warmup, raw_log)

    cpu_before = tree_cpu_seconds(server.pid)
    cpu0_before = cpu_busy_seconds(SERVER_CPU)
    wrk_before = children_cpu_seconds()
    result = run_wrk(wrk_argv(args, server.port, args.duration, fleet), args.duration, raw_log)
    wrk_cpu = children_cpu_seconds() - wrk_before
    cpu0 = cpu_busy_seconds(SERVER_CPU) - cpu0_before
    cpu = tree_cpu_seconds(server.pid) - cpu_before

    requests = max(1, result["requests"])
    seconds = result["duration_us"] / 1e6
    return Sample(
        server=server.name,
        round=round_no,
        rps=requests / seconds,
        p50_ms=result["latency_us"]["p50"] / 1000,
        p99_ms=result["latency_us"]["p99"] / 1000,
        cpu_us_per_req=cpu * 1e6 / requests,
        wrk_cpu_pct=100 * wrk_cpu / seconds,
        cpu0_other_pct=100 * max(0.0, cpu0 - cpu) / seconds,
        server_cpu_pct=100 * cpu / seconds,
        bytes_per_resp=result["bytes"] / requests,
        errors={k: v for k, v in result["errors"].items() if v},
    )


# --- profiling ---


def profile(server: Server, args: argparse.Namespace, fleet: Fleet, raw_log: TextIO) -> None:
    """py-spy on the server's worker process while wrk loads it; writes collapsed stacks."""
    workers = [pid for pid in process_tree(server.pid) if pid != server.pid] or [server.pid]
    worker = workers[-1]
    seconds = args.profile_seconds
    collapsed = RESULTS / "profile-get.txt"
    spy = subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, str(BIN / "py-spy"), "record", "--pid", str(worker),
         "--duration", str(seconds), "--rate", "250", "--function", "--format", "raw",
         "-o", str(collapsed)],
        stdout=subprocess.DEVNULL, stderr=raw_log,
    )  # fmt: skip
    run_wrk(wrk_argv(args, server.port, seconds + 2, fleet), seconds + 2, raw_log)
    spy.wait(timeout=60)
    summary = RESULTS / "profile-get-summary.txt"
    summary.write_text(summarise_profile(collapsed.read_text()))
    print(f"profile of pid {worker}: {collapsed}, summary in {summary}")


# Where the time goes, by the parts of the hot path: a stack counts for a part when one of
# its frames is in that part (so nested parts overlap: registration_to_api includes RFC3339).
PROFILE_PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("app._http (all of our per-request work)", ("_http (warp_registry/http/app.py",)),
    ("header dict build", ("<dictcomp> (warp_registry/http/app.py",)),
    ("request id (secrets.token_hex)", ("token_hex (",)),
    ("routing (Router.resolve)", ("resolve (warp_registry/http/routing.py",)),
    ("include / query parsing", ("parse_include (", "query_one (warp_registry")),
    ("auth: read_credentials (regex + sha256)", ("read_credentials (",)),
    ("auth: hash_secret", ("hash_secret (",)),
    ("store.get_registration (all)", ("get_registration (warp_registry/store",)),
    ("SQL: SqliteDatabase.fetch_one", ("fetch_one (warp_registry/store/sqlite.py",)),
    ("row -> dataclass (registration_from_row)", ("registration_from_row (",)),
    ("registration_to_api (all)", ("registration_to_api (",)),
    ("RFC3339 formatting", ("format_rfc3339 (",)),
    ("orjson / success_body", ("success_body (",)),
    ("access log line", ("info (logging/", "_log (logging/", "handle (logging/")),
    ("ASGI send (into the server)", ("send (",)),
]


_IDLE_LEAF = "_worker (concurrent/futures/thread.py"


def summarise_profile(collapsed: str) -> str:
    """Share of Python samples per part of the hot path, and the top functions by self time."""
    stacks: list[tuple[list[str], int]] = []
    idle = 0
    for line in collapsed.splitlines():
        frames, _, count = line.rpartition(" ")
        if not (frames and count.isdigit()):
            continue
        # py-spy counts the SQLite store's idle pool threads (blocked in a queue get) as
        # busy; they do no work for a GET.
        if frames.rsplit(";", 1)[-1].startswith(_IDLE_LEAF):
            idle += int(count)
            continue
        stacks.append((frames.split(";"), int(count)))
    total = sum(count for _, count in stacks) or 1

    lines = [
        f"{total} busy samples of the worker's Python threads ({idle} idle pool samples left out)",
        "",
        "part: share of busy samples",
    ]
    for label, needles in PROFILE_PARTS:
        hits = sum(c for frames, c in stacks
                   if any(n in frame for frame in frames for n in needles))  # fmt: skip
        lines.append(f"  {100 * hits / total:5.1f}%  {label}")

    own: dict[str, int] = {}
    for frames, count in stacks:
        own[frames[-1]] = own.get(frames[-1], 0) + count
    lines += ["", "top functions by self time:"]
    for frame, count in sorted(own.items(), key=lambda item: -item[1])[:30]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(lines) + "\n"


# --- reporting ---


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


CASE_NOTES = {
    "registry-granian-warning": "warp-registry serve --log-level warning",
    "registry-granian-info": "warp-registry serve --log-level info (log to a file)",
    "ceiling-granian": "bench/ceiling.py (granian, same settings)",
    "registry-uvicorn": "warp-registry app on uvicorn (no request log)",
    "ceiling-uvicorn": "bench/ceiling.py app on uvicorn",
    "alt-granian-warning": "warp-registry from --compare-src, --log-level warning",
    "alt-granian-info": "warp-registry from --compare-src, --log-level info",
}
RATIOS = [
    ("warp-registry ÷ ceiling, granian", "registry-granian-warning", "ceiling-granian"),
    ("warp-registry (info log) ÷ ceiling, granian", "registry-granian-info", "ceiling-granian"),
    ("warp-registry ÷ ceiling, uvicorn", "registry-uvicorn", "ceiling-uvicorn"),
    ("info log ÷ warning log (granian)", "registry-granian-info", "registry-granian-warning"),
    ("warp-registry granian ÷ uvicorn", "registry-granian-warning", "registry-uvicorn"),
    ("alt ÷ ceiling, granian", "alt-granian-warning", "ceiling-granian"),
    ("alt (info log) ÷ ceiling, granian", "alt-granian-info", "ceiling-granian"),
    ("alt ÷ warp-registry, granian", "alt-granian-warning", "registry-granian-warning"),
    ("alt ÷ warp-registry, info log", "alt-granian-info", "registry-granian-info"),
    ("ceiling granian ÷ uvicorn", "ceiling-granian", "ceiling-uvicorn"),
]


def table(samples: list[Sample], order: list[str]) -> list[str]:
    lines = [
        "| server | req/s per round | **median req/s** | p50 ms | p99 ms "
        "| server CPU µs/req | wrk CPU % | server CPU % | CPU 0 other % per round "
        "| bytes/resp | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        mine = [s for s in samples if s.server == name]
        if not mine:
            continue
        errors: dict[str, int] = {}
        for s in mine:
            for key, value in s.errors.items():
                errors[key] = errors.get(key, 0) + value
        lines.append(
            f"| {name} | {' / '.join(f'{s.rps:,.0f}' for s in mine)} "
            f"| **{median([s.rps for s in mine]):,.0f}** "
            f"| {median([s.p50_ms for s in mine]):.2f} | {median([s.p99_ms for s in mine]):.2f} "
            f"| {median([s.cpu_us_per_req for s in mine]):.0f} "
            f"| {median([s.wrk_cpu_pct for s in mine]):.0f} "
            f"| {median([s.server_cpu_pct for s in mine]):.0f} "
            f"| {' / '.join(f'{s.cpu0_other_pct:.0f}' for s in mine)} "
            f"| {median([s.bytes_per_resp for s in mine]):.0f} | {errors or 'none'} |"
        )
    return lines


def ratio_lines(samples: list[Sample]) -> list[str]:
    lines = [
        "| ratio | req/s, per round | **req/s, of medians** | from CPU µs/req (medians) |",
        "|---|---|---|---|",
    ]
    by = {(s.server, s.round): s.rps for s in samples}
    rounds = sorted({s.round for s in samples})
    for label, top, bottom in RATIOS:
        per_round = [by[(top, r)] / by[(bottom, r)] for r in rounds
                     if (top, r) in by and (bottom, r) in by]  # fmt: skip
        if not per_round:
            continue
        tops = [s for s in samples if s.server == top]
        bottoms = [s for s in samples if s.server == bottom]
        by_rps = median([s.rps for s in tops]) / median([s.rps for s in bottoms])
        # With the server CPU-bound, req/s is the inverse of CPU per request; this form
        # is less disturbed by other load on the machine.
        by_cpu = median([s.cpu_us_per_req for s in bottoms]) / median(
            [s.cpu_us_per_req for s in tops]
        )
        lines.append(
            f"| {label} | {' / '.join(f'{x:.2f}' for x in per_round)} "
            f"| **{by_rps:.2f}** | {by_cpu:.2f} |"
        )
    return lines


def versions() -> str:
    names = ["granian", "uvicorn", "uvloop", "httptools", "orjson"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (absent)")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return ", ".join(found) + f", {wrk.splitlines()[0].split(' [')[0] if wrk else 'wrk ?'}"


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kib / 1024 / 1024:.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def write_report(
    path: Path, samples: list[Sample], servers: list[Server], args: argparse.Namespace,
    fleet: Fleet, rss: dict[str, float],
) -> str:  # fmt: skip
    order = [s.name for s in servers]
    lines = [
        "# GET registration: warp-registry against the ceiling server",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; "
        f"load average at start {args.load_at_start}, at end {_loadavg()}.",
        f"Versions: {versions()}."
        + (f" warp-registry from `{args.src}`." if args.src else "")
        + (f" alt-* servers run `{args.compare_src}`." if args.compare_src else ""),
        "",
        f"Load: `wrk -t{args.threads} -c{args.connections}`, {args.warmup:g} s warm-up, "
        f"{args.duration:g} s measured, {args.rounds} interleaved rounds; each request "
        f"`GET …/registrations/{{random of {len(fleet.ids):,}}}?include=policy` with a "
        "Bearer token. Server on CPU 0, wrk on CPU 1. p50/p99 are medians over rounds.",
        "",
        *table(samples, order),
        "",
        "Server CPU µs/req: user+system time of the server's process tree over the measured "
        "run ÷ requests. wrk CPU %: wrk's own CPU time (100 % would mean wrk is the limit). "
        "server CPU %: the server's CPU time over the run (100 % = one core busy; below "
        "~95 % the server was not CPU-bound (its req/s is limited by latency, not work), and "
        "the CPU-based ratios below, which assume both servers CPU-bound, understate the "
        "share of a CPU-bound app against it. "
        "CPU 0 other %: CPU 0 busy time not spent by the server (other processes, interrupts, "
        "softirq network work); high values mean the round was disturbed.",
        "",
        *ratio_lines(samples),
        "",
        "Server RSS after the runs (MiB): "
        + ", ".join(f"{name} {value:.0f}" for name, value in rss.items()),
        "",
        "Servers:",
        "",
        *[f"- `{s.name}`: {CASE_NOTES.get(s.name, '')}: `{' '.join(s.argv)}`" for s in servers],
        "",
        "Reproduce: `.venv/bin/python bench/run_get.py` (see bench/README.md).",
        "",
    ]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# --- the run ---


def prepare_fleet(args: argparse.Namespace, work: Path) -> Fleet:
    """Build (or, with --reuse, reuse) the database and the id list."""
    database = work / "bench.db"
    meta_file = work / "fleet.json"
    if not (args.reuse and meta_file.exists() and database.exists()):
        for stale in work.glob("bench.db*"):
            stale.unlink()
        (work / "bodies.json").unlink(missing_ok=True)
        sys.path.insert(0, str(HERE))
        from make_fleet import make_fleet

        make_fleet(database, args.registrations, args.seed, work)

    meta = json.loads(meta_file.read_text())
    ids_file = work / "registration_ids.txt"
    ids = ids_file.read_text().split()
    return Fleet(meta["account_id"], meta["api_token"], ids_file, ids)


def preflight(args: argparse.Namespace) -> None:
    """Fail early, with the fix, when a tool the run needs is missing."""
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk (apt-get install wrk)")
    if shutil.which("taskset") is None:
        missing.append("taskset (apt-get install util-linux)")
    wants_uvicorn = not args.cases or "uvicorn" in args.cases
    for module, pin in (("uvicorn", "uvicorn==0.54.0"), ("httptools", "httptools==0.9.0")):
        if wants_uvicorn and importlib.util.find_spec(module) is None:
            missing.append(f"{module} (.venv/bin/pip install {pin}; bench only)")
    if args.profile_seconds and not (BIN / "py-spy").exists():
        missing.append("py-spy (.venv/bin/pip install py-spy; bench only)")
    if (os.cpu_count() or 1) < 2:
        missing.append("a second CPU (server and wrk are pinned to CPUs 0 and 1)")
    if missing:
        raise SystemExit("run_get.py needs: " + "; ".join(missing))


def run(args: argparse.Namespace) -> None:
    preflight(args)
    args.load_at_start = _loadavg()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fleet = prepare_fleet(args, work)
    print(f"fleet ready ({time.monotonic() - started:.0f} s)")

    wanted = set(args.cases.split(",")) if args.cases else None
    registry = registry_servers(str(work / "bench.db"), args.src)
    alt = (
        registry_servers(str(work / "bench.db"), args.compare_src, "alt", with_uvicorn=False)
        if args.compare_src
        else []
    )
    bodies = work / "bodies.json"
    ceiling = ceiling_servers(bodies)
    running: list[Server] = []
    samples: list[Sample] = []
    cases: list[Server] = []
    rss: dict[str, float] = {}
    try:
        for server in registry + alt:
            server.start(work)
            running.append(server)
        for server in registry + alt:
            wait_ready(server, fleet)
        if not bodies.exists():
            fetch_bodies(registry[0], fleet, bodies)
            print(f"bodies fetched ({time.monotonic() - started:.0f} s)")
        for server in ceiling:
            server.start(work)
            running.append(server)
        for server in ceiling:
            wait_ready(server, fleet)
        verify(registry[0], ceiling[0], fleet)
        verify(registry[2], ceiling[1], fleet)
        for server in alt:
            verify(server, ceiling[0], fleet)
        print(f"servers ready and verified ({time.monotonic() - started:.0f} s)")

        order = [registry[0], ceiling[0], *alt[:1], registry[1], *alt[1:], registry[2], ceiling[1]]
        cases = [s for s in order if wanted is None or s.name in wanted]
        samples = list(_rounds(cases, args, fleet, work))
        rss = {s.name: tree_rss_mib(s.pid) for s in cases}

        if args.profile_seconds:
            with open(work / "wrk-raw.log", "a") as raw_log:
                profile(registry[0], args, fleet, raw_log)
    finally:
        for server in running:
            server.stop()

    if samples:
        text = write_report(Path(args.out), samples, cases, args, fleet, rss)
        print(text)
    print(f"done in {time.monotonic() - started:.0f} s; report: {args.out}")


def _rounds(
    cases: list[Server], args: argparse.Namespace, fleet: Fleet, work: Path
) -> Iterator[Sample]:
    with open(work / "wrk-raw.log", "w") as raw_log:
        for round_no in range(1, args.rounds + 1):
            for server in cases:
                sample = measure(server, round_no, args, fleet, raw_log)
                # On a shared machine another process may take CPU 0 during a run; such a
                # run says little, so it is measured again (a bounded number of times).
                for _ in range(args.retries):
                    if sample.cpu0_other_pct <= args.max_other:
                        break
                    other = sample.cpu0_other_pct
                    print(f"round {round_no} {server.name}: disturbed ({other:.0f}% other "
                          "on CPU 0), measuring again")  # fmt: skip
                    sample = measure(server, round_no, args, fleet, raw_log)
                print(
                    f"round {round_no} {server.name:26} {sample.rps:9,.0f} req/s  "
                    f"p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:6.2f} ms  "
                    f"cpu {sample.cpu_us_per_req:5.0f} µs/req  wrk {sample.wrk_cpu_pct:3.0f}%  "
                    f"server {sample.server_cpu_pct:3.0f}%  "
                    f"cpu0 other {sample.cpu0_other_pct:3.0f}%"
                    f"  {sample.errors or ''}",
                    flush=True,
                )
                yield sample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--max-other", type=float, default=15,
                        help="%% of CPU 0 taken by others above which a run is redone")  # fmt: skip
    parser.add_argument("--retries", type=int, default=1,
                        help="times a disturbed run is redone (bounds the time)")  # fmt: skip
    parser.add_argument("--cases", default="", help="comma-separated server names to run")
    parser.add_argument("--workdir", default=str(RESULTS / "work"))
    parser.add_argument("--out", default=str(RESULTS / "get.md"))
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the workdir's database and bodies file")  # fmt: skip
    parser.add_argument("--src", default=None,
                        help="run warp-registry from this source tree (PYTHONPATH)")  # fmt: skip
    parser.add_argument("--compare-src", default=None,
                        help="also run warp-registry from this source tree (as alt-*)")  # fmt: skip
    parser.add_argument("--profile-seconds", type=int, default=0,
                        help="then record warp-registry with py-spy this long")  # fmt: skip
    return parser.parse_args()


if __name__ == "__main__":
    run(parse_args())
