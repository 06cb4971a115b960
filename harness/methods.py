"""Registry of methods the harness can run: name -> Agent class (imported lazily).

Methods the paper only reports (ADT, CARP, DD, HDMI, HD, ...) are not here: their cells come
from results/paper/.
"""
from __future__ import annotations

import importlib
import os

METHODS: dict[str, str] = {
    "mage": "mage.agent:MageAgent",
    "dt": "baselines.dt:DTAgent",
    "iql": "baselines.iql:IQLAgent",
    "diffuser": "baselines.diffuser:DiffuserAgent",
    "bc": "baselines.bc:BCAgent",
    "cql": "baselines.cql:CQLAgent",
}

# How tables name a method's column when no plan gives it a label (reproduce.py --methods bc on Table 4).
METHOD_LABELS = {"mage": "MAGE", "dt": "DT", "iql": "IQL", "diffuser": "Diffuser", "bc": "BC", "cql": "CQL"}

# Extra methods, e.g. "toy=tests.toy_agent:ToyAgent,other=pkg.mod:Cls": lets tests and users register
# agents without editing this file; an environment variable because Ray workers inherit it.
EXTRA_METHODS_ENV = "MAGE_HARNESS_EXTRA_METHODS"


def registered_methods() -> dict[str, str]:
    """METHODS plus those named in $MAGE_HARNESS_EXTRA_METHODS (name -> "module:Class")."""
    methods = dict(METHODS)
    for item in filter(None, (part.strip() for part in os.environ.get(EXTRA_METHODS_ENV, "").split(","))):
        name, _, target = item.partition("=")
        if not name or ":" not in target:
            raise ValueError(f"{EXTRA_METHODS_ENV} entry {item!r} is not NAME=module:Class")
        methods[name.strip()] = target.strip()
    return methods


def method_label(name: str) -> str:
    """The column label of ``name`` in a table (its own name for methods registered by the user)."""
    return METHOD_LABELS.get(name, name)


def agent_class(name: str):
    """The Agent class registered under ``name``; ValueError for an unknown one."""
    methods = registered_methods()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(methods))}")
    module_name, class_name = methods[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_agent(name: str, seed: int, device: str = "cpu"):
    return agent_class(name)(seed=seed, device=device)
