"""The holder of the rules version in force: whole versions only, rules and routing together."""

from __future__ import annotations

import pytest
from rules_version_builders import ROUTING_WITH_LOW_PUSH, ROUTING_WITHOUT_EMERGENCY_VISIT, rules_text, version

from streams.contracts import Channel, Tier
from streams.rules import get_rules
from streams.rules_versions import RulesInForce, shipped_rule_set
from streams.yamlconfig import ConfigError


def low_channels(rule_set) -> set[Channel]:
    return {a.channel for a in rule_set.routing.tiers[Tier.low].actions}


def test_with_nothing_published_the_shipped_files_are_in_force():
    current = RulesInForce(shipped_rule_set()).current
    assert (current.version, current.rules.version, current.published) == (get_rules().version, get_rules().version, None)
    assert low_channels(current) == {Channel.sms, Channel.ai_voice}


def test_a_version_switches_rules_and_routing_together_and_a_held_reference_keeps_the_old():
    holder = RulesInForce(shipped_rule_set())
    taken_by_a_batch = holder.current
    holder.switch_to(version("2027.01-1", routing=ROUTING_WITH_LOW_PUSH))
    assert (holder.current.version, holder.current.rules.version) == ("2027.01-1", "2027.01-1")
    assert Channel.app_push in low_channels(holder.current)
    # The batch that took the old version before the switch still sees all of the old one.
    assert taken_by_a_batch.rules.version == get_rules().version
    assert low_channels(taken_by_a_batch) == {Channel.sms, Channel.ai_voice}


def test_a_version_with_a_bad_routing_is_refused_whole_and_names_the_line():
    holder = RulesInForce(shipped_rule_set())
    before = holder.current
    with pytest.raises(ConfigError) as refused:
        holder.switch_to(version("2027.01-2", routing=ROUTING_WITHOUT_EMERGENCY_VISIT))
    assert "routing.yaml@2027.01-2:" in str(refused.value) and "police_visit at priority 0" in str(refused.value)
    assert holder.current is before  # its valid rules were not taken without their routing


def test_bad_rules_are_refused_with_the_line():
    holder = RulesInForce(shipped_rule_set())
    broken = rules_text("2027.01-3").replace("  low: 30", "  low: 300", 1)  # low above medium
    with pytest.raises(ConfigError) as refused:
        holder.switch_to(version("2027.01-3", rules=broken))
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if text.startswith("tiers:"))
    assert f"rules.yaml@2027.01-3:{line}: tiers: " in str(refused.value)
    assert holder.current.version == get_rules().version


def test_a_record_whose_rules_carry_another_version_is_refused():
    holder = RulesInForce(shipped_rule_set())
    with pytest.raises(ConfigError, match="carries rules whose version is"):
        holder.switch_to(version("2027.01-4", rules=rules_text("2027.01-5")))
    assert holder.current.version == get_rules().version
