"""`antifraud up`: the whole platform as child processes of one command.

Starts what is not given by the environment (embedded broker, Valkey), creates every
topic from topics.yaml, then starts the stream workers
(ANTIFRAUD_WORKER_PROCESSES of them, in one consumer group), the channel workers and the
simulator, each with its own Prometheus endpoint, and shows a live summary. Ctrl-C (or
SIGTERM) stops every child; children also get PR_SET_PDEATHSIG, so none outlives a
supervisor that is killed outright.

A child that exits while the platform is not stopping (a crashed agent ends its worker
non-zero, streams.isolation; a kill -9; an out-of-memory kill) is restarted with
exponential back-off (`Platform.restart_exited`), logged as a WARNING and counted per
child; the console shows the restarts, the last exit code and the agents that crashed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.catalog import get_catalog
from streams.contracts import Channel
from streams.embedded import EmbeddedServer, die_with_parent, free_port, start_broker, start_valkey
from streams.process_exit import EXIT_TO_REREAD
from streams.settings import Settings
from streams.topics_admin import apply_topics

log = logging.getLogger(__name__)

# Channels with a generic channel worker; line suspension goes to the carriers (channels/partners.py).
CHANNEL_WORKERS = [c for c in Channel if c is not Channel.line_suspension]

# Restart back-off: 1 s, doubling to 60 s; a child that ran RESET_AFTER_S starts again from 1 s,
# so a crash loop costs little CPU while a rare crash is repaired at once; a worker that stopped
# itself to read skipped records again (exit EXIT_TO_REREAD) is restarted after 1 s, every time.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
RESET_AFTER_S = 60.0
# The person `up` lets sign in at the desk (the dev station token's station); the simulated staff leaves
# this unit's untaken tasks to them for a while (simulator/desk_worker.py).
DESK_PERSON = ("duty.zk01ps01", "station:ZK01-PS01", "officer")
STOP_TIMEOUT_S = 10.0  # SIGTERM, then SIGKILL: every process ends within 10 s (the worker's own watchdog is 8 s)
# The line streams.isolation logs when an agent, timer or task crashes and ends its worker.
_CRASHED_AGENT = re.compile(rb"agent (\S+) crashed")
_LOG_TAIL_BYTES = 1 << 20


@dataclass
class Child:
    name: str
    argv: list[str]
    metrics_port: int
    process: subprocess.Popen | None = None
    url: str | None = None  # what to show instead of the metrics endpoint (the console's page)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    log_path: Path | None = None
    # Supervision: restarts so far, the last unexpected exit code, the agents that crashed in it.
    restarts: int = 0
    last_exit: int | None = None
    crashed_agents: list[str] = field(default_factory=list)
    started_at: float = 0.0  # clock of the last start
    log_offset: int = 0  # size of the log at the last start: where this run's lines begin
    backoff_s: float = BACKOFF_FIRST_S
    restart_at: float | None = None  # set while an exited child waits out its back-off

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@dataclass
class Platform:
    settings: Settings
    servers: list[EmbeddedServer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic  # injectable: tests drive the back-off without waiting
    stopping: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start_servers(self) -> Settings:
        """Embedded broker and Valkey for whatever the environment does not name."""
        updates = {}
        if self.settings.kafka_bootstrap_servers is None:
            broker = start_broker(self.settings.run_dir)
            self.servers.append(broker)
            updates["kafka_bootstrap_servers"] = broker.bootstrap
        if self.settings.redis_url is None:
            valkey = start_valkey(self.settings.run_dir)
            self.servers.append(valkey)
            updates["redis_url"] = valkey.url
        self.settings = self.settings.model_copy(update=updates)
        return self.settings

    def child_env(self, metrics_port: int, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.settings.kafka_bootstrap_servers,
            REDIS_URL=self.settings.redis_url,
            ANTIFRAUD_RUN_DIR=str(self.settings.run_dir),
            ANTIFRAUD_METRICS_PORT=str(metrics_port),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def spawn(self, name: str, *args: str, module: str = "streams.cli", **extra_env: str) -> Child:
        """`python -m <module> <args>` as a child: own log, own metrics port, own session, dies with us."""
        child = Child(name, [sys.executable, "-m", module, *args], free_port())
        child.env = self.child_env(child.metrics_port, **extra_env)
        child.log_path = self.settings.run_dir / "logs" / f"{name}.log"
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._start(child)
        self.children.append(child)
        return child

    def _start(self, child: Child) -> None:
        with child.log_path.open("ab") as out:
            child.log_offset = out.tell()
            child.process = subprocess.Popen(
                child.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child.env,
                # Own session: a terminal's Ctrl-C reaches the supervisor only, which stops
                # the children in order (workers before the broker they talk to).
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        child.started_at = self.clock()
        log.info("started %s (pid %d), log %s", child.name, child.process.pid, child.log_path)

    def restart_exited(self) -> None:
        """One supervision pass: notice children that exited, restart those whose back-off is over.

        Called every second or so by `supervise`; never while stopping (a child that exits
        because it was told to is not restarted).
        """
        with self._lock:
            if self.stopping:
                return
            now = self.clock()
            for child in self.children:
                if child.process is None or child.process.poll() is None:
                    continue
                if child.restart_at is None:
                    self._exited(child, now)
                if now >= child.restart_at:
                    child.restart_at = None
                    child.restarts += 1
                    self._start(child)

    def _exited(self, child: Child, now: float) -> None:
        code = child.process.returncode
        if now - child.started_at >= RESET_AFTER_S or code == EXIT_TO_REREAD:
            # It ran a while, or it stopped itself to read records again: neither is a crash loop.
            child.backoff_s = BACKOFF_FIRST_S
        child.last_exit = code
        child.crashed_agents = crashed_agents(child.log_path, child.log_offset)
        child.restart_at = now + child.backoff_s
        log.warning("%s (pid %d) exited unexpectedly with %s after %.0f s%s: restart %d in %.0f s, log %s",
                    child.name, child.process.pid, describe_exit(code), now - child.started_at,
                    f" (crashed agents: {', '.join(child.crashed_agents)})" if child.crashed_agents else "",
                    child.restarts + 1, child.backoff_s, child.log_path)
        if code != EXIT_TO_REREAD:
            child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)

    def stop_child(self, child: Child, timeout: float = STOP_TIMEOUT_S) -> None:
        """One child: SIGTERM (Faust commits on the way out), killed if it hangs."""
        with self._lock:  # not restarted behind our back
            if child in self.children:
                self.children.remove(child)
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        self._reap(child, timeout)

    @staticmethod
    def _reap(child: Child, timeout: float) -> None:
        if child.process is None:
            return
        try:
            child.process.wait(max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time after SIGTERM: killed", child.name)
            child.process.kill()
            child.process.wait()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        with self._lock:
            self.stopping = True  # from now on an exit is expected: nothing is restarted
        # Every child is told first, then all are waited for against one deadline: they stop in
        # parallel, and whatever still runs `timeout` after SIGTERM is killed.
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            self._reap(child, deadline - time.monotonic())
        for server in reversed(self.servers):
            server.stop()


def supervise(platform: Platform, stop: threading.Event, interval: float = 1.0) -> threading.Thread:
    """A thread that restarts exited children until `stop` is set."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                platform.restart_exited()
            except Exception:  # a failed restart (fork refused, disk full) is retried on the next pass
                log.exception("supervision pass failed")

    thread = threading.Thread(target=loop, name="supervisor", daemon=True)
    thread.start()
    return thread


def describe_exit(code: int | None) -> str:
    """'exit code 70', or 'signal SIGKILL' for a negative Popen return code."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def crashed_agents(log_path: Path | None, since: int) -> list[str]:
    """The agents streams.isolation logged as crashed in the child's log since `since` (its last start)."""
    if log_path is None or not log_path.exists():
        return []
    with log_path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(since, size - _LOG_TAIL_BYTES))
        tail = f.read()
    return sorted({m.group(1).decode(errors="replace") for m in _CRASHED_AGENT.finditer(tail)})


def bring_up(settings: Settings, with_simulator: bool = True) -> Platform:
    """Start everything; returns once every child is spawned (the caller shows the console)."""
    platform = Platform(settings)
    settings = platform.start_servers()
    report = apply_topics(get_catalog(settings.topics_file), settings.kafka_bootstrap_servers, settings.replication_factor)
    for line in report.lines():
        log.info("topics: %s", line)
    if settings.shadow_rules is not None:
        shadow_candidate(settings, settings.shadow_rules)
    spawn_stream_workers(platform, settings.worker_processes)
    desk = desk_channels(settings, with_simulator)
    for channel in CHANNEL_WORKERS:
        platform.spawn(f"ch-{channel.value}", "channel-worker", "--channel", channel.value,
                       ANTIFRAUD_DESK_CHANNELS=json.dumps(desk))
    platform.spawn("partners", "partners")  # the banks' and carriers' side, for the embedded default
    platform.spawn("oversight", "oversight")
    port, tokens = console_port(), console_tokens(settings)
    console = platform.spawn(
        "console", "console", ANTIFRAUD_CONSOLE_PORT=str(port), ANTIFRAUD_CONSOLE_TOKENS=json.dumps(tokens)
    )
    console.url = f"http://127.0.0.1:{port}/"
    for token, unit in tokens.items():
        log.info("console %s  sign in as %s with token %s", console.url, unit, token)
    if desk:
        show_desk_person(settings, console.url)
    if with_simulator:
        platform.spawn("simulator", "simulate")
        if desk:
            platform.spawn("desk-sim", "desk-simulator", "--console", console.url, "--human-unit", DESK_PERSON[1])
    return platform


def shadow_candidate(settings: Settings, rules_file: Path) -> None:
    """ANTIFRAUD_SHADOW_RULES: the candidate in shadow, as `antifraud rules shadow` puts it; a refused one
    is logged and the platform comes up without a shadow (it is a trial, not a reason to stop)."""
    from confluent_kafka import KafkaException

    from streams.rules_publishing import Refused
    from streams.rules_shadow import set_shadow

    deadline = time.monotonic() + 30
    while True:
        try:
            record = set_shadow(settings, rules_file, None, "antifraud up", f"ANTIFRAUD_SHADOW_RULES={rules_file}")
            break
        except (KafkaException, TimeoutError) as exc:
            # Topics just created answer NOT_LEADER for a moment on a fresh broker: asked again until the deadline.
            if time.monotonic() >= deadline:
                log.error("shadow: %s not put in shadow: %s", rules_file, exc)
                return
            time.sleep(1)
        except Refused as exc:
            log.error("shadow: %s not put in shadow: %s", rules_file, exc)
            return
    log.info("shadow: %s in shadow beside the version in force; compare them on the console", record.candidate.version)


def desk_channels(settings: Settings, with_simulator: bool) -> list[str]:
    """make run's human channels go to the desk, worked by the simulated staff through its API (and by
    anyone who signs in); ANTIFRAUD_DESK_CHANNELS decides when set (`[]`: the simulated gateway)."""
    if "ANTIFRAUD_DESK_CHANNELS" in os.environ or not with_simulator:
        return list(settings.desk_channels)
    return [Channel.police_visit.value, Channel.hotline_call.value]


def show_desk_person(settings: Settings, console_url: str) -> None:
    """The person who may sign in at the desk: made with a generated password at the first start of a
    run directory, which is printed this once (on stdout, not in a log) and kept nowhere."""
    from oversight.db import migrate
    from oversight.desk.people import first_person

    user, unit, role = DESK_PERSON
    engine = migrate(settings)
    try:
        with engine.begin() as conn:
            password = first_person(conn, user, unit, role)
    finally:
        engine.dispose()
    if password is not None:
        print(f"desk    {console_url}desk  sign in as {user} ({role}, {unit}) with password {password}  "
              "(shown this once: note it)", flush=True)
    else:
        log.info("desk %sdesk  sign in as %s (%s, %s): its password was shown when this run directory was made; "
                 "`python -m oversight.desk.people passwd --user %s` sets a new one", console_url, user, role, unit,
                 user)


def worker_names(count: int, prefix: str = "worker") -> list[str]:
    """worker-1 .. worker-<count>: child names, log files and ANTIFRAUD_WORKER_NAME (table store directory)."""
    return [f"{prefix}-{n}" for n in range(1, count + 1)]


def spawn_stream_workers(
    platform: Platform, count: int, args: tuple[str, ...] = ("worker",), module: str = "streams.cli",
    prefix: str = "worker", **extra_env: str,
) -> list[Child]:
    """`count` stream workers in one consumer group (the app id): Faust splits the partitions among them.

    Each has its own name, so its own log and its own table stores (run_dir/faust/<name>:
    two processes must never open the same RocksDB), and, like every child, its own
    metrics port; the console adds their metrics up.
    """
    return [platform.spawn(name, *args, module=module, **{**extra_env, "ANTIFRAUD_WORKER_NAME": name})
            for name in worker_names(count, prefix)]


def console_port() -> int:
    """The configured console port, or 8080 when free, or any free port: `up` must not fail on a busy port."""
    if "ANTIFRAUD_CONSOLE_PORT" in os.environ:
        return int(os.environ["ANTIFRAUD_CONSOLE_PORT"])
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 8080))
            return 8080
        except OSError:
            return free_port()


def console_tokens(settings: Settings) -> dict[str, str]:
    """The configured unit tokens, or development ones: the city centre and one police station."""
    if settings.console_tokens:
        return dict(settings.console_tokens)
    return {f"dev-centre-{secrets.token_hex(4)}": "centre", f"dev-station-{secrets.token_hex(4)}": "station:ZK01-PS01"}


def run_up(settings: Settings, with_simulator: bool = True) -> None:
    from streams.console import show_console

    stop = threading.Event()

    def _on_signal(signum, _frame) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    platform = bring_up(settings, with_simulator)
    supervisor = supervise(platform, stop)
    try:
        show_console(platform, stop)
    finally:
        stop.set()
        supervisor.join(5)
        platform.stop()
        log.info("stopped: no child process is left")
