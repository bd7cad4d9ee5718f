"""What a bench run does, in one frozen object, and the names of the bench-only topics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from streams.settings import PROJECT_ROOT

# Every topic (and Faust app id) that exists only for the bench starts with this prefix,
# so it can never be mistaken for a platform topic and is easy to delete afterwards.
BENCH_TOPIC_PREFIX = "antifraud-bench."


def bench_topic(name: str) -> str:
    return BENCH_TOPIC_PREFIX + name


RAW_BATCHED_TOPIC = bench_topic("raw-batched")
RAW_PLATFORM_TOPIC = bench_topic("raw-platform")
PASSTHROUGH_APP_ID = bench_topic("passthrough")
PASSTHROUGH_IN = bench_topic("passthrough-in")
PASSTHROUGH_OUT = bench_topic("passthrough-out")
# Faust names its leader topic after the app id; created up front so the broker does not
# auto-create it with its default partition count.
PASSTHROUGH_LEADER = f"{PASSTHROUGH_APP_ID}-__assignor-__leader"
BENCH_PARTITIONS = 4  # the platform's input topics have 4: like for like
BENCH_TOPICS = {
    RAW_BATCHED_TOPIC: BENCH_PARTITIONS,
    RAW_PLATFORM_TOPIC: BENCH_PARTITIONS,
    PASSTHROUGH_IN: BENCH_PARTITIONS,
    PASSTHROUGH_OUT: BENCH_PARTITIONS,
    PASSTHROUGH_LEADER: 1,
}

RESULTS_DIR = PROJECT_ROOT / "bench-results"
DOCS_FILE = PROJECT_ROOT / "docs" / "performance.md"


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and durations; the defaults are the issue's (a full run takes tens of minutes)."""

    # Registry size (each resident: a phone and 1-2 accounts: ~2.5 updates). 100,000 keeps
    # `make bench` under 30 minutes on 2 cores: the reference load costs ~2 worker operations
    # per update at ~2,800/s (measured on Kafka), so 1,000,000 residents alone take ~30 minutes
    # (docs/performance.md). `--persons 1000000` is the size.
    persons: int = 100_000
    intel: int = 100_000  # intelligence list entries
    # Event-mix messages pre-loaded for the pass-through and each stage alone: ingest alone
    # drains ~2,800 events/s on Kafka here, so 250,000 fill its 10 s warm-up and 60 s window.
    events: int = 250_000
    # The chain's pre-load: it drains at a few hundred events/s, so 40,000 is minutes past
    # the warm-up (the rate is "warm-up to 99 % through", not a window) without the chain
    # alone taking a third of the run.
    chain_events: int = 40_000
    raw_records: int = 200_000  # records of the raw broker produce/consume reference
    warmup_s: float = 10.0  # excluded from every rate: worker start, group join, caches
    duration_s: float = 60.0  # measured window after the warm-up (and length of each latency step)
    rates: tuple[float, ...] = (500.0, 2_000.0, 5_000.0)  # offered rates of the latency steps
    alone: tuple[str, ...] | None = None  # stages measured alone; None = every stage in STAGES
    # `antifraud worker` processes in the platform's group for the whole chain and the latency
    # steps (Faust splits the 4 partitions per topic among them). 1 = `antifraud up`'s default
    # (ANTIFRAUD_WORKER_PROCESSES); a stage alone is always one worker (it measures the stage).
    workers: int = 1
    # The reference load's processes: it is the longest phase (1 M residents are ~2.5 M updates
    # through two stages) and its rate is reported, not a target; two use this machine's cores.
    reference_workers: int = 2
    seed: int = 7
    # Faust's broker_commit_interval for the workers the bench starts (None: Faust's 2.8 s,
    # as in production). Progress is read from commits, so a tiny run may lower it to end
    # its phases sooner; commits cost, so a measuring run leaves it alone.
    commit_interval_s: float | None = None
    drain_timeout_s: float = 120.0  # longest wait without progress before a phase is abandoned
    latency_grace_s: float = 30.0  # longest wait for the chain to drain after a latency step
    out_dir: Path = RESULTS_DIR
    keep_run_dir: bool = False
    update_docs: bool = False
    run_dir: Path | None = None  # None: a fresh directory under the settings' run_dir

    def as_dict(self) -> dict:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["run_dir"] = str(self.run_dir) if self.run_dir else None
        data["rates"] = list(self.rates)
        data["alone"] = list(self.alone) if self.alone is not None else None
        return data


@dataclass
class Notes:
    """Things the reader of the results must know (skipped phases, censored numbers)."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)
