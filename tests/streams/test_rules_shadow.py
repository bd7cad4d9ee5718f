"""The shadow's pure parts: the example candidate, the holder, the follower's decoding."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime

import msgspec
from rules_version_builders import version

from streams.contracts.rules_versions import RulesShadow
from streams.rules import load_rules
from streams.rules_shadow import RulesInShadow
from streams.settings import PROJECT_ROOT


def test_the_example_candidate_is_the_shipped_rules_but_its_version_and_one_threshold():
    shipped = (PROJECT_ROOT / "rules.yaml").read_text(encoding="utf-8").splitlines()
    candidate = (PROJECT_ROOT / "rules.candidate.yaml").read_text(encoding="utf-8").splitlines()
    changed = [(d[0], d[2:].split("#")[0].strip())
               for d in difflib.ndiff([x for x in shipped if not x.startswith("#")],
                                      [x for x in candidate if not x.startswith("#")]) if d[:2] in ("- ", "+ ")]
    assert changed == [("-", 'version: "2026.12-2"'), ("+", 'version: "2026.12-2-candidate"'),
                       ("-", "medium: 60"), ("+", "medium: 50")], (
        "rules.candidate.yaml must stay rules.yaml with its own version and one threshold changed: copy rules.yaml again")
    loaded = load_rules(PROJECT_ROOT / "rules.candidate.yaml")
    assert (loaded.version, loaded.tiers.medium) == ("2026.12-2-candidate", 50)


def test_a_candidate_is_set_and_stopped_whole():
    holder = RulesInShadow()
    assert holder.current is None
    record = RulesShadow(candidate=version("2027.09-1"), set_by="analyst-7", set_at=datetime.now(UTC), why="try")
    holder.switch_to(msgspec.json.decode(msgspec.json.encode(record), type=RulesShadow))
    assert holder.current is not None and holder.current.rules.version == "2027.09-1"
    holder.switch_to(RulesShadow(candidate=None, set_by="lead-2", set_at=datetime.now(UTC), why="done"))
    assert holder.current is None


def test_a_shadow_state_is_the_candidates_own():
    from agents.correlate_shadow import state_of, stored
    from streams.alerting import PersonState

    state = PersonState(late_events=3)
    raw = stored(state, "2027.09-1")
    assert state_of(raw, "2027.09-1").late_events == 3
    assert state_of(raw, "2027.09-2").late_events == 0  # another candidate starts afresh
    assert state_of(b"", "2027.09-1").late_events == 0


def test_antifraud_up_puts_the_candidate_in_shadow_and_a_refused_one_leaves_the_platform_up(settings, tmp_path,
                                                                                              caplog):
    """ANTIFRAUD_SHADOW_RULES (streams/supervisor.py), against the real broker."""
    from streams.catalog import get_catalog
    from streams.rules_shadow import DECODE, TOPIC_ID
    from streams.supervisor import shadow_candidate
    from streams.topics_admin import apply_topics
    from support import Reader

    apply_topics(get_catalog(), settings.kafka_bootstrap_servers)
    shadow_candidate(settings, PROJECT_ROOT / "rules.candidate.yaml")
    reader = Reader(settings.kafka_bootstrap_servers, get_catalog().topic(TOPIC_ID).name)
    last = DECODE(reader.read_until(lambda ms: len(ms) > 0, timeout=15)[-1].value())
    assert (last.candidate.version, last.set_by) == ("2026.12-2-candidate", "antifraud up")

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntiers: {}\n", encoding="utf-8")
    shadow_candidate(settings, bad)  # returns: a trial is no reason to stop the platform
    assert any("not put in shadow" in r.getMessage() for r in caplog.records)
    assert len(reader.read_for(1.0)) == 1  # nothing more sent
    reader.consumer.close()
