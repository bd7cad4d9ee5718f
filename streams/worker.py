"""`antifraud worker`: the Faust stream worker with every stage's agents."""

from __future__ import annotations

import importlib
import logging
import threading

from streams.process_exit import exit_after, run_to_exit
from streams.settings import Settings

log = logging.getLogger(__name__)

# The stages this worker runs, in pipeline order; each is a module in agents/.
STAGES = ("ingest", "reference_loader", "enrich", "correlate", "reach_back", "route", "escalate")

# SIGTERM to exit: Faust's stop has been seen hanging (in the consumer's stop after leaving the
# group), so the process ends itself after STOP_GRACE_S, inside the supervisor's 10 s before SIGKILL.
# Offsets not committed by then are read again by the next worker (every stage is idempotent).
STOP_GRACE_S = 8.0
EXIT_STOP_HUNG = 75  # EX_TEMPFAIL: told to stop, could not stop cleanly
# "An ERROR line means a person must act": the frameworks' known false alarms, as
# logger -> the parts a message must all contain. Logged as WARNINGs instead.
SPURIOUS_ERRORS = {
    # Faust checks every assigned partition of an acked topic, the active tables' changelog partitions
    # too, which no stream reads (recovery reads them at start, then they stay paused while the stage
    # writes them): stream_processing_timeout (5 min) after start each is "not started". Input and
    # internal topics keep the ERROR: there it means a stalled stage.
    "faust.transport.drivers.aiokafka": ("Stream has not started processing", "-changelog'"),
    # The same check, logged by our subclass of Faust's consumer thread (mode names a service's logger by its module).
    "streams.faust_transport": ("Stream has not started processing", "-changelog'"),
    # A fresh broker creates __consumer_offsets on the first lookup; aiokafka logs every retry until then.
    "aiokafka.consumer.group_coordinator": ("GroupCoordinatorNotAvailableError",),
    # A partition's leader moved (or was just elected, on a fresh topic): aiokafka asks again after its back-off.
    "aiokafka.consumer.fetcher": ("NotLeaderForPartitionError",),
}


def run_worker(settings: Settings) -> None:
    from streams.metrics import serve_metrics

    (settings.run_dir / "faust" / settings.worker_name).mkdir(parents=True, exist_ok=True)
    port = serve_metrics(settings.metrics_port, settings.metrics_host)

    from faust.worker import Worker

    from streams.rules_versions import follow_rules_versions

    follow_rules_versions(settings)  # before the stages import: a restarted worker judges by the version in force
    from streams.rules_shadow import follow_rules_shadow

    follow_rules_shadow(settings)  # a candidate in shadow (docs/rules.md) is judged beside it from the first batch

    from streams.app import app, quiet_framework_loggers

    for stage in STAGES:
        importlib.import_module(f"agents.{stage}")
    demote_spurious_errors()

    @app.task
    async def _after_logging_setup() -> None:
        quiet_framework_loggers()
        demote_spurious_errors()  # again, should Faust's logging setup have replaced the loggers' filters
        log.info("worker %s: stages %s, metrics on :%d", settings.worker_name, ", ".join(STAGES), port)

    class BoundedStopWorker(Worker):
        def _schedule_shutdown(self, signal) -> None:
            exit_if_stop_hangs(STOP_GRACE_S, signal.name)
            super()._schedule_shutdown(signal)

    run_to_exit(BoundedStopWorker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False))


_watchdog: threading.Timer | None = None


def exit_if_stop_hangs(grace_s: float, why: str) -> None:
    """Start (once) a timer that ends the process if it is still alive `grace_s` from now.

    A thread, not a loop callback: a hung stop may be a blocked event loop.
    """
    global _watchdog
    if _watchdog is None:
        _watchdog = exit_after(grace_s, EXIT_STOP_HUNG, why)


class _DemoteToWarning(logging.Filter):
    """A known false alarm becomes a WARNING (still logged: a real, lasting problem shows as repeats)."""

    def __init__(self, parts: tuple[str, ...]) -> None:
        super().__init__()
        self.parts = parts

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and all(part in record.getMessage() for part in self.parts):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def demote_spurious_errors() -> None:
    for name, parts in SPURIOUS_ERRORS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteToWarning) for f in logger.filters):
            logger.addFilter(_DemoteToWarning(parts))
