"""The whole benchmark of issue 8 in one bounded run; writes docs/benchmarks.md.

    .venv/bin/python bench/run_all.py                      # 1,000,000 registrations
    .venv/bin/python bench/run_all.py --registrations 200000 --rounds 1   # quicker

Scenarios, all against servers on 127.0.0.1 that this script starts and stops:

1. seed: `warp-registry init`, then `warp-registry seed --registrations N`
   (timed), then `warp-registry serve` on it and the server's RSS from /proc;
2. GET one registration with `include=policy` and a Bearer token, each request for a
   random one of 100,000 seeded registrations, against warp-registry, the ceiling server
   (bench/ceiling.py: same granian settings, the same bytes prepared in advance), the
   store floor (bench/store_floor.py: the same SQLite query and nothing else) and
   Stoplight Prism (pinned, installed with npm into bench/results/prism) mocking the
   same path from an OpenAPI document whose example is one of those bodies; `--rounds`
   interleaved rounds; servers on CPU 0, wrk on CPU 1 (bench/run_get.py's measuring);
3. list pages of 50 with the default sort: page 1 and page 10,001 (a cursor reached by
   walking the list), and page 1 with a `user.id` filter;
4. bulk revoke of 200 ids (sequential calls, each on other ids);
5. enrollment (`POST /v0/reg` with a service token, each with a new device and key);
6. PostgreSQL (a database created here and dropped at the end): the same GET with
   `serve --workers 1` and `--workers 2`, nothing pinned (the workers need both cores).

Every wrk run has a fixed duration; every server is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_get
from run_get import BIN, HERE, Fleet, Server, free_port, tree_rss_mib

ROOT = HERE.parent
WORK = HERE / "results" / "all"
PRISM_DIR = HERE / "results" / "prism"
PRISM_VERSION = "5.14.2"
FIXED_LUA = HERE / "fixed_url.lua"
DOC = ROOT / "docs" / "benchmarks.md"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIST_DEPTH_PAGES = 10_000
PAGE = 50
ANALYSIS_MARK = "<!-- analysis -->"  # what follows it in docs/benchmarks.md is hand-written


# --- helpers ---


def sh(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded), failing loudly."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 900),
                          **kw)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    return sh([str(BIN / "warp-registry"), *args], env={**os.environ, **(env or {})}).stdout


def machine_load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def request(
    port: int, method: str, url: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, url, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Result:
    """One line of the report's table (median over rounds where there are rounds)."""

    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None
    note: str = ""
    per_round: str = ""


def wrk_fixed(port: int, url: str, token: str, seconds: int, connections: int) -> list[str]:
    """wrk on one URL with the Bearer header (bench/fixed_url.lua reports the numbers)."""
    return [
        "taskset", "-c", run_get.LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--timeout", "5s", "-H", f"Authorization: Bearer {token}", "-s", str(FIXED_LUA),
        f"http://127.0.0.1:{port}{url}",
    ]  # fmt: skip


def measure_argv(server: Server, warm: list[str], run: list[str], seconds: int,
                 log: TextIO) -> run_get.Sample:  # fmt: skip
    """Warm-up, then a measured wrk run with the server's CPU time around it."""
    run_get.run_wrk(warm, seconds, log)
    before = run_get.tree_cpu_seconds(server.pid)
    result = run_get.run_wrk(run, seconds, log)
    cpu = run_get.tree_cpu_seconds(server.pid) - before
    requests = max(1, result["requests"])
    elapsed = result["duration_us"] / 1e6
    return run_get.Sample(
        server=server.name, round=0, rps=requests / elapsed,
        p50_ms=result["latency_us"]["p50"] / 1000, p99_ms=result["latency_us"]["p99"] / 1000,
        cpu_us_per_req=cpu * 1e6 / requests, wrk_cpu_pct=0, cpu0_other_pct=0,
        server_cpu_pct=100 * cpu / elapsed, bytes_per_resp=result["bytes"] / requests,
        errors={k: v for k, v in result["errors"].items() if v},
    )  # fmt: skip


def summarise(name: str, samples: list[run_get.Sample], note: str = "") -> Result:
    med = statistics.median
    errors = {k: sum(s.errors.get(k, 0) for s in samples) for s in samples for k in s.errors}
    extra = f"errors {errors}" if errors else ""
    return Result(
        name, med(s.rps for s in samples), med(s.p50_ms for s in samples),
        med(s.p99_ms for s in samples), med(s.cpu_us_per_req for s in samples),
        "; ".join(x for x in (note, extra) if x),
        " / ".join(f"{s.rps:,.0f}" for s in samples),
    )  # fmt: skip


# --- set-up ---


def seed_registry(database: str, count: int) -> tuple[dict[str, Any], float]:
    """init + seed --registrations; returns init's JSON and the seed's wall time."""
    meta = json.loads(cli("init", "--database", database, "--json"))
    started = time.perf_counter()
    cli("seed", "--database", database, "--registrations", str(count))
    return meta, time.perf_counter() - started


def sample_ids(database: str, account_id: str, count: int) -> tuple[list[str], str]:
    """Random registration ids of the account (read-only) and a user id that has some."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM registrations WHERE account_id = ? ORDER BY random() LIMIT ?",
            (account_id, count),
        )]  # fmt: skip
        user = (
            conn.execute(
                "SELECT user_id FROM registrations "
                "WHERE user_id IS NOT NULL AND revoked_at IS NULL LIMIT 1 OFFSET 500000"
            ).fetchone()
            or conn.execute(
                "SELECT user_id FROM registrations WHERE user_id IS NOT NULL LIMIT 1"
            ).fetchone()
        )
    finally:
        conn.close()
    return ids, user[0]


def registry_server(name: str, database: str, workers: int = 1, pinned: bool = True) -> Server:
    port = free_port()
    argv = [
        str(BIN / "warp-registry"), "serve", "--database", database, "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    # The default log level (info): one access line per request, as users run it; the
    # server's stderr goes to a file in the work directory.
    server = Server(name, "warp-registry", "granian", argv, port)
    if not pinned:
        server.start = _unpinned_start(server)  # type: ignore[method-assign]
    return server


def _unpinned_start(server: Server) -> Any:
    def start(work: Path) -> None:
        server.log_path = work / f"{server.name}.log"
        server._log = open(server.log_path, "w")  # noqa: SIM115 - closed by stop()
        server.process = subprocess.Popen(
            server.argv, stdout=server._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    return start


# --- Prism ---


def ensure_prism() -> Path:
    binary = PRISM_DIR / "node_modules" / ".bin" / "prism"
    if not binary.exists():
        PRISM_DIR.mkdir(parents=True, exist_ok=True)
        sh(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix",
            str(PRISM_DIR), f"@stoplight/prism-cli@{PRISM_VERSION}"], timeout=600)  # fmt: skip
    return binary


def prism_document(fleet: Fleet, example: dict[str, Any], out: Path) -> None:
    """An OpenAPI 3 document with the GET path, a Bearer scheme and the example body."""
    path = "/client/v4/accounts/{account_id}/devices/registrations/{registration_id}"
    param = {"in": "path", "required": True, "schema": {"type": "string"}}
    document = {
        "openapi": "3.0.3",
        "info": {"title": "warp-registry GET registration (bench)", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {path: {"get": {
            "operationId": "get-registration",
            "parameters": [
                {"name": "account_id", **param}, {"name": "registration_id", **param},
                {"name": "include", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "The registration", "content": {
                "application/json": {"example": example}}}},
        }}},
    }  # fmt: skip
    out.write_text(json.dumps(document, indent=1))


def prism_server(binary: Path, document: Path) -> Server:
    port = free_port()
    argv = [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(document)]
    return Server("prism", "prism", "node", argv, port)


# --- scenarios ---


def get_scenario(
    servers: list[Server], fleet: Fleet, args: argparse.Namespace, log: TextIO
) -> dict[str, list[run_get.Sample]]:
    """Interleaved rounds: every server once per round, same wrk load."""
    samples: dict[str, list[run_get.Sample]] = {s.name: [] for s in servers}
    for round_no in range(1, args.rounds + 1):
        for server in servers:
            sample = run_get.measure(server, round_no, args, fleet, log)
            samples[server.name].append(sample)
            print(f"  round {round_no} {server.name}: {sample.rps:,.0f} req/s "
                  f"p99 {sample.p99_ms:.1f} ms")  # fmt: skip
    return samples


def cursor_at(port: int, base: str, token: str, rows: int) -> str:
    """The cursor after `rows` rows of the default list (big pages, then pages of 50)."""
    auth = {"Authorization": f"Bearer {token}"}
    cursor = ""
    done = 0
    while done < rows:
        size = 1000 if rows - done >= 1000 else PAGE
        query = {"per_page": size, **({"cursor": cursor} if cursor else {})}
        status, body = request(port, "GET", f"{base}?{urlencode(query)}", auth)
        if status != 200:
            raise SystemExit(f"list walk: {status} {body[:200]!r}")
        page = json.loads(body)
        done += len(page["result"])
        cursor = page["result_info"]["cursor"]
        if not cursor:
            raise SystemExit(f"the list ended after {done} rows; fewer than {rows}")
    return cursor


def list_scenario(
    server: Server, fleet: Fleet, user_id: str, args: argparse.Namespace, log: TextIO
) -> dict[str, list[run_get.Sample]]:
    base = f"/client/v4/accounts/{fleet.account_id}/devices/registrations"
    print(f"  walking to page {args.list_depth + 1:,} of the list ...")
    deep = cursor_at(server.port, base, fleet.token, args.list_depth * PAGE)
    deep_query = urlencode({"per_page": PAGE, "cursor": deep})
    user_query = urlencode({"per_page": PAGE, "user.id": user_id})
    urls = {
        "list page 1": f"{base}?per_page={PAGE}",
        f"list page {args.list_depth + 1:,} (cursor)": f"{base}?{deep_query}",
        "list page 1, user.id filter": f"{base}?{user_query}",
    }
    for name, url in urls.items():
        status, body = request(server.port, "GET", url, {"Authorization": f"Bearer {fleet.token}"})
        if status != 200 or not json.loads(body)["result"]:
            raise SystemExit(f"{name}: {status} {body[:300]!r}")

    samples: dict[str, list[run_get.Sample]] = {name: [] for name in urls}
    for _ in range(args.rounds):
        for name, url in urls.items():
            warm = wrk_fixed(server.port, url, fleet.token, args.warmup, args.connections)
            run = wrk_fixed(server.port, url, fleet.token, args.duration, args.connections)
            sample = measure_argv(server, warm, run, args.duration, log)
            samples[name].append(sample)
            print(f"  {name}: {sample.rps:,.0f} req/s p99 {sample.p99_ms:.1f} ms")
    return samples


def timed_calls(calls: list[Any], seconds: float, threads: int) -> Result | None:
    """Run callables from `calls` on `threads` threads for at most `seconds`."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(reversed(calls))
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                if not queue:
                    return
                call = queue.pop()
            started = time.perf_counter()
            error = call()
            with lock:
                (
                    failures.append(error)
                    if error
                    else latencies.append(time.perf_counter() - started)
                )

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if not latencies:
        return None
    latencies.sort()
    note = f"{len(latencies)} calls, {threads} at a time"
    if failures:
        note += f"; {len(failures)} failed, e.g. {failures[0][:120]}"
    return Result("", len(latencies) / elapsed, 1000 * latencies[len(latencies) // 2],
                  1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
                  None, note)  # fmt: skip


def revoke_scenario(
    server: Server, fleet: Fleet, ids: list[str], args: argparse.Namespace
) -> Result:
    base = f"/client/v4/accounts/{fleet.account_id}/devices/registrations/revoke"
    auth = {"Authorization": f"Bearer {fleet.token}"}
    batches = [ids[i : i + 200] for i in range(0, len(ids) - 199, 200)][: args.revoke_calls]

    def call(batch: list[str]) -> Any:
        def run() -> str | None:
            query = urlencode([("id", i) for i in batch])
            status, body = request(server.port, "POST", f"{base}?{query}", auth, b"")
            return None if status == 200 else f"{status} {body[:100]!r}"

        return run

    result = timed_calls([call(b) for b in batches], args.duration, 1)
    if result is None:
        raise SystemExit("bulk revoke: no call succeeded")
    result.scenario = "bulk revoke, 200 ids per call"
    return result


def enroll_scenario(server: Server, database: str, args: argparse.Namespace) -> Result:
    out = cli("service-token", "create", "--database", database, "--name", "bench")
    headers = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith("CF-Access"))
    headers |= {"Content-Type": "application/json", "CF-Client-Version": "a-6.81-4616"}
    rng = random.Random(8)

    def call() -> str | None:
        body = {
            "key": __import__("base64").b64encode(rng.randbytes(32)).decode(),
            "serial_number": f"{rng.getrandbits(64):016X}", "install_id": str(uuid.uuid4())[:22],
            "tos": "2026-01-02T03:04:05.678Z", "model": "PC", "type": "linux",
        }  # fmt: skip
        status, raw = request(server.port, "POST", "/v0/reg", headers, json.dumps(body).encode())
        return None if status == 200 else f"{status} {raw[:120]!r}"

    result = timed_calls([call] * 100_000, args.duration, args.enroll_threads)
    if result is None:
        raise SystemExit("enrollment: no call succeeded")
    result.scenario = "enrollment POST /v0/reg (service token)"
    return result


def postgres_scenario(args: argparse.Namespace, ids_count: int, log: TextIO,
                      work: Path) -> tuple[dict[str, list[run_get.Sample]],
                                           dict[str, list[float]], float, str]:  # fmt: skip
    """Seed a fresh PostgreSQL database, then GET with 1 and 2 workers (interleaved)."""
    name = f"warp_bench_{os.getpid()}"
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    psql = ["psql", PG_ADMIN, "-v", "ON_ERROR_STOP=1", "-qc"]
    sh([*psql, f"DROP DATABASE IF EXISTS {name}"])
    sh([*psql, f"CREATE DATABASE {name}"])
    servers: list[Server] = []
    try:
        meta, seed_s = seed_registry(url, args.pg_registrations)
        ids = _pg_ids(url, meta["account_id"], ids_count, work)
        fleet = Fleet(meta["account_id"], meta["api_token"], ids[1], ids[0])
        servers = [registry_server(f"pg-workers-{w}", url, w, pinned=False) for w in (1, 2)]
        for server in servers:
            server.start(work)
            run_get.wait_ready(server, fleet)
        samples: dict[str, list[run_get.Sample]] = {s.name: [] for s in servers}
        pg_cpu: dict[str, list[float]] = {s.name: [] for s in servers}
        for round_no in range(1, args.rounds + 1):
            for server in servers:
                before = postgres_cpu_seconds()
                sample = run_get.measure(server, round_no, args, fleet, log)
                # `measure` runs a warm-up first: both runs count, at the measured rate.
                spent = postgres_cpu_seconds() - before
                requests = sample.rps * (args.duration + args.warmup)
                pg_cpu[server.name].append(spent * 1e6 / max(1.0, requests))
                samples[server.name].append(sample)
                print(f"  round {round_no} {server.name}: {sample.rps:,.0f} req/s")
        return samples, pg_cpu, seed_s, url.replace(name, "<db>")
    finally:
        for server in servers:
            server.stop()
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                       capture_output=True, timeout=120)  # fmt: skip


def postgres_cpu_seconds() -> float:
    """User + system CPU time of every PostgreSQL server process on the machine."""
    stats = Path("/proc").glob("[0-9]*/stat")
    return sum(run_get.process_cpu_seconds(stat, "postgres") for stat in stats)


def _pg_ids(url: str, account_id: str, count: int, work: Path) -> tuple[list[str], Path]:
    out = sh(["psql", url, "-At", "-c",
              f"SELECT id FROM registrations WHERE account_id = '{account_id}' "
              f"ORDER BY random() LIMIT {int(count)}"]).stdout  # fmt: skip
    ids = [line for line in out.splitlines() if line]
    path = work / "pg_ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return ids, path


# --- report ---


def versions() -> str:
    parts = [
        run_get.versions(),
        f"Prism {PRISM_VERSION}",
        "PostgreSQL " + sh(["psql", PG_ADMIN, "-Atc", "SHOW server_version"]).stdout.strip(),
    ]
    return "; ".join(parts)  # fmt: skip


def row(r: Result) -> str:
    cpu = f"{r.cpu_us:,.0f}" if r.cpu_us is not None else "–"
    return (f"| {r.scenario} | {r.per_round or '–'} | **{r.rps:,.0f}** | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {cpu} | {r.note} |")  # fmt: skip


FLOOR = "GET store query alone (reference, not a goal)"


def goal(text: str, value: str, ok: bool) -> str:
    return f"| {text} | {value} | {'PASS' if ok else 'MISS'} |"


def floor_lines(by: dict[str, Result]) -> list[str]:
    """What the store floor says about the GET goals (bench/store_floor.py)."""
    floor, ceil, reg = by.get(FLOOR), by["GET ceiling"], by["GET warp-registry"]
    if floor is None:
        return []
    return [
        f"- Store floor: an app that runs only warp-registry's GET query (one SQLite "
        f"statement) and dumps the row reaches **{floor.rps / ceil.rps:.2f} ×** the "
        f"ceiling; warp-registry reaches {reg.rps / floor.rps:.2f} × the floor.",
    ]


def report(ctx: dict[str, Any]) -> str:
    results: list[Result] = ctx["results"]
    by = {r.scenario: r for r in results}
    reg, ceil, prism = by["GET warp-registry"], by["GET ceiling"], by.get("GET Prism")
    depth = ctx["list_depth"]
    p1, deep = by["list page 1"], by[f"list page {depth + 1:,} (cursor)"]
    goals = [
        goal("GET throughput ≥ 0.4 × ceiling", f"{reg.rps / ceil.rps:.2f} ×",
             reg.rps >= 0.4 * ceil.rps),
        goal("GET throughput ≥ 10 × Prism",
             f"{reg.rps / prism.rps:.1f} ×" if prism else "not run",
             bool(prism and reg.rps >= 10 * prism.rps)),
        goal(f"GET p99 ≤ 10 ms at {ctx['connections']} connections", f"{reg.p99_ms:.2f} ms",
             reg.p99_ms <= 10),
        goal(f"list page {depth + 1:,} cost ≤ 1.2 × page 1 (server CPU per request)",
             f"{deep.cpu_us / p1.cpu_us:.2f} × (req/s ratio {p1.rps / deep.rps:.2f} ×)",
             deep.cpu_us <= 1.2 * p1.cpu_us),
        goal(f"seeding {ctx['registrations']:,} registrations ≤ 60 s", f"{ctx['seed_s']:.1f} s",
             ctx["seed_s"] <= 60),
        goal("server RSS ≤ 200 MB after seeding (idle / after all loads)",
             f"{ctx['rss_idle']:.0f} / {ctx['rss_after']:.0f} MiB",
             max(ctx["rss_idle"], ctx["rss_after"]) * 1.048576 <= 200),
    ]  # fmt: skip
    if "pg" in ctx:
        one, two = by["GET PostgreSQL, 1 worker"], by["GET PostgreSQL, 2 workers"]
        goals.append(goal("PostgreSQL GET, 2 workers ≥ 1.6 × 1 worker",
                          f"{two.rps / one.rps:.2f} ×", two.rps >= 1.6 * one.rps))  # fmt: skip
    else:
        goals.append("| PostgreSQL GET, 2 workers ≥ 1.6 × 1 worker | not run | MISS |")

    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{ctx['command']}` on {ctx['started']} UTC ({ctx['minutes']:.0f} min).",
        "Numbers are from that one run on one shared 2-core machine: compare the ratios, which",
        "were measured side by side with interleaved rounds, not the absolute numbers.",
        "",
        "## Goals",
        "",
        "| goal | measured | result |",
        "|---|---|---|",
        *goals,
        "",
        "## Results",
        "",
        "req/s, p50 and p99 are medians over the rounds (per-round req/s shown); server CPU "
        "is the server's process tree's user+system time per request, from /proc.",
        "",
        "| scenario | req/s per round | req/s | p50 ms | p99 ms | server CPU µs/req | notes |",
        "|---|---|---|---|---|---|---|",
        *[row(r) for r in results],
        "",
        f"- Seeding: `warp-registry seed --registrations {ctx['registrations']}` "
        f"took **{ctx['seed_s']:.1f} s** (wall, including its commit); the database file is "
        f"{ctx['db_mib']:,.0f} MiB.",
        f"- Server RSS (sum over `warp-registry serve`'s processes, /proc VmRSS): "
        f"{ctx['rss_idle']:.0f} MiB once ready, {ctx['rss_after']:.0f} MiB after every load "
        "above.",
        *floor_lines(by),
        *ctx.get("notes", []),
        "",
        "## Machine",
        "",
        ctx["machine"],
        f"Load average at start {ctx['load_start']}, at end {ctx['load_end']} (other work was "
        "running on the machine: see the per-round spread).",
        "",
        f"Versions: {ctx['versions']}.",
        "",
        "## How it was run",
        "",
        f"- GET: `wrk -t{ctx['threads']} -c{ctx['connections']} -d{ctx['duration']}s "
        "-s bench/get_registration.lua` (random id of "
        f"{ctx['get_ids']:,} per request, `?include=policy`, Bearer token), "
        f"{ctx['warmup']} s warm-up before each measured run, {ctx['rounds']} interleaved "
        "rounds; server under `taskset -c 0`, wrk under `taskset -c 1`. warp-registry runs "
        "as `warp-registry serve --database …` (one worker, default log level: one access "
        "line per request, written to a file); the "
        "ceiling is `bench/ceiling.py` on the same granian settings with the same bytes; "
        "the store floor is `bench/store_floor.py` on the same settings, running only the "
        "same SQLite query and dumping its row; "
        f"Prism is `prism mock` ({PRISM_VERSION}) on an OpenAPI document with one of the "
        "same bodies as its example (it answers every id with it).",
        f"- Lists: `wrk -H 'Authorization: Bearer …' -s bench/fixed_url.lua` on one URL each, "
        f"same connections and durations; the deep page's cursor is found by walking the "
        f"list first ({ctx['list_depth'] * PAGE:,} rows).",
        "- Bulk revoke: sequential `POST …/registrations/revoke?id=…` calls of 200 ids "
        "each (different ids each call), from Python's http.client, one connection per call.",
        f"- Enrollment: `POST /v0/reg` with a service token, {ctx['enroll_threads']} calls "
        "at a time, each with a new serial number and WireGuard key.",
        f"- PostgreSQL: `{ctx.get('pg_url', '')}` created and dropped by the script, seeded "
        f"with {ctx['pg_registrations']:,} registrations; `serve --workers 1` and "
        "`--workers 2`, not pinned (two workers need both cores, which wrk and PostgreSQL "
        "share).",
        "",
        f"Reproduce: `{ctx['command']}` (bench/README.md).",
    ]
    return "\n".join(lines) + "\n"


# --- main ---


def run(args: argparse.Namespace) -> None:
    started = datetime.now(UTC)
    load_start = machine_load()
    work = WORK
    if work.exists():
        sh(["rm", "-rf", str(work)])
    work.mkdir(parents=True)
    log = open(work / "wrk.log", "w")  # noqa: SIM115
    database = str(work / "registry.db")
    ctx: dict[str, Any] = {**vars(args), "started": started.strftime("%Y-%m-%d %H:%M"),
                           "load_start": load_start, "command": " ".join(
                               ["python", "bench/run_all.py", *sys.argv[1:]])}  # fmt: skip
    results: list[Result] = []
    servers: list[Server] = []
    try:
        print(f"seeding {args.registrations:,} registrations ...")
        meta, ctx["seed_s"] = seed_registry(database, args.registrations)
        ctx["db_mib"] = sum(p.stat().st_size for p in work.glob("registry.db*")) / 2**20
        print(f"  {ctx['seed_s']:.1f} s")
        ids, user_id = sample_ids(database, meta["account_id"], args.get_ids)
        ids_file = work / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        fleet = Fleet(meta["account_id"], meta["api_token"], ids_file, ids)

        registry = registry_server("registry", database)
        registry.start(work)
        servers.append(registry)
        run_get.wait_ready(registry, fleet)
        time.sleep(1)
        ctx["rss_idle"] = tree_rss_mib(registry.pid)

        print("fetching the ceiling's bodies ...")
        bodies = work / "bodies.json"
        run_get.fetch_bodies(registry, fleet, bodies)
        ceiling = Server("ceiling", "ceiling", "granian", [
            str(BIN / "python"), str(HERE / "ceiling.py"), "--bodies", str(bodies),
            "--port", str(port := free_port())], port)  # fmt: skip
        ceiling.start(work)
        servers.append(ceiling)
        run_get.wait_ready(ceiling, fleet)
        run_get.verify(registry, ceiling, fleet)
        floor = Server("floor", "store floor", "granian", [
            str(BIN / "python"), str(HERE / "store_floor.py"), "--database", database,
            "--port", str(port := free_port())], port)  # fmt: skip
        floor.start(work)
        servers.append(floor)
        run_get.wait_ready(floor, fleet)
        get_servers = [registry, ceiling, floor]

        if not args.skip_prism:
            document = work / "openapi.json"
            example = json.loads(json.loads(bodies.read_text())["bodies"][fleet.path(ids[0])])
            prism_document(fleet, example, document)
            prism = prism_server(ensure_prism(), document)
            prism.start(work)
            servers.append(prism)
            run_get.wait_ready(prism, fleet)
            status, _ = request(prism.port, "GET", fleet.url(ids[1]), {})
            ctx.setdefault("notes", []).append(
                f"- Prism answers a request without a token with {status} (it checks the "
                "Bearer header's presence, not its value).")  # fmt: skip
            get_servers.append(prism)

        print("GET ...")
        get = get_scenario(get_servers, fleet, args, log)
        names = {"registry": "GET warp-registry", "ceiling": "GET ceiling", "prism": "GET Prism",
                 "floor": FLOOR}  # fmt: skip
        results += [summarise(names[name], samples) for name, samples in get.items()]
        for server in get_servers[1:]:
            server.stop()

        print("lists ...")
        lists = list_scenario(registry, fleet, user_id, args, log)
        results += [summarise(name, samples) for name, samples in lists.items()]

        print("bulk revoke ...")
        revoke_ids = ids[-args.revoke_calls * 200 :]
        results.append(revoke_scenario(registry, fleet, revoke_ids, args))
        print("enrollment ...")
        results.append(enroll_scenario(registry, database, args))
        ctx["rss_after"] = tree_rss_mib(registry.pid)
        registry.stop()

        if not args.skip_pg:
            print(f"PostgreSQL ({args.pg_registrations:,} registrations) ...")
            pg, pg_cpu, pg_seed_s, ctx["pg_url"] = postgres_scenario(
                args, args.get_ids, log, work
            )
            ctx["pg"] = True
            labels = {"pg-workers-1": "GET PostgreSQL, 1 worker",
                      "pg-workers-2": "GET PostgreSQL, 2 workers"}  # fmt: skip
            for server_name, samples in pg.items():
                pg_us = statistics.median(pg_cpu[server_name])
                note = f"not pinned; PostgreSQL's own CPU ≈ {pg_us:.0f} µs/req"
                results.append(summarise(labels[server_name], samples, note))
            ctx.setdefault("notes", []).append(
                f"- PostgreSQL seeding of {args.pg_registrations:,} registrations took "
                f"{pg_seed_s:.1f} s.")  # fmt: skip
    finally:
        for server in servers:
            server.stop()
        log.close()

    ctx.update(results=results, load_end=machine_load(), machine=run_get.machine(),
               versions=versions(), minutes=(datetime.now(UTC) - started).seconds / 60)  # fmt: skip
    text = report(ctx)
    if DOC.exists() and ANALYSIS_MARK in DOC.read_text():
        text += "\n" + ANALYSIS_MARK + DOC.read_text().split(ANALYSIS_MARK, 1)[1]
    print(text)
    if not args.no_write:
        DOC.write_text(text)
        print(f"written to {DOC}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=1_000_000)
    parser.add_argument("--get-ids", type=int, default=100_000)
    parser.add_argument("--pg-registrations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--list-depth", type=int, default=LIST_DEPTH_PAGES, help="pages of 50 before the deep page"
    )
    parser.add_argument("--revoke-calls", type=int, default=50)
    parser.add_argument("--enroll-threads", type=int, default=4)
    parser.add_argument("--skip-prism", action="store_true")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args()


if __name__ == "__main__":
    run(parse_args())
