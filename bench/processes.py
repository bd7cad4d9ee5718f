"""Child processes of the bench, started the way streams.supervisor starts the platform's.

Same environment (servers, resolved batching, run dir), own session, log file under
run_dir/logs, PR_SET_PDEATHSIG: nothing outlives the bench. Platform.spawn only runs
`streams.cli`; the bench also runs its own modules (the stage launcher, the pass-through).
"""

from __future__ import annotations

import logging
import signal
import subprocess

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
    """SIGTERM, as the supervisor does (Faust commits on the way out); killed if it hangs."""
    if child.process is not None and child.process.poll() is None:
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s: killed", child.name, timeout)
            child.process.kill()
            child.process.wait()
    if child in platform.children:
        platform.children.remove(child)


def alive(child: Child) -> bool:
    return child.process is not None and child.process.poll() is None
