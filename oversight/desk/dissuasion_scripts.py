"""The dissuasion scripts (劝阻话术): one versioned Markdown file per warning type, shown rendered.

    oversight/desk/scripts/<warning type>.md    the script for that warning type (streams.contracts Typology)
    oversight/desk/scripts/generic.md           the script of the warning types named in GENERIC_FOR

Each file's first line is `version: YYYY.MM-N`, then a blank line, then Markdown. Loading checks that
every warning type the contracts define has its own file or is named in GENERIC_FOR (never both), and
that no file names a warning type that does not exist, so no type is silently left without a script.
The Markdown is rendered once, at load, with raw HTML off: a tag typed into a script shows as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

from streams.contracts.common import Typology

SCRIPTS_DIR = Path(__file__).with_name("scripts")
GENERIC = "generic"
# These point to no fraud pattern a script could speak to, so the generic script is theirs, by name here.
GENERIC_FOR = frozenset({Typology.other, Typology.unknown})
_VERSION_LINE = re.compile(r"version: (\d{4}\.\d{2}-\d+)")


class ScriptError(ValueError):
    """The scripts folder does not give every warning type exactly one script."""


@dataclass(frozen=True)
class Script:
    name: str  # the file's stem: a warning type, or generic
    version: str
    html: str


@dataclass(frozen=True)
class Scripts:
    by_name: dict[str, Script]

    def for_type(self, warning_type: str) -> Script:
        """The script for a warning type; the generic one for GENERIC_FOR and for a type the contracts
        no longer define (a task recorded before the type was removed)."""
        return self.by_name.get(warning_type) or self.by_name[GENERIC]

    def listing(self) -> list[dict]:
        """Every warning type with the script it gets and that script's version."""
        items = []
        for typology in Typology:
            script = self.for_type(typology.value)
            items.append({"warning_type": typology.value, "script": script.name, "version": script.version})
        return items

    def shown_for(self, warning_type: str) -> dict:
        script = self.for_type(warning_type)
        return {"warning_type": warning_type, "name": script.name, "version": script.version, "html": script.html}


def load_scripts(folder: Path = SCRIPTS_DIR) -> Scripts:
    files = {path.stem: path for path in folder.glob("*.md")}
    types = {t.value for t in Typology}
    fallbacks = {t.value for t in GENERIC_FOR}
    problems = []
    if strays := sorted(set(files) - types - {GENERIC}):
        problems.append(f"scripts for no warning type: {', '.join(strays)}")
    if missing := sorted(types - fallbacks - set(files)):
        problems.append(f"no script for warning type {', '.join(missing)} (add one, or name it in GENERIC_FOR)")
    if both := sorted(fallbacks & set(files)):
        problems.append(f"{', '.join(both)}: has a script and is named in GENERIC_FOR; keep one")
    if GENERIC not in files:
        problems.append(f"no {GENERIC}.md")
    if problems:
        raise ScriptError(f"{folder}: " + "; ".join(problems))
    markdown = MarkdownIt("js-default")  # raw HTML off, javascript: and data: links not linked
    return Scripts({name: _script(name, path, markdown) for name, path in sorted(files.items())})


def _script(name: str, path: Path, markdown: MarkdownIt) -> Script:
    first, _, body = path.read_text(encoding="utf-8").partition("\n")
    version = _VERSION_LINE.fullmatch(first.strip())
    if version is None:
        raise ScriptError(f"{path}: the first line must be `version: YYYY.MM-N`")
    return Script(name, version.group(1), markdown.render(body))
