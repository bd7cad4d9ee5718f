"""Published rules versions: rules.yaml and routing.yaml as one versioned document (docs/rules.md)."""

from pathlib import Path

import yaml
from msgspec import Struct

from streams.contracts.common import Timestamp, described

VersionId = described(
    str, "The rules' own `version:` (rules.yaml); it names the rules and the routing published with them.",
    min_length=1, max_length=64,
)


def shipped_rules_version() -> str:
    """The `version:` of the rules.yaml shipped in the repository: what records written before versions
    were stamped on actions were judged by (their default)."""
    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "rules.yaml").read_text(encoding="utf-8"))
    return str(shipped["version"])


SHIPPED_RULES_VERSION = shipped_rules_version()


class RulesVersion(Struct, forbid_unknown_fields=True):
    """规则版本: one publication of the detection rules and the dissuasion routing, switched to together.

    Keyed by the version id on a compacted topic: the last record on it is the version in force.
    """

    version: VersionId
    rules: described(str, "rules.yaml as published (the text, comments included).")
    routing: described(str, "routing.yaml as published (the text, comments included).")
    published_by: described(str, "Who published it (`antifraud rules publish --by`).", min_length=1, max_length=64)
    published_at: Timestamp
    why: described(str, "Why it was published: the analyst's reason.", min_length=1, max_length=2000)
    rollback_from: described(
        str | None, "Set by `antifraud rules rollback`: the version in force that this older one replaced."
    ) = None

    @property
    def publication_id(self) -> str:
        """One publication (a version put back in force by a rollback is published again)."""
        return f"{self.version}@{self.published_at.isoformat()}"


class RulesShadow(Struct, forbid_unknown_fields=True):
    """影子规则: the candidate rules version judged beside the one in force (`antifraud rules shadow`).

    On a compacted topic with one key: the last record says what runs in shadow, a candidate or
    nothing (stopped). The candidate's alerts go to alerts.shadow only, never to an action topic.
    """

    candidate: RulesVersion | None  # None: the shadow was stopped
    set_by: described(str, "Who set or stopped the shadow (`--by`).", min_length=1, max_length=64)
    set_at: Timestamp
    why: described(str, "Why: the analyst's reason.", min_length=1, max_length=2000)
