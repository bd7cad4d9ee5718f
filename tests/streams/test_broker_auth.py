"""Broker logins: the credentials file, and the SASL settings every client takes from the settings."""

import stat

from streams.broker_auth import client_security, load_or_create
from streams.embedded import broker_properties
from streams.kafka import admin_config, consumer_config, producer_config
from streams.settings import Settings


def test_passwords_are_generated_once_kept_and_readable_only_by_their_owner(tmp_path):
    path = tmp_path / "secrets" / "kafka-users.json"
    first, generated = load_or_create(path, ["admin", "bank-icbc"])
    assert generated == ["admin", "bank-icbc"] and len(first["bank-icbc"]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, generated = load_or_create(path, ["admin", "bank-icbc", "carrier-china-mobile"])
    assert generated == ["carrier-china-mobile"]
    assert again["admin"] == first["admin"] and again["bank-icbc"] == first["bank-icbc"]
    assert len(set(again.values())) == 3


def test_without_a_username_clients_connect_as_before():
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092")
    assert client_security(settings) == {}
    assert "security.protocol" not in producer_config(settings)


def test_a_username_makes_every_client_log_in_with_scram():
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", kafka_username="bank-icbc", kafka_password="pw")
    for config in (producer_config(settings), consumer_config(settings, "g"), admin_config(settings)):
        assert config["security.protocol"] == "SASL_PLAINTEXT"
        assert (config["sasl.mechanisms"], config["sasl.username"], config["sasl.password"]) == (
            "SCRAM-SHA-512", "bank-icbc", "pw")


def test_the_embedded_broker_is_secured_only_when_given_an_admin_password(tmp_path):
    plain = broker_properties(9092, 9093, tmp_path)
    assert "SASL" not in plain and "authorizer" not in plain, "off by default: nothing else changes"
    secured = broker_properties(9092, 9093, tmp_path, admin_password="pw")
    for line in ("listeners=SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                 "sasl.enabled.mechanisms=SCRAM-SHA-512", "super.users=User:admin",
                 "allow.everyone.if.no.acl.found=false",
                 "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"):
        assert f"\n{line}\n" in secured, line
