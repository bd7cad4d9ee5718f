"""Integrator docs generated from the contracts: docs/schemas/*.json and docs/contracts.md.

The type is the schema, so nothing here restates a field: names, types, constraints and
meanings come from the Structs, topic names from topics.yaml.
`python -m streams.contracts.docs` rewrites the files; tests/streams/test_contract_docs.py
fails while they are stale, so a contract change ships with its docs.
"""

from __future__ import annotations

import inspect
import io
import json
import textwrap
import tokenize
from enum import Enum
from functools import cache
from pathlib import Path

import msgspec
from msgspec import inspect as mi

from streams.catalog import load_catalog
from streams.contracts import INPUT_CONTRACTS, PARTNER_CONTRACTS, DeadLetter, DeadLetterReason
from streams.contracts.common import MAX_AMOUNT
from streams.contracts.examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path("docs/schemas")
CONTRACTS_MD = Path("docs/contracts.md")
REGENERATE = "python -m streams.contracts.docs"
DOCUMENTED = {**INPUT_CONTRACTS, "DeadLetter": DeadLetter}
# What the platform sends to banks and carriers, and what they answer (signed; docs/dissuasion.md).
SCHEMAS = {**DOCUMENTED, **PARTNER_CONTRACTS}


def json_schemas() -> dict[str, dict]:
    return {name: msgspec.json.schema(tp) for name, tp in SCHEMAS.items()}


def _schema_text(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (folder / f"{name}.json").write_text(_schema_text(schema), encoding="utf-8")


def expected_files(root: Path) -> dict[Path, str]:
    """Every generated file under `root` and the text it must have."""
    files = {root / SCHEMA_DIR / f"{name}.json": _schema_text(s) for name, s in json_schemas().items()}
    files[root / CONTRACTS_MD] = render_contracts_md(root / "topics.yaml")
    return files


def check_docs_fresh(root: Path) -> list[str]:
    """Generated files that are missing, differ from the code, or belong to no contract any more."""
    expected = expected_files(root)
    stale = [p for p, text in expected.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    orphans = [p for p in sorted((root / SCHEMA_DIR).glob("*.json")) if p not in expected]
    return [str(p.relative_to(root)) for p in stale + orphans]


# ---------------------------------------------------------------------------- markdown


@cache
def member_notes(enum_cls: type[Enum]) -> dict[str, str]:
    """Trailing comments of an enum's members, by value: `romance = "romance"  # 杀猪盘`.

    Those comments are where the code keeps the Chinese terms; reading them here keeps
    them written once instead of copying them into a mapping that would drift.
    """
    source = textwrap.dedent(inspect.getsource(enum_cls))
    first_name: dict[int, str] = {}
    notes = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        line = tok.start[0]
        if tok.type == tokenize.NAME:
            first_name.setdefault(line, tok.string)
        elif tok.type == tokenize.COMMENT and first_name.get(line) in enum_cls.__members__:
            notes[enum_cls[first_name[line]].value] = tok.string.lstrip("#").strip()
    return notes


def _bounds(low, high, unit: str = "") -> list[str]:
    if low is None and high is None:
        return []
    if high is None:
        return [f"≥ {low}{unit}"]
    return [f"≤ {high}{unit}" if low is None else f"{low}–{high}{unit}"]


def _type_label(t) -> str:
    if isinstance(t, mi.Metadata):
        return _type_label(t.type)
    if isinstance(t, mi.UnionType):
        kinds = [x for x in t.types if not isinstance(x, mi.NoneType)]
        label = " or ".join(_type_label(x) for x in kinds)
        return label + " or null" if len(kinds) < len(t.types) else label
    if isinstance(t, mi.StrType):
        pattern = [f"pattern `{t.pattern}`"] if t.pattern else []
        return ", ".join(["string", *_bounds(t.min_length, t.max_length, " chars"), *pattern])
    if isinstance(t, (mi.IntType, mi.FloatType)):
        return ", ".join(["integer" if isinstance(t, mi.IntType) else "number", *_bounds(t.ge, t.le)])
    if isinstance(t, mi.ListType):
        return ", ".join([f"list of ({_type_label(t.item_type)})", *_bounds(t.min_length, t.max_length, " items")])
    labels = {
        mi.BoolType: "boolean",
        mi.DecimalType: "decimal as string",
        mi.DateTimeType: "RFC 3339 timestamp with offset",
        mi.EnumType: "enum",
    }
    return labels.get(type(t), type(t).__name__)


def _enum(t) -> type[Enum] | None:
    """The enum class of a field's type, through metadata and `| None`."""
    if isinstance(t, mi.Metadata):
        return _enum(t.type)
    if isinstance(t, mi.UnionType):
        return next(filter(None, map(_enum, t.types)), None)
    return t.cls if isinstance(t, mi.EnumType) else None


def _values(enum_cls: type[Enum] | None) -> str:
    if enum_cls is None:
        return ""
    notes = member_notes(enum_cls)
    return "<br>".join(f"`{m.value}`" + (f": {notes[m.value]}" if m.value in notes else "") for m in enum_cls)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_table(struct: type) -> str:
    rows = ["| Field | Type | Required / default | Meaning | Values |", "|---|---|---|---|---|"]
    for f in mi.type_info(struct).fields:
        schema_extra = (f.type.extra_json_schema or {}) if isinstance(f.type, mi.Metadata) else {}
        meaning = schema_extra.get("description", "")
        enum_cls = _enum(f.type)
        if not meaning and enum_cls is not None:
            meaning = enum_cls.__doc__ or ""  # not inspect.getdoc: it would inherit str's docstring
        if f.required:
            need = "required"
        else:
            default = f.default if f.default is not mi.NODEFAULT else f.default_factory()
            need = f"default `{msgspec.json.encode(default).decode()}`"
        cells = (f"`{f.encode_name}`", _type_label(f.type), need, meaning, _values(enum_cls))
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def _section(name: str, struct: type, topic: str | None) -> str:
    where = f"Topic: `{topic}` · " if topic else ""
    parts = [
        f"## {name}",
        inspect.getdoc(struct),
        f"{where}JSON Schema: [schemas/{name}.json](schemas/{name}.json)",
        field_table(struct),
    ]
    if name in EXAMPLES:
        example = json.dumps(EXAMPLES[name], indent=2, ensure_ascii=False)
        parts.append(f"Example:\n\n```json\n{example}\n```")
    return "\n\n".join(parts)


def _intro(dead_letter_topic: str, kept: str) -> str:
    reasons = member_notes(DeadLetterReason)
    reason_lines = "\n".join(
        f"- `{r.value}`" + (f": {reasons[r.value]}" if r.value in reasons else "") for r in DeadLetterReason
    )
    return f"""# Message contracts

<!-- Generated by `{REGENERATE}` from streams/contracts/ and topics.yaml. Do not edit. -->

What partners send to the anti-fraud early-warning platform (综合预警劝阻平台): one JSON
object, UTF-8, per Kafka message, on the topic named in each section. The message types in
`streams/contracts/` are the schema; this page and the JSON Schema files in `schemas/` are
generated from them. All data shown is synthetic.

## Rules for every message

- **Timestamps** are RFC 3339 with an offset, e.g. `2025-03-14T09:21:07+08:00`. A time
  without an offset is rejected: the platform never guesses a time zone.
- **Money** is CNY as a decimal string with at most 2 decimals, e.g. `"49800.00"`; it must
  be more than 0 and at most {MAX_AMOUNT}. It is stored with exactly 2 decimals.
- **Phone numbers** may come in any common form (`138 0013 8000`, `+86 138-0013-8000`,
  `008613800138000`); they are normalized to E.164 (`+8613800138000`) at ingest, so every
  downstream topic carries E.164 only. Letters or other characters in a number are rejected.
  Chinese service numbers and short codes (106… SMS senders, 95xxx and 96xxx numbers,
  400/800 numbers, 1xxxx hotlines such as `10086`, `12345`) are real senders: they become
  `+86` and their digits (`+8695588`), the form a listed number of theirs takes too.
- **URLs** keep their case except the scheme and host, which are lower-cased.
- **Unknown fields are rejected**: a misspelt field is an error, not silently lost data.
  Fields with a default may be left out; `null` is accepted only where the type says so.
- **`event_id`** is the sender's unique id of the message; a repeat within the dedup window
  (a platform setting) is dropped, so resending a message you are unsure of is safe.
- JSON Schema cannot express rules that join fields (a transfer needs an amount, an upsert
  needs a person); the decoder checks them at ingest and each field's meaning states them.

## What happens to bad input

Nothing is dropped silently. A message that cannot be accepted is written to the
dead-letter topic `{dead_letter_topic}` (kept {kept}, long enough to fix a feed and
replay) with its original bytes, its source topic, partition and offset, and a
reason:

{reason_lines}

The `detail` names the field path and what was expected, never the value (it may be
personal data). The record's format is [DeadLetter](#deadletter) below.

Text is UTF-8. A feed that can only send GB18030 says so once in topics.yaml (`encoding:
gb18030` on its input topic) and the platform transcodes it; anything else that is not
UTF-8 is dead-lettered `not_utf8` and counted per source on the console, so the
integrator sees it the same day. The record key is never decoded: ingest keys each
record again by its resident, so a key in any encoding is kept as bytes and harms nothing."""


def render_contracts_md(topics_file: Path | None = None) -> str:
    catalog = load_catalog(topics_file or ROOT / "topics.yaml")
    topic_of = {t.contract: t.name for t in catalog.topics.values() if t.kind in ("input", "dead-letter")}
    dead_letter = catalog.of_kind("dead-letter")[0]
    retention_ms = dead_letter.retention_ms if dead_letter.retention_ms is not None else catalog.defaults.retention_ms
    kept = "without time limit" if retention_ms < 0 else f"{retention_ms / 86_400_000:g} days"  # -1: forever
    parts = [_intro(dead_letter.name, kept)]
    parts += [_section(name, tp, topic_of.get(name)) for name, tp in DOCUMENTED.items()]
    parts.append(_partner_intro())
    partner_topics = {
        "BankRequest": "antifraud.bank-requests.<bank code in lower case>",
        **{t.contract: t.name for t in catalog.topics.values() if t.contract in ("CarrierRequest", "BankAck", "CarrierAck")},
    }
    parts += [_section(name, tp, partner_topics.get(name)) for name, tp in PARTNER_CONTRACTS.items()]
    return "\n\n".join(parts) + "\n"


def _partner_intro() -> str:
    return """# Partner requests and acknowledgements

What the platform sends to banks and carriers, and what they send back: protective
requests (保护性止付, 停止非柜面业务) to the one bank that holds the account, line
suspensions (关停涉诈风险手机号码) to the carrier of the line, on the minimum scope
(最小范围、最高保密). Every message is signed with HMAC-SHA256 over its canonical JSON
with the key shared by the platform and that partner only; a partner rejects, in a
signed acknowledgement, anything whose signature does not verify or that has expired.
How to sign and verify, and what each field is for: [dissuasion.md](dissuasion.md)."""


def main(root: Path = ROOT) -> None:
    folder = root / SCHEMA_DIR
    for orphan in folder.glob("*.json"):
        if orphan.stem not in SCHEMAS:
            orphan.unlink()  # the schema of a contract that no longer exists would mislead
    write_schemas(folder)
    (root / CONTRACTS_MD).write_text(render_contracts_md(root / "topics.yaml"), encoding="utf-8")
    print(f"wrote {folder}/*.json and {root / CONTRACTS_MD}")


if __name__ == "__main__":
    main()
