"""Generated docs are never stale: README blocks, docs/contracts.md, docs/schemas/."""

from streams.docs import README, blocks, render, stale_files


def test_generated_docs_are_fresh():
    assert stale_files() == [], "run `.venv/bin/antifraud docs` and commit the result"


def test_a_changed_setting_makes_the_readme_stale():
    text = README.read_text()
    edited = text.replace("| `ANTIFRAUD_DEDUP_WINDOW_S` | `86400` |", "| `ANTIFRAUD_DEDUP_WINDOW_S` | `60` |")
    assert edited != text
    assert render(edited, blocks()) == text


def test_every_topic_appears_in_the_diagram():
    from streams.catalog import get_catalog

    diagram = blocks()["topics"]
    for spec in get_catalog().topics.values():
        if spec.kind not in ("changelog", "faust", "probe"):
            assert spec.name in diagram
