"""Oversight fixtures: a catalog with every topic the ledger reads, and fresh ledger databases.

Topics another stage has not declared yet (escalations, partner requests and acks) are
added to a copy of the catalog under test names, so these tests do not wait for them.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, make_url, text

from oversight.db import migrate
from oversight.records import RECORD_KINDS
from streams.catalog import Catalog, TopicSpec, get_catalog
from streams.settings import Settings
from streams.topics_admin import apply_topics

STAND_INS = {"Escalation": "escalations", "BankRequest": "bank_requests", "BankAck": "bank_acks",
             "CarrierRequest": "carrier_requests", "CarrierAck": "carrier_acks"}


@pytest.fixture(scope="session")
def oversight_catalog(servers) -> Catalog:
    catalog = get_catalog()
    known = {spec.contract for spec in catalog.topics.values()}
    extra = {}
    for contract, topic_id in STAND_INS.items():
        if contract not in known and topic_id not in catalog.topics:
            extra[topic_id] = TopicSpec(id=topic_id, name=f"test.oversight.{topic_id}", domain="oversight",
                                        purpose="stand-in for tests",
                                        partitions=1, key="person id", contract=contract, producers=["tests"],
                                        consumers=["oversight/ledger.py"])
    full = Catalog(app_id=catalog.app_id, defaults=catalog.defaults, topics={**catalog.topics, **extra})
    assert set(RECORD_KINDS) <= {s.contract for s in full.topics.values()}
    apply_topics(full, servers.bootstrap)
    return full


@pytest.fixture
def ledger_url(tmp_path):
    """A fresh, empty ledger database: SQLite, or a new database on the PostgreSQL server named by
    ANTIFRAUD_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)."""
    server = os.environ.get("ANTIFRAUD_TEST_POSTGRES_URL")
    if not server:
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    name = f"ledger_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def ledger_engine(ledger_url):
    engine = migrate(Settings(), ledger_url)  # migrations need no broker
    yield engine
    engine.dispose()


@pytest.fixture
def group_id() -> str:
    return f"test-ledger-{uuid.uuid4().hex[:8]}"
