"""Base schema and YAML loading: strict keys, typed values, `a.b.c=value` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sailvl.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


class SailConfig(BaseModel):
    """Base for every sailvl config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or non-mapping top level is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping at the top level, got {type(data).__name__}"
        )
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = data
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"override {dotted!r}: {'.'.join(parts[: i + 1])} is not a valid list index"
                )
            node = node[int(part)]
            continue
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict | list):
            raise ConfigError(f"override {dotted!r}: {'.'.join(parts[: i + 1])} is not a mapping")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"override {dotted!r}: {last} is not a valid list index")
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply `key.sub=value` strings (values parsed as YAML scalars/lists) to a nested dict in place."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key, value)
    return data


def _format_validation_error(exc: ValidationError, schema: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{loc}'")
        elif err["type"] == "missing":
            lines.append(f"missing config key '{loc}'")
        else:
            got = err.get("input")
            got_s = repr(got) if not isinstance(got, dict) else "a mapping"
            lines.append(f"config key '{loc}': {err['msg']} (got {got_s[:60]})")
    return f"invalid {schema.__name__}: " + "; ".join(lines)


def parse_config(schema: type[T], data: dict[str, Any]) -> T:
    """Validate a dict against `schema`; errors name the dotted key and what was expected."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, schema)) from None


def load_config(schema: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Load YAML at `path` (or start empty), apply overrides, validate against `schema`."""
    data = load_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    return parse_config(schema, data)
