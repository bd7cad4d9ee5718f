"""The case intake of the reverse audit reads any bytes: a case report or a documented dead-letter reason."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oversight.audit_worker import read_case
from streams.contracts import CaseReport, DeadLetterReason
from streams.dead_letters import Rejected

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                        max_leaves=15)


@FAST
@given(st.binary(max_size=2000) | any_json.map(lambda d: json.dumps(d, allow_nan=True).encode()) | st.none())
@example(b'{"event": {"case_id": "\xc4\xe3"}}')
@example(b"[" * 100_000 + b"]" * 100_000)
def test_any_bytes_are_a_case_or_a_documented_reason(value):
    case = read_case(value)
    if isinstance(case, Rejected):
        assert case.reason in set(DeadLetterReason) - {DeadLetterReason.internal_error}, case.detail
    else:
        assert isinstance(case, CaseReport)


def test_not_utf8_is_named_so():
    assert read_case(b'{"event": {"case_id": "\xc4\xe3"}}').reason is DeadLetterReason.not_utf8
    assert read_case(b"").reason is DeadLetterReason.empty
