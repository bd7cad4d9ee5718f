"""The shadow's pure parts: the example candidate, the holder, the follower's decoding."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime

import msgspec
from rules_version_builders import version

from streams.contracts.rules_versions import RulesShadow
from streams.rules import load_rules
from streams.rules_shadow import RulesInShadow
from streams.settings import PROJECT_ROOT


def test_the_example_candidate_is_the_shipped_rules_but_its_version_and_one_threshold():
    shipped = (PROJECT_ROOT / "rules.yaml").read_text(encoding="utf-8").splitlines()
    candidate = (PROJECT_ROOT / "rules.candidate.yaml").read_text(encoding="utf-8").splitlines()
    changed = [(d[0], d[2:].split("#")[0].strip())
               for d in difflib.ndiff([x for x in shipped if not x.startswith("#")],
                                      [x for x in candidate if not x.startswith("#")]) if d[:2] in ("- ", "+ ")]
    assert changed == [("-", 'version: "2026.12-2"'), ("+", 'version: "2026.12-2-candidate"'),
                       ("-", "medium: 60"), ("+", "medium: 50")], (
        "rules.candidate.yaml must stay rules.yaml with its own version and one threshold changed: copy rules.yaml again")
    loaded = load_rules(PROJECT_ROOT / "rules.candidate.yaml")
    assert (loaded.version, loaded.tiers.medium) == ("2026.12-2-candidate", 50)


def test_a_candidate_is_set_and_stopped_whole():
    holder = RulesInShadow()
    assert holder.current is None
    record = RulesShadow(candidate=version("2027.09-1"), set_by="analyst-7", set_at=datetime.now(UTC), why="try")
    holder.switch_to(msgspec.json.decode(msgspec.json.encode(record), type=RulesShadow))
    assert holder.current is not None and holder.current.rules.version == "2027.09-1"
    holder.switch_to(RulesShadow(candidate=None, set_by="lead-2", set_at=datetime.now(UTC), why="done"))
    assert holder.current is None
