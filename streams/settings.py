"""All configuration, in one frozen object read from the environment.

Production selects its servers with KAFKA_BOOTSTRAP_SERVERS and REDIS_URL; when both
are unset the platform starts its embedded broker and Valkey (see streams.embedded).
Every other setting is ANTIFRAUD_<NAME>. docs/settings.md is generated from the field
descriptions here (`antifraud docs`), so it is never written twice.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANTIFRAUD_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers; unset = start the embedded broker.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL"),
        description="Redis/Valkey URL; unset = start the embedded Valkey.",
    )
    kafka_username: str | None = Field(
        None,
        description="This process's principal on the broker (SASL/SCRAM, docs/security.md); unset = no login.",
    )
    kafka_password: SecretStr | None = Field(None, description="The password of ANTIFRAUD_KAFKA_USERNAME.")
    run_dir: Path = Field(
        PROJECT_ROOT / "run",
        description="Working directory: Valkey AOF data, Faust table stores, logs.",
    )
    topics_file: Path = Field(
        PROJECT_ROOT / "topics.yaml", description="The topic catalog."
    )
    rules_file: Path = Field(PROJECT_ROOT / "rules.yaml", description="The detection rules (docs/detection.md).")
    shadow_rules: Path | None = Field(
        None, description="`antifraud up` (make run) puts these candidate rules in shadow beside the version in force "
        "(e.g. rules.candidate.yaml); the console compares the two (docs/rules.md, Shadow).")
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Overrides every topic's replication factor (production: 3).",
    )
    broker_session_timeout_s: float = Field(
        10.0,
        ge=6,
        description="Consumer group session timeout: how long the partitions of a worker that died without "
        "leaving its group (kill -9, a lost machine) wait before another member takes them.",
    )
    broker_heartbeat_interval_s: float = Field(1.0, gt=0, description="Group heartbeat.")
    stream_stall_s: float = Field(
        20.0,
        ge=1,
        description="A stream worker that holds nothing of a partition whose commit stays behind its end this "
        "long reads it again from the commit (streams/faust_transport.py).",
    )
    producer_linger_ms: int = Field(
        5, ge=0, description="Producer linger: a few ms batches sends and saves broker CPU."
    )
    producer_max_batch_bytes: int = Field(
        512 * 1024,
        ge=16 * 1024,
        le=900 * 1024,
        description="Largest record batch a stream worker sends: a micro-batch's records for a partition "
        "go as one (streams.outbox). Below the producer's 1 MB request limit.",
    )
    stream_max_poll_records: int = Field(
        250, gt=0, description="Most records a stream worker's consumer hands to Faust per fetch. Faust hands "
        "them on one by one, partition after partition: unbounded, a bulk list's 100,000 records came in one "
        "and every live record behind them waited for all of them (docs/performance.md, Reach-back).",
    )
    stream_max_fetch_bytes: int = Field(
        128 * 1024, ge=16 * 1024, description="Most bytes fetched per partition at a time by a stream worker: a "
        "bulk partition's fetch is drained before the partitions after it, so it is kept to a few hundred records.",
    )
    worker_name: str = Field(
        "worker-1", description="Name of this stream worker; its table stores live in run_dir/faust/<name>."
    )
    table_write_buffer_mb: int = Field(
        8, ge=1, description="RocksDB memtable size of each table partition's store (two are kept). Faust's "
        "defaults, 64 MB x 3 and a 2 GB block cache for each of the 12 stores, let one worker grow to 4.4 GB "
        "in an hour."
    )
    table_block_cache_mb: int = Field(
        16, ge=1, description="RocksDB block cache of each table partition's store (Faust's default: 2 GB each)."
    )
    worker_processes: int = Field(
        1,
        ge=1,
        description="Stream worker processes `antifraud up` starts (worker-1, worker-2, ...): the same agents in "
        "one consumer group, splitting the partitions (4 per topic: beyond 4 they idle). One worker is CPU-bound "
        "on one core; 2 drained the bench's whole chain ~1.6x as fast on 2 cores (docs/performance.md). 1 by "
        "default: the embedded broker shares those cores. Raise it to the cores the workers may use.",
    )
    log_level: str = Field("INFO", description="Log level of the platform's own loggers.")
    metrics_port: int = Field(
        0, ge=0, description="Port of this process's Prometheus endpoint; 0 = any free port."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the Prometheus endpoint binds (0.0.0.0 in containers)."
    )
    max_event_bytes: int = Field(
        65536, gt=0, description="Input messages larger than this are dead-lettered."
    )
    max_future_skew_s: float = Field(
        300.0,
        ge=0,
        description="An event timestamped further than this in the future is dead-lettered.",
    )
    dedup_window_s: int = Field(
        86400, gt=0, description="A repeated event_id within this window is a duplicate."
    )
    ingest_batch_size: int = Field(
        500, gt=0, description="Events taken per micro-batch at ingest (one Valkey round trip)."
    )
    ingest_batch_within_s: float = Field(
        0.01, gt=0, description="Longest wait to fill an ingest micro-batch."
    )
    enrich_batch_size: int = Field(500, gt=0, description="Events per micro-batch at enrich.")
    enrich_batch_within_s: float = Field(0.01, gt=0, description="Longest wait to fill such a micro-batch.")
    enrich_cache_size: int = Field(100_000, ge=0, description="Reference entries (misses too) in each process's cache.")
    enrich_cache_max_age_s: float = Field(300.0, gt=0, description="A cached reference entry is re-read after this.")
    reference_barrier_timeout_s: float = Field(
        5.0, gt=0, description="Longest enrich waits for the reference loader to apply what is already on the "
        "reference topics before it judges a batch (docs/enrichment.md); then it judges without it and says so.",
    )
    reference_barrier_max_backlog: int = Field(
        200, gt=0, description="A reference partition the loader is more than this many records behind on is not "
        "waited for at all (a bulk list loading: it could not catch up within the timeout); exact-match intel "
        "of it is repaired by the contact index once applied.",
    )
    background_loop_share: float = Field(
        0.1, gt=0, le=1, description="Most of a worker's event loop the reference path (ingest of lists and "
        "registries, the reference loader) takes while live events flow; all of it when none do "
        "(streams.live_first). 1 turns the bound off.",
    )
    reference_batch_size: int = Field(
        50, gt=0, description="Records per micro-batch on the reference path: a live event waits at most one "
        "such batch for the loop.",
    )
    reach_back_rate: float = Field(
        25.0, gt=0, description="Reach-back re-checks per second each worker hands to correlation (a bulk list "
        "reaches back behind the live path, never in front of it: docs/detection.md).",
    )
    reference_tombstone_ttl_s: int = Field(
        7 * 86400, gt=0, description="How long a delete is remembered against older upserts (= topic retention)."
    )
    simulator_rate: float = Field(
        50.0, gt=0, description="Events per second the simulator offers in `antifraud up`."
    )
    simulator_seed: int = Field(7, description="Seed of the traffic simulator.")
    simulator_late_listing_share: float = Field(
        0.25, ge=0, le=1, description="Share of the simulator's fraud scenarios in `antifraud up` whose fraud number "
        "or mule account is listed only 10 s to 3 min after the contact, so retro alerts (回溯预警) show "
        "(simulator/late_intel.py). The bench leaves it at 0.",
    )
    valkey_retry_max_s: float = Field(
        5.0, gt=0, description="Longest backoff between retries while Valkey is unreachable."
    )
    # ------------------------------------------------ dissuasion: routing, escalation, partners (docs/dissuasion.md)
    routing_file: Path = Field(
        PROJECT_ROOT / "routing.yaml", description="The dissuasion policy: actions per tier, SLAs, escalation, scripts."
    )
    banks_file: Path = Field(
        PROJECT_ROOT / "banks.yaml", description="Banks and carriers that receive signed requests, with their key variables."
    )
    partner_keys: Literal["dev", "env"] = Field(
        "dev",
        description="env: every partner key must be in the variable banks.yaml names (production); dev: a "
        "missing key is derived from the development secret.",
    )
    partner_dev_secret: SecretStr | None = Field(
        None, description="Secret the development keys are derived from; unset = a random one kept in run_dir/secrets/."
    )
    # ------------------------------------------------ channel workers (channels/, docs/channels.md)
    channel_gateway: Literal["simulated", "webhook"] = Field(
        "simulated",
        description="Where channel workers send actions: simulated (embedded, seeded) or webhook (real "
        "partner endpoints, HMAC-signed JSON POST).",
    )
    channel_webhook_url: str | None = Field(
        None,
        description="Partner endpoint for the webhook gateway; `{channel}` in it is replaced by the "
        "channel (sms, ai_voice, ...).",
    )
    channel_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key that signs every webhook body; required with the webhook gateway."
    )
    channel_batch_size: int = Field(100, gt=0, description="Actions a channel worker takes per Kafka poll.")
    channel_poll_s: float = Field(
        0.5, gt=0, description="Longest a channel worker waits on Kafka before it looks at its due held actions."
    )
    channel_claim_ttl_s: int = Field(
        691200,
        gt=0,
        description="How long a send claim (and its stored outcome) is kept: longer than the action "
        "topics' retention (7 days), so any replay of them is recognised and never re-sent.",
    )
    channel_send_lease_s: float = Field(
        120.0,
        gt=0,
        description="Longest a send may take (gateway timeouts and retries included). A claim still "
        "`sending` after this belonged to a worker that died mid-send: failed outcome, no re-send.",
    )
    channel_quiet_hours: str = Field(
        "22:00-08:00",
        description="Quiet hours (HH:MM[:SS]-HH:MM[:SS], city time) when low and medium tier actions "
        "on the quiet-hours channels wait; empty = none.",
    )
    channel_quiet_hours_channels: list[str] = Field(
        ["sms", "ai_voice"], description="Channels that respect quiet hours (JSON list)."
    )
    channel_rate_limits: dict[str, float] = Field(
        {"sms": 200.0, "ai_voice": 20.0, "hotline_call": 2.0},
        description="Sends per second per channel, shared by all workers of the channel (JSON object); "
        "a channel not listed is unlimited.",
    )
    contact_timezone: str = Field("Asia/Shanghai", description="The city's time zone, for quiet hours.")
    contact_frequency_cap: int = Field(
        3,
        ge=0,
        description="Most contacts of one person, across channels, within the frequency window (low and "
        "medium tier wait beyond it); 0 = no cap.",
    )
    contact_frequency_window_s: int = Field(
        86400, gt=0, description="Sliding window of the per-person frequency cap."
    )
    gateway_timeout_s: float = Field(5.0, gt=0, description="Timeout of one webhook call.")
    gateway_retries: int = Field(
        3, ge=0, description="Webhook retries after a failed call (transport error, 429, 5xx)."
    )
    gateway_backoff_s: float = Field(0.5, gt=0, description="First webhook retry backoff; doubles each retry.")
    gateway_backoff_max_s: float = Field(5.0, gt=0, description="Longest webhook retry backoff.")
    gateway_circuit_fail_max: int = Field(
        5, gt=0, description="Failed sends in a row (after retries) that open a channel's circuit."
    )
    gateway_circuit_reset_s: float = Field(
        30.0, gt=0, description="How long an open circuit fails sends at once before one trial send."
    )
    gateway_simulated_seed: int = Field(11, description="Seed of the simulated gateway's results.")
    gateway_simulated_time_scale: float = Field(
        1.0, ge=0, description="Multiplies the simulated gateway's delays; 0 = instant (tests)."
    )
    gateway_simulated_concurrency: int = Field(
        8, ge=1, description="Actions the simulated gateway carries out at once per channel worker (officers "
        "and operators on duty): a visit takes seconds, one at a time would fall behind a city's warnings."
    )

    # ------------------------------------------------ oversight: ledger, console, audit, follow-up (docs/oversight.md)
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="SQLAlchemy URL of the oversight ledger (production: postgresql+psycopg://...); unset = "
        "SQLite file run_dir/ledger.sqlite3.",
    )
    ledger_migrations_dir: Path = Field(
        PROJECT_ROOT / "migrations", description="Alembic migrations of the ledger; the sink runs `upgrade head` at start."
    )
    ledger_batch_size: int = Field(500, gt=0, description="Records the ledger sink writes per transaction.")
    ledger_poll_s: float = Field(0.5, gt=0, description="Longest the ledger sink waits on Kafka to fill a batch.")
    console_host: str = Field("127.0.0.1", description="Address the oversight console (HTTP API and dashboard) binds.")
    console_port: int = Field(8080, ge=0, description="Port of the oversight console.")
    console_tokens: dict[str, str] = Field(
        {},
        description="Unit tokens of the console (JSON object): token (or `sha256:<hex of the token>`) -> unit, one "
        "of `centre`, `county:<code>`, `station:<code>`, `hotline:<code>` (desk only), `bank:<code>`, `carrier:<code>`.",
    )
    console_phone_roles: list[str] = Field(
        ["station"],
        description="Roles that may reveal phone numbers in the console (JSON list); every reveal is written to "
        "the access_log table.",
    )
    console_sla_target: float = Field(
        0.95, ge=0, le=1, description="Dissuasion success-rate target; the dashboard and the alert rule compare to it."
    )
    # ------------------------------------------------ the dissuasion desk (oversight/desk/, docs/desk.md)
    desk_channels: list[Literal["police_visit", "hotline_call"]] = Field(
        [],
        description="Human channels whose actions become desk tasks (JSON list) instead of going to "
        "channel_gateway; their outcomes come back through the desk's outcome API.",
    )
    desk_hotline_team: str = Field(
        "96110", pattern=r"^[A-Za-z0-9_-]+$",
        description="Unit code of the hotline team that holds hotline_call tasks (token unit `hotline:<code>`).",
    )
    desk_session_ttl_s: int = Field(
        28800, gt=0, description="A desk sign-in session lasts this long (8 h: a shift), then the user signs in again."
    )
    desk_produce_timeout_s: float = Field(
        10.0, gt=0, description="Longest the desk waits for Kafka to take one outcome; a post that takes longer "
        "gets 503 and may be repeated.",
    )
    desk_explanation_due_s: int = Field(
        259200, gt=0, description="An accountable unit writes its reverse-audit explanation at the desk within this "
        "long (3 days) of the audit; later, the centre's audit view shows it overdue.",
    )
    audit_lookback_days: int = Field(
        90, gt=0, description="A case report is audited when its victim had an alert within this many days before it."
    )
    audit_ledger_wait_s: float = Field(
        30.0, ge=0, description="Longest the audit waits for the ledger to catch up before it audits a case."
    )
    audit_bank_ack_timeout_s: int = Field(
        600, gt=0, description="A bank request without an acknowledgement after this long is a broken step."
    )
    followup_every_s: int = Field(
        86400, gt=0, description="Follow-up sampling period (定期回访抽查): persons dissuaded in the last period."
    )
    followup_percent: float = Field(
        10.0, ge=0, le=100, description="Share of each unit's dissuaded persons sampled for a follow-up visit."
    )
    followup_min_per_unit: int = Field(
        1, ge=0, description="Fewest persons sampled per unit (all of them when the unit has fewer)."
    )
    followup_seed: int = Field(2024, description="Seed of the follow-up sample: the same seed and period give the same sample.")
    followup_due_days: int = Field(7, gt=0, description="Days a station has to report a follow-up visit.")

@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
