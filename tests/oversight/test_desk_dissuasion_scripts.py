"""The dissuasion scripts: every warning type the contracts define gets one, with a version, rendered
to HTML in which nothing typed into a script becomes a tag."""

from __future__ import annotations

import shutil

import pytest

from oversight.desk.dissuasion_scripts import GENERIC, GENERIC_FOR, SCRIPTS_DIR, ScriptError, load_scripts
from streams.contracts.common import Typology
from streams.routing import get_routing


def test_every_warning_type_has_its_script_or_falls_back_to_the_generic_one_by_name():
    scripts = load_scripts()
    for typology in Typology:
        script = scripts.for_type(typology.value)
        assert script.name == (GENERIC if typology in GENERIC_FOR else typology.value), typology
        assert script.version and "<h1>" in script.html and "96110" in script.html, typology
    assert [i["warning_type"] for i in scripts.listing()] == [t.value for t in Typology]
    assert scripts.for_type("a_type_since_removed").name == GENERIC


def test_the_desk_gives_the_generic_script_exactly_where_routing_gives_the_default_key():
    routing = get_routing()
    for typology in Typology:
        generic_here = load_scripts().for_type(typology.value).name == GENERIC
        assert generic_here == (routing.script_for(typology) == routing.scripts["default"]), typology


@pytest.fixture
def folder(tmp_path):
    copy = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, copy)
    return copy


def test_a_warning_type_without_a_script_stops_the_load(folder):
    (folder / "romance.md").unlink()
    with pytest.raises(ScriptError, match="no script for warning type romance"):
        load_scripts(folder)


def test_a_script_for_no_warning_type_or_for_a_named_fallback_stops_the_load(folder):
    (folder / "romanse.md").write_text("version: 2026.12-1\n\n# typo\n", encoding="utf-8")
    (folder / "unknown.md").write_text("version: 2026.12-1\n\n# both\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"no warning type: romanse.*unknown: has a script and is named"):
        load_scripts(folder)


def test_a_script_without_its_version_line_stops_the_load(folder):
    path = folder / "investment.md"
    path.write_text(path.read_text(encoding="utf-8").partition("\n")[2], encoding="utf-8")
    with pytest.raises(ScriptError, match="investment.md: the first line must be"):
        load_scripts(folder)


def test_html_typed_into_a_script_is_shown_as_text(folder):
    (folder / "investment.md").write_text(
        "version: 2026.13-7\n\n**ask** <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[call](javascript:alert(1)) [96110](tel:96110)\n", encoding="utf-8")
    html = load_scripts(folder).for_type("investment").html
    assert "<strong>ask</strong>" in html and '<a href="tel:96110">96110</a>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
