"""Decode + validate throughput of the input contracts: msgspec (what ships) vs pydantic v2.

Each library turns the JSON bytes of N realistic carrier and bank messages into validated,
normalized objects, one message at a time as the ingest agent does. The pydantic models
carry the same constraints and call the same normalize_phone / check_money; before timing,
the script checks that both give identical output and refuse the same bad messages.
Two feeds: phone numbers in mixed written forms (phonenumbers parses the non-E.164 ones),
and E.164 only (normalization takes its shortcut, so the decoders' own cost shows).
"types only" is msgspec without the contracts' Python rules: the ceiling the rules leave.

    python benchmarks/contracts_decode.py [--n 20000] [--runs 5]

Results and the decision they support: docs/contracts-benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import timeit
from decimal import Decimal
from importlib.metadata import version
from typing import Annotated

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from streams.contracts.common import check_money, normalize_phone, to_cents
from streams.contracts.signals import (
    BankChannel,
    BankEvent,
    BankKind,
    Carrier,
    CounterpartType,
    Direction,
    TelecomEvent,
    TelecomKind,
)

# ------------------------------------------------------------- the pydantic equivalents

EventId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Code = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Token = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Phone = Annotated[str, Field(min_length=3, max_length=32)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]


class StrictModel(BaseModel):
    # strict: no "1" -> 1 coercion, like msgspec; forbid: unknown fields are errors, like Contract
    model_config = ConfigDict(extra="forbid", strict=True)

    # A field validator, not a call to the contract's __post_init__: assigning attributes
    # after validation goes through BaseModel.__setattr__ and costs pydantic ~5%.
    @field_validator("subscriber", "counterpart", "holder_phone", check_fields=False)
    @classmethod
    def _e164(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else normalize_phone(value, info.field_name)


class PydanticTelecomEvent(StrictModel):
    event_id: EventId
    event_time: AwareDatetime
    carrier: Carrier
    kind: TelecomKind
    direction: Direction
    subscriber: Phone
    counterpart: Phone
    counterpart_type: CounterpartType
    cell_id: Code
    answered: bool = False
    duration_s: Annotated[int, Field(ge=0, le=86400)] = 0
    carrier_flagged: bool = False
    sms_urls: Annotated[list[Url], Field(max_length=10)] = []

    @model_validator(mode="after")
    def _sms_has_no_duration(self):
        if self.kind is TelecomKind.sms and self.duration_s:
            raise ValueError("an SMS has no duration")
        return self


class PydanticBankEvent(StrictModel):
    event_id: EventId
    event_time: AwareDatetime
    bank: Code
    kind: BankKind
    account: Token
    branch_code: Code
    channel: BankChannel
    holder_phone: Phone | None = None
    counterparty_account: Token | None = None
    counterparty_bank: Code | None = None
    amount: Decimal | None = None
    payee_is_new: bool = False

    @field_validator("amount")
    @classmethod
    def _money(cls, amount: Decimal | None) -> Decimal | None:
        if amount is None:
            return None
        check_money(amount, "amount")
        return to_cents(amount)

    @model_validator(mode="after")
    def _transfer_rules(self):
        if self.kind is not BankKind.payee_added:
            if self.amount is None:
                raise ValueError("a transfer needs an amount")
            if self.counterparty_account is None:
                raise ValueError("a transfer needs a counterparty_account")
        return self


# ------------------------------------------------------------------ synthetic messages


def phone(rng: random.Random, national: str, written_forms: bool) -> str:
    """E.164; or, in the mixed feed, 60% E.164, 30% bare national numbers, 10% written forms."""
    form = rng.random() if written_forms else 0.0
    if form < 0.6:
        return "+86" + national
    if form < 0.9:
        return national
    return rng.choice([f"0086{national}", f"+86 {national[:3]} {national[3:7]} {national[7:]}"])


def mobile(rng: random.Random, prefixes=("138",)) -> str:
    return rng.choice(prefixes) + f"{rng.randrange(10**8):08d}"


def clock(rng: random.Random) -> str:
    return f"2025-03-14T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}+08:00"


def telecom_message(rng: random.Random, i: int, written_forms: bool) -> dict:
    kind = rng.choice(["call", "call", "call", "sms"])
    counterpart_type = rng.choice(list(CounterpartType)).value
    if counterpart_type == "international":
        counterpart = rng.choice(["+85259", "+85366", "+63917"]) + f"{rng.randrange(10**6):06d}"
    else:
        counterpart = phone(rng, mobile(rng, ("138", "159", "170", "171")), written_forms)
    answered = kind == "call" and rng.random() < 0.7
    with_url = kind == "sms" and rng.random() < 0.3
    return {
        "event_id": f"tel-{i:08d}",
        "event_time": clock(rng),
        "carrier": rng.choice(list(Carrier)).value,
        "kind": kind,
        "direction": rng.choice(["incoming", "outgoing"]),
        "subscriber": phone(rng, mobile(rng), written_forms),
        "counterpart": counterpart,
        "counterpart_type": counterpart_type,
        "cell_id": f"ZK-411602-{rng.randrange(10**4):04d}",
        "answered": answered,
        "duration_s": rng.randrange(1, 3600) if answered else 0,
        "carrier_flagged": rng.random() < 0.05,
        "sms_urls": [f"https://pay-verify{rng.randrange(100)}.example/r/{i}"] if with_url else [],
    }


def bank_message(rng: random.Random, i: int, written_forms: bool) -> dict:
    kind = rng.choice(["transfer_out", "transfer_out", "transfer_in", "payee_added"])
    message = {
        "event_id": f"bank-{i:08d}",
        "event_time": clock(rng),
        "bank": rng.choice(["ICBC", "CCB", "ABC", "BOC", "PSBC"]),
        "kind": kind,
        "account": f"tok_{rng.randrange(16**10):010x}",
        "branch_code": f"ZK-411602-{rng.randrange(100):03d}",
        "channel": rng.choice(list(BankChannel)).value,
        "holder_phone": phone(rng, mobile(rng), written_forms) if rng.random() < 0.8 else None,
        "payee_is_new": rng.random() < 0.1,
    }
    if kind != "payee_added":
        cents = rng.randrange(100, 5_000_000)
        message["counterparty_account"] = f"tok_{rng.randrange(16**10):010x}"
        message["amount"] = f"{cents // 100}.{cents % 100:02d}"
    return message


# Changes each decoder must refuse, or the comparison is not like for like.
COMMON_MISTAKES = [{"event_time": "2025-03-14T09:21:07"}, {"event_id": "has space"}, {"surname": "X"}]
MISTAKES = {
    TelecomEvent: [{"carrier": "china_tietong"}, {"subscriber": "1380013800O"}, {"kind": "sms", "duration_s": 30}],
    BankEvent: [{"amount": "12.345"}, {"amount": "-1.00"}, {"kind": "transfer_out", "amount": None}],
}


# ---------------------------------------------------------------------------- timing


def check_like_for_like(contract, make, msgspec_decode, pydantic_decode, msgs: list[bytes]) -> None:
    for raw in msgs:
        ours, theirs = msgspec.to_builtins(msgspec_decode(raw)), pydantic_decode(raw).model_dump(mode="json")
        if ours != theirs:
            raise SystemExit(f"the decoders disagree, the comparison would be unfair:\n{ours}\n{theirs}")
    good = make(random.Random(0), 0, True)
    for change in COMMON_MISTAKES + MISTAKES[contract]:
        for decode in (msgspec_decode, pydantic_decode):
            try:
                decode(msgspec.json.encode({**good, **change}))
            except (msgspec.ValidationError, PydanticValidationError):
                continue
            raise SystemExit(f"{decode} accepted {change}: the comparison would be unfair")


def msgs_per_s(decoders, msgs: list[bytes], runs: int) -> list[float]:
    """Median throughput of each decoder; runs alternate so a noisy neighbour hits both alike."""
    timers = [timeit.Timer(lambda fn=fn: [fn(raw) for raw in msgs]) for fn in decoders]  # gc off, as in timeit
    times = [[t.timeit(number=1) for t in timers] for _ in range(runs)]
    return [len(msgs) / statistics.median(run[i] for run in times) for i in range(len(decoders))]


def types_only(contract: type) -> type:
    """The contract without its Python rules (__post_init__): what msgspec itself costs."""
    return type(f"{contract.__name__}TypesOnly", (contract,), {"__post_init__": lambda self: None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages per contract and feed")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median counts")
    args = parser.parse_args()

    print(f"python {platform.python_version()}, msgspec {version('msgspec')}, pydantic {version('pydantic')}", end="")
    print(f" (pydantic-core {version('pydantic-core')}), phonenumbers {version('phonenumbers')}")
    print(f"{platform.platform()}, {os.cpu_count()} CPUs; N={args.n}, median of {args.runs} runs\n")
    print(f"{'feed':<13}{'contract':<14}{'msgspec msg/s':>15}{'pydantic msg/s':>16}{'ratio':>8}{'types only':>12}")
    for feed, written_forms in (("mixed forms", True), ("E.164 only", False)):
        for contract, model, make in (
            (TelecomEvent, PydanticTelecomEvent, telecom_message),
            (BankEvent, PydanticBankEvent, bank_message),
        ):
            rng = random.Random(20250314)  # the same messages on every run and machine
            msgs = [msgspec.json.encode(make(rng, i, written_forms)) for i in range(args.n)]
            ours, theirs = msgspec.json.Decoder(contract).decode, model.model_validate_json
            check_like_for_like(contract, make, ours, theirs, msgs)
            bare = msgspec.json.Decoder(types_only(contract)).decode
            fast, slow, ceiling = msgs_per_s([ours, theirs, bare], msgs, args.runs)
            print(f"{feed:<13}{contract.__name__:<14}{fast:>15,.0f}{slow:>16,.0f}{fast / slow:>7.1f}x{ceiling:>12,.0f}")


if __name__ == "__main__":
    main()
