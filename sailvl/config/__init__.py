"""Configuration: pydantic schemas, YAML loading with key=value overrides, shipped recipes."""

from sailvl.config.base import SailConfig, apply_overrides, load_config, load_yaml, parse_config

__all__ = ["SailConfig", "apply_overrides", "load_config", "load_yaml", "parse_config"]
