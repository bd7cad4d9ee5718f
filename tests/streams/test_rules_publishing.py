"""`antifraud rules publish` checks before it sends: a bad file is refused with its line, and the
broker is not even asked; a version id names one content for ever."""

from __future__ import annotations

import time

import pytest
from rules_version_builders import ROUTING_WITH_LOW_PUSH, SHIPPED_ROUTING, rules_text, version

from streams.rules import get_rules
from streams.rules_publishing import Known, Refused, diff, draft, history_lines, publish, shipped_version
from streams.settings import Settings

SHIPPED = get_rules().version


@pytest.fixture
def nowhere(tmp_path) -> Settings:
    """Settings whose broker does not exist: anything that asked it would time out, not be refused."""
    return Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", REDIS_URL="redis://127.0.0.1:9", run_dir=tmp_path)


def write(tmp_path, text: str, name: str = "rules.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_that_is_not_yaml_is_refused_with_its_line_before_the_broker_is_asked(tmp_path, nowhere):
    text = rules_text("2027.02-1").replace("  medium: 60", "  medium: [60", 1)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("  medium:"))
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        publish(nowhere, write(tmp_path, text), None, "analyst-7", "tighter tiers")
    assert time.monotonic() - started < 2  # no broker round trip was tried
    assert str(refused.value) == (f"{tmp_path / 'rules.yaml'}:{line + 1}:7: not valid YAML: expected ',' or ']', "
                                  f"but got ':' (while parsing a flow sequence, line {line})")


def test_a_rule_out_of_its_schema_is_refused_with_the_file_and_line(tmp_path, nowhere):
    text = rules_text("2027.02-2").replace("    weight: 40 ", "    weight: -40 ", 1)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("    weight: -40"))
    path = write(tmp_path, text)
    with pytest.raises(Refused) as refused:
        publish(nowhere, path, None, "analyst-7", "x")
    assert f"{path}:{line}: signals.fraud_number_contact.weight: Input should be greater than 0" in str(refused.value)


def test_a_bad_routing_file_is_refused_too(tmp_path, nowhere):
    routing = write(tmp_path, SHIPPED_ROUTING.replace("priority: 5, sla_s: 300}", "priority: 11, sla_s: 300}", 1),
                    "routing.yaml")
    with pytest.raises(Refused, match=r"routing.yaml:\d+: tiers.low.actions.0.priority"):
        publish(nowhere, write(tmp_path, rules_text("2027.02-3")), routing, "analyst-7", "x")


def known(nowhere, *published) -> Known:
    return Known(shipped_version(nowhere), list(published))


def test_an_id_names_one_content_for_ever(tmp_path, nowhere):
    first = version("2027.02-4")
    other = write(tmp_path, rules_text("2027.02-4").replace("cooldown_s: 1800", "cooldown_s: 900", 1))
    with pytest.raises(Refused, match="already published with other content: bump `version:`"):
        draft(nowhere, other, None, "a", "b", known(nowhere, first))
    with pytest.raises(Refused, match="already published with other content"):  # the shipped id as well
        draft(nowhere, write(tmp_path, rules_text(SHIPPED).replace("cooldown_s: 1800", "cooldown_s: 900", 1)),
              None, "a", "b", known(nowhere))
    same = write(tmp_path, rules_text("2027.02-4"), "same.yaml")
    with pytest.raises(Refused, match="already in force"):
        draft(nowhere, same, None, "a", "b", known(nowhere, first))
    with pytest.raises(Refused, match="rules rollback 2027.02-4"):
        draft(nowhere, same, None, "a", "b", known(nowhere, first, version("2027.02-5")))


def test_without_routing_the_version_keeps_the_routing_in_force(tmp_path, nowhere):
    in_force = version("2027.02-6", routing=ROUTING_WITH_LOW_PUSH)
    record = draft(nowhere, write(tmp_path, rules_text("2027.02-7")), None, " analyst-7 ", " why ",
                   known(nowhere, in_force))
    assert (record.version, record.routing, record.published_by, record.why) == (
        "2027.02-7", ROUTING_WITH_LOW_PUSH, "analyst-7", "why")


def test_history_marks_the_version_in_force_and_diff_shows_both_documents(nowhere):
    a, b = version("2027.02-8"), version("2027.02-9", routing=ROUTING_WITH_LOW_PUSH)
    assert history_lines(known(nowhere)) == [f"* {SHIPPED}  shipped rules.yaml and routing.yaml (nothing published)"]
    lines = history_lines(known(nowhere, a, b))
    assert [line[:12] for line in lines] == ["  2027.02-8 ", "* 2027.02-9 "] and lines[1].endswith("analyst-7: test")
    text = diff(a, b)
    assert "--- rules.yaml@2027.02-8\n+++ rules.yaml@2027.02-9\n" in text
    assert '-version: "2027.02-8"\n+version: "2027.02-9"\n' in text
    assert "+      - {channel: app_push, priority: 5, sla_s: 300}\n" in text and "--- routing.yaml@2027.02-8" in text
    assert diff(a, a) == ""
