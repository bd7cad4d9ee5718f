"""The plan on a real secured broker: each principal logs in with its own SCRAM credential and may
do what the plan allows, nothing else; logins without or with a wrong credential are refused in one line."""

import json
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AclBindingFilter, AdminClient

from channels.partners import bank_consumer_main, carrier_consumer_main
from streams.acl_apply import acl_key, apply_acls, apply_command, binding, broker_acls
from streams.acl_plan import ADMIN, Grant, build_plan
from streams.broker_auth import LoginRefused, check_login, load_or_create, sasl_config
from streams.catalog import get_catalog
from streams.embedded import start_broker
from streams.kafka import consumer_config, producer_config
from streams.routing import get_partners
from streams.settings import Settings
from streams.topics_admin import apply_topics

pytestmark = pytest.mark.integration  # starts a secured Kafka itself

DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("secured")
    plan = build_plan(get_catalog(), get_partners())
    passwords, _ = load_or_create(run_dir / "secrets" / "kafka-users.json", [ADMIN, *plan.principals])
    broker = start_broker(run_dir, admin_password=passwords[ADMIN])
    apply_topics(get_catalog(), broker.bootstrap, security=sasl_config(ADMIN, passwords[ADMIN]))
    apply_acls(plan, broker.admin_config, passwords)
    yield broker, plan, passwords, run_dir
    broker.stop()


def as_principal(secured, principal: str, password: str | None = None) -> Settings:
    broker, _, passwords, run_dir = secured
    return Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, run_dir=run_dir, kafka_username=principal,
                    kafka_password=password or passwords[principal])


def topic(topic_id: str) -> str:
    return get_catalog().topic(topic_id).name


def write(settings: Settings, name: str, timeout_ms: int = 10_000) -> KafkaError | None:
    """Send one record; the delivery error, None when it was written."""
    outcome = []
    producer = Producer(producer_config(settings, **{"message.timeout.ms": timeout_ms}))
    producer.produce(name, key=b"k", value=b"v", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(15)
    assert outcome, f"no delivery report for {name}"
    return outcome[0]


def read(settings: Settings, name: str, group: str, timeout_s: float = 20.0, wanted=lambda value: True):
    """Subscribe and poll: the first record whose value is `wanted`, or the first error."""
    consumer = Consumer(consumer_config(settings, group))
    consumer.subscribe([name])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                if message.error() is not None:
                    return message
                consumer.commit(message, asynchronous=False)  # the group ACL allows the commit
                if wanted(message.value()):
                    return message
        raise AssertionError(f"nothing read from {name} in {timeout_s} s")
    finally:
        consumer.close()


def remove(admin: AdminClient, acl) -> None:
    match = AclBindingFilter(acl.restype, acl.name, acl.resource_pattern_type, acl.principal, acl.host, acl.operation,
                             acl.permission_type)
    assert len(admin.delete_acls([match])[match].result(10)) == 1
    deadline = time.monotonic() + 10  # the broker applies what the controller has a moment later
    while any(acl_key(b) == acl_key(acl) for b in broker_acls(admin, 10)):
        assert time.monotonic() < deadline, "the broker still shows a deleted ACL"
        time.sleep(0.2)


def test_apply_again_changes_nothing_and_reports_an_acl_outside_the_plan_without_removing_it(secured):
    broker, plan, passwords, _ = secured
    assert apply_acls(plan, broker.admin_config, passwords).lines() == [
        f"credentials set for {len(plan.principals)} principals", f"no changes ({len(plan.grants)} ACLs match the plan)"]
    stray = binding(Grant("bank-icbc", "topic", topic("alerts"), "READ"))
    admin = AdminClient(broker.admin_config)
    admin.create_acls([stray])[stray].result(10)
    try:
        report = apply_acls(plan, broker.admin_config, passwords)
        assert report.extra == [f"User:bank-icbc ALLOW READ topic {topic('alerts')}"] and report.created == []
    finally:
        remove(admin, stray)
    missing = plan.grants[0]
    remove(admin, binding(missing))
    assert apply_acls(plan, broker.admin_config, passwords).created == [
        f"User:{missing.principal} ALLOW {missing.operation} {missing.resource} {missing.name}"]


def test_a_bank_reads_its_own_requests_and_is_denied_another_banks_and_writing_requests(secured):
    platform, icbc = as_principal(secured, "stream-worker"), as_principal(secured, "bank-icbc")
    assert write(platform, topic("bank_requests_icbc")) is None
    own = read(icbc, topic("bank_requests_icbc"), "antifraud-bank-icbc")
    assert own.error() is None and own.value() == b"v"
    assert read(icbc, topic("bank_requests_abc"), "antifraud-bank-icbc").error().code() == DENIED
    assert write(icbc, topic("bank_requests_icbc")).code() == DENIED, "a bank cannot forge requests"
    assert write(icbc, topic("bank_acks")) is None


def test_a_carrier_is_denied_every_topic_not_its_own(secured):
    carrier = as_principal(secured, "carrier-china-mobile")
    group = "antifraud-carrier-china_mobile"
    for name in (topic("bank_requests_icbc"), topic("alerts"), topic("outcomes")):
        assert read(carrier, name, group).error().code() == DENIED, name
    assert write(carrier, topic("in_telecom")).code() == DENIED, "its call-record feed is another principal"
    assert write(carrier, topic("carrier_acks")) is None


def test_a_feed_writes_its_input_topic_and_is_denied_output_topics_and_alerts(secured):
    feed = as_principal(secured, "feed-telecom-china-mobile")
    assert write(feed, topic("in_telecom")) is None, "an idempotent producer needs WRITE on the topic only"
    for name in (topic("actions_line_suspension"), topic("bank_requests_icbc"), topic("alerts"), topic("in_bank")):
        assert write(feed, name).code() == DENIED, name


def test_an_unauthenticated_client_is_refused(secured):
    broker = secured[0]
    with pytest.raises(LoginRefused, match="requires a SASL/SCRAM login"):
        check_login(broker.bootstrap, {}, timeout_s=3)
    assert write(Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap), topic("in_telecom"), timeout_ms=3000) is not None


def test_a_wrong_password_is_one_clear_line_at_once(secured):
    broker, _, passwords, _ = secured
    started = time.monotonic()
    with pytest.raises(LoginRefused) as refused:
        check_login(broker.bootstrap, sasl_config("bank-icbc", "not-its-password"), timeout_s=10)
    assert time.monotonic() - started < 5, "refused at the first answer, not after retrying"
    line = str(refused.value)
    assert "\n" not in line and "refused user 'bank-icbc': wrong user name or password" in line
    assert "not-its-password" not in line

    said = []
    wrong_admin = as_principal(secured, ADMIN, password="not-the-admin-password")
    assert apply_command(wrong_admin, secured[3] / "secrets" / "kafka-users.json", said.append) == 2
    assert said == [f"refused: broker {broker.bootstrap} refused user 'admin': wrong user name or password "
                    "(ANTIFRAUD_KAFKA_USERNAME / ANTIFRAUD_KAFKA_PASSWORD)"]
    check_login(broker.bootstrap, sasl_config("bank-icbc", passwords["bank-icbc"]))  # the right one is let in


@pytest.mark.parametrize(("serve", "code", "principal", "requests", "acks"), [
    (bank_consumer_main, "ICBC", "bank-icbc", "bank_requests_icbc", "bank_acks"),
    (carrier_consumer_main, "china_mobile", "carrier-china-mobile", "actions_line_suspension", "carrier_acks"),
])
def test_the_reference_partner_consumers_work_with_their_own_principal_alone(secured, serve, code, principal,
                                                                             requests, acks):
    """Their consumer group, requests topic and acks topic are the plan's: an unverifiable request
    is read, answered with a signed rejection and committed."""
    assert write(as_principal(secured, "stream-worker"), topic(requests)) is None
    stop = threading.Event()
    partner = threading.Thread(target=serve, args=(as_principal(secured, principal), code, stop), daemon=True)
    partner.start()
    try:
        ack = read(as_principal(secured, "ledger"), topic(acks), "antifraud-ledger", timeout_s=30,
                   wanted=lambda value: value.startswith(b"{"))  # earlier tests wrote a plain b"v" there
        assert ack.error() is None and json.loads(ack.value())["status"] == "rejected"
    finally:
        stop.set()
        partner.join(15)
    assert not partner.is_alive()


def test_a_restarted_secured_broker_keeps_its_credentials_and_acls(tmp_path):
    plan = build_plan(get_catalog(), get_partners())
    passwords, _ = load_or_create(tmp_path / "secrets" / "kafka-users.json", [ADMIN, *plan.principals])
    broker = start_broker(tmp_path, admin_password=passwords[ADMIN])
    try:
        assert len(apply_acls(plan, broker.admin_config, passwords).created) == len(plan.grants)
    finally:
        broker.stop()
    again = start_broker(tmp_path, admin_password=passwords[ADMIN])
    try:
        check_login(again.bootstrap, sasl_config("bank-icbc", passwords["bank-icbc"]))
        assert apply_acls(plan, again.admin_config, passwords).created == [], "a second `make run` changes nothing"
    finally:
        again.stop()
