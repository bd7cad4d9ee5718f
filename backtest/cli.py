"""`antifraud rules backtest` and `antifraud record-week`: typer commands, registered in streams/cli.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import typer


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backtest_command(
    history: Path = typer.Option(..., exists=True, dir_okay=False, help="A recorded history (antifraud record-week)."),
    rules: Path = typer.Option(None, exists=True, dir_okay=False, help="Rules file to test (default: the shipped one)."),
    routing: Path = typer.Option(None, exists=True, dir_okay=False, help="Routing file (default: the shipped one)."),
    compare: Path = typer.Option(None, exists=True, dir_okay=False, help="A second rules file, replayed beside it."),
    compare_routing: Path = typer.Option(None, exists=True, dir_okay=False,
                                         help="Routing for --compare (default: the same as --routing)."),
    start: str = typer.Option(None, "--from", help="Only traffic at or after (ISO 8601, UTC if no zone)."),
    end: str = typer.Option(None, "--to", help="Only traffic before (ISO 8601, UTC if no zone)."),
    plot: Path = typer.Option(Path("backtest.png"), help="Where the plot goes (PNG)."),
) -> None:
    """Replay a recorded history through a rules version off the live path, and score it against the case reports."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from backtest.history import read_header
    from backtest.replay import VersionRun, replay_file
    from backtest.report import plot as write_plot
    from backtest.report import print_table
    from backtest.score import score
    from streams.routing import load_partners, load_routing
    from streams.rules import load_rules
    from streams.settings import get_settings

    settings = get_settings()
    partners = load_partners(settings.banks_file)
    base_routing = load_routing(routing or settings.routing_file)
    runs = [VersionRun((rules or settings.rules_file).stem, load_rules(rules or settings.rules_file), base_routing,
                       partners)]
    if compare is not None:
        other_routing = load_routing(compare_routing) if compare_routing else base_routing
        name = compare.stem if compare.stem != runs[0].name else f"{compare.stem} (compare)"
        runs.append(VersionRun(name, load_rules(compare), other_routing, partners))
    header = read_header(history)
    console = Console()
    console.print(f"history {history}: {header.residents:,} residents, {header.records:,} records, "
                  f"{header.start:%Y-%m-%d %H:%M} to {header.end:%Y-%m-%d %H:%M}; {header.note}")
    started = time.perf_counter()
    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("replay", total=header.records)
        replayed = replay_file(history, runs, header.residents, _time(start), _time(end),
                               lambda n: bar.advance(task, n))
    wall_s = time.perf_counter() - started
    scores = [score(run, replayed) for run in runs]
    zone = header.start.tzinfo  # the city's local time, as the partners stamp it
    span = f"{datetime.fromtimestamp(replayed.start, zone):%Y-%m-%d %H:%M} to " \
           f"{datetime.fromtimestamp(replayed.end, zone):%Y-%m-%d %H:%M %z}"
    title = f"Backtest on {history.name}: {header.residents:,} residents, {span}"
    print_table(scores, title, console)
    console.print(f"{replayed.records:,} records ({replayed.signals:,} signals, {len(replayed.cases):,} case reports, "
                  f"{replayed.refused:,} refused by ingest) replayed through {len(runs)} version(s) in {wall_s:.0f} s")
    console.print(f"plot: {write_plot(scores, plot, title)}")


def record_command(
    out: Path = typer.Option(Path("history-week.jsonl.gz"), help="The file to write."),
    residents: int = typer.Option(20_000, min=100, help="Residents of the synthetic city."),
    days: float = typer.Option(7.0, min=0.1, help="Days of traffic, in simulated time."),
    seed: int = typer.Option(7, help="The city's, the lists' and the traffic's seed."),
    frauds_per_10k_week: float = typer.Option(500.0, min=0, help="Fraud scenarios per 10,000 residents and week."),
) -> None:
    """Record a synthetic week of input traffic (registry, intel, carriers, banks, app, cases) for backtests."""
    import logging

    from simulator.recording import record_week

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    header = record_week(out, residents=residents, days=days, seed=seed, frauds_per_10k_week=frauds_per_10k_week)
    typer.echo(f"wrote {out}: {header.records:,} records ({', '.join(f'{k} {v:,}' for k, v in header.by_topic.items())}),"
               f" {header.frauds:,} frauds, in {time.perf_counter() - started:.0f} s")
