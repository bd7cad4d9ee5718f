"""`antifraud up`: the whole platform as child processes of one command.

Starts what is not given by the environment (embedded broker, Valkey), creates every
topic from topics.yaml, then starts the stream workers
(ANTIFRAUD_WORKER_PROCESSES of them, in one consumer group), the channel workers and the
simulator, each with its own Prometheus endpoint, and shows a live summary. Ctrl-C (or
SIGTERM) stops every child; children also get PR_SET_PDEATHSIG, so none outlives a
supervisor that is killed outright.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from streams.catalog import get_catalog
from streams.contracts import Channel
from streams.embedded import EmbeddedServer, die_with_parent, free_port, start_broker, start_valkey
from streams.settings import Settings
from streams.topics_admin import apply_topics

log = logging.getLogger(__name__)

# Channels with a generic channel worker; line suspension goes to the carriers (channels/partners.py).
CHANNEL_WORKERS = [c for c in Channel if c is not Channel.line_suspension]


@dataclass
class Child:
    name: str
    argv: list[str]
    metrics_port: int
    process: subprocess.Popen | None = None
    url: str | None = None  # what to show instead of the metrics endpoint (the console's page)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@dataclass
class Platform:
    settings: Settings
    servers: list[EmbeddedServer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

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
        log_path = self.settings.run_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            child.process = subprocess.Popen(
                child.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.child_env(child.metrics_port, **extra_env),
                # Own session: a terminal's Ctrl-C reaches the supervisor only, which stops
                # the children in order (workers before the broker they talk to).
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.children.append(child)
        log.info("started %s (pid %d), log %s", name, child.process.pid, log_path)
        return child

    def stop_child(self, child: Child, timeout: float = 15.0) -> None:
        """One child: SIGTERM (Faust commits on the way out), killed if it hangs."""
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        self._reap(child, timeout)
        if child in self.children:
            self.children.remove(child)

    @staticmethod
    def _reap(child: Child, timeout: float) -> None:
        if child.process is None:
            return
        try:
            child.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s: killed", child.name, timeout)
            child.process.kill()
            child.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        # Every child is told first, then each is waited for: they stop in parallel.
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            self._reap(child, timeout)
        for server in reversed(self.servers):
            server.stop()


def bring_up(settings: Settings, with_simulator: bool = True) -> Platform:
    """Start everything; returns once every child is spawned (the caller shows the console)."""
    platform = Platform(settings)
    settings = platform.start_servers()
    report = apply_topics(get_catalog(settings.topics_file), settings.kafka_bootstrap_servers, settings.replication_factor)
    for line in report.lines():
        log.info("topics: %s", line)
    spawn_stream_workers(platform, settings.worker_processes)
    for channel in CHANNEL_WORKERS:
        platform.spawn(f"ch-{channel.value}", "channel-worker", "--channel", channel.value)
    platform.spawn("partners", "partners")  # the banks' and carriers' side, for the embedded default
    platform.spawn("oversight", "oversight")
    port, tokens = console_port(), console_tokens(settings)
    console = platform.spawn(
        "console", "console", ANTIFRAUD_CONSOLE_PORT=str(port), ANTIFRAUD_CONSOLE_TOKENS=json.dumps(tokens)
    )
    console.url = f"http://127.0.0.1:{port}/"
    for token, unit in tokens.items():
        log.info("console %s  sign in as %s with token %s", console.url, unit, token)
    if with_simulator:
        platform.spawn("simulator", "simulate")
    return platform


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
    try:
        show_console(platform, stop)
    finally:
        platform.stop()
        log.info("stopped: no child process is left")
