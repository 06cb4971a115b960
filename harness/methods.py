"""Registry of methods the harness can run: name -> Agent class (imported lazily).

Methods the paper only reports (ADT, CARP, DD, HDMI, HD, ...) are not here: their cells come
from results/paper/.
"""
from __future__ import annotations

import importlib

METHODS: dict[str, str] = {
    "mage": "mage.agent:MageAgent",
    "dt": "baselines.dt:DTAgent",
    "iql": "baselines.iql:IQLAgent",
    "diffuser": "baselines.diffuser:DiffuserAgent",
    "bc": "baselines.bc:BCAgent",
    "cql": "baselines.cql:CQLAgent",
}


def agent_class(name: str):
    """The Agent class registered under ``name``; ValueError for an unknown one."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    module_name, class_name = METHODS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_agent(name: str, seed: int, device: str = "cpu"):
    return agent_class(name)(seed=seed, device=device)
