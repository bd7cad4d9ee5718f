"""Generated docs are never stale: settings, topics per domain, rules, docs/contracts.md, docs/schemas/."""

from streams.catalog import get_catalog
from streams.docs import DOMAINS, SETTINGS_DOC, UNDRAWN_KINDS, render, settings_table, stale_files, topic_diagrams


def test_generated_docs_are_fresh():
    assert stale_files() == [], "run `.venv/bin/antifraud docs` and commit the result"


def test_a_changed_setting_makes_the_settings_page_stale():
    text = SETTINGS_DOC.read_text()
    edited = text.replace("| `ANTIFRAUD_DEDUP_WINDOW_S` | `86400` |", "| `ANTIFRAUD_DEDUP_WINDOW_S` | `60` |")
    assert edited != text
    assert render(edited, {"settings": settings_table()}) == text


def test_every_topic_has_a_domain_and_appears_once_in_its_diagram():
    catalog = get_catalog()
    diagrams = topic_diagrams(catalog)
    for spec in catalog.topics.values():
        assert spec.domain in DOMAINS or spec.kind in UNDRAWN_KINDS, spec.id
        if spec.kind not in UNDRAWN_KINDS:
            assert diagrams.count(f'[("{spec.name}")]') == 1, spec.name
