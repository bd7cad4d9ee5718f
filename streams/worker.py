"""`antifraud worker`: the Faust stream worker with every stage's agents."""

from __future__ import annotations

import importlib
import logging

from streams.settings import Settings

log = logging.getLogger(__name__)

# The stages this worker runs, in pipeline order; each is a module in agents/.
STAGES = ("ingest", "reference_loader", "enrich", "correlate", "route", "escalate")


def run_worker(settings: Settings) -> None:
    from streams.metrics import serve_metrics

    (settings.run_dir / "faust" / settings.worker_name).mkdir(parents=True, exist_ok=True)
    port = serve_metrics(settings.metrics_port, settings.metrics_host)

    from faust.worker import Worker

    from streams.app import app, quiet_framework_loggers

    for stage in STAGES:
        importlib.import_module(f"agents.{stage}")

    @app.task
    async def _after_logging_setup() -> None:
        quiet_framework_loggers()
        log.info("worker %s: stages %s, metrics on :%d", settings.worker_name, ", ".join(STAGES), port)

    Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False).execute_from_commandline()
