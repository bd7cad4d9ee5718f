"""routing.yaml and banks.yaml: the brief's table by default, clear errors, and fresh bank topics."""

from pathlib import Path

import pytest
import yaml

from simulator.population import City
from streams.catalog import load_catalog
from streams.contracts.actions import Channel
from streams.contracts.alerts import Tier
from streams.contracts.common import Typology
from streams.routing import (
    REGENERATE,
    PartnerKeys,
    bank_topic_id,
    get_partners,
    load_partners,
    load_routing,
    render_bank_topics,
    with_bank_topics,
)
from streams.settings import PROJECT_ROOT, Settings
from streams.signing import KeyConfigError
from streams.yamlconfig import ConfigError

ROUTING_TEXT = (PROJECT_ROOT / "routing.yaml").read_text()
BANKS_TEXT = (PROJECT_ROOT / "banks.yaml").read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_routing_is_the_briefs_table():
    routing = load_routing(PROJECT_ROOT / "routing.yaml")
    channels = {tier: [a.channel for a in rule.actions] for tier, rule in routing.tiers.items()}
    assert channels == {
        Tier.low: [Channel.sms, Channel.ai_voice],
        Tier.medium: [Channel.hotline_call, Channel.app_push],
        Tier.high: [Channel.police_visit, Channel.line_suspension],
        Tier.funds_warning: [Channel.police_visit],
    }
    assert routing.tiers[Tier.funds_warning].actions[0].priority == 0
    assert routing.escalation.next_tier == {Tier.low: Tier.medium, Tier.medium: Tier.high, Tier.high: Tier.funds_warning}
    assert routing.script_for(Typology.romance) == "script.romance.v1"
    assert routing.script_for(Typology.unknown) == "script.generic.v1"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{channel: sms, priority: 5", "{channel: telegram, priority: 5", r"routing.yaml:\d+: tiers.low.actions.0.channel"),
        ("{channel: sms, priority: 5", "{channel: sms, priority: 12", r"routing.yaml:\d+: tiers.low.actions.0.priority"),
        ("sla_s: 300}", "sla_s: -1}", r"tiers.low.actions.0.sla_s"),
        ("{channel: police_visit, priority: 0,", "{channel: police_visit, priority: 2,", "funds warning needs a police_visit at priority 0"),
        ("high: funds_warning}", "high: low}", "high must escalate to a higher tier"),
        ("  default: script.generic.v1", "  fallback: script.generic.v1", "unknown warning type fallback"),
        ("      - {channel: app_push, priority: 3, sla_s: 300}", "      - {channel: hotline_call, priority: 3, sla_s: 300}",
         "a channel appears twice"),
        ("  max_renewals: 1", "  max_renewals: 1\n  colour: red", r"routing.yaml:\d+: bank_requests.colour"),
        ("  city_centre: ZK-CENTRE-DUTY", "  city_centre: centre desk", r"routing.yaml:\d+: duty_desks.city_centre"),
        ("  city_centre: ZK-CENTRE-DUTY", "  city_centre: unknown", "a duty desk needs a unit code"),
        ("    ZK03: ZK03-DUTY", "    ZK03: ZK02-DUTY", "duty desk ZK02-DUTY is named twice"),
        ("    ZK03: ZK03-DUTY", "    unknown: ZK03-DUTY", "'unknown' is not a county code"),
        ("    ZK03: ZK03-DUTY", "    ZK03: unknown", "counties.ZK03: 'unknown' is not a unit code"),
    ],
)
def test_routing_mistakes_name_file_line_and_field(tmp_path, old, new, expected):
    assert old in ROUTING_TEXT
    with pytest.raises(ConfigError, match=expected):
        load_routing(write(tmp_path, "routing.yaml", ROUTING_TEXT.replace(old, new, 1)))


def test_routing_error_points_at_the_right_line(tmp_path):
    text = ROUTING_TEXT.replace("{channel: sms, priority: 5", "{channel: sms, priority: 12", 1)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "priority: 12" in row)
    with pytest.raises(ConfigError, match=rf"routing.yaml:{line}: "):
        load_routing(write(tmp_path, "routing.yaml", text))


def test_every_visit_has_a_duty_desk_to_fall_back_on(tmp_path):
    # Without the centre's desk a visit nobody can place would go to station "unknown": the file must not load.
    data = yaml.safe_load(ROUTING_TEXT)
    del data["duty_desks"]["city_centre"]
    with pytest.raises(ConfigError, match="duty_desks.city_centre"):
        load_routing(write(tmp_path, "routing.yaml", yaml.safe_dump(data)))


def test_every_county_of_the_synthetic_city_has_a_duty_desk():
    desks = load_routing(PROJECT_ROOT / "routing.yaml").duty_desks
    assert {county.code for county in City(seed=1).counties} <= set(desks.counties)


def test_a_missing_tier_is_an_error(tmp_path):
    data = yaml.safe_load(ROUTING_TEXT)
    del data["tiers"]["medium"]
    with pytest.raises(ConfigError, match="no rule for medium"):
        load_routing(write(tmp_path, "routing.yaml", yaml.safe_dump(data)))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  ZKRCB: {", "  zk-rcb: {", "capital letters"),
        ("  china_broadnet: {", "  china_satnet: {", "unknown carrier china_satnet"),
        ("key_env: ANTIFRAUD_BANK_KEY_ABC}", "key_env: ANTIFRAUD_BANK_KEY_ICBC}", "used twice"),
        ("key_env: ANTIFRAUD_BANK_KEY_BOC}", "key_env: antifraud-boc}", r"banks.yaml:\d+: banks.BOC.key_env"),
    ],
)
def test_banks_mistakes_are_named(tmp_path, old, new, expected):
    assert old in BANKS_TEXT
    with pytest.raises(ConfigError, match=expected):
        load_partners(write(tmp_path, "banks.yaml", BANKS_TEXT.replace(old, new, 1)))


def test_topics_yaml_has_one_request_topic_per_bank_and_is_fresh():
    topics_file = PROJECT_ROOT / "topics.yaml"
    text = topics_file.read_text()
    assert with_bank_topics(text) == text, f"topics.yaml is stale: run `{REGENERATE}`"
    catalog = load_catalog(topics_file)
    for code in get_partners().banks:
        spec = catalog.topic(bank_topic_id(code))
        assert spec.contract == "BankRequest" and spec.name.endswith(code.lower())


def test_a_new_bank_makes_topics_yaml_stale(tmp_path):
    banks = write(tmp_path, "banks.yaml", BANKS_TEXT.replace(
        "\ncarriers:", "  HNNX: {name: 河南农信 Henan Rural Credit, key_env: ANTIFRAUD_BANK_KEY_HNNX}\n\ncarriers:"))
    partners = load_partners(banks)
    text = (PROJECT_ROOT / "topics.yaml").read_text()
    fresh = with_bank_topics(text, partners)
    assert fresh != text and "bank_requests_hnnx:" in fresh
    assert "bank_requests_hnnx:" in render_bank_topics(partners)
    topics = write(tmp_path, "topics.yaml", fresh)
    assert load_catalog(topics).topic("bank_requests_hnnx").name == "antifraud.bank-requests.hnnx"


def test_production_requires_every_key(tmp_path, monkeypatch):
    partners = get_partners()
    for p in (*partners.banks.values(), *partners.carriers.values()):
        monkeypatch.setenv(p.key_env, "k" * 40)
    monkeypatch.delenv(partners.alert_ref_key_env, raising=False)
    with pytest.raises(KeyConfigError, match=partners.alert_ref_key_env):
        PartnerKeys(partners, Settings(run_dir=tmp_path, partner_keys="env"))
    monkeypatch.setenv(partners.alert_ref_key_env, "r" * 40)
    keys = PartnerKeys(partners, Settings(run_dir=tmp_path, partner_keys="env"))
    assert keys.banks["ICBC"] == b"k" * 40
    assert not (tmp_path / "secrets").exists()  # production never creates a development secret


def test_development_derives_distinct_keys(tmp_path):
    keys = PartnerKeys(get_partners(), Settings(run_dir=tmp_path))
    assert len(set(keys.banks.values()) | set(keys.carriers.values()) | {keys.alert_ref}) == 11
