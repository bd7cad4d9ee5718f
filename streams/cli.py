"""The `antifraud` command: every process of the platform and its operator tools."""

from __future__ import annotations

import logging

import typer

from streams.settings import Settings, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_cli = typer.Typer(no_args_is_help=True, help="The topic catalog (topics.yaml) and the broker.")
cli.add_typer(topics_cli, name="topics")
ledger_cli = typer.Typer(invoke_without_command=True, help="The oversight ledger: every record in SQL.")
cli.add_typer(ledger_cli, name="ledger")
acl_cli = typer.Typer(no_args_is_help=True, help="Principals and ACLs on the broker, from topics.yaml (docs/security.md).")
cli.add_typer(acl_cli, name="acl")
dead_letters_cli = typer.Typer(no_args_is_help=True, help="Dead letters: what was refused, and replay once fixed.")
cli.add_typer(dead_letters_cli, name="dead-letters")
from streams.rules_cli import rules_cli  # noqa: E402  (its own module: the rules commands grow there)

cli.add_typer(rules_cli, name="rules")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per metrics scrape is noise


def _servers_from_env(settings: Settings) -> Settings:
    if settings.kafka_bootstrap_servers is None or settings.redis_url is None:
        typer.echo(
            "KAFKA_BOOTSTRAP_SERVERS and REDIS_URL must be set for this command "
            "(`antifraud up` starts embedded servers instead).",
            err=True,
        )
        raise typer.Exit(2)
    return settings


@cli.command()
def up(simulator: bool = typer.Option(True, help="Also run the traffic simulator.")) -> None:
    """The whole platform: embedded servers unless the environment names real ones."""
    from streams.supervisor import run_up

    settings = get_settings()
    _setup_logging(settings)
    run_up(settings, with_simulator=simulator)


@cli.command()
def worker() -> None:
    """The Faust stream worker (ingest and every later stage)."""
    from streams.worker import run_worker

    settings = _servers_from_env(get_settings())
    _setup_logging(settings)
    run_worker(settings)


@cli.command()
def simulate() -> None:
    """Synthetic carrier, bank and app traffic, reference data first."""
    from simulator.traffic import main as run_simulator

    run_simulator(_platform_process_settings())


@cli.command("desk-simulator")
def desk_simulator(
    console: str = typer.Option(..., help="The console's URL, e.g. http://127.0.0.1:8080/"),
    human_unit: list[str] = typer.Option([], help="A unit whose untaken tasks wait for a person first (repeat)."),
) -> None:
    """Simulated officers and operators working the desk's tasks through its HTTP API (make run)."""
    from simulator.desk_worker import run
    from streams.shutdown import stop_on_signals

    run(_platform_process_settings(), console, frozenset(human_unit), stop_on_signals())


def _platform_process_settings() -> Settings:
    """Common start of a platform process: servers from the environment, metrics served."""
    from streams.metrics import serve_metrics

    settings = _servers_from_env(get_settings())
    _setup_logging(settings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    return settings


@cli.command("channel-worker")
def channel_worker(
    channel: str = typer.Option(..., help="sms, ai_voice, hotline_call, app_push or police_visit"),
) -> None:
    """A downstream channel worker: sends one channel's actions through its gateway."""
    from channels.worker import main as run_channel
    from streams.contracts import Channel

    run_channel(_platform_process_settings(), Channel(channel))


def _partner_settings() -> Settings:
    settings = _servers_from_env(get_settings())
    _setup_logging(settings)
    return settings


@cli.command("bank-consumer")
def bank_consumer(bank: str = typer.Option(..., help="Bank code from banks.yaml, e.g. ICBC.")) -> None:
    """Reference bank consumer: verifies signatures, rejects tampered or expired requests, applies and acks."""
    from channels.partners import bank_consumer_main

    bank_consumer_main(_partner_settings(), bank)


@cli.command("carrier-consumer")
def carrier_consumer(carrier: str = typer.Option(..., help="Carrier code from banks.yaml, e.g. china_mobile.")) -> None:
    """Reference carrier consumer for line-suspension requests."""
    from channels.partners import carrier_consumer_main

    carrier_consumer_main(_partner_settings(), carrier)


@cli.command()
def partners() -> None:
    """Every reference bank and carrier consumer of banks.yaml in one process (the embedded default)."""
    import threading

    from channels.partners import bank_consumer_main, carrier_consumer_main
    from streams.routing import get_partners
    from streams.shutdown import stop_on_signals

    settings = _platform_process_settings()
    stop = stop_on_signals()
    book = get_partners(settings)
    threads = [threading.Thread(target=bank_consumer_main, args=(settings, code, stop), name=code) for code in book.banks]
    threads += [
        threading.Thread(target=carrier_consumer_main, args=(settings, code, stop), name=code) for code in book.carriers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@ledger_cli.callback()
def ledger(ctx: typer.Context) -> None:
    """Without a subcommand: the ledger sink (topics -> SQL, idempotent)."""
    if ctx.invoked_subcommand is None:
        from oversight.ledger import run_ledger

        run_ledger(_platform_process_settings())


@ledger_cli.command("rebuild")
def ledger_rebuild(
    database_url: str = typer.Option(None, help="An empty database to rebuild into (default: DATABASE_URL)."),
) -> None:
    """Replay the topics (the source of truth) into an empty database."""
    from oversight.ledger import LedgerNotEmpty, rebuild

    settings = _servers_from_env(get_settings())
    _setup_logging(settings)
    try:
        counts = rebuild(settings, database_url)
    except LedgerNotEmpty as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    for record, count in sorted(counts.items()):
        typer.echo(f"{record:<20} {count:>9,}")


@cli.command()
def console() -> None:
    """The oversight console: HTTP API (OpenAPI at /docs) and the dashboard. Needs only the ledger database."""
    from oversight.console import run_console
    from streams.metrics import serve_metrics

    settings = get_settings()
    _setup_logging(settings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    run_console(settings)


@cli.command()
def audit() -> None:
    """Reverse accountability audit (预警成案倒查追责) of every case report."""
    from oversight.audit_worker import run_audit

    run_audit(_platform_process_settings())


@cli.command()
def followup() -> None:
    """Follow-up sampling (定期回访抽查) of dissuaded persons, on its schedule."""
    from oversight.followup import run_followup

    run_followup(_platform_process_settings())


@cli.command()
def oversight() -> None:
    """Ledger sink, audit and follow-up sampling in one process (the embedded default)."""
    import threading

    from oversight.audit_worker import run_audit
    from oversight.followup import run_followup
    from oversight.ledger import run_ledger
    from streams.shutdown import stop_on_signals

    settings = _platform_process_settings()
    stop = stop_on_signals()
    threads = [
        threading.Thread(target=run, args=(settings, stop), name=run.__name__)
        for run in (run_audit, run_followup)
    ]
    for thread in threads:
        thread.start()
    try:
        run_ledger(settings, stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@topics_cli.command("apply")
def topics_apply() -> None:
    """Create missing topics and report drift; deletes nothing."""
    from streams.catalog import get_catalog
    from streams.topics_admin import apply_topics

    settings = _servers_from_env(get_settings())
    report = apply_topics(get_catalog(), settings.kafka_bootstrap_servers, settings.replication_factor)
    for line in report.lines():
        typer.echo(line)


@topics_cli.command("list")
def topics_list() -> None:
    """Print the catalog: every topic with its contract, producers and consumers."""
    from rich.console import Console
    from rich.table import Table

    from streams.catalog import get_catalog

    catalog = get_catalog()
    table = Table(title=f"topics.yaml (app id {catalog.app_id})")
    for col in ("id", "name", "parts", "key", "contract", "producers", "consumers"):
        table.add_column(col)
    for spec in catalog.topics.values():
        table.add_row(
            spec.id,
            spec.name,
            str(spec.partitions),
            spec.key,
            spec.contract or "-",
            ", ".join(spec.producers),
            ", ".join(spec.consumers),
        )
    Console(width=200).print(table)


@acl_cli.command("plan")
def acl_plan() -> None:
    """Print every principal and the ACLs it gets (sorted; docs/security.md holds this output)."""
    from streams.acl_plan import build_plan
    from streams.catalog import get_catalog
    from streams.routing import get_partners

    settings = get_settings()
    typer.echo(build_plan(get_catalog(settings.topics_file), get_partners(settings)).text(), nl=False)


@acl_cli.command("apply")
def acl_apply(credentials: str = typer.Option(None, help="Passwords file (default: run_dir/secrets/kafka-users.json); "
                                              "missing ones are generated into it.")) -> None:
    """As the broker's super user: set every principal's SCRAM credential, create missing ACLs, report drift."""
    from pathlib import Path

    from streams.acl_apply import apply_command

    settings = _servers_from_env(get_settings())
    raise typer.Exit(apply_command(settings, Path(credentials) if credentials else None, typer.echo))


def _dead_letter_filters(reason, source, stage, since, until):
    from streams.redrive import Filters, parse_time

    return Filters(reason, source, stage, parse_time(since), parse_time(until))


_REASON = typer.Option(None, help="Only this reason, e.g. not_utf8.")
_SOURCE = typer.Option(None, help="Only from this input topic (id like in_bank, or its name).")
_STAGE = typer.Option(None, help="Only refused by this stage, e.g. ingest.")
_SINCE = typer.Option(None, help="Only received at or after this time (ISO 8601, UTC if no zone).")
_UNTIL = typer.Option(None, help="Only received before this time (ISO 8601, UTC if no zone).")


@dead_letters_cli.command("list")
def dead_letters_list(reason: str = _REASON, source: str = _SOURCE, stage: str = _STAGE, since: str = _SINCE,
                      until: str = _UNTIL, examples: int = typer.Option(3, help="Masked examples to show.")) -> None:
    """Counts by source topic, stage and reason, and a few masked examples."""
    from streams.redrive import list_command

    settings = _servers_from_env(get_settings())
    list_command(settings, _dead_letter_filters(reason, source, stage, since, until), examples, typer.echo)


@dead_letters_cli.command("replay")
def dead_letters_replay(reason: str = _REASON, source: str = _SOURCE, stage: str = _STAGE, since: str = _SINCE,
                        until: str = _UNTIL, dry_run: bool = typer.Option(False, help="Only say what would be sent."),
                        force: bool = typer.Option(False, help="Also send what was replayed before.")) -> None:
    """Send the chosen dead letters' original records back to their input topic (once the cause is fixed)."""
    from streams.redrive import replay_command

    settings = _servers_from_env(get_settings())
    _setup_logging(settings)
    replay_command(settings, _dead_letter_filters(reason, source, stage, since, until), dry_run, force, typer.echo)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context) -> None:
    """The benchmark (docs/performance.md); `antifraud bench --help` lists its options."""
    from bench.__main__ import cli as run_bench

    raise typer.Exit(run_bench(ctx.args))


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def faults(ctx: typer.Context) -> None:
    """The fault suite (docs/reliability.md): kill -9 and restarts under load; `antifraud faults --help`."""
    from faults.suite import main as run_faults

    raise typer.Exit(run_faults(ctx.args))


def _register_backtest() -> None:
    # Its own module (backtest/cli.py): `antifraud rules backtest` beside publish and rollback, and the
    # recorder of the week it replays.
    from backtest.cli import backtest_command, record_command

    rules_cli.command("backtest")(backtest_command)
    cli.command("record-week")(record_command)


_register_backtest()


@cli.command()
def docs(check: bool = typer.Option(False, help="Only report stale files; exit 1 if any.")) -> None:
    """Regenerate the generated docs (settings, topics per domain, rules), docs/contracts.md and docs/schemas/."""
    from streams.docs import stale_files, write_all

    if check:
        stale = stale_files()
        for path in stale:
            typer.echo(f"stale: {path}")
        raise typer.Exit(1 if stale else 0)
    for path in write_all():
        typer.echo(f"wrote {path}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
