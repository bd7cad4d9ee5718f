"""Masking for logs and console output: identifiers of citizens never appear in clear."""

from __future__ import annotations


def mask(value: str | None, keep: int = 2) -> str:
    """'+8613800138000' -> '***********00'; short or empty values are fully masked."""
    if not value:
        return "-"
    if len(value) <= keep + 2:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]
