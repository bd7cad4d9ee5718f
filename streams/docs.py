"""Generated parts of the docs: README blocks from settings and topics.yaml, plus the contract docs.

A generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
`antifraud docs` rewrites them and a test fails when one is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from streams.catalog import Catalog, get_catalog
from streams.settings import PROJECT_ROOT, Settings

README = PROJECT_ROOT / "README.md"


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


def topic_diagram(catalog: Catalog) -> str:
    """Mermaid flowchart: producers -> topic -> consumers, for every non-internal topic."""
    lines = ["```mermaid", "flowchart LR"]
    for spec in catalog.topics.values():
        if spec.kind in ("changelog", "faust", "probe"):
            continue
        topic = f"t_{spec.id}"
        lines.append(f'  {topic}[("{spec.name}")]')
        for producer in spec.producers:
            lines.append(f'  {_node(producer)}["{producer}"] --> {topic}')
        for consumer in spec.consumers:
            lines.append(f'  {topic} --> {_node(consumer)}["{consumer}"]')
    lines.append("```")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    return {"settings": settings_table(), "topics": topic_diagram(get_catalog())}


def render(text: str, generated: dict[str, str]) -> str:
    for name, body in generated.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no generated:{name} block")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def stale_files() -> list[str]:
    from streams.contracts.docs import check_docs_fresh

    stale = list(check_docs_fresh(PROJECT_ROOT))
    if render(README.read_text(), blocks()) != README.read_text():
        stale.append("README.md")
    return stale


def write_all() -> list[str]:
    from streams.contracts.docs import main as write_contract_docs

    write_contract_docs()
    README.write_text(render(README.read_text(), blocks()))
    return ["README.md", "docs/contracts.md", "docs/schemas/"]
