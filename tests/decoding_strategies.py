"""Shared by the decoder property tests: what arbitrary input looks like, and a bare Faust message.

A plain module (not conftest) so test files can import it by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import strategies as st

any_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                        max_leaves=15)


def payloads(gbk_field: str):
    """Arbitrary bytes, arbitrary JSON (NaN included), deep nesting, and a GBK string in `gbk_field`."""
    return (st.binary(max_size=2000)
            | any_json.map(lambda d: json.dumps(d, allow_nan=True).encode())
            | st.just(b"[" * 50_000 + b"]" * 50_000)
            | st.just(b'{"' + gbk_field.encode() + b'": "\xc4\xe3\xba\xc3"}'))


@dataclass
class FaustMessage:
    """The attributes of a Faust Message that a dead letter reads (a plain record, no client)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
