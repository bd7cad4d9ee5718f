"""The integrator docs say what the code does: fresh, and every example accepted by both the
published JSON Schema and the decoder."""

import inspect
import json
import shutil
from decimal import Decimal
from pathlib import Path

import jsonschema
import msgspec
import pytest

from streams.contracts import INPUT_CONTRACTS
from streams.contracts.docs import (
    CONTRACTS_MD,
    REGENERATE,
    SCHEMA_DIR,
    check_docs_fresh,
    main,
    member_notes,
    render_contracts_md,
)
from streams.contracts.examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]


def published_schema(name: str) -> dict:
    """The file integrators download; its freshness is checked by the first test."""
    return json.loads((ROOT / SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_generated_docs_are_fresh():
    stale = check_docs_fresh(ROOT)
    assert not stale, f"stale generated docs: {', '.join(stale)}; run `{REGENERATE}` and commit the result"


def test_freshness_check_finds_edited_missing_and_orphaned_files(tmp_path):
    shutil.copy(ROOT / "topics.yaml", tmp_path / "topics.yaml")
    main(tmp_path)
    assert check_docs_fresh(tmp_path) == []
    (tmp_path / CONTRACTS_MD).write_text("edited by hand\n", encoding="utf-8")
    (tmp_path / SCHEMA_DIR / "BankEvent.json").unlink()
    (tmp_path / SCHEMA_DIR / "RetiredEvent.json").write_text("{}\n", encoding="utf-8")
    assert sorted(check_docs_fresh(tmp_path)) == [
        str(CONTRACTS_MD),
        str(SCHEMA_DIR / "BankEvent.json"),
        str(SCHEMA_DIR / "RetiredEvent.json"),
    ]
    main(tmp_path)
    assert check_docs_fresh(tmp_path) == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_valid_for_schema_and_decoder(name):
    schema = published_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(EXAMPLES[name])
    msgspec.json.decode(json.dumps(EXAMPLES[name]).encode(), type=INPUT_CONTRACTS[name])


# Mistakes that both the schema (for partners testing their feed) and the decoder must refuse.
@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("TelecomEvent", {"carrier": "china_tietong"}),
        ("TelecomEvent", {"duration_s": -1}),
        ("BankEvent", {"event_id": "has space"}),
        ("AppReport", {"apk_sha256": "not-a-hash"}),
        ("IntelUpdate", {"confidence": 2}),
        ("RegistryUpdate", {"surname": "X"}),
    ],
)
def test_schema_refuses_what_the_decoder_refuses(name, change):
    message = {**EXAMPLES[name], **change}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message, published_schema(name))
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps(message).encode(), type=INPUT_CONTRACTS[name])


def test_money_as_json_number_is_refused_by_schema_but_tolerated_by_decoder():
    """Known divergence: msgspec reads a Decimal from a JSON number exactly, so nothing is lost;
    the schema keeps the stricter documented form."""
    message = {**EXAMPLES["BankEvent"], "amount": 49800.5}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message, published_schema("BankEvent"))
    assert msgspec.json.decode(json.dumps(message).encode(), type=INPUT_CONTRACTS["BankEvent"]).amount == Decimal(
        "49800.50"
    )


def test_contracts_md_carries_docstrings_examples_and_chinese_terms():
    text = render_contracts_md()
    for name, tp in INPUT_CONTRACTS.items():
        assert inspect.getdoc(tp) in text
        assert f"](schemas/{name}.json)" in text
        assert json.dumps(EXAMPLES[name], indent=2, ensure_ascii=False) in text
    for term in ("冒充公检法", "杀猪盘", "虚拟运营商 170/171", "柜面", "涉诈APP安装", "网格"):
        assert term in text


def test_enum_notes_come_from_the_member_comments():
    from streams.contracts.common import Typology, UpdateOp

    assert member_notes(Typology)["romance"] == "杀猪盘"
    assert "other" not in member_notes(Typology)
    assert member_notes(UpdateOp) == {"delete": "tombstone: removes the entry"}
