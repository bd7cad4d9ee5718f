"""topics.yaml: the one map of every topic, loaded and validated.

Code never spells a topic name: it asks the catalog by the topic's id
(`catalog.topic("in_telecom").name`). A bad file fails on load with the line of the
offending entry, so an operator can fix it without reading Python.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.contracts import CONTRACTS
from streams.yamlconfig import ConfigError, line_of, read_yaml, validate

TOPIC_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


class CatalogError(ConfigError):
    """topics.yaml is not valid; the message names the file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(ge=-1)
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    # A segment is what retention deletes and compaction cleans, and only once it is closed:
    # short segments let both run on a developer's machine, not after a gigabyte.
    segment_ms: int = Field(ge=60_000)


class TopicSpec(_Strict):
    id: str  # the key under `topics:`; what code asks for
    name: str = Field(pattern=TOPIC_NAME_PATTERN)
    purpose: str = Field(min_length=3)
    kind: Literal["input", "internal", "output", "dead-letter", "changelog", "faust"] = "internal"
    # Whose topic it is, for the per-domain drawings of docs/topics.md (a changelog: its table's stage).
    domain: Literal["intake", "reference", "detection", "dissuasion", "oversight", "operations", "platform"]
    partitions: int = Field(ge=1, le=1024)
    replication_factor: int | None = Field(None, ge=1)
    retention_ms: int | None = Field(None, ge=-1)
    cleanup_policy: Literal["delete", "compact", "compact,delete"] | None = None
    segment_ms: int | None = Field(None, ge=60_000)
    key: str = Field(min_length=1)
    contract: str | None = None  # None only for Faust-internal topics
    producers: tuple[str, ...] = Field(min_length=1)
    consumers: tuple[str, ...] = Field(min_length=1)
    table: str | None = None  # for changelog topics: the Faust table they back
    normalized_to: str | None = None  # for input topics: the topic id valid records go to
    # For input topics: a feed that can only send GB18030 says so; ingest transcodes it to UTF-8.
    encoding: Literal["utf-8", "gb18030"] = "utf-8"

    @field_validator("contract")
    @classmethod
    def _known_contract(cls, value: str | None) -> str | None:
        if value is not None and value not in CONTRACTS:
            raise ValueError(f"unknown contract {value!r}; known: {', '.join(sorted(CONTRACTS))}")
        return value

    def config(self, defaults: Defaults, replication_override: int | None) -> TopicConfig:
        return TopicConfig(
            name=self.name,
            partitions=self.partitions,
            replication_factor=replication_override or self.replication_factor or defaults.replication_factor,
            configs={
                "retention.ms": str(self.retention_ms if self.retention_ms is not None else defaults.retention_ms),
                "cleanup.policy": self.cleanup_policy or defaults.cleanup_policy,
                "segment.ms": str(self.segment_ms or defaults.segment_ms),
            },
        )


class TopicConfig(_Strict):
    """What the broker should have for one topic."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


class Catalog(_Strict):
    app_id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    defaults: Defaults
    topics: dict[str, TopicSpec]

    def topic(self, topic_id: str) -> TopicSpec:
        try:
            return self.topics[topic_id]
        except KeyError:
            raise KeyError(f"topics.yaml has no topic {topic_id!r}") from None

    def of_kind(self, kind: str) -> list[TopicSpec]:
        return [t for t in self.topics.values() if t.kind == kind]

    def by_name(self, name: str) -> TopicSpec:
        for spec in self.topics.values():
            if spec.name == name:
                return spec
        raise KeyError(f"topics.yaml has no topic named {name!r}")

    def configs(self, replication_override: int | None = None) -> list[TopicConfig]:
        return [t.config(self.defaults, replication_override) for t in self.topics.values()]


def load_catalog(path: Path) -> Catalog:
    data, root = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("topics"), dict):
        raise CatalogError(f"{path}: expected a mapping with a 'topics:' mapping")
    for topic_id, spec in data["topics"].items():
        if isinstance(spec, dict):
            spec.setdefault("id", topic_id)
    try:
        catalog = validate(path, data, root, Catalog)
    except ConfigError as exc:
        raise CatalogError(str(exc)) from None
    _check_consistency(path, root, catalog)
    return catalog


def _check_consistency(path: Path, root, catalog: Catalog) -> None:
    seen: dict[str, str] = {}
    for topic_id, spec in catalog.topics.items():
        where = f"{path}:{line_of(root, ('topics', topic_id))}"
        if spec.id != topic_id:
            raise CatalogError(f"{where}: topic {topic_id!r} must not set a different id")
        if spec.name in seen:
            raise CatalogError(f"{where}: name {spec.name!r} is also used by topic {seen[spec.name]!r}")
        seen[spec.name] = topic_id
        if spec.kind not in ("changelog", "faust") and spec.contract is None:
            raise CatalogError(f"{where}: topic {topic_id!r} needs a contract")
        if spec.kind == "changelog" and not spec.table:
            raise CatalogError(f"{where}: changelog topic {topic_id!r} needs the table it backs")
        if spec.kind == "input" and spec.normalized_to not in catalog.topics:
            raise CatalogError(f"{where}: input topic {topic_id!r} needs normalized_to: <a topic id>")


@lru_cache(maxsize=4)
def _cached(path: Path) -> Catalog:
    return load_catalog(path)


def get_catalog(path: Path | None = None) -> Catalog:
    from streams.settings import get_settings

    return _cached(path or get_settings().topics_file)
