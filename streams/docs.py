"""Generated parts of the docs: settings, topics per domain and rules, plus the contract docs.

A generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
`antifraud docs` rewrites them and a test fails when one is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from streams.catalog import Catalog, get_catalog
from streams.settings import PROJECT_ROOT, Settings

DOCS = PROJECT_ROOT / "docs"
SETTINGS_DOC = DOCS / "settings.md"
TOPICS_DOC = DOCS / "topics.md"
DETECTION = DOCS / "detection.md"
SECURITY = DOCS / "security.md"

# topics.yaml's `domain:` values, in the order a record meets them, with what each covers.
DOMAINS = {
    "intake": "Intake: partners' records in, validated and normalized (agents/ingest.py)",
    "reference": "Reference data: the registry and intelligence lists into Valkey; late intel back to correlation",
    "detection": "Detection: enriched signals correlated per person into alerts",
    "dissuasion": "Dissuasion: actions per channel, outcomes, escalation, partner requests and acknowledgements",
    "oversight": "Oversight: audits and follow-up visits",
    "operations": "Operations: what no stage could accept",
}
# Faust's own topics (changelogs, the assignor's leader topic) are not drawn.
UNDRAWN_KINDS = ("changelog", "faust", "probe")


def settings_table() -> str:
    rows = ["| env var | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0] if field.validation_alias else f"ANTIFRAUD_{name.upper()}"
        default = field.default.value if hasattr(field.default, "value") else field.default
        if isinstance(default, Path):
            default = f"./{default.relative_to(PROJECT_ROOT)}"
        shown = "(unset)" if default is None else f"`{default}`"
        rows.append(f"| `{env}` | {shown} | {field.description} |")
    return "\n".join(rows)


def _node(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", label)


def topic_diagram(specs) -> str:
    """Mermaid flowchart: producers -> topic -> consumers, for the given topics."""
    lines = ["```mermaid", "flowchart LR"]
    for spec in specs:
        topic = f"t_{spec.id}"
        lines.append(f'  {topic}[("{spec.name}")]')
        for producer in spec.producers:
            lines.append(f'  {_node(producer)}["{producer}"] --> {topic}')
        for consumer in spec.consumers:
            lines.append(f'  {topic} --> {_node(consumer)}["{consumer}"]')
    lines.append("```")
    return "\n".join(lines)


def topic_diagrams(catalog: Catalog) -> str:
    """One small diagram per domain, in DOMAINS order, of every topic a stage or partner uses."""
    sections = []
    for domain, title in DOMAINS.items():
        specs = [s for s in catalog.topics.values() if s.domain == domain and s.kind not in UNDRAWN_KINDS]
        if specs:
            sections.append(f"## {title}\n\n{topic_diagram(specs)}")
    return "\n\n".join(sections)


def rules_table() -> str:
    """rules.yaml in words: every signal with its weight, window and thresholds."""
    from streams.rules import get_rules

    rules = get_rules()
    rows = [
        f"Rules version `{rules.version}`. Tiers: low from {rules.tiers.low:g}, medium from {rules.tiers.medium:g}, "
        f"high from {rules.tiers.high:g} points.",
        "",
        "| signal | what it means | points | window | thresholds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rule in rules.signals:
        params = rule.model_dump(exclude={"comment", "weight", "window_s"})
        thresholds = ", ".join(f"{k} = {_plain(v)}" for k, v in params.items()) or "-"
        window = _duration(rule.window_s) if hasattr(rule, "window_s") else "-"
        points = f"{rule.weight:g}" if hasattr(rule, "weight") else "see thresholds"
        rows.append(f"| `{name}` | {rule.comment} | {points} | {window} | {thresholds} |")
    return "\n".join(rows)


def acl_plan_block() -> str:
    """`antifraud acl plan`'s output, as it is."""
    from streams.acl_plan import build_plan
    from streams.routing import get_partners

    return f"```\n{build_plan(get_catalog(), get_partners()).text()}```"


def _plain(value) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(getattr(v, "value", str(v)) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def generated_files() -> dict[Path, dict[str, str]]:
    return {SETTINGS_DOC: {"settings": settings_table()}, TOPICS_DOC: {"topics": topic_diagrams(get_catalog())},
            DETECTION: {"rules": rules_table()}, SECURITY: {"acl-plan": acl_plan_block()}}


def render(text: str, generated: dict[str, str]) -> str:
    for name, body in generated.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"no generated:{name} block")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def stale_files() -> list[str]:
    from streams.contracts.docs import check_docs_fresh

    stale = list(check_docs_fresh(PROJECT_ROOT))
    for path, generated in generated_files().items():
        if render(path.read_text(), generated) != path.read_text():
            stale.append(str(path.relative_to(PROJECT_ROOT)))
    return stale


def write_all() -> list[str]:
    from streams.contracts.docs import main as write_contract_docs

    write_contract_docs()
    for path, generated in generated_files().items():
        path.write_text(render(path.read_text(), generated))
    return [str(p.relative_to(PROJECT_ROOT)) for p in generated_files()] + ["docs/contracts.md", "docs/schemas/"]
