"""Loading and validating device configs from YAML/JSON with errors that name file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge.config.model import EdgeConfig
from edge.errors import EdgeError


class ConfigError(EdgeError):
    """A config could not be read or is invalid; `problems` lists (field, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {field}: {msg}" if field else f"{source}: {msg}" for field, msg in problems
        ]
        super().__init__("\n".join(lines))

    @property
    def first_field(self) -> str:
        """Dotted path of the first offending field ('' when the document itself is bad)."""
        return self.problems[0][0] if self.problems else ""


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) pairs from a pydantic ValidationError, e.g. ('cameras[0].id', ...)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see firmware-config/edge-config.schema.json)"
        problems.append((_loc_to_path(loc), msg.removeprefix("Value error, ")))
    return problems


def parse_config(data: Any, *, source: str = "<config>") -> EdgeConfig:
    """Validate an already-parsed document; raises ConfigError naming each bad field."""
    if not isinstance(data, dict):
        raise ConfigError(
            source, [("", f"expected a mapping at the top, got {type(data).__name__}")]
        )
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problems_from(exc)) from exc


def parse_config_text(text: str, *, source: str = "<config>") -> EdgeConfig:
    """Parse YAML (a superset of JSON) and validate it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [("", f"not valid YAML: {where}{problem}")]) from exc
    return parse_config(data, source=source)


def load_config(path: str | Path) -> EdgeConfig:
    """Read and validate a config file (YAML or JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [("", f"cannot read the file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [("", "the file is not UTF-8 text")]) from exc
    return parse_config_text(text, source=str(p))


def config_json_schema() -> str:
    """The JSON schema of EdgeConfig as stable, pretty-printed JSON text."""
    schema = EdgeConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mallpulse.dev/schemas/edge-config.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
