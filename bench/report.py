"""The results as tables: rich on the terminal, markdown in docs/performance.md.

    python -m bench.report bench-results/<timestamp>.json            # rewrite the docs block
    python -m bench.report bench-results/<timestamp>.json --print    # only show the tables

docs/performance.md keeps the latest results between the markers below; everything
outside them is written by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.config import DOCS_FILE

BEGIN, END = "<!-- generated:bench -->", "<!-- /generated:bench -->"


# --------------------------------------------------------------------------- rows (shared)
def _num(value, fmt: str = ",.0f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _worker_use(item: dict, role: str = "worker") -> tuple[str, str]:
    use = (item.get("resources") or {}).get(role) or {}
    return _num(use.get("cpu_s_per_1000_events"), ".2f"), _num(use.get("peak_rss_mb"), ",.0f")


def throughput_rows(results: dict) -> list[list[str]]:
    """measurement, events/s, events, window, method, vs pass-through, CPU s/1k, peak RSS."""
    rows = []
    refs = results.get("references") or {}
    for name, item in (refs.get("raw") or {}).items():
        cpu, rss = _worker_use(item, "broker")
        rows.append([f"raw broker: {name.replace('_', ' ')}", _num(item.get("records_per_s")), "-",
                     _num(item.get("records")), _num(item.get("seconds"), ".1f", " s"), f"{item.get('mb_per_s')} MB/s",
                     "-", f"{cpu} (broker)", f"{rss} (broker)"])
    passthrough = refs.get("passthrough")
    if passthrough:
        rows.append(_drain_row("Faust pass-through (decode, send)", passthrough, "passthrough"))
    load = results.get("reference_load") or {}
    if load.get("drain"):
        rows.append(_drain_row(f"reference load ({load.get('records', 0):,} updates; {'+'.join(load.get('stages', []))})",
                               load["drain"]))
    for stage in results.get("stages") or []:
        if stage.get("skipped"):
            rows.append([f"stage alone: {stage['stage']}", "-", "-", "-", "-", f"skipped: {stage['skipped']}", "-", "-",
                         "-"])
        else:
            rows.append(_drain_row(f"stage alone: {stage['stage']}", stage))
    chain = results.get("chain")
    if chain:
        workers = chain.get("workers", 1)  # results from before --workers: one worker
        rows.append(_drain_row(f"whole chain, {workers} worker{'s' if workers > 1 else ''} "
                               f"({' -> '.join(chain.get('stages', []))})", chain))
    return rows


METHODS = {
    "window": "window after warm-up",
    "chain_drain": "warm-up to 99 % through",
    "drain": "whole drain (short run)",
    # Drained before the first commit: the rate includes the worker's start-up, a floor only.
    "incl_startup": "too few events: incl. start-up",
}


def _drain_row(name: str, item: dict, role: str = "worker") -> list[str]:
    cpu, rss = _worker_use(item, role)
    ratio = item.get("vs_passthrough")
    rate = _num(item.get("events_per_s"))
    if item.get("method") == "incl_startup":
        rate = f"({rate})"
    return [name, rate, _num(item.get("drain_events_per_s")), _num(item.get("events")),
            _num(item.get("window_s"), ".1f", " s"), METHODS.get(item.get("method"), "-"),
            "-" if ratio is None else f"{ratio:.2f}x", cpu, rss]


THROUGHPUT_HEADER = ["measurement", "events/s", "whole drain/s", "events", "window", "method", "vs pass-through",
                     "CPU s / 1k events", "peak RSS MB"]
LATENCY_HEADER = ["offered/s", "achieved/s", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms",
                  "funds warning p99 ms", "drained", "worker CPU s / 1k"]


def latency_rows(results: dict) -> list[list[str]]:
    rows = []
    for step in (results.get("latency") or {}).get("steps", []):
        every, funds = step["all"], step.get("by_tier", {}).get("funds_warning") or {}
        cpu, _ = _worker_use(step)
        rows.append([_num(step["offered_rate"]), _num(step["achieved_rate"]), _num(every["count"]),
                     _num(every["p50_ms"]), _num(every["p95_ms"]), _num(every["p99_ms"]),
                     _num(every["max_ms"]), _num(funds.get("p99_ms")),
                     "yes" if step["drained"] else "no (p99 is a lower bound)", cpu])
    return rows


def memory_rows(results: dict) -> list[list[str]]:
    return [[role, _num(mb, ",.0f")] for role, mb in sorted((results.get("peak_rss_mb") or {}).items())]


def context_lines(results: dict) -> list[str]:
    m, v, s = results.get("machine", {}), results.get("versions", {}), results.get("settings", {})
    c = results.get("config", {})
    lines = [
        f"Run {results.get('started_at')} .. {results.get('finished_at')}; "
        f"{m.get('cores')} cores ({m.get('cpu_model')}), {m.get('memory_gb')} GB; "
        f"load average at start {m.get('load_average')}, at end {m.get('load_average_at_end')}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Servers: {s.get('servers')}; stages: {', '.join(s.get('stages', []))}; "
        f"worker processes {c.get('workers', 1)} (whole chain and latency; CPU summed over them, peak RSS of the "
        f"largest; reference load {c.get('reference_workers', c.get('workers', 1))}; stages alone 1); producer linger "
        f"{s.get('producer_linger_ms')} ms; largest record batch {s.get('producer_max_batch_bytes', 16384):,} B; "
        f"ingest batch {s.get('ingest_batch_size')}.",
        f"Sizes: {c.get('persons'):,} persons, {c.get('intel'):,} intel entries, {c.get('events'):,} events per pass-through and stage alone, "
        f"{c.get('chain_events', c.get('events')):,} for the chain, "
        f"warm-up {c.get('warmup_s')} s, window {c.get('duration_s')} s, rates {c.get('rates')}.",
    ]
    lat = results.get("latency") or {}
    if lat:
        over = lat.get("p99_over_1s_at_rate")
        lines.append(f"Latency measured {lat.get('label')}; p99 first over 1 s at "
                     f"{'(not reached at the rates tried)' if over is None else f'{over:,.0f}/s offered'}.")
    lines += [f"Note: {n}" for n in results.get("notes", [])]
    lines += [f"Error: {e}" for e in results.get("errors", [])]
    return lines


# --------------------------------------------------------------------------- rich
def render(results: dict, console: Console) -> None:
    for title, header, rows in (
        ("Throughput", THROUGHPUT_HEADER, throughput_rows(results)),
        ("Latency", LATENCY_HEADER, latency_rows(results)),
        ("Peak memory over the run", ["process", "peak RSS MB"], memory_rows(results)),
    ):
        table = Table(title=title, title_justify="left")
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in context_lines(results):
        console.print(line, style="red" if line.startswith("Error") else None)


# --------------------------------------------------------------------------- markdown
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: dict, source: str = "") -> str:
    parts = [f"Generated by `python -m bench.report {source}`.".replace("  ", " "), ""]
    parts += ["**Throughput**", "", _md_table(THROUGHPUT_HEADER, throughput_rows(results)), ""]
    parts += ["**Latency**", "", _md_table(LATENCY_HEADER, latency_rows(results)), ""]
    parts += ["**Peak memory over the run**", "", _md_table(["process", "peak RSS MB"], memory_rows(results)), ""]
    parts += [f"- {line}" for line in context_lines(results)]
    return "\n".join(parts)


def update_docs(results: dict, path: Path = DOCS_FILE, source: str = "") -> Path:
    """Rewrite the generated block of docs/performance.md (the rest of the file is kept)."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no {BEGIN} ... {END} block")
    block = f"{BEGIN}\n{markdown(results, source)}\n{END}"
    path.write_text(re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a bench-results/<timestamp>.json file")
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help="the markdown file with the generated block")
    parser.add_argument("--print", action="store_true", help="only print the tables")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if args.print:
        render(results, Console(width=None if sys.stdout.isatty() else 200))
        return
    print(f"updated {update_docs(results, args.docs, args.results.name)}")


if __name__ == "__main__":
    main()
