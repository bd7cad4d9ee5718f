"""docker-compose.yml, its Prometheus config and the Dockerfile, checked without Docker.

No Docker engine runs here or in CI, so the stack is held to the Compose Specification
schema and to the code: every variable it sets is a setting the platform reads, every
process that serves metrics is scraped. Each check is a function returning the problems
it found, so the `*_is_caught` tests can show it fails on a broken file.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator
from pydantic import AliasChoices, ValidationError

from streams.kafka_provision import kafka_version
from streams.settings import Settings
from streams.supervisor import CHANNEL_WORKERS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

# `antifraud topics apply` is an admin command that exits; it serves no metrics (streams/cli.py).
ONE_SHOT_COMMANDS = {"topics"}
# Channels with a generic channel worker; line suspensions go to the carriers' own consumers.
CHANNELS = {c.value for c in CHANNEL_WORKERS}


# ------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the <<: merges as Compose does


@pytest.fixture(scope="module")
def targets() -> set[str]:
    config = yaml.safe_load(PROMETHEUS.read_text())
    return {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}


def platform_services(compose: dict) -> dict[str, dict]:
    """Services built from the repo's Dockerfile, i.e. running `antifraud`."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def known_env_vars() -> set[str]:
    """The variables Settings reads: a field's alias if it has one, else prefix + NAME."""
    prefix = Settings.model_config["env_prefix"]
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{prefix}{name.upper()}")
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(str(alias))
    return names


def metrics_ports(compose: dict) -> dict[str, int]:
    """Platform services that serve metrics, with their port."""
    return {
        name: int(env_of(svc)["ANTIFRAUD_METRICS_PORT"])
        for name, svc in platform_services(compose).items()
        if int(env_of(svc).get("ANTIFRAUD_METRICS_PORT", "0")) > 0
    }


# ----------------------------------------------------------------- the checks


def schema_errors(compose: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    # The file names draft-07 by a URI jsonschema does not recognise (https, no '#'), and
    # an unknown $schema silently falls back to the newest draft: choose the draft here.
    assert "draft-07" in schema["$schema"], schema["$schema"]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in Draft7Validator(schema).iter_errors(compose)
    ]


def unknown_env_vars(compose: dict) -> list[str]:
    known = known_env_vars()
    return [
        f"{name}: {var} is not a setting in streams/settings.py"
        for name, svc in platform_services(compose).items()
        for var in env_of(svc)
        if var not in known
    ]


def missing_scrape_targets(compose: dict, targets: set[str]) -> list[str]:
    return [f"{name}:{port}" for name, port in metrics_ports(compose).items() if f"{name}:{port}" not in targets]


def pip_installs_project(run: str) -> bool:
    """`pip install [options] .` within one shell command of a RUN line."""
    return any(re.search(r"\bpip install\b[^;&|]*\s\.(\s|$)", part) for part in re.split(r"&&|;", run))


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


# ------------------------------------------------------------------ (a) schema


def test_compose_validates_against_the_compose_spec(compose):
    assert schema_errors(compose) == []


def test_schema_violation_is_caught(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["worker-1"]["enviroment"] = {"X": "1"}  # misspelt key
    broken["services"]["valkey"]["healthcheck"]["interval"] = 5  # must be a duration string
    assert len(schema_errors(broken)) == 2


# ----------------------------------------------------- (b) env vars are settings


def test_every_platform_env_var_is_a_setting(compose):
    assert platform_services(compose), "no service is built from the Dockerfile"
    assert unknown_env_vars(compose) == []


def test_unknown_env_var_is_caught(compose):
    broken = copy.deepcopy(compose)
    name = next(iter(platform_services(broken)))
    broken["services"][name]["environment"] = {**env_of(broken["services"][name]), "ANTIFRAUD_NO_SUCH": "1"}
    assert unknown_env_vars(broken) == [f"{name}: ANTIFRAUD_NO_SUCH is not a setting in streams/settings.py"]


def test_known_env_vars_follow_the_settings_model():
    known = known_env_vars()
    # The two server URLs carry no prefix (their alias); the rest are ANTIFRAUD_<FIELD>.
    assert {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "ANTIFRAUD_METRICS_PORT"} <= known
    assert not {"ANTIFRAUD_KAFKA_BOOTSTRAP_SERVERS", "ANTIFRAUD_REDIS_URL"} & known


def test_every_platform_env_value_is_valid(compose, monkeypatch):
    """The values parse too: Settings() runs on each service's environment, nothing else."""
    for name, svc in platform_services(compose).items():
        with monkeypatch.context() as env:
            for var in known_env_vars():
                env.delenv(var, raising=False)
            for var, value in env_of(svc).items():
                env.setenv(var, value)
            try:
                Settings()
            except ValidationError as exc:
                pytest.fail(f"{name}: {exc}")


def test_dockerfile_env_vars_are_settings():
    antifraud_vars = {var for var in dockerfile_env() if var.startswith("ANTIFRAUD_")}
    assert antifraud_vars - known_env_vars() == set()
    # Installed into site-packages, the defaults next to the package do not exist there.
    assert {"ANTIFRAUD_TOPICS_FILE", "ANTIFRAUD_RUN_DIR"} <= antifraud_vars


# ------------------------------------------------ (c) servers, topics, KRaft


def test_platform_services_name_real_servers(compose):
    services = compose["services"]
    for name, svc in platform_services(compose).items():
        env = env_of(svc)
        assert env.get("KAFKA_BOOTSTRAP_SERVERS"), f"{name}: no KAFKA_BOOTSTRAP_SERVERS (would start embedded)"
        assert env.get("REDIS_URL"), f"{name}: no REDIS_URL (would start embedded Valkey)"
        for server in env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
            assert server.split(":")[0] in services, f"{name}: bootstrap {server} is not a compose service"
        assert urlsplit(env["REDIS_URL"]).hostname in services, f"{name}: REDIS_URL names no compose service"


def test_topics_service_applies_production_replication(compose):
    platform = platform_services(compose)
    topics = [name for name, svc in platform.items() if command(svc)[:2] == ["topics", "apply"]]
    assert len(topics) == 1, topics
    assert env_of(platform[topics[0]]).get("ANTIFRAUD_REPLICATION_FACTOR") == "3"
    for name, svc in platform.items():
        if name != topics[0]:
            condition = svc.get("depends_on", {}).get(topics[0], {}).get("condition")
            assert condition == "service_completed_successfully", f"{name} may start before topics exist"


def test_stream_worker_and_every_channel_run(compose):
    commands = [command(svc) for svc in platform_services(compose).values()]
    assert sum(cmd == ["worker"] for cmd in commands) >= 2
    channels = [cmd[2] for cmd in commands if cmd[:2] == ["channel-worker", "--channel"]]
    assert sorted(channels) == sorted(CHANNELS)


def test_kafka_is_a_three_node_kraft_cluster(compose):
    services = compose["services"]
    assert not [n for n, s in services.items() if "zookeeper" in (n + s.get("image", "")).lower()]
    kafka = {n: env_of(s) for n, s in services.items() if s.get("image", "").startswith("apache/kafka:")}
    assert len(kafka) == 3
    for name, svc in kafka.items():
        assert services[name]["image"] == f"apache/kafka:{kafka_version()}", "the embedded broker's version (pom.xml)"
        assert "healthcheck" in services[name], name
        assert not any("ZOOKEEPER" in var for var in svc), name
        assert set(svc["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert svc["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert svc["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert svc["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert svc["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert svc["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # One cluster: same id and voters everywhere; every node is a voter under its own id.
    assert len({svc["CLUSTER_ID"] for svc in kafka.values()}) == 1
    assert len({svc["KAFKA_CONTROLLER_QUORUM_VOTERS"] for svc in kafka.values()}) == 1
    voters = dict(v.split("@") for v in next(iter(kafka.values()))["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
    assert {svc["KAFKA_NODE_ID"]: name for name, svc in kafka.items()} == {
        node: hostport.split(":")[0] for node, hostport in voters.items()
    }


def test_valkey_persists_with_aof(compose):
    valkey = compose["services"]["valkey"]
    assert valkey["image"].startswith("valkey/valkey:")
    assert "healthcheck" in valkey
    assert " --appendonly yes" in " " + " ".join(command(valkey))
    assert any(v.endswith(":/data") for v in valkey["volumes"])


# --------------------------------------------------------- (d) scrape targets


def test_every_long_running_platform_service_serves_metrics(compose):
    for name, svc in platform_services(compose).items():
        if command(svc)[0] in ONE_SHOT_COMMANDS:
            continue
        assert name in metrics_ports(compose), f"{name}: set a non-zero ANTIFRAUD_METRICS_PORT"
        # Bound to loopback (the default), the endpoint is unreachable from Prometheus.
        assert env_of(svc).get("ANTIFRAUD_METRICS_HOST") == "0.0.0.0", name


def test_every_metrics_port_is_scraped(compose, targets):
    assert missing_scrape_targets(compose, targets) == []


def test_every_scrape_target_is_a_service_and_port(compose, targets):
    ports = metrics_ports(compose)
    stale = [t for t in targets if not t.startswith("localhost:") and t not in {f"{n}:{p}" for n, p in ports.items()}]
    assert stale == [], "scrape targets with no service behind them"


def test_missing_scrape_target_is_caught(compose, targets):
    assert missing_scrape_targets(compose, targets - {"worker-2:9100"}) == ["worker-2:9100"]


# --------------------------------------------------------------- (e) Dockerfile


def test_dockerfile_installs_the_project_and_runs_antifraud():
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert any(i == "COPY" and "pyproject.toml" in args.split() for i, args in instructions)
    assert any(i == "RUN" and pip_installs_project(args) for i, args in instructions)
    entrypoints = [args for i, args in instructions if i == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["antifraud"]]
    users = [args for i, args in instructions if i == "USER"]
    assert users and users[-1] not in ("root", "0"), "the platform must not run as root"


@pytest.mark.parametrize(
    "run, installs",
    [
        ("pip install --no-deps .", True),
        ("pip install . && rm -rf build", True),
        ("pip install -r /tmp/requirements.txt", False),
        ("pip install antifraud", False),
        ("pip install -r req.txt && cd . && ls", False),
    ],
)
def test_pip_install_check_tells_project_from_requirements(run, installs):
    assert pip_installs_project(run) is installs
