"""Which topics each stage reads and writes, from topics.yaml (the one map of every topic)."""

from __future__ import annotations

from streams.catalog import Catalog

# The reference data path: update topics and their normalized forms.
REFERENCE_TOPIC_IDS = ("in_registry", "in_intel", "norm_registry", "norm_intel")


def _module(stage: str) -> str:
    return f"agents/{stage}.py"


def stage_inputs(catalog: Catalog, stage: str) -> list[str]:
    """Topic names the stage's agents consume (table recovery of its own changelogs excluded)."""
    return [t.name for t in catalog.topics.values() if _module(stage) in t.consumers]


def stage_outputs(catalog: Catalog, stage: str) -> list[str]:
    return [t.name for t in catalog.topics.values() if _module(stage) in t.producers]


def forward_inputs(catalog: Catalog, stage: str, stages: tuple[str, ...]) -> list[str]:
    """The stage's inputs that carry the pipeline forward: partner feeds and other stages' outputs.

    Left out: topics the stage writes itself (escalate's inbox of timer findings) and
    topics nothing in the bench writes (outcomes and partner acks come from channel
    workers and partners). Those are not a backlog the stage can be timed draining.
    """
    sources = {t.name for t in catalog.of_kind("input")}
    sources |= {name for s in stages if s != stage for name in stage_outputs(catalog, s)}
    own = set(stage_outputs(catalog, stage))
    return [t for t in stage_inputs(catalog, stage) if t in sources and t not in own]


def event_input_topics(catalog: Catalog) -> list[str]:
    """The partner feeds the event mix goes to (reference updates excluded)."""
    reference = {catalog.topic(i).name for i in REFERENCE_TOPIC_IDS}
    return [t.name for t in catalog.of_kind("input") if t.name not in reference]


def reference_stages(catalog: Catalog, stages: tuple[str, ...]) -> tuple[str, ...]:
    """Stages on the reference data path (ingest, reference_loader)."""
    reference = {catalog.topic(i).name for i in REFERENCE_TOPIC_IDS}
    return tuple(s for s in stages if reference & set(stage_inputs(catalog, s)))


def stages_to_run_alone(stages: tuple[str, ...], requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """Requested stages, plus every stage before the last of them: each one's output feeds the next."""
    if requested is None:
        return stages
    unknown = [s for s in requested if s not in stages]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; the worker runs {', '.join(stages)}")
    last = max(stages.index(s) for s in requested) if requested else -1
    return stages[: last + 1]


def fed_stages(catalog: Catalog, stages: tuple[str, ...]) -> tuple[str, ...]:
    """Stages that events from the partner feeds can reach through the running stages.

    A stage whose upstream is not running (say, correlate is not in STAGES yet) gets no
    input, however fast it is.
    """
    reachable, fed = set(event_input_topics(catalog)), set()
    while True:
        new = {s for s in stages if s not in fed and reachable & set(stage_inputs(catalog, s))}
        if not new:
            return tuple(s for s in stages if s in fed)
        fed |= new
        reachable |= {name for s in new for name in stage_outputs(catalog, s)}


def furthest_level(catalog: Catalog, stages: tuple[str, ...]) -> tuple[str, list[str]]:
    """The furthest output events reach through the running stages, for latency: (level, topics)."""
    produced = {name for s in fed_stages(catalog, stages) for name in stage_outputs(catalog, s)}
    actions = [t.name for t in catalog.topics.values() if t.id.startswith("actions_") and t.name in produced]
    if actions:
        return "actions", actions
    for level in ("alerts", "signals_enriched"):
        if catalog.topic(level).name in produced:
            return level, [catalog.topic(level).name]
    normalized = [catalog.topic(t.normalized_to).name for t in catalog.of_kind("input")
                  if t.name in event_input_topics(catalog)]
    return "normalized", [n for n in normalized if n in produced]
