"""Masking for logs and console output: identifiers of citizens never appear in clear."""

from __future__ import annotations

import re

# A quoted value, or a word with 3+ digits in it (a phone number, an account token, an id card):
# an exception message may quote whatever it choked on, so both go before it is logged or kept.
_QUOTED = re.compile(r"""'[^']*'|"[^"]*"|b'[^']*'""")
_WITH_DIGITS = re.compile(r"[\w+.@-]*\d[\w+.@-]*")
_DIGITS = re.compile(r"\d")
MAX_TEXT = 300  # enough for an exception class and what went wrong; a record's content is not wanted


def mask(value: str | None, keep: int = 2) -> str:
    """'+8613800138000' -> '***********00'; short or empty values are fully masked."""
    if not value:
        return "-"
    if len(value) <= keep + 2:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


def mask_text(text: object) -> str:
    """Free text (an exception message) safe for logs and dead letters: quoted values and
    words with 3 or more digits masked, the whole cut to MAX_TEXT characters."""
    try:
        text = str(text)
    except Exception:  # a broken __str__ must not turn masking into a second failure
        return "<unprintable>"
    text = _QUOTED.sub("<value>", text[: MAX_TEXT * 4])
    text = _WITH_DIGITS.sub(lambda m: mask(m.group()) if len(_DIGITS.findall(m.group())) >= 3 else m.group(), text)
    return text[:MAX_TEXT]
