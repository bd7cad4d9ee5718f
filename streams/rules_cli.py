"""`antifraud rules`: publish, roll back and list the rules versions (docs/rules.md).

The group is its own Typer app, registered by streams/cli.py; other rules commands add
themselves to `rules_cli` here.
"""

from __future__ import annotations

from pathlib import Path

import typer

rules_cli = typer.Typer(no_args_is_help=True, help="Rules versions: publish, roll back, history (docs/rules.md).")

_BY = typer.Option(..., "--by", help="Who publishes (your name or user id): kept with the version and in the ledger.")
_WHY = typer.Option(..., "--why", help="Why: kept with the version and in the ledger.")


def _settings():
    from streams.cli import _servers_from_env, _setup_logging
    from streams.settings import get_settings

    settings = _servers_from_env(get_settings())
    _setup_logging(settings)
    return settings


def _refused(exc: Exception) -> typer.Exit:
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException | TimeoutError):  # the files were fine: the broker did not answer
        typer.echo(f"the rules versions topic could not be read, nothing published: {exc}", err=True)
        return typer.Exit(2)
    typer.echo(f"refused, nothing published: {exc}", err=True)
    return typer.Exit(1)


def _broker_errors() -> tuple[type[Exception], ...]:
    from confluent_kafka import KafkaException

    from streams.rules_publishing import Refused

    return Refused, KafkaException, TimeoutError


@rules_cli.command()
def publish(rules_file: Path = typer.Argument(..., help="The rules (rules.yaml's form); its `version:` names the version."),
            routing: Path | None = typer.Option(None, "--routing", help="routing.yaml's form; default: the routing "
                                                "of the version in force."),
            by: str = _BY, why: str = _WHY) -> None:
    """Check the rules (and routing) as the workers load them, then publish them as the version in force."""
    from streams.rules_publishing import publish as publish_version

    settings = _settings()
    try:
        record = publish_version(settings, rules_file, routing, by, why)
    except _broker_errors() as exc:
        raise _refused(exc) from None
    typer.echo(f"published {record.version}; every worker switches to it at its next batch")


@rules_cli.command()
def rollback(version: str = typer.Argument(..., help="The version to put back in force (see `antifraud rules history`)."),
             by: str = _BY, why: str = _WHY) -> None:
    """Publish an older version again, as the version in force."""
    from streams.rules_publishing import rollback as rollback_to

    settings = _settings()
    try:
        record = rollback_to(settings, version, by, why)
    except _broker_errors() as exc:
        raise _refused(exc) from None
    typer.echo(f"{record.version} in force again (was {record.rollback_from})")


@rules_cli.command()
def history() -> None:
    """The versions on the topic, oldest first, the one in force marked *; every publication is in the ledger."""
    from streams.rules_publishing import history_lines, known_versions

    try:
        known = known_versions(_settings())
    except _broker_errors() as exc:
        typer.echo(f"the rules versions topic could not be read: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in history_lines(known):
        typer.echo(line)


@rules_cli.command()
def shadow(rules_file: Path | None = typer.Argument(None, help="The candidate rules (rules.yaml's form, its own "
                                                           "`version:`); omit with --stop."),
           routing: Path | None = typer.Option(None, "--routing", help="The candidate's routing.yaml; default: the "
                                               "routing of the version in force."),
           stop: bool = typer.Option(False, "--stop", help="Stop the shadow: correlate judges by the version in force only."),
           by: str = _BY, why: str = _WHY) -> None:
    """Run a candidate version in shadow beside the one in force: its alerts go to alerts.shadow only
    and the console compares them with the live ones (docs/rules.md, Shadow)."""
    from streams.rules_shadow import set_shadow, stop_shadow

    if stop == (rules_file is not None):
        typer.echo("give either a candidate rules file or --stop", err=True)
        raise typer.Exit(1)
    settings = _settings()
    try:
        if stop:
            stop_shadow(settings, by, why)
            typer.echo("shadow stopped; correlate stops judging the candidate at its next batch")
            return
        record = set_shadow(settings, rules_file, routing, by, why)
    except _broker_errors() as exc:
        raise _refused(exc) from None
    typer.echo(f"{record.candidate.version} in shadow; its alerts go to alerts.shadow only (compare them on the console)")
