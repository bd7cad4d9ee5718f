"""Every stage after ingest reads any bytes into a record or a dead letter with a documented reason.

Those topics are written by the platform, so a bad record there is a bug upstream; it must
still be kept (dead-lettered) and never stop the stage. Pure and in process (hypothesis).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from decoding_strategies import FaustMessage
from decoding_strategies import payloads as arbitrary_payloads
from streams.contracts import DeadLetter, DeadLetterReason
from streams.dead_letters import undecodable

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCUMENTED = set(DeadLetterReason) - {DeadLetterReason.internal_error}


def decoders():
    import agents.correlate
    import agents.enrich
    import agents.escalate
    import agents.reference_loader
    import agents.route

    found = {f"enrich:{t}": d.decode for t, d in agents.enrich.DECODERS.items()}
    found |= {f"reference_loader:{t}": d.decode for t, d in agents.reference_loader.DECODERS.items()}
    found["correlate"] = agents.correlate.DECODER.decode
    found["route"] = agents.route.DECODE_ALERT
    found |= {f"escalate:{t}": d for t, d in agents.escalate.DECODERS.items()}
    return found


DECODERS = decoders()
payloads = arbitrary_payloads("x")


@FAST
@given(st.sampled_from(sorted(DECODERS)), payloads)
@example("route", b"\xff")
@example("correlate", b'"\xc4\xe3"')
def test_any_bytes_decode_or_make_a_dead_letter_with_a_documented_reason(name, value):
    try:
        DECODERS[name](value)
    except Exception as exc:  # what each stage catches, record by record
        letter = undecodable(name.split(":")[0], FaustMessage("antifraud.some-topic", value, b"\xff"), exc, 65536)
        assert letter.reason in DOCUMENTED, letter.detail
        msgspec.json.decode(msgspec.json.encode(letter), type=DeadLetter)


@FAST
@given(payloads, st.booleans())
def test_partner_acks_of_any_bytes_are_refused_never_raised(value, is_bank):
    from agents.escalate import _verified_ack

    assert _verified_ack(value, is_bank) is None


def test_non_utf8_in_a_platform_record_is_named_so():
    letter = undecodable("enrich", FaustMessage("t", b'{"event": "\xc4\xe3"}'), _raised(b'{"event": "\xc4\xe3"}'), 65536)
    assert letter.reason is DeadLetterReason.not_utf8


def _raised(value: bytes) -> Exception:
    try:
        msgspec.json.decode(value)
    except Exception as exc:
        return exc
    pytest.fail("expected the decoder to raise")


def test_every_stage_agent_stops_its_worker_when_it_crashes():
    # Faust keeps a crashed agent's worker alive by default; every stage's body is wrapped instead.
    import importlib

    from streams.app import app
    from streams.worker import STAGES

    for stage in STAGES:
        importlib.import_module(f"agents.{stage}")
    for name, agent in app.agents.items():
        assert getattr(agent.fun, "stops_worker_on_crash", False), f"agent {name} is not wrapped"


def test_every_timer_and_task_stops_its_worker_when_it_raises():
    # A Faust timer or task that raises just stops, silently (escalation deadlines would never fire).
    from streams.worker import STAGES

    for stage in STAGES:
        lines = (Path(__file__).parents[2] / "agents" / f"{stage}.py").read_text().splitlines()
        for n, line in enumerate(lines):
            if line.startswith(("@app.timer", "@app.task", "@app.agent")):
                assert lines[n + 1] == "@stops_worker_on_crash(app)", f"agents/{stage}.py:{n + 1}"
