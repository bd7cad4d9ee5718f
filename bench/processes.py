"""Child processes of the bench, started the way streams.supervisor starts the platform's.

Same environment (servers, run dir), own session, log file under
run_dir/logs, PR_SET_PDEATHSIG: nothing outlives the bench. Platform.spawn only runs
`streams.cli`; the bench also runs its own modules (the stage launcher, the pass-through).
"""

from __future__ import annotations

import logging

from streams.supervisor import Child, Platform, spawn_stream_workers

log = logging.getLogger(__name__)


def spawn_module(platform: Platform, name: str, module: str, *args: str, **extra_env: str) -> Child:
    return platform.spawn(name, *args, module=module, **extra_env)


def spawn_workers(
    platform: Platform, stages: tuple[str, ...], group: str | None, count: int, **env: str
) -> list[Child]:
    """`count` workers in one consumer group, as `antifraud up` starts them (streams.supervisor).

    group None: the real `antifraud worker` in the platform's group, named worker-1..N;
    else bench.stage_worker with `stages` in `group`, named worker-<stages>-1..N: each with
    its own table store, so none reuses an earlier phase's RocksDB (bench.phases.empty_tables
    empties the changelogs).
    """
    if group is None:
        return spawn_stream_workers(platform, count, **env)
    args, prefix = ("--group", group, *stages), f"worker-{'+'.join(stages)}"
    return spawn_stream_workers(platform, count, args, module="bench.stage_worker", prefix=prefix, **env)


def stop_child(platform: Platform, child: Child, timeout: float = 30.0) -> None:
    platform.stop_child(child, timeout)


def stop_children(platform: Platform, children: list[Child], timeout: float = 30.0) -> None:
    """Several children told at once, then each waited for: they stop in parallel."""
    for child in children:
        if alive(child):
            child.process.terminate()
    for child in children:
        stop_child(platform, child, timeout)


def alive(child: Child) -> bool:
    return child.process is not None and child.process.poll() is None


def all_alive(children: list[Child]) -> bool:
    return bool(children) and all(alive(child) for child in children)
