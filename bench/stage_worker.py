"""`antifraud worker` with only some of its stages: how the bench measures one stage alone.

    python -m bench.stage_worker --group antifraud-bench.alone-enrich-<tag> enrich

It is streams.worker.run_worker with STAGES narrowed and its own consumer group (the
Faust app id) and changelogs, nothing else: the same app, settings, transport, logging
and metrics, so a stage alone runs exactly as it does in the chain.

Why its own group: the bench must say where each measured backlog starts. Tansu
refuses an offset commit from outside a group that has ever had a generation
(UNKNOWN_MEMBER_ID, even when the group is empty), so positions can only be set on a
group that has never run; every bench-measured worker therefore gets a fresh one, and
the platform's own group is first used by the whole-chain phase.
"""

from __future__ import annotations

import argparse
import logging

import streams.catalog
import streams.worker
from streams.catalog import Catalog
from streams.settings import get_settings
from streams.topics_admin import apply_topics


def _use_group(app_id: str) -> Catalog:
    """The catalog with this app id and changelogs of its own, in place of the platform's.

    Before streams.app is imported: it builds the Faust app from the catalog's app id.
    Own changelogs: every phase writes the same tables, and a phase must start empty
    rather than recover the phases before it, which is also where Tansu would stop
    answering (one record per changelog batch, and its fetch cliff: docs/performance.md).
    """
    platform = streams.catalog.get_catalog()
    topics = {
        topic_id: spec.model_copy(update={"name": f"{app_id}.{spec.name}"}) if spec.kind == "changelog" else spec
        for topic_id, spec in platform.topics.items()
    }
    catalog = platform.model_copy(update={"app_id": app_id, "topics": topics})
    streams.catalog.get_catalog = lambda path=None: catalog
    return catalog


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_worker")
    parser.add_argument("--group", help="Faust app id (= consumer group); default: the catalog's")
    parser.add_argument("stages", nargs="+", choices=streams.worker.STAGES)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.group:
        apply_topics(_use_group(args.group), settings.kafka_bootstrap_servers)  # creates its changelogs
    # Pipeline order, whatever order they were given in.
    streams.worker.STAGES = tuple(stage for stage in streams.worker.STAGES if stage in args.stages)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    streams.worker.run_worker(settings)


if __name__ == "__main__":
    main()
