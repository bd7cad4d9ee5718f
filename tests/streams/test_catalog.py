"""topics.yaml: loads, fails clearly with the line, and is the only place topic names live."""

import re
from pathlib import Path

import pytest

from streams.catalog import CatalogError, get_catalog, load_catalog
from streams.contracts import CONTRACTS
from streams.settings import PROJECT_ROOT

CATALOG_TEXT = (PROJECT_ROOT / "topics.yaml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    return path


def test_every_topic_has_contract_producer_and_consumer():
    catalog = get_catalog()
    for spec in catalog.topics.values():
        assert spec.producers and spec.consumers and spec.purpose
        if spec.kind not in ("changelog", "faust", "probe"):
            assert spec.contract in CONTRACTS


def test_unknown_key_names_its_line(tmp_path):
    text = CATALOG_TEXT.replace("  in_bank:\n", "  in_bank:\n    colour: red\n", 1)
    line = text.splitlines().index("    colour: red") + 1
    with pytest.raises(CatalogError, match=rf"topics.yaml:{line}: topics.in_bank.colour"):
        load_catalog(write(tmp_path, text))


def test_bad_value_names_its_line(tmp_path):
    text = re.sub(r"(  in_case:\n(?:    .*\n)*?)    partitions: 4", r"\1    partitions: many", CATALOG_TEXT, count=1)
    line = text.splitlines().index("    partitions: many") + 1
    with pytest.raises(CatalogError, match=rf":{line}: topics.in_case.partitions"):
        load_catalog(write(tmp_path, text))


def test_missing_field_is_an_error(tmp_path):
    text = CATALOG_TEXT.replace("    contract: BankEvent\n", "", 1)
    with pytest.raises(CatalogError, match="in_bank.*needs a contract"):
        load_catalog(write(tmp_path, text))


def test_unknown_contract_is_an_error(tmp_path):
    text = CATALOG_TEXT.replace("contract: BankEvent", "contract: BankEvnt", 1)
    with pytest.raises(CatalogError, match="unknown contract 'BankEvnt'"):
        load_catalog(write(tmp_path, text))


def test_duplicate_topic_name_is_an_error(tmp_path):
    text = CATALOG_TEXT.replace("name: antifraud.in.bank", "name: antifraud.in.telecom", 1)
    with pytest.raises(CatalogError, match="also used by topic 'in_telecom'"):
        load_catalog(write(tmp_path, text))


def test_input_topics_name_where_valid_records_go():
    catalog = get_catalog()
    for spec in catalog.of_kind("input"):
        assert catalog.topic(spec.normalized_to).contract == f"Ingested[{spec.contract}]"


def test_no_topic_name_literal_outside_topics_yaml():
    names = [spec.name for spec in get_catalog().topics.values()]
    offenders = []
    for folder in ("streams", "agents", "channels", "simulator"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            text = path.read_text()
            offenders += [f"{path.relative_to(PROJECT_ROOT)}: {n}" for n in names if f'"{n}"' in text or f"'{n}'" in text]
    assert offenders == []


def test_topic_ids_used_in_code_exist():
    catalog = get_catalog()
    used = set()
    for folder in ("streams", "agents", "channels", "simulator"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r"""(?:topic|sink_topic|source_topic)\(\s*["']([a-z_]+)["']""", path.read_text()))
    assert used, "the scan found no topic ids: the pattern is broken"
    assert sorted(used - set(catalog.topics)) == []
