"""What every phase of a bench run shares: settings, servers, probes and the console."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.config import BENCH_TOPIC_PREFIX, BenchConfig
from bench.offsets import TP, Offsets
from bench.resources import ResourceMonitor
from streams.catalog import Catalog
from streams.settings import Settings
from streams.supervisor import Platform


@dataclass
class Bench:
    config: BenchConfig
    settings: Settings  # servers and probed batching resolved
    platform: Platform
    catalog: Catalog
    stages: tuple[str, ...]  # streams.worker.STAGES when the run started
    offsets: Offsets
    monitor: ResourceMonitor
    console: Console
    tag: str  # this run's stamp: in run tags, so event ids never repeat across runs
    notes: list[str] = field(default_factory=list)

    @property
    def group(self) -> str:
        return self.catalog.app_id  # the stream worker's consumer group

    def worker_env(self) -> dict[str, str]:
        """Extra environment of every worker the bench starts."""
        if self.config.commit_interval_s is None:
            return {}
        return {"BROKER_COMMIT_INTERVAL": str(self.config.commit_interval_s)}  # read by Faust's settings

    def fresh_group(self, label: str) -> str:
        """A consumer group (Faust app id) no process has used: the bench may set its positions.

        Faust also needs its leader topic, created here with one partition rather than
        auto-created by the broker with its default count.
        """
        group = f"{BENCH_TOPIC_PREFIX}{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}-{self.tag.lower()}"
        create_topics(self.settings.kafka_bootstrap_servers, {f"{group}-__assignor-__leader": 1},
                      self.settings.replication_factor or 1)
        return group

    def ends_of(self, topics: list[str]) -> dict[TP, int]:
        return self.offsets.ends(self.offsets.partitions(topics))

    def progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}")


def create_topics(bootstrap: str, topics: dict[str, int], replication_factor: int = 1) -> None:
    """Create the topics that do not exist yet (bench-only topics: never in topics.yaml)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    wanted = [NewTopic(name, num_partitions=n, replication_factor=replication_factor)
              for name, n in topics.items() if name not in existing]
    if wanted:
        for future in admin.create_topics(wanted).values():
            future.result(30)


def delete_bench_topics(bootstrap: str) -> list[str]:
    """Remove every bench-only topic (external servers: the embedded broker dies with the run)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(BENCH_TOPIC_PREFIX)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(30)
    return names
