"""`antifraud worker` with only some of its stages: how the bench measures one stage alone.

    python -m bench.stage_worker --group antifraud-bench.alone-enrich-<tag> enrich

It is streams.worker.run_worker with STAGES narrowed and its own consumer group (the
Faust app id), nothing else: the same app, settings, transport, tables and changelogs,
logging and metrics, so a stage alone runs exactly as it does in the chain.

Why its own group: its committed offsets are that phase's progress and nothing else's,
set by the bench to where the phase's backlog starts (bench.phases.start_flows_at_mark);
the platform's own group is first used by the whole-chain phase. Tables start empty
because the bench empties the changelogs before the phase (bench.phases.empty_tables)
and every stage worker has a store of its own (bench.processes).
"""

from __future__ import annotations

import argparse
import logging

import streams.catalog
import streams.worker
from streams.catalog import Catalog
from streams.settings import get_settings


def _use_group(app_id: str) -> Catalog:
    """The catalog with this app id in place of the platform's (topics unchanged).

    Before streams.app is imported: it builds the Faust app from the catalog's app id.
    """
    catalog = streams.catalog.get_catalog().model_copy(update={"app_id": app_id})
    streams.catalog.get_catalog = lambda path=None: catalog
    return catalog


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_worker")
    parser.add_argument("--group", help="Faust app id (= consumer group); default: the catalog's")
    parser.add_argument("stages", nargs="+", choices=streams.worker.STAGES)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.group:
        _use_group(args.group)
    # Pipeline order, whatever order they were given in.
    streams.worker.STAGES = tuple(stage for stage in streams.worker.STAGES if stage in args.stages)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    streams.worker.run_worker(settings)


if __name__ == "__main__":
    main()
