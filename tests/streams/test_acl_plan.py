"""The ACL plan from topics.yaml and banks.yaml: least privilege per principal, deterministic, in the docs."""

import re

import pytest
from typer.testing import CliRunner

from oversight.ledger import ledger_group
from streams.acl_plan import ADMIN, Grant, PlanError, build_plan, principal_name
from streams.catalog import Catalog, get_catalog
from streams.cli import cli
from streams.docs import SECURITY
from streams.routing import bank_topic_id, get_partners


@pytest.fixture(scope="module")
def plan():
    return build_plan(get_catalog(), get_partners())


def _topics(plan, principal, operation):
    return {g.name for g in plan.of(principal) if g.resource == "topic" and g.operation == operation}


def _name(topic_id):
    return get_catalog().topic(topic_id).name


def test_the_plan_in_docs_security_is_what_acl_plan_prints():
    printed = CliRunner().invoke(cli, ["acl", "plan"])
    assert printed.exit_code == 0, printed.output
    block = re.search(r"<!-- generated:acl-plan -->\n```\n(.*?)```\n<!-- /generated:acl-plan -->",
                      SECURITY.read_text(), re.S)
    assert block is not None and block.group(1) == printed.output, "run `antifraud docs` and commit the result"


def test_the_plan_does_not_depend_on_the_order_of_topics_yaml(plan):
    catalog = get_catalog()
    shuffled = catalog.model_copy(update={"topics": dict(reversed(list(catalog.topics.items())))})
    assert build_plan(shuffled, get_partners()).text() == plan.text()
    assert list(plan.grants) == sorted(plan.grants)


def test_a_bank_reads_only_its_own_requests_and_writes_only_its_acknowledgements(plan):
    for code in get_partners().banks:
        bank = principal_name("bank", code)
        assert _topics(plan, bank, "READ") == {_name(bank_topic_id(code))}
        assert _topics(plan, bank, "WRITE") == {_name("bank_acks")}
        assert {g.name for g in plan.of(bank) if g.resource == "group"} == {f"antifraud-bank-{code.lower()}"}


def test_a_carrier_reads_only_line_suspensions_and_the_shared_topic_is_named_a_gap(plan):
    for code in get_partners().carriers:
        carrier = principal_name("carrier", code)
        assert _topics(plan, carrier, "READ") == {_name("actions_line_suspension")}
        assert _topics(plan, carrier, "WRITE") == {_name("carrier_acks")}
    assert len(plan.gaps) == 1 and _name("actions_line_suspension") in plan.gaps[0]


def test_a_feed_writes_only_its_input_topic_and_reads_nothing(plan):
    feeds = {"feed-app": "in_app_report", "feed-hotline": "in_app_report", "feed-cases": "in_case",
             "feed-intel": "in_intel", principal_name("feed-telecom", "china_mobile"): "in_telecom",
             principal_name("feed-bank", "ICBC"): "in_bank", principal_name("registry", "ICBC"): "in_registry"}
    for feed, topic_id in feeds.items():
        assert [(g.operation, g.resource, g.name) for g in plan.of(feed)] == [("WRITE", "topic", _name(topic_id))]


def test_a_channel_worker_reads_only_its_own_channel(plan):
    assert _topics(plan, "channel-sms", "READ") == {_name("actions_sms")}
    assert _topics(plan, "channel-sms", "WRITE") == {_name("outcomes"), _name("dead_letter")}
    assert Grant("channel-sms", "group", "antifraud-channel-sms", "READ") in plan.grants


def test_no_principal_may_administer_and_the_admin_needs_no_acl(plan):
    assert ADMIN not in plan.principals
    assert {g.operation for g in plan.grants} <= {"READ", "WRITE", "DESCRIBE"}
    assert {g.resource for g in plan.grants} == {"topic", "group"}, "no cluster or transactional-id grant"


def test_every_topic_is_written_by_someone_and_every_platform_group_is_granted(plan):
    written = {g.name for g in plan.grants if g.operation == "WRITE"}
    assert {spec.name for spec in get_catalog().topics.values()} <= written
    assert Grant("stream-worker", "group", get_catalog().app_id, "READ") in plan.grants
    assert Grant("ledger", "group", ledger_group(get_catalog()), "READ") in plan.grants


def test_a_party_the_plan_cannot_map_stops_it_with_the_topic_named():
    catalog = get_catalog()
    alerts = catalog.topic("alerts").model_copy(update={"consumers": ("a new dashboard",)})
    changed = Catalog.model_validate({**catalog.model_dump(), "topics": {**catalog.topics, "alerts": alerts}})
    with pytest.raises(PlanError, match="'alerts' names 'a new dashboard'"):
        build_plan(changed, get_partners())
