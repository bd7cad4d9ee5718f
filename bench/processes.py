"""Child processes of the bench, started the way streams.supervisor starts the platform's.

Same environment (servers, resolved batching, run dir), own session, log file under
run_dir/logs, PR_SET_PDEATHSIG: nothing outlives the bench. Platform.spawn only runs
`streams.cli`; the bench also runs its own modules (the stage launcher, the pass-through).
"""

from __future__ import annotations

import logging

from streams.supervisor import Child, Platform

log = logging.getLogger(__name__)


def spawn_module(platform: Platform, name: str, module: str, *args: str, **extra_env: str) -> Child:
    return platform.spawn(name, *args, module=module, **extra_env)


def spawn_worker(platform: Platform, stages: tuple[str, ...], group: str | None = None, **env: str) -> Child:
    """The real `antifraud worker`, or (own group, some stages) the launcher bench.stage_worker."""
    if group is None:
        return platform.spawn("worker", "worker", **env)
    return spawn_module(platform, f"worker-{'+'.join(stages)}", "bench.stage_worker", "--group", group, *stages, **env)


def stop_child(platform: Platform, child: Child, timeout: float = 30.0) -> None:
    platform.stop_child(child, timeout)


def alive(child: Child) -> bool:
    return child.process is not None and child.process.poll() is None
