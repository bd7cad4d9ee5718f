"""The live console of `antifraud up`: what the system is doing, read from its own metrics.

Every figure comes from scraping the children's Prometheus endpoints, the same numbers
the ops team sees. On a terminal it is a live table; otherwise a summary line every few
seconds (CI logs, tests).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

# (section title, metric sample name, label that splits the section (None: one figure)[, only samples
# with these labels])
SECTIONS = (
    ("events in", "antifraud_events_in_total", "source"),
    ("accepted", "antifraud_events_accepted_total", "source"),
    ("invalid (dead letters)", "antifraud_events_invalid_total", "reason"),
    # Per feed, so the integrator of the feed that sends GBK sees it the same day.
    ("not UTF-8 by source", "antifraud_events_invalid_total", "source", {"reason": "not_utf8"}),
    # A bug met on a record: dead-lettered, the stage went on; someone must look.
    ("internal errors by stage", "antifraud_internal_errors_total", "stage"),
    ("duplicates dropped", "antifraud_duplicates_total", "source"),
    ("alerts by tier", "antifraud_alerts_total", "tier"),
    ("alerts by warning type", "antifraud_alerts_total", "typology"),
    # Late intelligence: residents a listing reached back to, and the retro alerts it raised (回溯预警).
    ("reach-back queued by intel source", "antifraud_reach_back_queued_total", "source"),
    ("retro alerts by intel source", "antifraud_retro_alerts_total", "source"),
    ("actions by channel", "antifraud_actions_total", "channel"),
    ("outcomes by result", "antifraud_outcomes_total", "result"),
    # The dissuasion desk (make run: police visits and hotline calls worked through the desk API).
    ("desk tasks", "antifraud_desk_tasks", "state"),
    ("desk outcomes by the simulated staff", "antifraud_desk_simulated_outcomes_total", "finding"),
    ("bank requests sent", "antifraud_bank_requests_total", "bank", {"status": "apply_sent"}),
    ("simulator offered", "antifraud_simulator_offered_total", "kind"),
    # Which rules version the stream workers judge by (docs/rules.md); 0 for a version they switched from.
    ("stream workers per rules version", "antifraud_rules_version_in_force", "version"),
)


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """Sample name -> {label items: value}; empty when the process is not answering (yet)."""
    try:
        text = httpx.get(url, timeout=1.0).text
    except httpx.HTTPError:
        return {}
    out: dict[str, dict[tuple, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return out


def summarize(platform) -> dict[str, dict[str, float]]:
    """Section title -> {label value: total over every process}."""
    merged: dict[str, dict[tuple, float]] = defaultdict(dict)
    for child in platform.children:
        for name, samples in scrape(child.metrics_url).items():
            merged[name].update({(child.name, *labels): v for labels, v in samples.items()})
    sections: dict[str, dict[str, float]] = {}
    for title, metric, label, *only in SECTIONS:
        wanted = only[0] if only else {}
        totals: dict[str, float] = defaultdict(float)
        for key, value in merged.get(metric, {}).items():
            labels = dict(key[1:])
            if label in labels and all(labels.get(k) == v for k, v in wanted.items()):
                totals[labels[label]] += value
        if totals:
            sections[title] = dict(sorted(totals.items()))
    # A rate over every worker: each holds the closed alerts of its own partitions.
    closed = sum(merged.get("antifraud_dissuasion_closed_alerts", {}).values())
    if closed:
        dissuaded = sum(merged.get("antifraud_dissuasion_dissuaded_alerts", {}).values())
        sections["dissuasion success rate"] = {"dissuaded / closed": dissuaded / closed}
    return sections


def _figure(title: str, value: float) -> str:
    return f"{value:.0%}" if "rate" in title else f"{value:,.0f}"


def state_of(child) -> str:
    """'running', or how it ended and when it comes back (streams.supervisor restarts it)."""
    if child.process is not None and child.process.poll() is None:
        return "running"
    code = child.process.returncode if child.process else "?"
    return f"exited {code}, restarting" if getattr(child, "restart_at", None) is not None else f"exited {code}"


def restarts_of(child) -> str:
    """'2 (last exit 70; crashed: ingest)'; '0' for a child that never exited unexpectedly."""
    restarts, last = getattr(child, "restarts", 0), getattr(child, "last_exit", None)
    if last is None:
        return str(restarts)
    crashed = getattr(child, "crashed_agents", [])
    return f"{restarts} (last exit {last}" + (f"; crashed: {', '.join(crashed)})" if crashed else ")")


def supervision(platform) -> dict[str, str]:
    """Child name -> its restarts, for every child that has exited unexpectedly at least once."""
    return {c.name: restarts_of(c) for c in platform.children if getattr(c, "last_exit", None) is not None}


def render(platform, sections) -> Group:
    procs = Table(title="processes", expand=False)
    for col in ("name", "pid", "state", "restarts", "Prometheus endpoint (console: its page)"):
        procs.add_column(col)
    for child in platform.children:
        procs.add_row(child.name, str(child.process.pid if child.process else "-"), state_of(child),
                      restarts_of(child), child.url or child.metrics_url)
    tables = []
    for title, values in sections.items():
        table = Table(title=title, show_header=False, title_justify="left")
        for name, value in values.items():
            table.add_row(name, _figure(title, value))
        tables.append(table)
    return Group(procs, Columns(tables, padding=(0, 2)))


def one_line(platform, sections) -> str:
    parts = [f"{t}: " + ", ".join(f"{k}={_figure(t, v)}" for k, v in vals.items()) for t, vals in sections.items()]
    down = [f"{c.name} ({state_of(c)})" for c in platform.children if c.process is None or c.process.poll() is not None]
    if down:
        parts.append("stopped: " + ", ".join(down))
    # Always on the line once it happened: a crashed agent never goes unnoticed.
    restarted = supervision(platform)
    if restarted:
        parts.append("restarts: " + ", ".join(f"{name}={text}" for name, text in restarted.items()))
    return " | ".join(parts) or "waiting for the first metrics"


def show_console(platform, stop: threading.Event, interval: float = 1.0) -> None:
    console = Console()
    for child in platform.children:
        where = f"page    {child.url}" if child.url else f"metrics {child.metrics_url}"
        console.print(f"{child.name:<12} pid {child.process.pid:<8} {where}")
    if sys.stdout.isatty():
        with Live(render(platform, {}), console=console, refresh_per_second=2) as live:
            while not stop.wait(interval):
                live.update(render(platform, summarize(platform)))
    else:
        while not stop.wait(max(interval, 3.0)):
            print(time.strftime("%H:%M:%S"), one_line(platform, summarize(platform)), flush=True)
