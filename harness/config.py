"""Resolve one run's method config, and parse command-line ``--set METHOD.KEY=VALUE`` overrides.

Precedence, last wins (docs/interfaces.md): method defaults (inside the Agent) < suite YAML
``hparams[method]`` < ``Agent.suite_overrides(suite, dataset)`` < ``Agent.PROFILES[profile]`` < plan column
overrides < command-line overrides. The result is a dict of overrides handed to ``Agent.fit``;
the key ``steps`` is taken out of it and passed to ``fit`` as its ``steps`` argument.

``check_plan_configs`` is the gate before any work: every ``--set`` names a method the plan runs and
a field of its config dataclass with a value of the field's type, and every (method, dataset) config
of the plan builds (the dataclass's own range checks run), so a bad value stops the command with one
line instead of failing every run.
"""
from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
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
    """Raise ValueError (one line) when ``overrides`` (a method's ``--set`` values) holds a key that
    ``method``'s config dataclass (the Agent class's ``CONFIG``, docs/interfaces.md) lacks, or a value
    that is not of the field's type; ``steps`` must be a positive integer."""
    keys = {key for key in overrides if key != STEPS_KEY}
    if STEPS_KEY in overrides and not (_fits(overrides[STEPS_KEY], int) and overrides[STEPS_KEY] > 0):
        raise ValueError(f"bad --set {method}.{STEPS_KEY}={overrides[STEPS_KEY]!r}: {STEPS_KEY} takes a positive integer")
    if not keys:
        return
    config_type = load_agent_class(method).CONFIG
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(keys - known)
    if unknown:
        raise ValueError(f"{method} has no config field {unknown[0]!r}; fields: {', '.join(sorted(known))}")
    try:
        check_types(config_type, {key: overrides[key] for key in keys})
    except ValueError as error:
        raise ValueError(f"bad --set {method}.{error}") from None


def check_types(config_type: type, values: dict[str, Any]) -> None:
    """ValueError "KEY=VALUE: KEY takes <what>" for the first value that does not fit the type
    annotation of its field in the dataclass ``config_type``.

    Rules (YAML's types, as ``parse_overrides`` reads them): int fields take integers (not true/false),
    float fields integers or decimals, bool fields true/false, str fields strings, ``X | None`` also
    null, list and tuple fields lists whose items fit. Annotations outside these (dict, Any) are left
    to the dataclass. Not pydantic: it is not a dependency, and its lax mode takes true for an int.
    """
    hints = typing.get_type_hints(config_type)
    for key, value in values.items():
        if key in hints and not _fits(value, hints[key]):
            raise ValueError(f"{key}={value!r}: {key} takes {_describe(hints[key])}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin in (list, tuple):
        items = [arg for arg in args if arg is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_fits(item, items[0]) for item in value if items)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like on the command line: "an integer or null", ..."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin in (list, tuple):
        items = [arg for arg in args if arg is not Ellipsis]
        return f"a list of {_describe(items[0]).split(' ', 1)[1]}s" if items else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def build_config(method: str, config: dict[str, Any]) -> Any:
    """``method``'s config dataclass built from the resolved overrides ``config`` (types checked, then
    the dataclass's ``__post_init__`` range checks run); ValueError (one line) when it cannot be."""
    config_type = load_agent_class(method).CONFIG
    check_types(config_type, config)
    try:
        return config_type(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(" ".join(str(error).split())) from None


def agent_config(method: str, config: dict[str, Any]) -> dict[str, Any]:
    """``method``'s whole config, the code's defaults included, as JSON values: what a run trained with.

    A run's id hashes only its resolved overrides (``config``), so that kept runs are found again after
    an unrelated code change; result.json records this too, so a run finished before a default changed
    can be told from one made after (``config_changes``)."""
    return json.loads(json.dumps(dataclasses.asdict(build_config(method, config)), default=str))


def first_policy_step(method: str, config: dict[str, Any], steps: int) -> int:
    """The step from which a fit of ``steps`` steps trains ``method``'s acting policy: its config's
    ``first_policy_step(steps)`` where the method first trains parts that do not act (MAGE: the stage-0 critic
    and the stage-1 tokenizer), else 0. Periodic evaluations are spread after it."""
    cfg = build_config(method, config)
    return int(cfg.first_policy_step(steps)) if hasattr(cfg, "first_policy_step") else 0


def config_changes(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (recorded value, current value)} of the fields where a finished run's recorded agent_config
    differs from the config the code resolves now; a field the record lacks (added since) reads "unset"."""
    return {name: (recorded.get(name, "unset"), value) for name, value in current.items()
            if recorded.get(name, "unset") != value}


def check_plan_configs(plan: Any, profile: str, cli_overrides: dict[str, dict[str, Any]]) -> None:
    """Before any work: every ``--set`` names a method ``plan`` runs, a field of its config and a value
    of the field's type, and every (method, dataset) config of the plan under ``profile`` (the agent
    size) builds. Raises ValueError (one line) naming the key, the value and what is allowed."""
    from suites.registry import dataset_spec

    for method, values in cli_overrides.items():
        if method not in plan.methods:
            item = f"{method}.{next(iter(values))}" if values else method
            raise ValueError(f"--set {item}: plan {plan.name} does not run {method} (it runs "
                             f"{', '.join(plan.methods) or 'none'}); add --methods to run it or drop the --set")
        validate_overrides(method, values)
    for row in plan.rows:
        if row.dataset is None:
            continue
        spec = dataset_spec(row.dataset)
        for column in plan.run_columns:
            config, _ = resolve_config(column.method, spec, profile, column.overrides,
                                       cli_overrides.get(column.method, {}))
            try:
                build_config(column.method, config)
            except ValueError as error:
                raise ValueError(f"bad {column.method} config for {row.dataset} (column {column.label}): {error}") from None


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


