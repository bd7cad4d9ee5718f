"""Publishing rules versions: check, then send (`antifraud rules publish`, `rollback`, `history`).

Everything is validated before anything is sent: a file that does not load as the workers
would load it (streams.rules, streams.routing) is refused with its line and the reason, and
nothing reaches the topic. A version id names one content for ever: publishing other rules
under an id already used is refused (bump `version:` in the rules file).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from confluent_kafka import Producer

from streams.catalog import get_catalog
from streams.contracts.rules_versions import RulesVersion
from streams.kafka import producer_config
from streams.rules_versions import TOPIC_ID, is_valid, read_versions, rule_set_of
from streams.settings import Settings
from streams.yamlconfig import ConfigError

ENCODE = msgspec.json.Encoder().encode


class Refused(ValueError):
    """Not published; the message says why (and where, for a bad file)."""


@dataclass(frozen=True)
class Known:
    """The versions there are: the shipped files, then every record on the topic (the last in force)."""

    shipped: RulesVersion
    published: list[RulesVersion]

    @property
    def in_force(self) -> RulesVersion:
        return self.published[-1] if self.published else self.shipped

    def latest_of(self, version: str) -> RulesVersion | None:
        """The content of `version`: its last publication, else the shipped files if they carry that id."""
        mine = [r for r in self.published if r.version == version]
        if mine:
            return mine[-1]
        return self.shipped if self.shipped.version == version else None


def shipped_version(settings: Settings) -> RulesVersion:
    rules = settings.rules_file.read_text(encoding="utf-8")
    routing = settings.routing_file.read_text(encoding="utf-8")
    version = rule_set_of_files(rules, routing, settings.rules_file, settings.routing_file)
    return RulesVersion(version=version, rules=rules, routing=routing, published_by="shipped",
                        published_at=datetime.fromtimestamp(settings.rules_file.stat().st_mtime, UTC),
                        why="the rules.yaml and routing.yaml in the repository")


def rule_set_of_files(rules: str, routing: str, rules_path: Path, routing_path: Path) -> str:
    """The version id of two documents that load as the workers load them; ConfigError with the line if not."""
    from streams.routing import parse_routing
    from streams.rules import parse_rules

    version = parse_rules(rules, rules_path).version
    parse_routing(routing, routing_path)
    return version


def known_versions(settings: Settings) -> Known:
    """As the workers know them: a record they would refuse (not written by this module) is left out."""
    return Known(shipped_version(settings), [r for r in read_versions(settings) if is_valid(r)])


def draft(settings: Settings, rules_file: Path, routing_file: Path | None, by: str, why: str,
          known: Known) -> RulesVersion:
    """The version the files make, checked; routing defaults to the routing of the version in force."""
    rules = _read(rules_file)
    routing = _read(routing_file) if routing_file is not None else known.in_force.routing
    version = _checked(rules, routing, rules_file, routing_file or Path("routing.yaml (in force)"))
    if not by.strip() or not why.strip():
        raise Refused("--by and --why must say who publishes and why")
    record = RulesVersion(version=version, rules=rules, routing=routing, published_by=by.strip(),
                          published_at=datetime.now(UTC), why=why.strip())
    same = known.latest_of(version)
    if same is not None and (same.rules, same.routing) != (rules, routing):
        raise Refused(f"version {version} is already published with other content: bump `version:` in {rules_file}")
    if same is not None and known.in_force.version == version:
        raise Refused(f"version {version} is already in force")
    if same is not None:
        raise Refused(f"version {version} is already published: `antifraud rules rollback {version}` puts it back")
    return record


def publish(settings: Settings, rules_file: Path, routing_file: Path | None, by: str, why: str) -> RulesVersion:
    if routing_file is not None:  # a bad file is refused before the broker is asked anything
        _checked(_read(rules_file), _read(routing_file), rules_file, routing_file)
    else:
        _checked(_read(rules_file), settings.routing_file.read_text(encoding="utf-8"), rules_file, settings.routing_file)
    record = draft(settings, rules_file, routing_file, by, why, known_versions(settings))
    send(settings, record)
    return record


def rollback(settings: Settings, version: str, by: str, why: str) -> RulesVersion:
    """An older version published again, so that it is the last record: the one in force."""
    known = known_versions(settings)
    older = known.latest_of(version)
    if older is None:
        ids = sorted({r.version for r in known.published} | {known.shipped.version})
        raise Refused(f"no version {version}; known: {', '.join(ids)}")
    if known.in_force.version == version:
        raise Refused(f"version {version} is already in force")
    if not by.strip() or not why.strip():
        raise Refused("--by and --why must say who rolls back and why")
    record = RulesVersion(version=version, rules=older.rules, routing=older.routing, published_by=by.strip(),
                          published_at=datetime.now(UTC), why=why.strip(), rollback_from=known.in_force.version)
    try:
        rule_set_of(record)
    except ConfigError as exc:  # the shipped files changed under their id since
        raise Refused(str(exc)) from None
    send(settings, record)
    return record


def send(settings: Settings, record: RulesVersion) -> None:
    produce(settings, TOPIC_ID, record.version.encode(), ENCODE(record), f"version {record.version}")


def produce(settings: Settings, topic_id: str, key: bytes, value: bytes, what: str) -> None:
    failures = []
    producer = Producer(producer_config(settings))
    producer.produce(get_catalog(settings.topics_file).topic(topic_id).name, key=key, value=value,
                     on_delivery=lambda err, _msg: failures.append(err) if err else None)
    if producer.flush(30) != 0 or failures:
        raise Refused(f"the broker did not take {what}: {failures or 'timed out'}")


def history_lines(known: Known) -> list[str]:
    """One line per record on the topic, oldest first; the version in force marked."""
    if not known.published:
        return [f"* {known.shipped.version}  shipped rules.yaml and routing.yaml (nothing published)"]
    lines = []
    for i, r in enumerate(known.published):
        mark = "*" if i == len(known.published) - 1 else " "
        back = f" (rollback from {r.rollback_from})" if r.rollback_from else ""
        lines.append(f"{mark} {r.version}  {r.published_at.isoformat(timespec='seconds')}  {r.published_by}{back}: {r.why}")
    return lines


def diff(older: RulesVersion, newer: RulesVersion) -> str:
    """Unified diff of the rules, then of the routing, between two versions ('' when identical)."""
    parts = []
    for name in ("rules", "routing"):
        parts += difflib.unified_diff(
            getattr(older, name).splitlines(keepends=True), getattr(newer, name).splitlines(keepends=True),
            fromfile=f"{name}.yaml@{older.version}", tofile=f"{name}.yaml@{newer.version}")
    return "".join(parts)


def _checked(rules: str, routing: str, rules_path: Path, routing_path: Path) -> str:
    try:
        return rule_set_of_files(rules, routing, rules_path, routing_path)
    except ConfigError as exc:
        raise Refused(str(exc)) from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"{path}: cannot be read ({exc})") from None
