"""YAML configuration files validated by pydantic, with errors that name the file and line.

Operators edit topics.yaml and rules.yaml by hand; a mistake must say where it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is not valid; the message names the file and line."""


def read_yaml(path: Path):
    """(parsed data, node tree for line lookups)."""
    return parse_yaml(path.read_text(encoding="utf-8"), path)


def parse_yaml(text: str, path: Path):
    """read_yaml of a text already in hand (a published rules version); `path` names it in errors."""
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.MarkedYAMLError as exc:  # the loader's marks: where it gave up, and what it was reading
        mark, where = exc.problem_mark, ""
        if exc.context and exc.context_mark is not None:
            where = f" ({exc.context}, line {exc.context_mark.line + 1})"
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{at}: not valid YAML: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def validate(path: Path, data, root, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(str(part) for part in err["loc"])
            lines.append(f"{path}:{line_of(root, loc)}: {'.'.join(loc)}: {err['msg']}")
        raise ConfigError(f"{path.name} is not valid:\n  " + "\n  ".join(lines)) from None


def line_of(root, loc: tuple[str, ...]) -> int:
    """1-based line of the deepest YAML node on `loc` that exists."""
    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line
