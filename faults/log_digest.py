"""What the platform's processes complained of since a mark: the evidence a failed recovery prints.

A fault that does not recover fails the suite on a CI machine whose run directory is gone with
it, so the suite prints, per process log, the warnings and errors written since the fault began
(numbers folded, counted, one example each) and the last line the process wrote.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_LEVEL = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|\b(WARNING|ERROR|CRITICAL)\b")
_NUMBERS = re.compile(r"\d+")
_STAMP = re.compile(r"^\[[^\]]*\] \[\d+\] ")  # Faust's "[time] [pid] " prefix


def log_marks(log_dir: Path) -> dict[str, int]:
    """Each log's size now: where `digest` starts reading."""
    return {p.name: p.stat().st_size for p in sorted(log_dir.glob("*.log"))}


def digest(log_dir: Path, marks: dict[str, int], skip: tuple[str, ...] = ("kafka.log", "broker.log"),
           most: int = 5, width: int = 180) -> list[str]:
    lines: list[str] = []
    for path in sorted(log_dir.glob("*.log")):
        if path.name in skip:
            continue
        with path.open("rb") as f:
            f.seek(marks.get(path.name, 0))
            text = f.read().decode("utf-8", "replace").splitlines()
        if not text:
            continue
        counts: Counter[str] = Counter()
        example: dict[str, str] = {}
        for line in text:
            if _LEVEL.search(line):
                body = _STAMP.sub("", line)
                key = _NUMBERS.sub("#", body)[:width]
                counts[key] += 1
                example.setdefault(key, body[:width])
        lines.append(f"{path.stem}: {len(text)} lines, last: {_STAMP.sub('', text[-1])[:width]}")
        lines += [f"  {n:5d} x {example[key]}" for key, n in counts.most_common(most)]
    return lines
