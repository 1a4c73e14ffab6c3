"""Control actions as CLI commands; each works on the database, like `token create`.

A running server picks the change up from the store within a fraction of a second
(`runtime.REFRESH_S`); docs/control-plane.md has the HTTP twin of every command.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from warp_registry.bootstrap import DEFAULT_SEED
from warp_registry.cli import _env, _with_store, add_registrations, database_option
from warp_registry.clock import parse_rfc3339, real_now_us
from warp_registry.control import actions, faults, journal
from warp_registry.errors import ApiError
from warp_registry.store.sql_store import SqlStore


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value).decode())


def _run(work: Any) -> Any:
    """`_with_store`, with control-plane errors shown as CLI errors."""
    try:
        return _with_store_checked(work)
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None


def _with_store_checked(work: Any) -> Any:
    database = click.get_current_context().params["database"]
    return _with_store(database, work)


def add_control_commands(main: click.Group) -> None:
    """Register the control commands on the `warp-registry` group."""
    for command in (admin_token, reset, seed, export, import_, clock, journal_group,
                    fault, rate_limit):  # fmt: skip
        main.add_command(command)


@click.group("admin-token")
def admin_token() -> None:
    """The control plane's admin token."""


@admin_token.command("rotate")
@database_option
def admin_token_rotate(database: str) -> None:
    """Replace the admin token and print the new one (the old one stops working)."""
    click.echo(_run(actions.rotate_admin_token))


def _print_created(created: Any) -> None:
    _echo_json({"account_id": created.account_id, "api_token": created.api_token,
                "example_registration_id": created.example_registration_id})  # fmt: skip


@click.command()
@database_option
@click.option(
    "--seed",
    default=DEFAULT_SEED,
    show_default=True,
    type=int,
    envvar=_env("SEED"),
    show_envvar=True,
    help="Seed of the demo fleet.",
)
@click.option("--no-demo", is_flag=True, envvar=_env("NO_DEMO"), show_envvar=True,
              help="Leave an empty account instead of the demo fleet.")  # fmt: skip
def reset(database: str, seed: int, no_demo: bool) -> None:
    """Empty the registry and set it up again as `init` does; prints the new API token."""

    async def work(store: SqlStore) -> Any:
        return await actions.reset(store, demo_fleet=not no_demo, seed=seed)

    _print_created(_run(work))


@click.command()
@database_option
@click.option(
    "--devices",
    type=click.IntRange(1, actions.MAX_SEED_DEVICES),
    envvar=_env("DEVICES"),
    show_envvar=True,
    help="Reset the registry to a demo fleet of this many devices.",
)
@click.option("--registrations", type=click.IntRange(min=1), envvar=_env("REGISTRATIONS"),
              show_envvar=True,
              help="Add this many registrations (with their devices and users), keeping "
              "what is there.")  # fmt: skip
@click.option("--account", envvar=_env("ACCOUNT"), show_envvar=True,
              help="With --registrations: the account to add to; may be left out when the "
              "registry holds a single account.")  # fmt: skip
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int,
              envvar=_env("SEED"), show_envvar=True, help="Seed of the fleet.")  # fmt: skip
def seed(
    database: str, devices: int | None, registrations: int | None, account: str | None,
    seed: int,
) -> None:  # fmt: skip
    """Reset to a demo fleet (--devices N) or add N registrations (--registrations N).

    Exactly one of the two. --devices empties the registry and sets it up again with a
    demo fleet of N devices made from SEED, printing the new API token as `reset` does.
    --registrations adds N realistic registrations in one transaction, for load tests and
    benchmarks, with a progress bar on stderr (see store/seeding.py for the fleet's shape).
    """
    devices, registrations = _one_seed_size(devices, registrations)
    if registrations is not None:
        add_registrations(database, registrations, account, seed)
        return
    if account is not None and _given_on_command_line("account"):
        raise click.UsageError("--account goes with --registrations, not --devices")

    async def work(store: SqlStore) -> Any:
        return await actions.reset(store, demo_fleet=True, seed=seed, devices=devices)

    _print_created(_run(work))


def _one_seed_size(
    devices: int | None, registrations: int | None
) -> tuple[int | None, int | None]:
    """Exactly one of --devices and --registrations; a command-line flag beats a variable."""
    if devices is not None and registrations is not None:
        devices_flag = _given_on_command_line("devices")
        if devices_flag != _given_on_command_line("registrations"):
            return (devices, None) if devices_flag else (None, registrations)
        raise click.UsageError("give either --devices or --registrations, not both")
    if devices is None and registrations is None:
        raise click.UsageError("give either --devices N (reset to a demo fleet of N devices) "
                               "or --registrations N (add N registrations)")  # fmt: skip
    return devices, registrations


def _given_on_command_line(name: str) -> bool:
    source = click.get_current_context().get_parameter_source(name)
    return source is click.core.ParameterSource.COMMANDLINE


@click.command()
@database_option
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default="-",
              envvar=_env("OUTPUT"), show_envvar=True,
              help="File to write; `-` is standard output.")  # fmt: skip
def export(database: str, output: str) -> None:
    """Write the whole registry as one JSON document."""
    document = _run(actions.export_document)
    if output == "-":
        sys.stdout.buffer.write(document)
    else:
        with open(output, "wb") as file:
            file.write(document)


@click.command("import")
@database_option
@click.argument("source", type=click.File("rb"))
def import_(database: str, source: Any) -> None:
    """Replace the registry with an export read from SOURCE (`-` for standard input)."""
    raw = source.read()

    async def work(store: SqlStore) -> list[str]:
        await actions.import_document(store, raw)
        return await store.account_ids()

    click.echo(f"imported; accounts: {', '.join(_run(work)) or '(none)'}")


@click.group()
def clock() -> None:
    """Show, freeze, set, advance, resume or reset the server clock."""


def _clock_action(action: str, value: int | None = None) -> None:
    async def work(store: SqlStore) -> Any:
        return await actions.change_clock(store, action, value)

    _echo_json(_run(work))


def _parse_at(at: str) -> int:
    try:
        return parse_rfc3339(at)
    except ValueError:
        raise click.BadParameter(f"{at!r} is not RFC3339", param_hint="--at") from None


@clock.command("show")
@database_option
def clock_show(database: str) -> None:
    """Print the server clock."""
    _echo_json(_run(actions.clock_state))


@clock.command("freeze")
@database_option
@click.option("--at", envvar=_env("CLOCK_AT"), show_envvar=True,
              help="RFC3339 instant to freeze at; default: the server's now.")  # fmt: skip
def clock_freeze(database: str, at: str | None) -> None:
    """Stop the server clock."""
    _clock_action("freeze", None if at is None else _parse_at(at))


@clock.command("set")
@database_option
@click.option("--at", required=True, envvar=_env("CLOCK_AT"), show_envvar=True,
              help="RFC3339 instant the clock shows from now on.")  # fmt: skip
def clock_set(database: str, at: str) -> None:
    """Set the server clock (it stays frozen if it was)."""
    _clock_action("set", _parse_at(at))


@clock.command("advance")
@database_option
@click.option("--seconds", required=True, type=float, envvar=_env("CLOCK_SECONDS"),
              show_envvar=True, help="How far to move the clock (negative: back).")  # fmt: skip
def clock_advance(database: str, seconds: float) -> None:
    """Move the server clock."""
    _clock_action("advance", int(seconds * 1_000_000))


@clock.command("resume")
@database_option
def clock_resume(database: str) -> None:
    """Let a frozen clock run again from where it stands."""
    _clock_action("resume")


@clock.command("reset")
@database_option
def clock_reset(database: str) -> None:
    """Back to the machine's clock."""
    _clock_action("reset")


@click.group("journal")
def journal_group() -> None:
    """The request journal."""


@journal_group.command("on")
@database_option
@click.option("--size", default=1000, show_default=True, type=click.IntRange(1, journal.MAX_SIZE),
              envvar=_env("JOURNAL_SIZE"), show_envvar=True,
              help="How many of the newest requests to keep.")  # fmt: skip
def journal_on(database: str, size: int) -> None:
    """Start recording requests."""
    _run(lambda store: actions.set_journal_size(store, size))
    click.echo(f"journal on, keeping {size} requests")


@journal_group.command("off")
@database_option
def journal_off(database: str) -> None:
    """Stop recording and empty the journal."""
    _run(lambda store: actions.set_journal_size(store, 0))
    click.echo("journal off")


@journal_group.command("clear")
@database_option
def journal_clear(database: str) -> None:
    """Empty the journal (it keeps recording if on)."""
    _run(lambda store: store.control.journal_clear())
    click.echo("journal cleared")


@journal_group.command("show")
@database_option
@click.option("--method", envvar=_env("JOURNAL_METHOD"), show_envvar=True, help="Only this method.")
@click.option(
    "--path", envvar=_env("JOURNAL_PATH"), show_envvar=True, help="Only paths with this text."
)
@click.option(
    "--status", type=int, envvar=_env("JOURNAL_STATUS"), show_envvar=True, help="Only this status."
)
@click.option(
    "--credential-id",
    envvar=_env("JOURNAL_CREDENTIAL_ID"),
    show_envvar=True,
    help="Only requests of this token (or global key) id.",
)
@click.option(
    "--limit",
    default=journal.DEFAULT_LIST,
    show_default=True,
    type=int,
    envvar=_env("JOURNAL_LIMIT"),
    show_envvar=True,
    help="Most entries to print.",
)
def journal_show(
    database: str, method: str | None, path: str | None, status: int | None,
    credential_id: str | None, limit: int,
) -> None:  # fmt: skip
    """Print the newest requests, one JSON object a line."""
    query = {"limit": [str(limit)]}
    for name, value in (("method", method), ("path", path), ("status", status),
                        ("credential_id", credential_id)):  # fmt: skip
        if value is not None:
            query[name] = [str(value)]

    async def work(store: SqlStore) -> list[Any]:
        where, count = journal.filters_from_query(query)
        return await store.control.journal(where, count)

    for row in _run(work):
        _echo_json(journal.entry_to_api(row))


@click.group()
def fault() -> None:
    """Fault rules: make matching requests fail or slow down."""


@fault.command("add")
@database_option
@click.option(
    "--method",
    default="*",
    show_default=True,
    envvar=_env("FAULT_METHOD"),
    show_envvar=True,
    help="HTTP method, or * for any.",
)
@click.option(
    "--path",
    default="*",
    show_default=True,
    envvar=_env("FAULT_PATH"),
    show_envvar=True,
    help="Path pattern; * matches anything, / included.",
)
@click.option(
    "--status",
    type=int,
    envvar=_env("FAULT_STATUS"),
    show_envvar=True,
    help="HTTP status to answer with (none: only add latency).",
)
@click.option(
    "--code",
    type=int,
    envvar=_env("FAULT_CODE"),
    show_envvar=True,
    help="Error code in the envelope (default from the status).",
)
@click.option(
    "--message",
    envvar=_env("FAULT_MESSAGE"),
    show_envvar=True,
    help="Error message in the envelope.",
)
@click.option(
    "--retry-after",
    type=int,
    envvar=_env("FAULT_RETRY_AFTER"),
    show_envvar=True,
    help="Retry-After header, in seconds.",
)
@click.option(
    "--latency-ms",
    type=int,
    envvar=_env("FAULT_LATENCY_MS"),
    show_envvar=True,
    help="Milliseconds to wait before answering.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    envvar=_env("FAULT_HEADER"),
    show_envvar=True,
    help="Extra response header NAME=VALUE; repeatable.",
)
@click.option(
    "--times",
    type=int,
    envvar=_env("FAULT_TIMES"),
    show_envvar=True,
    help="Fire for the next N matching requests only.",
)
@click.option(
    "--probability",
    type=float,
    envvar=_env("FAULT_PROBABILITY"),
    show_envvar=True,
    help="Fire with this probability (0 to 1).",
)
@click.option("--seed", type=int, envvar=_env("FAULT_SEED"), show_envvar=True,
              help="Seed of the probability draws.")  # fmt: skip
def fault_add(database: str, headers: tuple[str, ...], **fields: Any) -> None:
    """Add a fault rule and print it."""
    body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if headers:
        pairs = [h.partition("=") for h in headers]
        if any(not sep for _, sep, _ in pairs):
            raise click.BadParameter("use NAME=VALUE", param_hint="--header")
        body["headers"] = {name: value for name, _, value in pairs}
    try:
        spec = faults.parse_fault(body)
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None

    async def work(store: SqlStore) -> Any:
        rule_id = await store.control.add_fault(real_now_us(), spec, spec["times"])
        return next(r for r in await store.control.faults() if r[0] == rule_id)

    _echo_json(faults.rule_to_api(_run(work)))


@fault.command("list")
@database_option
def fault_list(database: str) -> None:
    """Print every rule, one JSON object a line."""
    for row in _run(lambda store: store.control.faults()):
        _echo_json(faults.rule_to_api(row))


@fault.command("delete")
@database_option
@click.argument("rule_id")
def fault_delete(database: str, rule_id: str) -> None:
    """Delete one rule by id."""
    if not _run(lambda store: store.control.delete_fault(rule_id.lower())):
        raise click.ClickException(f"no fault rule {rule_id}")
    click.echo(f"deleted {rule_id}")


@fault.command("clear")
@database_option
def fault_clear(database: str) -> None:
    """Delete every rule."""
    click.echo(f"deleted {_run(lambda store: store.control.delete_faults())} rules")


@click.group("rate-limit")
def rate_limit() -> None:
    """Rate-limit counters (the limit itself is `serve --rate-limit`)."""


@rate_limit.command("reset")
@database_option
def rate_limit_reset(database: str) -> None:
    """Forget every count: each credential starts a fresh window."""
    _run(lambda store: store.control.reset_rate_limits())
    click.echo("rate-limit counts reset")
