"""`python -m bench`: the bench without the antifraud CLI (the same options as `antifraud bench`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.config import BenchConfig

DEFAULTS = BenchConfig()


def parse(argv: list[str] | None = None) -> BenchConfig:
    p = argparse.ArgumentParser(prog="python -m bench", description="Throughput, latency and resources of the pipeline.",
                                epilog="--soak: the whole platform for an hour, sampled once a minute "
                                       "(`antifraud bench --soak --help`); --reach-back: 100,000 intel entries at once "
                                       "against the contact index, beside live traffic (`antifraud bench --reach-back --help`)")
    p.add_argument("--persons", type=int, default=DEFAULTS.persons, help="registry size (residents)")
    p.add_argument("--intel", type=int, default=DEFAULTS.intel, help="intelligence list entries")
    p.add_argument("--events", type=int, default=DEFAULTS.events,
                   help="event-mix messages for the pass-through and each stage alone")
    p.add_argument("--chain-events", type=int, default=DEFAULTS.chain_events,
                   help="event-mix messages for the whole chain")
    p.add_argument("--raw-records", type=int, default=DEFAULTS.raw_records, help="records of the raw broker reference")
    p.add_argument("--warmup", type=float, default=DEFAULTS.warmup_s, help="seconds excluded from every rate")
    p.add_argument("--duration", type=float, default=DEFAULTS.duration_s,
                   help="measured window after the warm-up; also each latency step's length (s)")
    p.add_argument("--rate", type=float, action="append", dest="rates",
                   help="offered rate of a latency step (repeat; default 500, 2000, 5000)")
    p.add_argument("--alone", action="append", help="measure only this stage alone, and those before it (repeat)")
    p.add_argument("--workers", type=int, default=DEFAULTS.workers,
                   help=f"worker processes for the whole chain and the latency steps (default {DEFAULTS.workers}); "
                        "a stage alone always runs in one")
    p.add_argument("--reference-workers", type=int, default=DEFAULTS.reference_workers,
                   help=f"worker processes for the reference load (default {DEFAULTS.reference_workers})")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--commit-interval", type=float, default=None,
                   help="Faust commit interval (s) of the bench's workers; default Faust's 2.8 s (tiny runs only)")
    p.add_argument("--out", type=Path, default=DEFAULTS.out_dir, help="directory of the JSON results")
    p.add_argument("--run-dir", type=Path, default=None, help="working directory (default: a fresh one, removed after)")
    p.add_argument("--keep-run-dir", action="store_true", help="keep logs and stores of the run")
    p.add_argument("--update-docs", action="store_true", help="rewrite the results block of docs/performance.md")
    a = p.parse_args(argv)
    if a.workers < 1 or a.reference_workers < 1:
        p.error("--workers and --reference-workers must be at least 1")
    return BenchConfig(
        persons=a.persons, intel=a.intel, events=a.events, chain_events=a.chain_events, raw_records=a.raw_records, warmup_s=a.warmup,
        duration_s=a.duration, rates=tuple(a.rates) if a.rates else DEFAULTS.rates,
        alone=tuple(a.alone) if a.alone else None, workers=a.workers, reference_workers=a.reference_workers, seed=a.seed,
        commit_interval_s=a.commit_interval, out_dir=a.out, run_dir=a.run_dir,
        keep_run_dir=a.keep_run_dir, update_docs=a.update_docs,
    )


def cli(argv: list[str] | None = None) -> int:
    """`antifraud bench ...` and `python -m bench ...`: the exit code is 1 only when a phase could not be measured."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    if "--soak" in args:  # the long-run mode has options of its own (bench.soak)
        from bench.soak import cli as soak

        return soak([a for a in args if a != "--soak"])
    if "--reach-back" in args:  # issue 21's bulk list against the contact index (bench.bulk_list)
        from bench.bulk_list import cli as reach_back

        return reach_back([a for a in args if a != "--reach-back"])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    from bench.run import main

    results = main(parse(args))
    # Low numbers never fail a run; a phase that could not be measured does.
    return 1 if json.loads(results.read_text())["errors"] else 0


if __name__ == "__main__":
    import sys

    sys.exit(cli())
