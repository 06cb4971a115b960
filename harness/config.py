"""Resolve one run's method config, and parse command-line ``--set METHOD.KEY=VALUE`` overrides.

Precedence, last wins (docs/interfaces.md): method defaults (inside the Agent) < suite YAML
``hparams[method]`` < ``Agent.suite_overrides(suite, dataset)`` < ``Agent.PROFILES[profile]`` < plan column
overrides < command-line overrides. The result is a dict of overrides handed to ``Agent.fit``;
the key ``steps`` is taken out of it and passed to ``fit`` as its ``steps`` argument.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from harness.methods import agent_class, registered_methods

STEPS_KEY = "steps"
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """["mage.num_scales=4", "dt.lr=1e-4"] -> {"mage": {"num_scales": 4}, "dt": {"lr": 0.0001}}.

    Values are YAML-typed (4 -> int, 1e-4 and 0.5 -> float, [1, 2] -> list, true -> bool, else str).
    Raises ValueError (one line) for an item that is not METHOD.KEY=VALUE or names an unknown method.
    """
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, text = item.partition("=")
        method, dot, key = target.strip().partition(".")
        if not sep or not dot or not method or not key:
            raise ValueError(f"bad --set {item!r}: write METHOD.KEY=VALUE, e.g. --set mage.num_scales=4")
        if method not in registered_methods():
            raise ValueError(f"bad --set {item!r}: unknown method {method!r}; known: {', '.join(sorted(registered_methods()))}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ValueError(f"bad --set {item!r}: {text!r} is not a YAML value") from None
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)   # PyYAML (YAML 1.1) reads 1e-4 as a string; users mean a number
        overrides.setdefault(method, {})[key] = value
    return overrides


def load_agent_class(method: str):
    """``harness.methods.agent_class`` with an import failure turned into a one-line ValueError."""
    try:
        return agent_class(method)
    except ImportError as error:
        raise ValueError(f"method {method!r} cannot be loaded ({error}); is its package installed?") from None


def validate_overrides(method: str, overrides: dict[str, Any]) -> None:
    """Raise ValueError (one line) when ``overrides`` holds a key that ``method``'s config dataclass
    (the Agent class's ``CONFIG``, docs/interfaces.md) lacks."""
    keys = {key for key in overrides if key != STEPS_KEY}
    if not keys:
        return
    config_type = load_agent_class(method).CONFIG
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(keys - known)
    if unknown:
        raise ValueError(f"{method} has no config field {unknown[0]!r}; fields: {', '.join(sorted(known))}")


def resolve_config(method: str, spec: Any, profile: str, column_overrides: dict[str, Any],
                   cli_overrides: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(config overrides for ``fit``, training steps) for ``method`` on the dataset ``spec``.

    ``spec`` is a suites DatasetSpec (uses ``spec.suite`` and ``spec.hparams``).
    """
    cls = load_agent_class(method)
    profiles = getattr(cls, "PROFILES", {}) or {}
    if profile not in profiles or STEPS_KEY not in profiles[profile]:
        raise ValueError(f"{method} ({cls.__name__}) has no PROFILES[{profile!r}] with {STEPS_KEY!r}")
    suite_overrides = cls.suite_overrides(spec.suite, getattr(spec, "key", None)) if hasattr(cls, "suite_overrides") else {}
    config: dict[str, Any] = {}
    for layer in ((getattr(spec, "hparams", None) or {}).get(method) or {}, suite_overrides or {},
                  profiles[profile], column_overrides or {}, cli_overrides or {}):
        config.update(layer)
    steps = int(config.pop(STEPS_KEY))
    return config, steps


