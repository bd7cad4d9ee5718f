"""Make the broker match topics.yaml: create what is missing, report drift, delete nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.catalog import Catalog, TopicConfig

# Configs compared for drift; brokers report many more that topics.yaml does not manage.
MANAGED_CONFIGS = ("retention.ms", "cleanup.policy", "segment.ms")


@dataclass
class Drift:
    topic: str
    what: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.actual}, topics.yaml says {self.expected}"


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"drift   {d}" for d in self.drift]
        if not self.created and not self.drift:
            out.append(f"no changes ({len(self.unchanged)} topics match topics.yaml)")
        return out


def apply_topics(
    catalog: Catalog, bootstrap: str, replication_override: int | None = None, timeout: float = 30.0,
    security: dict | None = None,
) -> ApplyReport:
    admin = AdminClient({"bootstrap.servers": bootstrap, **(security or {})})  # security: the admin's SASL login
    wanted = catalog.configs(replication_override)
    existing = admin.list_topics(timeout=timeout).topics
    report = ApplyReport()

    missing = [t for t in wanted if t.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor, config=t.configs)
                for t in missing
            ],
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                # Another process created it between list and create: that is not an error.
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
            report.created.append(name)

    present = [t for t in wanted if t.name in existing]
    report.drift += _partition_drift(present, existing)
    report.drift += _config_drift(admin, present, timeout)
    drifted = {d.topic for d in report.drift}
    report.unchanged = [t.name for t in present if t.name not in drifted]
    return report


def _partition_drift(wanted: list[TopicConfig], existing) -> list[Drift]:
    out = []
    for topic in wanted:
        actual = len(existing[topic.name].partitions)
        if actual != topic.partitions:
            out.append(Drift(topic.name, "partition count", str(topic.partitions), str(actual)))
    return out


def _config_drift(admin: AdminClient, wanted: list[TopicConfig], timeout: float) -> list[Drift]:
    if not wanted:
        return []
    futures = admin.describe_configs([ConfigResource("topic", t.name) for t in wanted], request_timeout=timeout)
    by_name = {t.name: t for t in wanted}
    out = []
    for resource, future in futures.items():
        actual = future.result(timeout)
        topic = by_name[resource.name]
        for key in MANAGED_CONFIGS:
            expected = topic.configs[key]
            entry = actual.get(key)
            # A broker that does not report a config at all cannot be checked; say so once.
            value = entry.value if entry is not None else "(not reported)"
            if value != expected:
                out.append(Drift(topic.name, key, expected, value))
    return out
